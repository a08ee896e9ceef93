//! The live messages (`attendance.snapshot`, `attendance.updated`) and the
//! publishing of changes to the hub.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::app::{now, App};
use crate::auth::Principal;
use crate::hub::Change;
use crate::metrics::Metrics;
use crate::notify::{self, ChangeFeed, Changed};
use crate::report::{self, ParticipantReport, SessionView};
use crate::store::{ms_to_time, StoreResult};

#[derive(Serialize)]
struct Updated<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    identity: &'a str,
    attendance: &'a ParticipantReport,
    session: &'a SessionView,
    server_time: DateTime<Utc>,
}

#[derive(Serialize)]
struct Snapshot<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    session: Option<SessionView>,
    /// Students (a participant token: only themselves).
    participants: Vec<ParticipantReport>,
    teachers: Vec<ParticipantReport>,
    excluded: Vec<ParticipantReport>,
    server_time: DateTime<Utc>,
}

/// Participants recomputed at once when a batch touches many.
const PUSH_CONCURRENCY: usize = 16;

/// Announces a change. Every announcement goes through one queue
/// ([`App::feed`]): to every instance by PostgreSQL NOTIFY, or straight to
/// this instance's subscribers ([`run_local_delivery`]). One queue read by
/// one task keeps pushes in the order of the writes they report.
pub fn changed(app: &App, room: &str, identity: Option<&str>) {
    announce(
        app,
        Changed {
            room: room.to_string(),
            identity: identity.map(str::to_string),
            heartbeat_at_ms: None,
        },
    )
}

/// Announces a heartbeat that may change what subscribers show (a
/// participant no longer stale).
pub fn heartbeat_arrived(app: &App, room: &str, identity: &str, at: DateTime<Utc>) {
    announce(
        app,
        Changed {
            room: room.to_string(),
            identity: Some(identity.to_string()),
            heartbeat_at_ms: Some(at.timestamp_millis()),
        },
    )
}

/// Changes in bulk (one processed batch).
pub fn changed_many(app: &App, changes: Vec<Changed>) {
    changes.into_iter().for_each(|c| announce(app, c));
}

fn announce(app: &App, change: Changed) {
    // Unset only before the server runs, when nobody can be subscribed.
    if let Some(feed) = app.feed.get() {
        feed.send(change);
    }
}

/// Delivers announced changes to this instance's subscribers, batch after
/// batch, until shutdown (SQLite: no other instance to tell).
pub async fn run_local_delivery(
    app: App,
    feed: ChangeFeed,
    mut rx: mpsc::Receiver<Changed>,
    mut shutdown: watch::Receiver<bool>,
) {
    while let Some((changes, all)) =
        notify::next_batch(&feed, &mut rx, Duration::ZERO, &mut shutdown).await
    {
        deliver_batch(&app, changes, all).await;
    }
}

/// One batch of changes to this instance's subscribers; `all`: changes were
/// lost on the way, so every subscriber resyncs from a snapshot.
pub async fn deliver_batch(app: &App, changes: Vec<Changed>, all: bool) {
    if all {
        app.hub
            .rooms()
            .iter()
            .for_each(|room| publish_room(app, room));
    }
    deliver_locally_many(app, changes).await;
}

/// Several changes to this instance's subscribers. Each participant is
/// recomputed once however many of the changes name them (from the facts
/// as they are now, with the newest announced heartbeat), and different
/// participants concurrently, so a class of 500 is not pushed one by one.
async fn deliver_locally_many(app: &App, changes: Vec<Changed>) {
    use futures_util::StreamExt;
    futures_util::stream::iter(one_per_participant(changes))
        .for_each_concurrent(PUSH_CONCURRENCY, |change| async move {
            deliver_locally(app, &change).await
        })
        .await;
}

/// One change per participant (and per room-wide change), with the newest
/// heartbeat any of them announced: pushes computed concurrently never
/// race for the same participant.
fn one_per_participant(changes: Vec<Changed>) -> Vec<Changed> {
    let mut merged: BTreeMap<(String, Option<String>), Option<i64>> = BTreeMap::new();
    for change in changes {
        let heartbeat = merged.entry((change.room, change.identity)).or_default();
        *heartbeat = (*heartbeat).max(change.heartbeat_at_ms);
    }
    merged
        .into_iter()
        .map(|((room, identity), heartbeat_at_ms)| Changed {
            room,
            identity,
            heartbeat_at_ms,
        })
        .collect()
}

/// Pushes one change to this instance's subscribers.
async fn deliver_locally(app: &App, change: &Changed) {
    match &change.identity {
        Some(identity) => {
            let heartbeat = change.heartbeat_at_ms.map(ms_to_time);
            if let Err(error) = publish_participant(app, &change.room, identity, heartbeat).await {
                tracing::warn!(%error, room = %change.room, identity = %identity, "live update skipped");
            }
        }
        None => publish_room(app, &change.room),
    }
}

/// Recomputes one participant and tells the room's subscribers.
pub async fn publish_participant(
    app: &App,
    room: &str,
    identity: &str,
    heartbeat: Option<DateTime<Utc>>,
) -> StoreResult<()> {
    if !app.hub.has_subscribers(room) {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let mut facts = app.store.participant_facts_kept(room, identity).await?;
    if let Some(at) = heartbeat {
        facts.note_heartbeat(identity, at);
    }
    let Some(session) = &facts.session else {
        return Ok(()); // nothing to compute without a schedule
    };
    let at = now();
    let participant =
        report::one_participant(session, &facts, identity, &app.settings.classifier, at);
    let message = Updated {
        kind: "attendance.updated",
        room,
        identity,
        attendance: &participant,
        session: &SessionView::from(session),
        server_time: at,
    };
    let json: Arc<str> = serde_json::to_string(&message)
        .expect("serializable")
        .into();
    Metrics::inc(&app.metrics.broadcasts);
    app.metrics.broadcast_latency.observe(started.elapsed());
    app.hub.publish(
        room,
        Change::Participant {
            identity: identity.to_string(),
            json,
        },
    );
    Ok(())
}

/// Tells a room's subscribers to resync (schedule changed).
pub fn publish_room(app: &App, room: &str) {
    app.hub.publish(room, Change::Room);
}

/// The snapshot a subscriber gets on connect and on resync: everyone for a
/// teacher or admin, only themselves for a participant.
pub async fn snapshot(app: &App, room: &str, who: &Principal) -> StoreResult<String> {
    let facts = if who.manages(room) {
        app.store.room_facts(room).await?
    } else {
        app.store
            .participant_facts_kept(room, &who.identity)
            .await?
    };
    let at = now();
    let classifier = &app.settings.classifier;
    let (participants, teachers, excluded) = match &facts.session {
        Some(session) if who.manages(room) => {
            let r = report::session_report(session, &facts, classifier, None, at);
            (r.participants, r.teachers, r.excluded)
        }
        Some(session) => (
            vec![report::one_participant(
                session,
                &facts,
                &who.identity,
                classifier,
                at,
            )],
            Vec::new(),
            Vec::new(),
        ),
        None => Default::default(),
    };
    let message = Snapshot {
        kind: "attendance.snapshot",
        room,
        session: facts.session.as_ref().map(SessionView::from),
        participants,
        teachers,
        excluded,
        server_time: at,
    };
    Ok(serde_json::to_string(&message).expect("serializable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(room: &str, identity: Option<&str>, heartbeat_at_ms: Option<i64>) -> Changed {
        Changed {
            room: room.into(),
            identity: identity.map(Into::into),
            heartbeat_at_ms,
        }
    }

    #[test]
    fn each_participant_is_pushed_once_with_the_newest_heartbeat() {
        let merged = one_per_participant(vec![
            change("r", Some("a"), Some(5)),
            change("r", Some("a"), None), // joined, then left: one recompute
            change("r", Some("a"), Some(9)),
            change("r", Some("a"), Some(7)),
            change("r", Some("b"), None),
            change("r", None, None),
            change("s", Some("a"), None),
            change("r", None, None),
        ]);
        assert_eq!(
            merged,
            vec![
                change("r", None, None),
                change("r", Some("a"), Some(9)),
                change("r", Some("b"), None),
                change("s", Some("a"), None),
            ]
        );
    }
}
