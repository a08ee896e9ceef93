//! The one place the server reads the clock.

use chrono::{DateTime, Utc};

/// Now, in whole milliseconds: the precision the store keeps, so what we
/// answer is what we stored.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

pub fn now_ms() -> i64 {
    now().timestamp_millis()
}

pub fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}
