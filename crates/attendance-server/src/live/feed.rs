//! The one queue every change announcement goes through, in the order of
//! the writes it reports: read by one task that sends NOTIFYs (PostgreSQL)
//! or delivers to local subscribers (SQLite).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::domain::Changed;

const QUEUE: usize = 16 * 1024;

/// The sending half, held by [`super::Live`].
#[derive(Clone)]
pub struct ChangeFeed {
    tx: mpsc::Sender<Changed>,
    overflowed: Arc<AtomicBool>,
}

impl ChangeFeed {
    pub fn new() -> (ChangeFeed, mpsc::Receiver<Changed>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            ChangeFeed {
                tx,
                overflowed: Arc::new(AtomicBool::new(false)),
            },
            rx,
        )
    }

    /// Never waits: a full queue turns into a resync for everyone.
    pub fn send(&self, change: Changed) {
        if self.tx.try_send(change).is_err() {
            self.overflowed.store(true, Ordering::Relaxed);
        }
    }
}

/// Waits for the next changes in the queue, gathering what arrives within
/// `window` (and whatever is already queued) into one batch, in order of
/// arrival. `all`: changes were dropped (the queue was full), so everything
/// must be resynced. `None` at shutdown.
pub async fn next_batch(
    feed: &ChangeFeed,
    rx: &mut mpsc::Receiver<Changed>,
    window: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(Vec<Changed>, bool)> {
    let first = tokio::select! {
        change = rx.recv() => change?,
        _ = shutdown.changed() => return None,
    };
    if !window.is_zero() {
        tokio::time::sleep(window).await;
    }
    let mut batch = vec![first];
    while let Ok(change) = rx.try_recv() {
        batch.push(change);
    }
    Some((batch, feed.overflowed.swap(false, Ordering::Relaxed)))
}
