//! Sessions (lessons): scheduling one (`PUT`), reading it, and listing them.

use std::collections::BTreeSet;

use attendance_rules::{GradePointsChange, DEFAULT_TEACHER_PRESENT_PERCENT};
use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;

use super::error::{json_reply, ApiError, ApiResult};
use super::lessons::{acting, lesson, LessonQuery};
use super::params::{check_room, field, grade_points_over, parse_zone, percent, range};
use super::rosters::{roster_entries, RosterBodyEntry};
use super::App;
use crate::domain::lessons::place;
use crate::domain::{now, SessionDetails};
use crate::livekit::{Principal, Role};
use crate::outbound::events;
use crate::report::{self, SessionView};

/// `PUT /api/sessions/{room}` body. Unknown fields are refused so a typo
/// (`duraton_minutes`) is an error, not a silently ignored setting.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionBody {
    scheduled_at: DateTime<FixedOffset>,
    duration_minutes: i64,
    grace_minutes: Option<i64>,
    late_after_minutes: Option<i64>,
    present_percent: Option<i64>,
    teacher_present_percent: Option<i64>,
    heartbeat_stale_seconds: Option<i64>,
    title: Option<String>,
    timezone: Option<String>,
    roster: Option<Vec<RosterBodyEntry>>,
    /// What each status is worth in this lesson, over the school's
    /// (`--grade-points`): `{"present": 2, "late": 1, …}`.
    grade_points: Option<GradePointsChange>,
    /// `false`: nothing about cameras, microphones or screen shares is kept
    /// or shown for this lesson; absent: as it was (on for a new lesson).
    engagement: Option<bool>,
}

/// `PUT /api/sessions/{room}`: a window over the room's current session
/// moves it (a schedule fix), one over an unscheduled session turns it into
/// this lesson, any other creates a new session; `?session=ID` changes
/// that one. A window over another lesson is refused (409).
pub async fn put_session(
    app: App,
    who: Principal,
    room: String,
    q: LessonQuery,
    body: Bytes,
) -> ApiResult {
    check_room(&room)?;
    if !who.manages(&room) {
        return Err(ApiError::forbidden(
            "only the room's teacher or an administrator may schedule it",
        ));
    }
    let body: SessionBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid session: {e}")))?;
    if body.duration_minutes <= 0 {
        return Err(ApiError::bad_request(
            "duration_minutes must be greater than 0",
        ));
    }
    let mut schedule = attendance_rules::Schedule::new(body.scheduled_at.with_timezone(&Utc), 1);
    schedule.duration_minutes = field("duration_minutes", body.duration_minutes)?;
    if let Some(v) = body.grace_minutes {
        schedule.grace_minutes = field("grace_minutes", v)?;
    }
    if let Some(v) = body.late_after_minutes {
        schedule.late_after_minutes = field("late_after_minutes", v)?;
    }
    if let Some(v) = body.present_percent {
        schedule.present_percent = field("present_percent", v)?;
    }
    if let Some(v) = body.heartbeat_stale_seconds {
        schedule.heartbeat_stale_seconds = field("heartbeat_stale_seconds", v)?;
    }
    schedule
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let details = SessionDetails {
        title: body.title.unwrap_or_default(),
        timezone: match body.timezone.filter(|z| !z.is_empty()) {
            Some(zone) => parse_zone(&zone)?.name().to_string(),
            None => String::new(),
        },
        teacher_present_percent: body
            .teacher_present_percent
            .map_or(Ok(DEFAULT_TEACHER_PRESENT_PERCENT), |v| {
                percent("teacher_present_percent", v)
            })?,
        grade_points: grade_points_over(app.settings.grade_points, body.grade_points)?,
    };
    if details.title.len() > 500 {
        return Err(ApiError::bad_request("title must be at most 500 bytes"));
    }
    let roster = body.roster.map(roster_entries).transpose()?;
    let target = match q.session {
        Some(_) => Some(lesson(&app, &room, q).await?.id),
        None => None,
    };
    let at = now();
    let sessions = app.store.room_sessions(&room).await?;
    let window = schedule.window();
    let placement =
        place(&sessions, target, window.start, window.end, at).map_err(|ids| overlap(&ids))?;
    let roster_before = match (&roster, placement.target) {
        (Some(_), Some(id)) => app.store.roster(id, None).await?,
        _ => Vec::new(),
    };
    let roster_change = roster.as_deref().map(|r| (roster_before.as_slice(), r));
    let (mut session, created) = app
        .store
        .schedule_lesson(
            &room,
            &placement,
            &details,
            &schedule,
            roster.as_deref(),
            at.timestamp_millis(),
            |before, after| events::session_updated(before, after, roster_change, at),
        )
        .await?;
    if let Some(on) = body.engagement.filter(|&on| on != session.engagement) {
        app.store.set_engagement(session.id, on).await?;
        session.engagement = on;
    }
    tracing::info!(room = %room, session = session.id, by = %who.identity, created, "session scheduled");
    app.live.changed(&room, None);
    app.outbound.kick();
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_reply(&SessionView::of(&session, at), status))
}

/// The 409 for a window over other lessons of the room.
fn overlap(ids: &[i64]) -> ApiError {
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "the window overlaps lesson {} of this room: lessons in one room may not overlap; \
             change that lesson with ?session=ID, or pick another time",
            ids.join(", ")
        ),
    )
}

pub async fn get_session(app: App, who: Principal, room: String, q: LessonQuery) -> ApiResult {
    let who = acting(&app, who, &room, q).await?;
    if !who.belongs_to(&room) {
        return Err(ApiError::forbidden("this token is for another room"));
    }
    let session = lesson(&app, &room, q).await?;
    Ok(json_reply(
        &SessionView::of(&session, now()),
        StatusCode::OK,
    ))
}

#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
    /// Only this room's sessions.
    room: Option<String>,
}

/// `GET /api/sessions`: one row per lesson starting in the range, with its
/// counts; a teacher sees their room's and those they teach by a roster
/// (the lesson's or its class's), an administrator everyone's.
pub async fn list_sessions(app: App, who: Principal, q: RangeQuery) -> ApiResult {
    let taught = match &who.role {
        Role::Admin => BTreeSet::new(),
        Role::Teacher { .. } => app.store.lessons_taught_by(&who.identity).await?,
        Role::Participant { .. } => {
            return Err(ApiError::forbidden(
                "only teachers and administrators list lessons",
            ))
        }
    };
    let (from, to) = range(q.from.as_deref(), q.to.as_deref())?;
    let at = now();
    let mut sessions = Vec::new();
    let rows = match q.room.as_deref().filter(|r| !r.is_empty()) {
        Some(room) => app
            .store
            .room_sessions(room)
            .await?
            .into_iter()
            .filter(|s| s.start() >= from && s.start() < to)
            .collect(),
        None => {
            app.store
                .sessions_between(from.timestamp_millis(), to.timestamp_millis())
                .await?
        }
    };
    for session in rows {
        if !who.manages(&session.room) && !taught.contains(&session.id) {
            continue;
        }
        let facts = app.store.session_facts(&session, None).await?;
        let report = report::session_report(&session, &facts, &app.settings.classifier, None, at);
        let mut view = serde_json::to_value(SessionView::of(&session, at)).expect("serializable");
        view["phase"] = json!(report.phase);
        view["counts"] = json!(report.counts);
        view["students"] = json!(report.participants.len());
        view["teachers"] = json!(report.teachers.len());
        sessions.push(view);
    }
    Ok(json_reply(&json!({ "sessions": sessions }), StatusCode::OK))
}
