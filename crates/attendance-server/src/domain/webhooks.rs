//! LiveKit webhooks as the inbox keeps them.

use chrono::{DateTime, Utc};

use super::EventFacts;

/// A webhook as stored in the inbox.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: String,
    pub event: String,
    pub room: String,
    pub created_at_ms: i64,
    pub body: String,
    pub status: String,
    pub attempts: i64,
    pub received_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// A verified webhook about to enter the inbox.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub event: String,
    pub room: String,
    pub created_at_ms: i64,
    /// The API key that signed it.
    pub api_key: String,
    /// The body exactly as received.
    pub body: String,
    /// What it means for the facts, when that could be read on receipt:
    /// applied in the transaction that stores it. `None`: stored pending,
    /// for the processor (which retries and dead-letters).
    pub facts: Option<EventFacts>,
}

/// What storing a batch of webhooks did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredBatch {
    /// Per event, `false` when its id was already stored.
    pub new: Vec<bool>,
    /// Whether the new events' facts were applied with them (else they are
    /// pending: the facts could not be applied in that transaction).
    pub applied: bool,
    /// Rooms that got a session (see `Store::apply_events`).
    pub opened: Vec<String>,
}

/// Webhooks waiting to be applied, and dead-lettered ones.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InboxCounts {
    pub pending: i64,
    pub failed: i64,
}

/// One processor's share of the rooms: those whose name hashes to `index`
/// modulo `of`, so that each room's events are applied by one processor,
/// in order (a join is never applied beside the `room_finished` that must
/// close it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: i64,
    pub of: i64,
}

impl Shard {
    /// Every room.
    pub const ALL: Shard = Shard { index: 0, of: 1 };
}
