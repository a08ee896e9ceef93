//! The shared state every route and background task works with.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::auth::KeyRing;
use crate::hub::Hub;
use crate::inbox::Inbox;
use crate::metrics::Metrics;
use crate::notify::ChangeFeed;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest request body accepted (webhooks, sessions), in bytes.
    pub max_body_bytes: u64,
    /// Processing attempts before an event is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles on each attempt.
    pub retry_base: Duration,
    pub sweep_interval: Duration,
    /// How long a claimed webhook is reserved for the instance processing it.
    pub processing_lease: Duration,
    /// Serve `/demo/*`: fabricated, LiveKit-signed events for trying it out.
    pub demo: bool,
    /// Who counts as a student, a teacher or neither.
    pub classifier: crate::report::Classifier,
    pub www_dir: std::path::PathBuf,
}

/// A handle on the shared state: cloned into every route and task, so a
/// clone is one reference count.
#[derive(Clone)]
pub struct App(Arc<AppState>);

pub struct AppState {
    pub store: Store,
    pub keys: KeyRing,
    pub hub: Hub,
    pub settings: Settings,
    pub metrics: Metrics,
    /// Wakes the processor when a webhook was stored.
    pub processor_wake: Notify,
    /// The queue of change announcements (see `live::changed`); set when
    /// the server starts.
    pub feed: OnceLock<ChangeFeed>,
    /// Group-committing writer for verified webhooks.
    pub inbox: Inbox,
}

impl std::ops::Deref for App {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.0
    }
}

impl App {
    pub fn new(store: Store, keys: KeyRing, settings: Settings) -> Self {
        App(Arc::new(AppState {
            store: store.clone(),
            keys,
            hub: Hub::default(),
            settings,
            metrics: Metrics::default(),
            processor_wake: Notify::new(),
            feed: OnceLock::new(),
            inbox: Inbox::start(store.clone()),
        }))
    }
}

/// The one place the server reads the clock. Whole milliseconds, the
/// precision the store keeps, so what we answer is what we stored.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

pub fn now_ms() -> i64 {
    now().timestamp_millis()
}
