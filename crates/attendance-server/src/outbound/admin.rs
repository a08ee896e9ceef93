//! What administrators do with endpoints and messages, the same from the
//! API (`/api/admin/endpoints…`) and the command line
//! (`attendance-server endpoints …`), with the JSON both show.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::address::check_url;
use super::events::EVENT_TYPES;
use super::signing::new_secret;
use crate::domain::outbound::new_id;
use crate::domain::{now, Attempt, Endpoint, OutboundMessage};
use crate::store::Store;

/// How long a rotated secret still signs, so receivers switch without a gap.
pub const ROTATION_OVERLAP: TimeDelta = TimeDelta::hours(24);

const MAX_DESCRIPTION_BYTES: usize = 1000;

pub const MESSAGE_STATUSES: [&str; 3] = ["pending", "delivered", "failed"];

#[derive(Debug)]
pub enum AdminError {
    Invalid(String),
    NotFound(String),
    Store(sqlx::Error),
}

impl From<sqlx::Error> for AdminError {
    fn from(error: sqlx::Error) -> Self {
        AdminError::Store(error)
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::Invalid(why) | AdminError::NotFound(why) => f.write_str(why),
            AdminError::Store(error) => write!(f, "database error: {error}"),
        }
    }
}

impl std::error::Error for AdminError {}

pub type AdminResult<T> = Result<T, AdminError>;

/// An endpoint as given to create (`url` and `events` required) or to
/// change (any of them).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointFields {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// `false` enables a disabled endpoint again; `true` disables it.
    pub disabled: Option<bool>,
}

pub struct Admin<'a> {
    store: &'a Store,
    allow_private: bool,
}

impl<'a> Admin<'a> {
    pub fn new(store: &'a Store, allow_private: bool) -> Self {
        Admin {
            store,
            allow_private,
        }
    }

    /// Registers an endpoint, with a fresh secret.
    pub async fn create(&self, fields: EndpointFields) -> AdminResult<Endpoint> {
        if fields.url.is_none() || fields.events.is_none() {
            return Err(AdminError::Invalid(
                "an endpoint needs a `url` and its `events`".into(),
            ));
        }
        let at = now();
        let mut endpoint = Endpoint {
            id: new_id("ep", at.timestamp_millis()),
            url: String::new(),
            description: String::new(),
            events: Vec::new(),
            secret: new_secret(),
            previous_secret: None,
            previous_secret_until: None,
            failing_since: None,
            disabled_at: None,
            disabled_reason: None,
            created_at: at,
            updated_at: at,
        };
        self.apply(&mut endpoint, fields, at).await?;
        self.store.save_endpoint(&endpoint).await?;
        Ok(endpoint)
    }

    pub async fn get(&self, id: &str) -> AdminResult<Endpoint> {
        self.store
            .endpoint(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("no endpoint with id `{id}`")))
    }

    pub async fn update(&self, id: &str, fields: EndpointFields) -> AdminResult<Endpoint> {
        let mut endpoint = self.get(id).await?;
        let at = now();
        self.apply(&mut endpoint, fields, at).await?;
        endpoint.updated_at = at;
        self.store.save_endpoint(&endpoint).await?;
        Ok(endpoint)
    }

    /// A new secret; the old one keeps signing for [`ROTATION_OVERLAP`].
    pub async fn rotate_secret(&self, id: &str) -> AdminResult<Endpoint> {
        let mut endpoint = self.get(id).await?;
        let at = now();
        let old = std::mem::replace(&mut endpoint.secret, new_secret());
        endpoint.previous_secret = Some(old);
        endpoint.previous_secret_until = Some(at + ROTATION_OVERLAP);
        endpoint.updated_at = at;
        self.store.save_endpoint(&endpoint).await?;
        Ok(endpoint)
    }

    pub async fn delete(&self, id: &str) -> AdminResult<()> {
        if !self.store.delete_endpoint(id).await? {
            return Err(AdminError::NotFound(format!("no endpoint with id `{id}`")));
        }
        Ok(())
    }

    /// An endpoint's messages, newest first, each with its attempts.
    pub async fn messages(
        &self,
        endpoint_id: &str,
        status: Option<&str>,
        limit: i64,
    ) -> AdminResult<Value> {
        self.get(endpoint_id).await?;
        if let Some(status) = status.filter(|s| !MESSAGE_STATUSES.contains(s)) {
            return Err(AdminError::Invalid(format!(
                "status must be one of {}, not `{status}`",
                MESSAGE_STATUSES.join(", ")
            )));
        }
        let mut views = Vec::new();
        for message in self
            .store
            .outbound_messages(endpoint_id, status, limit)
            .await?
        {
            let attempts = self.store.outbound_attempts(&message.id).await?;
            views.push(message_view(&message, &attempts, false));
        }
        Ok(json!({ "endpoint_id": endpoint_id, "messages": views }))
    }

    /// One message with its payload and attempts.
    pub async fn message(&self, id: &str) -> AdminResult<Value> {
        let message = self
            .store
            .outbound_message(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("no message with id `{id}`")))?;
        let attempts = self.store.outbound_attempts(id).await?;
        Ok(message_view(&message, &attempts, true))
    }

    /// Sends a message again now, at the start of the retry schedule.
    pub async fn retry(&self, id: &str) -> AdminResult<()> {
        if !self
            .store
            .retry_outbound(id, now().timestamp_millis())
            .await?
        {
            return Err(AdminError::NotFound(format!("no message with id `{id}`")));
        }
        Ok(())
    }

    async fn apply(
        &self,
        endpoint: &mut Endpoint,
        fields: EndpointFields,
        at: DateTime<Utc>,
    ) -> AdminResult<()> {
        if let Some(url) = fields.url {
            endpoint.url = check_url(url.trim(), self.allow_private)
                .await
                .map_err(AdminError::Invalid)?
                .to_string();
        }
        if let Some(events) = fields.events {
            endpoint.events = event_types(events)?;
        }
        if let Some(description) = fields.description {
            if description.len() > MAX_DESCRIPTION_BYTES {
                return Err(AdminError::Invalid(format!(
                    "description must be at most {MAX_DESCRIPTION_BYTES} bytes"
                )));
            }
            endpoint.description = description;
        }
        match fields.disabled {
            Some(true) if endpoint.disabled_at.is_none() => {
                endpoint.disabled_at = Some(at);
                endpoint.disabled_reason = Some("disabled by an administrator".into());
            }
            Some(false) => {
                endpoint.disabled_at = None;
                endpoint.disabled_reason = None;
                endpoint.failing_since = None;
            }
            _ => {}
        }
        Ok(())
    }
}

fn event_types(mut events: Vec<String>) -> AdminResult<Vec<String>> {
    events.sort();
    events.dedup();
    if events.is_empty() {
        return Err(AdminError::Invalid(format!(
            "`events` must name at least one of {}",
            EVENT_TYPES.join(", ")
        )));
    }
    if let Some(unknown) = events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
        return Err(AdminError::Invalid(format!(
            "unknown event type `{unknown}`; the types are {}",
            EVENT_TYPES.join(", ")
        )));
    }
    Ok(events)
}

/// An endpoint as shown (its secret only in [`secret_view`]).
pub fn endpoint_view(e: &Endpoint) -> Value {
    json!({
        "id": e.id, "url": e.url, "description": e.description, "events": e.events,
        "disabled": e.disabled_at.is_some(), "disabled_at": e.disabled_at,
        "disabled_reason": e.disabled_reason, "failing_since": e.failing_since,
        "previous_secret_valid_until": e.previous_secret_until.filter(|until| *until > now()),
        "created_at": e.created_at, "updated_at": e.updated_at,
    })
}

/// An endpoint with its signing secret: what creation and rotation answer.
pub fn secret_view(e: &Endpoint) -> Value {
    let mut view = endpoint_view(e);
    view["secret"] = json!(e.secret);
    view
}

pub fn message_view(m: &OutboundMessage, attempts: &[Attempt], with_payload: bool) -> Value {
    let attempts: Vec<_> = attempts
        .iter()
        .map(|a| {
            json!({ "at": a.at, "status_code": a.status_code, "duration_ms": a.duration_ms,
                    "response": a.response, "error": a.error })
        })
        .collect();
    let mut view = json!({
        "id": m.id, "endpoint_id": m.endpoint_id, "event_type": m.event_type, "status": m.status,
        "attempts": m.attempts, "created_at": m.created_at,
        "next_attempt_at": (m.status == "pending").then_some(m.next_attempt_at),
        "last_attempt_at": m.last_attempt_at, "last_status": m.last_status,
        "last_error": m.last_error, "delivered_at": m.delivered_at, "attempt_log": attempts,
    });
    if with_payload {
        view["payload"] = serde_json::from_str(&m.payload).unwrap_or(Value::Null);
    }
    view
}
