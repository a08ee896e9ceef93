//! The live messages (`attendance.snapshot`, `attendance.updated`) and the
//! publishing of changes to the hub.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::app::{now, App};
use crate::auth::Principal;
use crate::hub::Change;
use crate::metrics::Metrics;
use crate::notify::Changed;
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

/// Announces a change: straight to local subscribers on SQLite, through
/// PostgreSQL NOTIFY (to every instance) when several may be running.
pub async fn changed(app: &App, room: &str, identity: Option<&str>) {
    announce(
        app,
        Changed {
            room: room.to_string(),
            identity: identity.map(str::to_string),
            heartbeat_at_ms: None,
        },
    )
    .await
}

/// Announces a heartbeat that may change what subscribers show (a
/// participant no longer stale).
pub async fn heartbeat_arrived(app: &App, room: &str, identity: &str, at: DateTime<Utc>) {
    announce(
        app,
        Changed {
            room: room.to_string(),
            identity: Some(identity.to_string()),
            heartbeat_at_ms: Some(at.timestamp_millis()),
        },
    )
    .await
}

async fn announce(app: &App, change: Changed) {
    match app.feed.get() {
        Some(feed) => feed.send(change),
        None => deliver_locally(app, &change).await,
    }
}

/// Changes in bulk: through the feed, or recomputed and pushed a few at a time.
pub async fn changed_many(app: &App, changes: Vec<Changed>) {
    match app.feed.get() {
        Some(feed) => changes.into_iter().for_each(|c| feed.send(c)),
        None => deliver_locally_many(app, changes).await,
    }
}

/// Several changes to this instance's subscribers, computed concurrently
/// (each reads the store) so a class of 500 is not pushed one by one.
pub async fn deliver_locally_many(app: &App, changes: Vec<Changed>) {
    use futures_util::StreamExt;
    futures_util::stream::iter(changes)
        .for_each_concurrent(PUSH_CONCURRENCY, |change| async move {
            deliver_locally(app, &change).await
        })
        .await;
}

/// Pushes one change to this instance's subscribers.
pub async fn deliver_locally(app: &App, change: &Changed) {
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
