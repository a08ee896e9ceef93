//! Attendance reports: a session's (JSON or CSV, any time zone), one
//! participant's, and one student's history across sessions.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;

use super::error::{json_reply, ApiError, ApiResult};
use super::params::{csv_reply, range, requested_zone, wants_csv};
use super::App;
use crate::domain::now;
use crate::livekit::Principal;
use crate::report::{self, count_statuses, SessionView};

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    format: Option<String>,
    tz: Option<String>,
}

pub async fn session_report(
    app: App,
    who: Principal,
    room: String,
    q: ReportQuery,
    accept: Option<String>,
) -> ApiResult {
    if !who.manages(&room) {
        return Err(ApiError::forbidden(
            "only the room's teacher or an administrator may read the whole class",
        ));
    }
    let zone = requested_zone(q.tz.as_deref())?;
    let csv = wants_csv(q.format.as_deref(), accept.as_deref())?;
    let facts = app.store.room_facts(&room).await?;
    let session = facts
        .session
        .as_ref()
        .ok_or_else(|| ApiError::no_session(&room))?;
    let report = report::session_report(session, &facts, &app.settings.classifier, zone, now());
    if csv {
        let clock = report::Clock::for_session(session, zone);
        let text =
            report::csv(&report, clock.zone).map_err(|e| ApiError::internal(e.to_string()))?;
        return Ok(csv_reply(text, &format!("attendance-{room}")));
    }
    Ok(json_reply(&report, StatusCode::OK))
}

pub async fn participant_report(
    app: App,
    who: Principal,
    room: String,
    identity: String,
) -> ApiResult {
    if !who.may_read(&room, &identity) {
        return Err(ApiError::forbidden(
            "a participant may read only their own attendance",
        ));
    }
    let facts = app.store.participant_facts(&room, &identity).await?;
    let session = facts
        .session
        .as_ref()
        .ok_or_else(|| ApiError::no_session(&room))?;
    let report =
        report::one_participant(session, &facts, &identity, &app.settings.classifier, now());
    Ok(json_reply(&report, StatusCode::OK))
}

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    identity: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
    tz: Option<String>,
}

/// One student's attendance across sessions (administrators).
pub async fn history(
    app: App,
    who: Principal,
    q: HistoryQuery,
    accept: Option<String>,
) -> ApiResult {
    if !who.is_admin() {
        return Err(ApiError::forbidden("administrators only"));
    }
    let identity = q
        .identity
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::bad_request("identity is required"))?;
    let (from, to) = range(q.from.as_deref(), q.to.as_deref())?;
    let zone = requested_zone(q.tz.as_deref())?;
    let csv = wants_csv(q.format.as_deref(), accept.as_deref())?;
    let at = now();
    let mut rows = Vec::new();
    for room in app.store.rooms_of_identity(&identity).await? {
        let facts = app.store.participant_facts(&room, &identity).await?;
        let Some(session) = facts.session.clone() else {
            continue;
        };
        let starts = session.schedule.scheduled_at;
        if starts < from || starts >= to {
            continue;
        }
        let report =
            report::one_participant(&session, &facts, &identity, &app.settings.classifier, at);
        rows.push((session, report));
    }
    rows.sort_by_key(|(s, _)| s.schedule.scheduled_at);
    if csv {
        let text =
            report::history_csv(&rows, zone).map_err(|e| ApiError::internal(e.to_string()))?;
        return Ok(csv_reply(text, &format!("attendance-{identity}")));
    }
    let reports: Vec<_> = rows.iter().map(|(_, p)| p.clone()).collect();
    let counts = count_statuses(&reports);
    let sessions: Vec<_> = rows
        .iter()
        .map(|(s, p)| json!({ "session": SessionView::new(s, report::Clock::for_session(s, zone)), "attendance": p }))
        .collect();
    let total: i64 = reports.iter().map(|p| p.attended_seconds).sum();
    Ok(json_reply(
        &json!({ "identity": identity, "counts": counts, "attended_seconds": total, "sessions": sessions,
                 "from": (from > DateTime::<Utc>::MIN_UTC).then_some(from),
                 "to": (to < DateTime::<Utc>::MAX_UTC - TimeDelta::days(1)).then_some(to) }),
        StatusCode::OK,
    ))
}
