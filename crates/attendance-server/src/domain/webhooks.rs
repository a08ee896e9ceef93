//! LiveKit webhooks as the inbox keeps them.

use chrono::{DateTime, Utc};

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
}
