//! Live updates: every change is announced on one [`feed`], carried to every
//! instance by the PostgreSQL [`bus`] (or straight on SQLite), recomputed and
//! published by [`delivery`] to the [`hub`], whose subscribers are the live
//! sockets; a message too big for one frame goes in [`parts`].

pub mod bus;
pub mod delivery;
pub mod feed;
pub mod hub;
pub mod parts;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::domain::Changed;
use crate::metrics::Metrics;
use crate::report::Classifier;
use crate::store::Store;
use feed::{ChangeFeed, FeedReader};
use hub::Hub;

/// A handle on live delivery, cloned into whatever announces changes; a
/// clone is one reference count.
#[derive(Clone)]
pub struct Live(Arc<LiveState>);

pub struct LiveState {
    pub hub: Hub,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub classifier: Classifier,
    feed: ChangeFeed,
    /// PostgreSQL: whether the LISTEN connection is up (other instances'
    /// changes reach this one). Always true on SQLite.
    pub listening: std::sync::atomic::AtomicBool,
    /// The feed's reading end, until the task that reads it starts.
    feed_reader: Mutex<Option<FeedReader>>,
}

impl std::ops::Deref for Live {
    type Target = LiveState;

    fn deref(&self) -> &LiveState {
        &self.0
    }
}

impl Live {
    pub fn new(store: Store, metrics: Arc<Metrics>, classifier: Classifier) -> Live {
        let (feed, reader) = ChangeFeed::new();
        Live(Arc::new(LiveState {
            hub: Hub::default(),
            store: store.clone(),
            metrics,
            classifier,
            listening: std::sync::atomic::AtomicBool::new(
                store.backend() == crate::store::Backend::Sqlite,
            ),
            feed,
            feed_reader: Mutex::new(Some(reader)),
        }))
    }

    /// The feed's reading end, for the one task that reads it; `None` once
    /// taken.
    pub fn take_feed(&self) -> Option<FeedReader> {
        self.feed_reader.lock().expect("feed lock").take()
    }

    /// Announces that a participant's facts (or, without `identity`, a
    /// room's) changed. Read by one task, which recomputes from the facts as
    /// they are then: a push never shows less than the write it reports.
    pub fn changed(&self, room: &str, identity: Option<&str>) {
        self.feed.send(match identity {
            Some(identity) => Changed::participant(room, identity),
            None => Changed::room(room),
        });
    }

    /// Announces a heartbeat that may change what subscribers show (a
    /// participant no longer stale). The announcement carries the instant,
    /// so other instances need not wait for the next flush to compute with it.
    pub fn heartbeat_arrived(&self, room: &str, identity: &str, at: DateTime<Utc>) {
        self.feed.send(Changed {
            heartbeat_at_ms: Some(at.timestamp_millis()),
            ..Changed::participant(room, identity)
        });
    }

    /// Changes in bulk (one processed batch).
    pub fn changed_many(&self, changes: Vec<Changed>) {
        changes.into_iter().for_each(|c| self.feed.send(c));
    }
}
