//! One webhook received: verified exactly as LiveKit's receivers do, parsed,
//! and stored durably. The same path serves the HTTP route and demo mode.

use super::inbox::Stored;
use super::Ingest;
use crate::domain::NewEvent;
use crate::livekit::webhook::{self, WebhookError, WebhookEvent};
use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Stored now: it will be processed.
    Accepted,
    /// Its id was stored before: LiveKit retried.
    Duplicate,
}

impl Received {
    pub fn as_str(self) -> &'static str {
        match self {
            Received::Accepted => "accepted",
            Received::Duplicate => "duplicate",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// Not signed by a known key, or not for this body (401).
    #[error("{0}")]
    Refused(WebhookError),
    /// Signed, but not a webhook event we can read (400).
    #[error("{0}")]
    Malformed(String),
    /// Not stored: the database is away (503, so LiveKit retries).
    #[error("the database is unavailable; retry shortly")]
    Unavailable,
}

impl Ingest {
    /// Verifies, parses and durably stores one webhook; returns what became
    /// of it and its event id.
    pub async fn receive(
        &self,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<(Received, String), ReceiveError> {
        Metrics::inc(&self.metrics.webhooks_received);
        let api_key = webhook::verify(&self.keys, authorization, body).map_err(|error| {
            self.metrics.rejected(error.label());
            tracing::warn!(reason = error.label(), "webhook refused");
            ReceiveError::Refused(error)
        })?;
        let event = WebhookEvent::parse(body).map_err(|reason| {
            self.metrics.rejected("malformed");
            ReceiveError::Malformed(reason)
        })?;
        let text = std::str::from_utf8(body)
            .map_err(|_| ReceiveError::Malformed("body is not UTF-8".into()))?;
        let identity = event
            .participant
            .as_ref()
            .map_or("", |p| p.identity.as_str());
        let stored = self
            .inbox
            .store(NewEvent {
                id: event.id.clone(),
                event: event.event.clone(),
                room: event.room_name().to_string(),
                created_at_ms: event.created_at * 1000,
                api_key,
                body: text.to_string(),
                // Unreadable facts: stored pending, for the processor to
                // retry and dead-letter with the reason.
                facts: self.facts_of(&event).ok(),
            })
            .await
            .map_err(|error| {
                tracing::error!(event_id = %event.id, room = %event.room_name(), identity, %error, "webhook not stored: answering 503 so LiveKit retries");
                ReceiveError::Unavailable
            })?;
        let received = match stored {
            Stored::Applied => Received::Accepted,
            Stored::Pending => {
                self.wake_processors();
                Received::Accepted
            }
            Stored::Duplicate => Received::Duplicate,
        };
        Metrics::inc(match received {
            Received::Accepted => &self.metrics.webhooks_accepted,
            Received::Duplicate => &self.metrics.webhooks_duplicate,
        });
        tracing::info!(event_id = %event.id, event = %event.event, room = %event.room_name(), identity, status = received.as_str(), "webhook stored");
        Ok((received, event.id))
    }
}
