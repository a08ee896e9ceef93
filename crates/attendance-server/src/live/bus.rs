//! Several instances on one PostgreSQL act as one: every change is announced
//! with `NOTIFY`, and every instance (the announcer included) `LISTEN`s and
//! pushes it to its own WebSocket subscribers.
//!
//! NOTIFY payloads are small (ids only; subscribers recompute from the
//! store), batched (NOTIFY serialises commits, so one per burst, not one per
//! change or subscriber), and kept under PostgreSQL's 8000-byte limit. When
//! a notification may have been missed (listener reconnect, a feed past its
//! bound), every local subscriber resyncs from a snapshot.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, watch};

use super::feed::{next_batch, FeedReader};
use super::{delivery, Live};
use crate::domain::Changed;

pub const CHANNEL: &str = "attendance_changes";
/// PostgreSQL refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7800;
/// How long the notifier gathers changes into one NOTIFY.
const BATCH_WINDOW: Duration = Duration::from_millis(5);

#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// Every instance must resync every room (changes were dropped).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    #[serde(default, rename = "c")]
    pub changes: Vec<Changed>,
}

/// Splits a batch into payloads under the size limit.
pub fn encode(changes: &[Changed], all: bool) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = Payload {
        all,
        changes: Vec::new(),
    };
    let mut size = 16;
    for change in changes {
        let len = change.room.len() + change.identity.as_ref().map_or(4, String::len) + 56;
        if len > MAX_PAYLOAD - 32 {
            // Absurdly long names: announce the room only.
            continue;
        }
        if size + len > MAX_PAYLOAD && !current.changes.is_empty() {
            payloads.push(serde_json::to_string(&current).expect("serializable"));
            current = Payload::default();
            size = 16;
        }
        size += len;
        current.changes.push(change.clone());
    }
    if current.all || !current.changes.is_empty() {
        payloads.push(serde_json::to_string(&current).expect("serializable"));
    }
    payloads
}

/// Sends batched NOTIFYs until shutdown.
pub async fn run_notifier(live: Live, feed: FeedReader, mut shutdown: watch::Receiver<bool>) {
    while let Some((changes, all)) = next_batch(&feed, BATCH_WINDOW, &mut shutdown).await {
        for payload in encode(&changes, all) {
            let mut delay = Duration::from_millis(50);
            while let Err(error) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(&payload)
                .execute(live.store.pool())
                .await
            {
                tracing::warn!(%error, "NOTIFY failed; retrying");
                if *shutdown.borrow() {
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Listens for every instance's changes and pushes them to local subscribers.
///
/// Receiving and pushing are two tasks: what the kept facts must forget is
/// forgotten as each notification arrives, while the pushes of every
/// notification that arrived during the previous batch's pushes go out as
/// one batch (each participant recomputed once), in order. Otherwise, with
/// several instances writing, notifications would queue behind one another's
/// pushes.
pub async fn run_listener(live: Live, shutdown: watch::Receiver<bool>) {
    let (to_deliver, mut delivering) = mpsc::unbounded_channel::<Payload>();
    let pusher = {
        let live = live.clone();
        tokio::spawn(async move {
            while let Some(mut batch) = delivering.recv().await {
                while let Ok(more) = delivering.try_recv() {
                    batch.all |= more.all;
                    batch.changes.extend(more.changes);
                }
                delivery::deliver_batch(&live, batch.changes, batch.all).await;
            }
        })
    };
    listen(&live, shutdown, &to_deliver).await;
    drop(to_deliver);
    let _ = pusher.await;
}

async fn listen(
    live: &Live,
    mut shutdown: watch::Receiver<bool>,
    to_deliver: &mpsc::UnboundedSender<Payload>,
) {
    let database_url = live.store.url().to_string();
    let mut first = true;
    loop {
        let mut listener = match connect(&database_url).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "LISTEN connection failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        live.listening.store(true, Ordering::Relaxed);
        if !first {
            // Notifications sent while we were away are lost: resync.
            tracing::info!("LISTEN connection restored; resyncing live subscribers");
            note_received(
                live,
                Payload {
                    all: true,
                    changes: Vec::new(),
                },
                to_deliver,
            );
        }
        first = false;
        loop {
            let received = tokio::select! {
                r = listener.try_recv() => r,
                _ = shutdown.changed() => return,
            };
            match received {
                Ok(Some(notification)) => {
                    match serde_json::from_str::<Payload>(notification.payload()) {
                        Ok(payload) => note_received(live, payload, to_deliver),
                        Err(error) => tracing::warn!(%error, "unreadable change notification"),
                    }
                }
                // Lost: reconnect (and resync, above) with a fresh listener.
                Ok(None) => {
                    live.listening.store(false, Ordering::Relaxed);
                    tracing::warn!("LISTEN connection was lost; reconnecting");
                    break;
                }
                Err(error) => {
                    live.listening.store(false, Ordering::Relaxed);
                    tracing::warn!(%error, "LISTEN connection failed; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn connect(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// A notification: the kept facts forget what it changed at once, its
/// pushes go to the pushing task.
fn note_received(live: &Live, payload: Payload, to_deliver: &mpsc::UnboundedSender<Payload>) {
    // Another instance may have written what this one keeps for heartbeats.
    let kept = live.store.facts_cache();
    if payload.all {
        kept.clear();
    }
    for change in &payload.changes {
        match (&change.identity, change.heartbeat_at_ms) {
            (Some(identity), Some(at_ms)) => kept.note_heartbeat(&change.room, identity, at_ms),
            (Some(identity), None) => kept.invalidate(&change.room, identity),
            (None, _) => kept.invalidate_room(&change.room),
        }
    }
    let _ = to_deliver.send(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_limit_and_round_trip() {
        let changes: Vec<Changed> = (0..2000)
            .map(|i| Changed {
                room: format!("room-{}", i % 37),
                identity: (i % 5 != 0).then(|| format!("student-{i}")),
                heartbeat_at_ms: (i % 3 == 0).then_some(1_764_000_000_000 + i),
            })
            .collect();
        let payloads = encode(&changes, false);
        assert!(payloads.len() > 1);
        let mut back = Vec::new();
        for p in &payloads {
            assert!(p.len() < 8000, "{}", p.len());
            back.extend(serde_json::from_str::<Payload>(p).unwrap().changes);
        }
        assert_eq!(back, changes);
        let resync = encode(&[], true);
        assert!(serde_json::from_str::<Payload>(&resync[0]).unwrap().all);
    }
}
