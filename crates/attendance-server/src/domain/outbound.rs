//! Outbound webhooks as stored: endpoints, the messages of the outbox and
//! their delivery attempts.

use chrono::{DateTime, Utc};

/// An event to put in the outbox, once for every endpoint subscribed to its
/// type; `payload` is the body exactly as it will be signed and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundEvent {
    pub event_type: String,
    pub payload: String,
    pub created_at_ms: i64,
}

/// A receiver registered by an administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub description: String,
    /// Event types it receives.
    pub events: Vec<String>,
    /// `whsec_` + base64 of the key bytes.
    pub secret: String,
    /// The secret before the last rotation, still signed with until
    /// `previous_secret_until` so receivers can switch without a gap.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// The first failed attempt since the last successful one.
    pub failing_since: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Endpoint {
    pub fn receives(&self, event_type: &str) -> bool {
        self.events.iter().any(|e| e == event_type)
    }

    /// The secrets to sign with at `at`: the current one, and the previous
    /// one while its overlap lasts.
    pub fn signing_secrets(&self, at: DateTime<Utc>) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_secret_until) {
            if at < until {
                secrets.push(previous);
            }
        }
        secrets
    }
}

/// One message of the outbox: one event for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// `msg_…`, sent as `webhook-id` on every attempt.
    pub id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub payload: String,
    /// `pending`, `delivered` or `failed` (retries exhausted).
    pub status: String,
    /// Attempts ever made.
    pub attempts: i64,
    /// Place in the retry schedule (back to 0 on a manual retry).
    pub step: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// One delivery attempt, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub message_id: String,
    pub endpoint_id: String,
    pub at: DateTime<Utc>,
    /// The HTTP status, when the endpoint answered.
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    /// The first KiB of the answer.
    pub response: String,
    /// Why there was no answer (timeout, connection refused, …).
    pub error: Option<String>,
}

/// What an attempt means for its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; tried again at this instant (unix ms).
    RetryAt(i64),
    /// Failed, and the retry schedule is exhausted.
    GaveUp,
}

/// A fresh identifier: `prefix_` then a ULID (time-ordered, 80 random bits).
pub fn new_id(prefix: &str, now_ms: i64) -> String {
    use rand::Rng;
    const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let value: u128 = (u128::from(now_ms as u64 & 0xFFFF_FFFF_FFFF) << 80)
        | (rand::rng().random::<u128>() & ((1u128 << 80) - 1));
    let ulid: String = (0..26)
        .rev()
        .map(|i| CROCKFORD[((value >> (i * 5)) & 31) as usize] as char)
        .collect();
    format!("{prefix}_{ulid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_ulids_ordered_by_time() {
        let a = new_id("msg", 1_000);
        let b = new_id("msg", 2_000);
        assert!(a.starts_with("msg_") && a.len() == 30, "{a}");
        assert!(a < b);
        assert_ne!(new_id("msg", 1_000), new_id("msg", 1_000));
    }
}
