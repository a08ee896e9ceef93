//! The one feed every change announcement goes through: read by one task
//! that sends NOTIFYs (PostgreSQL) or delivers to local subscribers
//! (SQLite).
//!
//! Announcements waiting to be read are coalesced: a participant announced
//! many times before the reader gets to it is one pending change (with the
//! newest heartbeat), since whatever reads it recomputes from the facts as
//! they are then. The backlog is therefore bounded by the participants who
//! changed, not by the announcements: a whole school's first heartbeats at
//! 8:00 are one entry each, not an overflow that would make every
//! subscriber resync at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::domain::Changed;

/// Distinct pending changes beyond which the feed gives up tracking them
/// and has everyone resync instead (far more participants than an
/// instance holds).
const MAX_PENDING: usize = 1_000_000;

/// (room, identity, heartbeat only) → the newest heartbeat announced.
/// A heartbeat-only change stays apart from a change of the facts: other
/// instances keep what they know of a participant on the first, and must
/// forget it on the second.
type Key = (String, Option<String>, bool);

#[derive(Default)]
struct Pending {
    changes: HashMap<Key, Option<i64>>,
    overflowed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    ready: Notify,
}

/// The announcing half, held by [`super::Live`].
#[derive(Clone)]
pub struct ChangeFeed(Arc<Shared>);

/// The reading half, for the one task that reads the feed.
pub struct FeedReader(Arc<Shared>);

impl ChangeFeed {
    pub fn new() -> (ChangeFeed, FeedReader) {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            ready: Notify::new(),
        });
        (ChangeFeed(shared.clone()), FeedReader(shared))
    }

    /// Never waits.
    pub fn send(&self, change: Changed) {
        let Changed {
            room,
            identity,
            heartbeat_at_ms,
        } = change;
        let key = (room, identity, heartbeat_at_ms.is_some());
        {
            let mut pending = self.0.pending.lock().expect("feed lock");
            if pending.changes.len() >= MAX_PENDING && !pending.changes.contains_key(&key) {
                pending.overflowed = true;
            } else {
                let newest = pending.changes.entry(key).or_default();
                *newest = (*newest).max(heartbeat_at_ms);
            }
        }
        self.0.ready.notify_one();
    }
}

/// Waits for changes, gathering what arrives within `window` (and whatever
/// is already pending) into one batch of distinct changes. `all`: changes
/// were dropped, so everything must be resynced. `None` at shutdown.
pub async fn next_batch(
    reader: &FeedReader,
    window: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(Vec<Changed>, bool)> {
    loop {
        tokio::select! {
            _ = reader.0.ready.notified() => {}
            _ = shutdown.changed() => return None,
        }
        if !window.is_zero() {
            tokio::time::sleep(window).await;
        }
        let Pending {
            changes,
            overflowed,
        } = std::mem::take(&mut *reader.0.pending.lock().expect("feed lock"));
        // A wake-up can find nothing: its changes went with the batch before.
        if changes.is_empty() && !overflowed {
            continue;
        }
        let changes = changes
            .into_iter()
            .map(|((room, identity, _), heartbeat_at_ms)| Changed {
                room,
                identity,
                heartbeat_at_ms,
            })
            .collect();
        return Some((changes, overflowed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat(room: &str, identity: &str, at_ms: i64) -> Changed {
        Changed {
            heartbeat_at_ms: Some(at_ms),
            ..Changed::participant(room, identity)
        }
    }

    async fn batch(reader: &FeedReader) -> (Vec<Changed>, bool) {
        let (_keep, mut shutdown) = watch::channel(false);
        let (mut changes, all) = next_batch(reader, Duration::ZERO, &mut shutdown)
            .await
            .expect("a batch");
        changes.sort_by(|a, b| {
            (&a.room, &a.identity, a.heartbeat_at_ms).cmp(&(
                &b.room,
                &b.identity,
                b.heartbeat_at_ms,
            ))
        });
        (changes, all)
    }

    #[tokio::test]
    async fn announcements_of_one_participant_wait_as_one() {
        let (feed, reader) = ChangeFeed::new();
        feed.send(heartbeat("r", "a", 5));
        feed.send(Changed::participant("r", "a"));
        feed.send(heartbeat("r", "a", 9));
        feed.send(heartbeat("r", "a", 7));
        feed.send(Changed::participant("r", "a"));
        feed.send(Changed::room("r"));
        feed.send(Changed::room("r"));
        feed.send(heartbeat("s", "a", 1));
        assert_eq!(
            batch(&reader).await,
            (
                vec![
                    Changed::room("r"),
                    // A change of the facts is not folded into a heartbeat:
                    // other instances must forget what they kept.
                    Changed::participant("r", "a"),
                    heartbeat("r", "a", 9),
                    heartbeat("s", "a", 1),
                ],
                false
            )
        );
        // Announced after the batch was taken: the next batch.
        feed.send(Changed::participant("r", "b"));
        assert_eq!(
            batch(&reader).await,
            (vec![Changed::participant("r", "b")], false)
        );
    }

    #[tokio::test]
    async fn a_schools_first_heartbeats_at_once_do_not_overflow() {
        let (feed, reader) = ChangeFeed::new();
        for student in 0..20_000 {
            let room = format!("class {}", student / 30);
            for beat in 0..3 {
                feed.send(heartbeat(&room, &format!("student {student}"), beat));
            }
        }
        let (changes, all) = batch(&reader).await;
        assert!(!all, "no resync for everyone");
        assert_eq!(changes.len(), 20_000);
        assert!(changes.iter().all(|c| c.heartbeat_at_ms == Some(2)));
    }

    #[tokio::test]
    async fn shutdown_ends_the_reader() {
        let (_feed, reader) = ChangeFeed::new();
        let (stop, mut shutdown) = watch::channel(false);
        stop.send(true).unwrap();
        assert!(next_batch(&reader, Duration::ZERO, &mut shutdown)
            .await
            .is_none());
    }
}
