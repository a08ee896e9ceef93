//! The HTTP surface: routes, auth, and mapping every failure to a clear
//! status and a JSON `{"error": …}` body.

use std::convert::Infallible;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use crate::app::{now, now_ms, App};
use crate::auth::{token_from_header, Principal, TokenError};
use crate::live;
use crate::metrics::Metrics;
use crate::report;
use crate::store::NewEvent;
use crate::webhook::{self, WebhookEvent};
use crate::{demo, sessions, ws};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, e.to_string())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "database error");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unavailable; retry shortly",
        )
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let mut response = warp::reply::with_status(
            warp::reply::json(&json!({ "error": self.message })),
            self.status,
        )
        .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        response
    }
}

pub type ApiResult = Result<Response, ApiError>;

pub(crate) fn respond(result: ApiResult) -> Result<Response, Infallible> {
    Ok(result.unwrap_or_else(Reply::into_response))
}

pub(crate) fn json_reply<T: Serialize>(value: &T, status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

impl App {
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, ApiError> {
        let token = token_from_header(authorization).ok_or(TokenError::Missing)?;
        Ok(self.keys.principal(token)?)
    }
}

pub(crate) fn with_app(app: App) -> impl Filter<Extract = (App,), Error = Infallible> + Clone {
    warp::any().map(move || app.clone())
}

pub(crate) fn authorization() -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Clone
{
    warp::header::optional::<String>("authorization")
}

/// Every route of the service.
pub fn routes(app: App) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let max_body = app.settings.max_body_bytes;
    let body = move || warp::body::content_length_limit(max_body).and(warp::body::bytes());

    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and(with_app(app.clone()))
        .and_then(|app: App| async move { respond(healthz(app).await) });

    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_app(app.clone()))
        .and_then(|app: App| async move { respond(metrics(app).await) });

    let webhook = warp::path!("webhooks" / "livekit")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(authorization())
        .and(body())
        .and_then(|app: App, auth: Option<String>, body: Bytes| async move {
            respond(receive_webhook(&app, auth.as_deref(), &body).await)
        });

    let heartbeat = warp::path!("api" / "sessions" / String / "heartbeat")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(authorization())
        .and_then(|room: String, app: App, auth: Option<String>| async move {
            respond(http_heartbeat(app, room, auth).await)
        });

    let failed_webhooks = warp::path!("api" / "admin" / "webhooks")
        .and(warp::get())
        .and(with_app(app.clone()))
        .and(authorization())
        .and(warp::query::<WebhookQuery>())
        .and_then(
            |app: App, auth: Option<String>, q: WebhookQuery| async move {
                respond(list_webhooks(app, auth, q).await)
            },
        );

    let replay = warp::path!("api" / "admin" / "webhooks" / String / "replay")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(authorization())
        .and_then(|id: String, app: App, auth: Option<String>| async move {
            respond(replay_webhook(app, id, auth).await)
        });

    let www = warp::fs::dir(app.settings.www_dir.clone());

    let api = healthz
        .or(metrics)
        .unify()
        .or(webhook)
        .unify()
        .or(sessions::routes(app.clone()))
        .unify()
        .or(heartbeat)
        .unify()
        .or(failed_webhooks)
        .unify()
        .or(replay)
        .unify()
        .or(ws::route(app.clone()))
        .unify()
        .or(demo::routes(app.clone()))
        .unify()
        .boxed();

    api.or(www.map(Reply::into_response))
        .unify()
        .recover(recover)
        .unify()
        .with(warp::trace::request())
}

async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::not_found("not found")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(StatusCode::LENGTH_REQUIRED, "Content-Length required")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::bad_request(e.to_string())
    } else {
        ApiError::bad_request(format!("{rejection:?}"))
    };
    Ok(error.into_response())
}

async fn healthz(app: App) -> ApiResult {
    app.store.ping().await?;
    Ok(json_reply(&json!({ "status": "ok" }), StatusCode::OK))
}

async fn metrics(app: App) -> ApiResult {
    let counts = app.store.event_counts().await.unwrap_or_default();
    let count = |status: &str| counts.get(status).copied().unwrap_or(0) as f64;
    let oldest = app.store.oldest_pending_received_ms().await.ok().flatten();
    let backlog_age = oldest.map_or(0.0, |ms| (now_ms() - ms).max(0) as f64 / 1000.0);
    let subscribers = app.hub.subscriber_count() as f64;
    let text = app.metrics.render(&[
        (
            "attendance_webhooks_pending",
            "Stored webhooks waiting to be processed",
            count("pending"),
        ),
        (
            "attendance_webhooks_dead_letters",
            "Webhooks in the dead-letter state",
            count("failed"),
        ),
        (
            "attendance_webhooks_backlog_age_seconds",
            "Age of the oldest webhook waiting to be processed",
            backlog_age,
        ),
        (
            "attendance_websocket_subscribers",
            "Open WebSocket subscriptions on this instance",
            subscribers,
        ),
    ]);
    Ok(
        warp::reply::with_header(text, header::CONTENT_TYPE, "text/plain; version=0.0.4")
            .into_response(),
    )
}

/// Verifies, parses and durably stores one webhook. Shared by the HTTP
/// route and demo mode, so demo events take the real path.
pub async fn receive_webhook(app: &App, authorization: Option<&str>, body: &[u8]) -> ApiResult {
    Metrics::inc(&app.metrics.webhooks_received);
    let api_key = match webhook::verify(&app.keys, authorization, body) {
        Ok(key) => key,
        Err(error) => {
            app.metrics.rejected(error.label());
            tracing::warn!(reason = error.label(), "webhook refused");
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, error.to_string()));
        }
    };
    let event = WebhookEvent::parse(body).map_err(|reason| {
        app.metrics.rejected("malformed");
        ApiError::bad_request(reason)
    })?;
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
    let identity = event
        .participant
        .as_ref()
        .map_or("", |p| p.identity.as_str());
    let stored = app
        .inbox
        .store(NewEvent {
            id: event.id.clone(),
            event: event.event.clone(),
            room: event.room_name().to_string(),
            created_at_ms: event.created_at * 1000,
            api_key,
            body: text.to_string(),
        })
        .await
        .map_err(|error| {
            tracing::error!(event_id = %event.id, room = %event.room_name(), identity, %error, "webhook not stored: answering 503 so LiveKit retries");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable; retry shortly")
        })?;
    let status = if stored {
        Metrics::inc(&app.metrics.webhooks_accepted);
        app.processor_wake.notify_one();
        "accepted"
    } else {
        Metrics::inc(&app.metrics.webhooks_duplicate);
        "duplicate"
    };
    tracing::info!(event_id = %event.id, event = %event.event, room = %event.room_name(), identity, status, "webhook stored");
    Ok(json_reply(
        &json!({ "status": status, "id": event.id }),
        StatusCode::OK,
    ))
}

/// Records a heartbeat for the token's own identity. Never opens a cycle:
/// an open page is not presence in the meeting. Costs no database write of
/// its own (heartbeats are flushed in batches) and tells live subscribers
/// only when it may change what they show.
pub fn heartbeat(app: &App, room: &str, who: &Principal) -> Result<DateTime<Utc>, ApiError> {
    if !who.belongs_to(room) || who.identity.is_empty() {
        return Err(ApiError::forbidden(
            "this token is not a participant of this room",
        ));
    }
    let at = now();
    app.store
        .record_heartbeat(room, &who.identity, at.timestamp_millis());
    Metrics::inc(&app.metrics.heartbeats);
    if app.hub.heartbeat_worth_announcing(room, &who.identity) {
        // The announcement carries the instant, so other instances need not
        // wait for the next flush to compute with it.
        live::heartbeat_arrived(app, room, &who.identity, at);
    }
    Ok(at)
}

async fn http_heartbeat(app: App, room: String, auth: Option<String>) -> ApiResult {
    let who = app.authenticate(auth.as_deref())?;
    let at = heartbeat(&app, &room, &who)?;
    let mut facts = app
        .store
        .participant_facts_kept(&room, &who.identity)
        .await?;
    facts.note_heartbeat(&who.identity, at);
    let attendance = facts
        .session
        .as_ref()
        .map(|s| report::one_participant(s, &facts, &who.identity, &app.settings.classifier, at));
    #[derive(Serialize)]
    struct HeartbeatReply {
        last_heartbeat_at: DateTime<Utc>,
        attendance: Option<report::ParticipantReport>,
    }
    Ok(json_reply(
        &HeartbeatReply {
            last_heartbeat_at: at,
            attendance,
        },
        StatusCode::OK,
    ))
}

#[derive(Debug, Deserialize)]
struct WebhookQuery {
    status: Option<String>,
    limit: Option<i64>,
}

async fn list_webhooks(app: App, auth: Option<String>, q: WebhookQuery) -> ApiResult {
    let who = app.authenticate(auth.as_deref())?;
    if !who.is_admin() {
        return Err(ApiError::forbidden("administrators only"));
    }
    let status = q.status.unwrap_or_else(|| "failed".into());
    if !["pending", "processed", "failed"].contains(&status.as_str()) {
        return Err(ApiError::bad_request(
            "status must be pending, processed or failed",
        ));
    }
    let events = app
        .store
        .events_by_status(&status, q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    let list: Vec<_> = events
        .iter()
        .map(|e| {
            json!({
                "id": e.id, "event": e.event, "room": e.room, "status": e.status,
                "attempts": e.attempts, "received_at": e.received_at, "last_error": e.last_error,
            })
        })
        .collect();
    Ok(json_reply(&json!({ "webhooks": list }), StatusCode::OK))
}

async fn replay_webhook(app: App, id: String, auth: Option<String>) -> ApiResult {
    let who = app.authenticate(auth.as_deref())?;
    if !who.is_admin() {
        return Err(ApiError::forbidden("administrators only"));
    }
    if !app.store.replay_event(&id, now_ms()).await? {
        return Err(ApiError::not_found(format!("no webhook with id `{id}`")));
    }
    tracing::info!(event_id = %id, by = %who.identity, "webhook queued for replay");
    app.processor_wake.notify_one();
    Ok(json_reply(
        &json!({ "status": "queued", "id": id }),
        StatusCode::ACCEPTED,
    ))
}
