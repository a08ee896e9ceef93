//! Demo mode (`serve --demo`): lets a new user try the product without a
//! LiveKit server. It mints tokens and fabricates LiveKit-signed webhooks,
//! which then take the real path (verification, inbox, processor).
//!
//! It hands out tokens without asking who is there, so it only ever creates
//! and touches rooms named with [`DEMO_PREFIX`]: a real class cannot be read,
//! corrected or joined through it. The server also refuses to start in demo
//! mode on a database that holds other sessions, unless told explicitly.

use attendance_rules::DEFAULT_TEACHER_PRESENT_PERCENT;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DurationRound, TimeDelta};
use rand::distr::{Alphanumeric, SampleString};
use serde::Deserialize;
use serde_json::json;
use warp::reply::{Reply, Response};
use warp::Filter;

use super::error::{ApiError, ApiResult};
use super::params::Name;
use super::App;
use crate::domain::lessons::place;
use crate::domain::{now, now_ms, SessionDetails};
use crate::livekit::{RoleRequest, TokenRequest};
use crate::report::SessionView;

/// Rooms demo mode owns, and the only ones it touches.
pub const DEMO_PREFIX: &str = "demo-";

/// `room` as a demo room: kept if it has the prefix, else given it.
fn demo_room(room: &str) -> String {
    if room.starts_with(DEMO_PREFIX) {
        room.to_string()
    } else {
        format!("{DEMO_PREFIX}{room}")
    }
}

fn refuse_real_room(room: &str) -> Result<(), ApiError> {
    if room.starts_with(DEMO_PREFIX) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "demo mode only touches rooms named {DEMO_PREFIX}…"
        )))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StartBody {
    identity: Option<String>,
    name: Option<String>,
    room: Option<String>,
}

pub fn routes(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let enabled = app.settings.demo;
    let with_app = warp::any()
        .and_then(move || async move {
            if enabled {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .map(move || app.clone());
    let start = warp::path!("demo" / "start")
        .and(warp::post())
        .and(with_app.clone())
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::bytes())
        .then(|app: App, body: Bytes| async move { into(start(app, body).await) });
    let join = warp::path!("demo" / "rooms" / Name / "join")
        .and(warp::post())
        .and(with_app.clone())
        .and(warp::header::optional::<String>("authorization"))
        .then(|room: Name, app: App, auth: Option<String>| async move {
            into(join(app, room.0, auth).await)
        });
    let leave = warp::path!("demo" / "rooms" / Name / "leave")
        .and(warp::post())
        .and(with_app)
        .and(warp::header::optional::<String>("authorization"))
        .then(|room: Name, app: App, auth: Option<String>| async move {
            into(leave(app, room.0, auth).await)
        });
    start.or(join).unify().or(leave).unify()
}

fn into(result: ApiResult) -> Response {
    result.unwrap_or_else(Reply::into_response)
}

fn sid(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        Alphanumeric.sample_string(&mut rand::rng(), 12)
    )
}

async fn start(app: App, body: Bytes) -> ApiResult {
    let body: StartBody = if body.is_empty() {
        StartBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?
    };
    let room = demo_room(
        body.room
            .as_deref()
            .filter(|r| !r.is_empty())
            .unwrap_or("class"),
    );
    super::params::check_room(&room)?;
    let identity = body
        .identity
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| "student-1".into());
    let name = body
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "Ada Lovelace".into());
    let current = app.store.current_session(&room, now()).await?;
    let session = match current.map(|(s, _)| s) {
        Some(session) if !session.is_unscheduled() && session.end_at(now()) > now() => session,
        _ => {
            // A 30-minute class that began at the start of this minute.
            let start = now()
                .duration_trunc(TimeDelta::minutes(1))
                .unwrap_or_else(|_| now());
            let mut schedule = attendance_rules::Schedule::new(start, 30);
            schedule.grace_minutes = 10;
            let sessions = app.store.room_sessions(&room).await?;
            let window = schedule.window();
            let placement = place(&sessions, None, window.start, window.end, now())
                .map_err(|_| ApiError::internal("the demo room has an overlapping lesson"))?;
            app.store
                .schedule_lesson(
                    &room,
                    &placement,
                    &SessionDetails {
                        title: "Demo class".into(),
                        timezone: String::new(),
                        teacher_present_percent: DEFAULT_TEACHER_PRESENT_PERCENT,
                        grade_points: None,
                    },
                    &schedule,
                    None,
                    now_ms(),
                    |_, _| Vec::new(),
                )
                .await?
                .0
        }
    };
    let mint = |identity: &str, name: &str, role| {
        app.keys
            .mint_access_token(&TokenRequest {
                identity: identity.into(),
                room: room.clone(),
                name: Some(name.into()),
                metadata: None,
                role,
                ttl: Duration::from_secs(6 * 3600),
            })
            .map_err(ApiError::internal)
    };
    Ok(warp::reply::json(&json!({
        "room": room,
        "identity": identity,
        "student_token": mint(&identity, &name, RoleRequest::Student)?,
        "teacher_token": mint("teacher", "Teacher", RoleRequest::Teacher)?,
        "session": SessionView::of(&session, now()),
    }))
    .into_response())
}

async fn post_event(app: &App, event: serde_json::Value) -> ApiResult {
    // Go's protojson spacing, like a real LiveKit server.
    let body = event.to_string().replace(",\"", ", \"");
    let token = app
        .keys
        .sign_webhook(body.as_bytes())
        .map_err(ApiError::internal)?;
    app.ingest.receive(Some(&token), body.as_bytes()).await?;
    Ok(warp::reply().into_response())
}

async fn join(app: App, room: String, auth: Option<String>) -> ApiResult {
    refuse_real_room(&room)?;
    let who = app.authenticate(auth.as_deref())?;
    if !who.belongs_to(&room) {
        return Err(ApiError::forbidden("this token is for another room"));
    }
    let at = now();
    let participant_sid = sid("PA_");
    post_event(&app, json!({
        "event": "participant_joined",
        "room": { "sid": format!("RM_demo{}", room.len()), "name": room },
        "participant": {
            "sid": participant_sid, "identity": who.identity, "name": who.name.clone().unwrap_or_default(),
            "state": "ACTIVE", "joinedAt": at.timestamp().to_string(), "joinedAtMs": at.timestamp_millis().to_string(),
        },
        "id": sid("EV_"),
        "createdAt": at.timestamp().to_string(),
    }))
    .await?;
    Ok(warp::reply::json(&json!({ "participant_sid": participant_sid })).into_response())
}

async fn leave(app: App, room: String, auth: Option<String>) -> ApiResult {
    refuse_real_room(&room)?;
    let who = app.authenticate(auth.as_deref())?;
    if !who.belongs_to(&room) {
        return Err(ApiError::forbidden("this token is for another room"));
    }
    let at = now();
    let open = app.store.open_cycles(&room, &who.identity).await?;
    for cycle in &open {
        post_event(
            &app,
            json!({
                "event": "participant_left",
                "room": { "sid": cycle.room_sid, "name": room },
                "participant": {
                    "sid": cycle.participant_sid, "identity": who.identity,
                    "joinedAtMs": cycle.joined_at.map(|t| t.timestamp_millis().to_string()),
                },
                "id": sid("EV_"),
                "createdAt": at.timestamp().to_string(),
            }),
        )
        .await?;
    }
    Ok(warp::reply::json(&json!({ "closed": open.len() })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_rooms_carry_the_prefix() {
        assert_eq!(demo_room("class"), "demo-class");
        assert_eq!(demo_room("demo-class"), "demo-class");
        assert_eq!(demo_room("math-101"), "demo-math-101");
        assert!(refuse_real_room("math-101").is_err());
        assert!(refuse_real_room("demo-x").is_ok());
    }
}
