//! Attendance reports: a session's (JSON or CSV, any time zone), one
//! participant's, and one student's history across sessions.

use attendance_rules::{EffectiveStatus, GradePoints};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;

use super::error::{json_reply, ApiError, ApiResult};
use super::lessons::{acting, lesson, LessonQuery};
use super::params::{csv_reply, range, requested_zone, wants_csv};
use super::App;
use crate::domain::{now, SessionRow};
use crate::livekit::Principal;
use crate::report::{self, count_statuses, SessionView};

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    format: Option<String>,
    tz: Option<String>,
    /// `1`: start the CSV with a UTF-8 byte-order mark (Excel reads the
    /// file as UTF-8 then).
    bom: Option<String>,
}

/// One lesson's report (the current one, or `?session=ID`), JSON or CSV.
pub async fn session_report(
    app: App,
    who: Principal,
    room: String,
    lesson_q: LessonQuery,
    q: ReportQuery,
    accept: Option<String>,
) -> ApiResult {
    let who = acting(&app, who, &room, lesson_q).await?;
    if !who.manages(&room) {
        return Err(ApiError::forbidden(
            "only the room's teacher or an administrator may read the whole class",
        ));
    }
    let zone = requested_zone(q.tz.as_deref())?;
    let csv = wants_csv(q.format.as_deref(), accept.as_deref())?;
    let session = lesson(&app, &room, lesson_q).await?;
    let facts = app.store.session_facts(&session, None).await?;
    let report = report::session_report(&session, &facts, &app.settings.classifier, zone, now());
    if csv {
        let clock = report::Clock::for_session(&session, zone);
        let text =
            report::csv(&report, clock.zone).map_err(|e| ApiError::internal(e.to_string()))?;
        let day = clock.text(Some(session.start()));
        let name = format!("attendance-{room}-{}", day.get(..10).unwrap_or_default());
        return Ok(csv_reply(with_bom(text, q.bom.as_deref()), &name));
    }
    Ok(json_reply(&report, StatusCode::OK))
}

/// `?bom=1`: a UTF-8 byte-order mark first, for Excel.
fn with_bom(text: String, bom: Option<&str>) -> String {
    match bom {
        Some("1" | "true" | "yes") => format!("\u{feff}{text}"),
        _ => text,
    }
}

/// One participant in one lesson (the current one, or `?session=ID`).
pub async fn participant_report(
    app: App,
    who: Principal,
    room: String,
    identity: String,
    q: LessonQuery,
) -> ApiResult {
    if !who.may_read(&room, &identity) {
        return Err(ApiError::forbidden(
            "a participant may read only their own attendance",
        ));
    }
    let session = lesson(&app, &room, q).await?;
    let facts = app.store.session_facts(&session, Some(&identity)).await?;
    let report =
        report::one_participant(&session, &facts, &identity, &app.settings.classifier, now());
    Ok(json_reply(&report, StatusCode::OK))
}

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    identity: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
    tz: Option<String>,
    bom: Option<String>,
}

/// One student's attendance across lessons: one row per lesson they
/// joined, were rostered in, or were corrected in, with totals and their
/// grade from attendance. Administrators read anyone's; anyone else only
/// their own (the identity of their token, the default).
pub async fn history(
    app: App,
    who: Principal,
    q: HistoryQuery,
    accept: Option<String>,
) -> ApiResult {
    let identity = match q.identity.filter(|i| !i.is_empty()) {
        Some(identity) => identity,
        None if !who.is_admin() && !who.identity.is_empty() => who.identity.clone(),
        None => return Err(ApiError::bad_request("identity is required")),
    };
    if !who.is_admin() && who.identity != identity {
        return Err(ApiError::forbidden(
            "a student may read only their own history; administrators anyone's",
        ));
    }
    let (from, to) = range(q.from.as_deref(), q.to.as_deref())?;
    let zone = requested_zone(q.tz.as_deref())?;
    let csv = wants_csv(q.format.as_deref(), accept.as_deref())?;
    let at = now();
    let mut rows = Vec::new();
    for room in app.store.rooms_of_identity(&identity).await? {
        for session in app.store.room_sessions(&room).await? {
            if session.start() < from || session.start() >= to {
                continue;
            }
            let facts = app.store.session_facts(&session, Some(&identity)).await?;
            if facts.cycles.is_empty() && facts.roster.is_empty() && facts.overrides.is_empty() {
                continue; // not in this lesson
            }
            let report =
                report::one_participant(&session, &facts, &identity, &app.settings.classifier, at);
            rows.push((session, report));
        }
    }
    rows.sort_by_key(|(s, _)| (s.start(), s.id));
    let school = app.settings.grade_points;
    let graded: Vec<_> = rows.iter().map(|(s, p)| graded(s, p, school)).collect();
    let grade = attendance_rules::grade(
        graded
            .iter()
            .flatten()
            .map(|(status, points)| (*status, points)),
    );
    if csv {
        let grades: Vec<_> = graded
            .iter()
            .map(|g| g.map(|(status, points)| (points.points(status), points.maximum())))
            .collect();
        let text = report::history_csv(&rows, &grades, &grade, zone, at)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        return Ok(csv_reply(
            with_bom(text, q.bom.as_deref()),
            &format!("attendance-{identity}"),
        ));
    }
    let reports: Vec<_> = rows.iter().map(|(_, p)| p.clone()).collect();
    let counts = count_statuses(&reports);
    let sessions: Vec<_> = rows
        .iter()
        .zip(&graded)
        .map(|((s, p), g)| {
            let grade = g.map(|(status, points)| {
                json!({ "points": points.points(status), "max_points": points.maximum(), "grade_points": points })
            });
            json!({ "session": SessionView::at(s, report::Clock::for_session(s, zone), at), "attendance": p, "grade": grade })
        })
        .collect();
    let total: i64 = reports.iter().map(|p| p.attended_seconds).sum();
    let mut totals = serde_json::to_value(counts).expect("serializable");
    totals["sessions"] = json!(rows.len());
    totals["attended_seconds"] = json!(total);
    Ok(json_reply(
        &json!({ "identity": identity, "counts": counts, "attended_seconds": total, "totals": totals,
                 "grade": grade, "grade_points": school, "sessions": sessions,
                 "from": (from > DateTime::<Utc>::MIN_UTC).then_some(from),
                 "to": (to < DateTime::<Utc>::MAX_UTC - TimeDelta::days(1)).then_some(to) }),
        StatusCode::OK,
    ))
}

/// The status a lesson is graded by and the points it gives: only final
/// results, and only as a student (not a lesson they taught).
fn graded(
    session: &SessionRow,
    p: &report::ParticipantReport,
    school: GradePoints,
) -> Option<(EffectiveStatus, GradePoints)> {
    if !p.is_final || p.role != report::Role::Student {
        return None;
    }
    let status = EffectiveStatus::parse(&p.status)?;
    Some((status, session.grade_points.unwrap_or(school)))
}
