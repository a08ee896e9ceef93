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
use tokio::sync::mpsc;

use crate::domain::Changed;
use crate::metrics::Metrics;
use crate::report::Classifier;
use crate::store::Store;
use feed::ChangeFeed;
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
    feed_rx: Mutex<Option<mpsc::Receiver<Changed>>>,
}

impl std::ops::Deref for Live {
    type Target = LiveState;

    fn deref(&self) -> &LiveState {
        &self.0
    }
}

impl Live {
    pub fn new(store: Store, metrics: Arc<Metrics>, classifier: Classifier) -> Live {
        let (feed, rx) = ChangeFeed::new();
        Live(Arc::new(LiveState {
            hub: Hub::default(),
            store: store.clone(),
            metrics,
            classifier,
            listening: std::sync::atomic::AtomicBool::new(
                store.backend() == crate::store::Backend::Sqlite,
            ),
            feed,
            feed_rx: Mutex::new(Some(rx)),
        }))
    }

    /// The feed and its reading end, for the one task that reads it; `None`
    /// once taken.
    pub fn take_feed(&self) -> Option<(ChangeFeed, mpsc::Receiver<Changed>)> {
        let rx = self.feed_rx.lock().expect("feed lock").take()?;
        Some((self.feed.clone(), rx))
    }

    /// Announces that a participant's facts (or, without `identity`, a
    /// room's) changed. One queue read by one task keeps pushes in the order
    /// of the writes they report.
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
