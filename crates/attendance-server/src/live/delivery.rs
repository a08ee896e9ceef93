//! Delivery to this instance's subscribers: the live messages
//! (`attendance.snapshot`, `attendance.updated`) computed from the facts and
//! published to the hub.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

use super::feed::{next_batch, FeedReader};
use super::hub::{Change, ParticipantChange};
use super::Live;
use crate::domain::{ms_to_time, now, now_ms, Changed, SessionRow};
use crate::livekit::Principal;
use crate::metrics::Metrics;
use crate::report::{self, ParticipantReport, SessionView};
use crate::store::StoreResult;

#[derive(Serialize)]
struct Updated<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    identity: &'a str,
    attendance: &'a ParticipantReport,
    /// Only for subscribers last sent another session object: an update
    /// carries what changed (they got the session in their snapshot).
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a SessionView>,
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

/// Delivers announced changes to this instance's subscribers, batch after
/// batch, until shutdown (SQLite: no other instance to tell).
pub async fn run_local_delivery(live: Live, feed: FeedReader, mut shutdown: watch::Receiver<bool>) {
    while let Some((changes, all)) = next_batch(&feed, Duration::ZERO, &mut shutdown).await {
        deliver_batch(&live, changes, all).await;
    }
}

/// One batch of changes to this instance's subscribers; `all`: changes were
/// lost on the way, so every subscriber resyncs from a snapshot.
pub async fn deliver_batch(live: &Live, changes: Vec<Changed>, all: bool) {
    if all {
        live.hub
            .rooms()
            .iter()
            .for_each(|room| publish_room(live, room));
    }
    deliver_locally_many(live, changes).await;
}

/// Several changes to this instance's subscribers. Each participant is
/// recomputed once however many of the changes name them (from the facts
/// as they are now, with the newest announced heartbeat), and different
/// participants concurrently, so a class of 500 is not pushed one by one.
async fn deliver_locally_many(live: &Live, changes: Vec<Changed>) {
    use futures_util::StreamExt;
    futures_util::stream::iter(one_per_participant(changes))
        .for_each_concurrent(PUSH_CONCURRENCY, |change| async move {
            deliver_locally(live, &change).await
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
async fn deliver_locally(live: &Live, change: &Changed) {
    match &change.identity {
        Some(identity) => {
            let heartbeat = change.heartbeat_at_ms.map(ms_to_time);
            if let Err(error) = publish_participant(live, &change.room, identity, heartbeat).await {
                tracing::warn!(%error, room = %change.room, identity = %identity, "live update skipped");
            }
        }
        None => publish_room(live, &change.room),
    }
}

/// Recomputes one participant and tells the room's subscribers.
pub async fn publish_participant(
    live: &Live,
    room: &str,
    identity: &str,
    heartbeat: Option<DateTime<Utc>>,
) -> StoreResult<()> {
    if !live.hub.wants(room, identity, now_ms()) {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let mut facts = live.store.participant_facts_kept(room, identity).await?;
    if let Some(at) = heartbeat {
        facts.note_heartbeat(identity, at);
    }
    let Some(session) = &facts.session else {
        return Ok(()); // nothing to compute without a schedule
    };
    // The room's current session is another one than subscribers show (a
    // lesson ended, a room nobody scheduled got its session): resync them.
    if live
        .hub
        .note_current(room, session.id, facts.current_until_ms)
    {
        publish_room(live, room);
        return Ok(());
    }
    let at = now();
    let participant = report::one_participant(session, &facts, identity, &live.classifier, at);
    let view = SessionView::of(session, at);
    let render = |session: Option<&SessionView>| -> Arc<str> {
        let message = Updated {
            kind: "attendance.updated",
            room,
            identity,
            attendance: &participant,
            session,
            server_time: at,
        };
        serde_json::to_string(&message)
            .expect("serializable")
            .into()
    };
    let change = ParticipantChange {
        identity: identity.to_string(),
        session: session.id,
        json: render(None),
        json_with_session: render(Some(&view)),
        session_hash: session_hash(&view),
    };
    Metrics::inc(&live.metrics.broadcasts);
    live.metrics.broadcast_latency.observe(started.elapsed());
    live.hub
        .publish(room, Change::Participant(Arc::new(change)));
    Ok(())
}

/// Tells session objects apart (of their JSON); never 0, which stands for
/// "none sent" (see [`ParticipantChange::message_for`]).
fn session_hash(view: &SessionView) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(view)
        .expect("serializable")
        .hash(&mut hasher);
    hasher.finish().max(1)
}

/// Tells a room's subscribers to resync (schedule changed).
pub fn publish_room(live: &Live, room: &str) {
    live.hub.publish(room, Change::Room);
}

/// The snapshot a subscriber gets on connect and on resync: everyone for a
/// teacher or admin, only themselves for a participant; of the room's
/// current session, or of `pinned` (a lesson addressed by id). With it, the
/// hash of the session object it carries (0: none).
pub async fn snapshot(
    live: &Live,
    room: &str,
    who: &Principal,
    pinned: Option<&SessionRow>,
) -> StoreResult<(String, u64)> {
    let identity = (!who.manages(room)).then_some(who.identity.as_str());
    let facts = match (pinned, identity) {
        (Some(session), _) => live.store.session_facts(session, identity).await?,
        (None, None) => live.store.room_facts(room).await?,
        (None, Some(identity)) => live.store.participant_facts_kept(room, identity).await?,
    };
    if let (None, Some(session)) = (pinned, &facts.session) {
        live.hub
            .note_current(room, session.id, facts.current_until_ms);
    }
    let at = now();
    let classifier = &live.classifier;
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
    let session = facts.session.as_ref().map(|s| SessionView::of(s, at));
    let shown = session.as_ref().map_or(0, session_hash);
    let message = Snapshot {
        kind: "attendance.snapshot",
        room,
        session,
        participants,
        teachers,
        excluded,
        server_time: at,
    };
    Ok((
        serde_json::to_string(&message).expect("serializable"),
        shown,
    ))
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

    #[test]
    fn session_objects_are_told_apart_and_never_hash_to_none_sent() {
        use crate::domain::lessons::tests::lesson;
        let at = "2026-12-04T10:00:00Z".parse().unwrap();
        let hour = SessionView::of(&lesson(1, "2026-12-04T09:30:00Z", 60), at);
        let longer = SessionView::of(&lesson(1, "2026-12-04T09:30:00Z", 90), at);
        assert_ne!(session_hash(&hour), 0);
        assert_eq!(session_hash(&hour), session_hash(&hour.clone()));
        assert_ne!(session_hash(&hour), session_hash(&longer));
    }
}
