//! A change announcement: which participant (or room) to recompute for
//! live subscribers. Small on purpose: it travels in PostgreSQL NOTIFYs.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Changed {
    pub room: String,
    /// `None`: something room-wide (schedule) changed.
    pub identity: Option<String>,
    /// Set when only a heartbeat arrived, at this instant (unix ms): nothing
    /// else changed, so what instances keep of the participant stays valid.
    #[serde(default, rename = "h", skip_serializing_if = "Option::is_none")]
    pub heartbeat_at_ms: Option<i64>,
}

impl Changed {
    pub fn participant(room: &str, identity: &str) -> Changed {
        Changed {
            room: room.to_string(),
            identity: Some(identity.to_string()),
            heartbeat_at_ms: None,
        }
    }

    pub fn room(room: &str) -> Changed {
        Changed {
            room: room.to_string(),
            identity: None,
            heartbeat_at_ms: None,
        }
    }
}
