//! Heartbeats: a tracked page saying "still here", over HTTP or the live
//! socket.

use chrono::{DateTime, Utc};
use serde::Serialize;
use warp::http::StatusCode;

use super::error::{json_reply, ApiError, ApiResult};
use super::lessons::{lesson, LessonQuery};
use super::App;
use crate::domain::now;
use crate::livekit::Principal;
use crate::metrics::Metrics;
use crate::report::{self, ParticipantReport};

/// Records a heartbeat for the token's own identity. Never opens a cycle:
/// an open page is not presence in the meeting. Costs no database write of
/// its own (heartbeats are flushed in batches) and tells live subscribers
/// only when it may change what they show.
pub fn record(app: &App, room: &str, who: &Principal) -> Result<DateTime<Utc>, ApiError> {
    if !who.belongs_to(room) || who.identity.is_empty() {
        return Err(ApiError::forbidden(
            "this token is not a participant of this room",
        ));
    }
    let at = now();
    app.store
        .record_heartbeat(room, &who.identity, at.timestamp_millis());
    Metrics::inc(&app.metrics.heartbeats);
    if app.live.hub.heartbeat_worth_announcing(room, &who.identity) {
        app.live.heartbeat_arrived(room, &who.identity, at);
    }
    Ok(at)
}

#[derive(Serialize)]
struct HeartbeatReply {
    last_heartbeat_at: DateTime<Utc>,
    attendance: Option<ParticipantReport>,
}

/// `POST /api/sessions/{room}/heartbeat`: answered with the attendance in
/// the room's current lesson from the participant's kept facts, so a
/// school's steady heartbeat load costs no database reads (`?session=ID`:
/// in that lesson, read from the database).
pub async fn post(app: App, who: Principal, room: String, q: LessonQuery) -> ApiResult {
    let at = record(&app, &room, &who)?;
    let mut facts = match q.session {
        Some(_) => {
            let session = lesson(&app, &room, q).await?;
            app.store
                .session_facts(&session, Some(&who.identity))
                .await?
        }
        None => {
            app.store
                .participant_facts_kept(&room, &who.identity)
                .await?
        }
    };
    facts.note_heartbeat(&who.identity, at);
    let attendance = facts
        .session
        .as_ref()
        .map(|s| report::one_participant(s, &facts, &who.identity, &app.settings.classifier, at));
    Ok(json_reply(
        &HeartbeatReply {
            last_heartbeat_at: at,
            attendance,
        },
        StatusCode::OK,
    ))
}
