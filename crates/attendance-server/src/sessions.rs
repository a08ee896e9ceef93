//! Sessions and what teachers and administrators do with them: schedules,
//! rosters, reports (JSON/CSV, any time zone), corrections with an audit
//! trail, session lists and one student's history.

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::json;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::app::{now, now_ms, App};
use crate::http::{authorization, json_reply, respond, with_app, ApiError, ApiResult};
use crate::live;
use crate::report::{self, SessionView, StatusCounts, OVERRIDE_STATUSES};
use crate::store::{RosterEntry, SessionDetails};

pub fn routes(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let max_body = app.settings.max_body_bytes;
    let body = move || warp::body::content_length_limit(max_body).and(warp::body::bytes());
    let base = move || with_app(app.clone()).and(authorization());

    let put_session = warp::path!("api" / "sessions" / String)
        .and(warp::put())
        .and(base())
        .and(body())
        .and_then(|room, app, auth, body| async move {
            respond(put_session(app, room, auth, body).await)
        });
    let get_session = warp::path!("api" / "sessions" / String)
        .and(warp::get())
        .and(base())
        .and_then(|room, app, auth| async move { respond(get_session(app, room, auth).await) });
    let list = warp::path!("api" / "sessions")
        .and(warp::get())
        .and(base())
        .and(warp::query::<RangeQuery>())
        .and_then(|app, auth, q| async move { respond(list_sessions(app, auth, q).await) });
    let put_roster = warp::path!("api" / "sessions" / String / "roster")
        .and(warp::put())
        .and(base())
        .and(body())
        .and_then(|room, app, auth, body| async move {
            respond(put_roster(app, room, auth, body).await)
        });
    let get_roster = warp::path!("api" / "sessions" / String / "roster")
        .and(warp::get())
        .and(base())
        .and_then(|room, app, auth| async move { respond(get_roster(app, room, auth).await) });
    let room_audit = warp::path!("api" / "sessions" / String / "audit")
        .and(warp::get())
        .and(base())
        .and_then(|room: String, app, auth| async move {
            respond(
                audit(
                    app,
                    auth,
                    AuditQuery {
                        room: Some(room),
                        limit: None,
                    },
                )
                .await,
            )
        });
    let report = warp::path!("api" / "sessions" / String / "attendance")
        .and(warp::get())
        .and(base())
        .and(warp::query::<ReportQuery>())
        .and(warp::header::optional::<String>("accept"))
        .and_then(|room, app, auth, q, accept| async move {
            respond(session_report(app, room, auth, q, accept).await)
        });
    let one = warp::path!("api" / "sessions" / String / "attendance" / String)
        .and(warp::get())
        .and(base())
        .and_then(|room, identity, app, auth| async move {
            respond(participant_report(app, room, identity, auth).await)
        });
    let set_override =
        warp::path!("api" / "sessions" / String / "attendance" / String / "override")
            .and(warp::put())
            .and(base())
            .and(body())
            .and_then(|room, identity, app, auth, body| async move {
                respond(set_override(app, room, identity, auth, body).await)
            });
    let remove_override =
        warp::path!("api" / "sessions" / String / "attendance" / String / "override")
            .and(warp::delete())
            .and(base())
            .and(warp::query::<ReasonQuery>())
            .and_then(|room, identity, app, auth, q| async move {
                respond(remove_override(app, room, identity, auth, q).await)
            });
    let audit = warp::path!("api" / "admin" / "audit")
        .and(warp::get())
        .and(base())
        .and(warp::query::<AuditQuery>())
        .and_then(|app, auth, q| async move { respond(audit(app, auth, q).await) });
    let history = warp::path!("api" / "attendance")
        .and(warp::get())
        .and(base())
        .and(warp::query::<HistoryQuery>())
        .and(warp::header::optional::<String>("accept"))
        .and_then(
            |app, auth, q, accept| async move { respond(history(app, auth, q, accept).await) },
        );

    put_session
        .or(get_session)
        .unify()
        .or(list)
        .unify()
        .or(put_roster)
        .unify()
        .or(get_roster)
        .unify()
        .or(room_audit)
        .unify()
        .or(report)
        .unify()
        .or(one)
        .unify()
        .or(set_override)
        .unify()
        .or(remove_override)
        .unify()
        .or(audit)
        .unify()
        .or(history)
        .unify()
}

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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterBodyEntry {
    identity: String,
    name: Option<String>,
    role: Option<String>,
}

/// `PUT …/roster` takes `{"roster": [...]}` or the bare list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RosterBody {
    Wrapped { roster: Vec<RosterBodyEntry> },
    Bare(Vec<RosterBodyEntry>),
}

const MAX_ROSTER: usize = 5000;

fn field(name: &str, value: i64) -> Result<u32, ApiError> {
    u32::try_from(value)
        .map_err(|_| ApiError::bad_request(format!("{name} must be a non-negative whole number")))
}

fn percent(name: &str, value: i64) -> Result<u32, ApiError> {
    match field(name, value)? {
        v if v <= 100 => Ok(v),
        _ => Err(ApiError::bad_request(format!(
            "{name} must be between 0 and 100"
        ))),
    }
}

fn check_room(room: &str) -> Result<(), ApiError> {
    if room.is_empty() || room.len() > 256 {
        return Err(ApiError::bad_request("room name must be 1 to 256 bytes"));
    }
    Ok(())
}

fn parse_zone(name: &str) -> Result<Tz, ApiError> {
    name.parse::<Tz>().map_err(|_| {
        ApiError::bad_request(format!(
            "unknown time zone `{name}`; use an IANA name such as Africa/Cairo"
        ))
    })
}

fn roster_entries(entries: Vec<RosterBodyEntry>) -> Result<Vec<RosterEntry>, ApiError> {
    if entries.len() > MAX_ROSTER {
        return Err(ApiError::bad_request(format!(
            "a roster holds at most {MAX_ROSTER} people"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    entries
        .into_iter()
        .map(|e| {
            let identity = e.identity.trim().to_string();
            if identity.is_empty() || identity.len() > 256 {
                return Err(ApiError::bad_request(
                    "roster identities must be 1 to 256 bytes",
                ));
            }
            if !seen.insert(identity.clone()) {
                return Err(ApiError::bad_request(format!(
                    "`{identity}` is on the roster twice"
                )));
            }
            let role = e.role.unwrap_or_else(|| "student".into());
            if role != "student" && role != "teacher" {
                return Err(ApiError::bad_request(format!(
                    "roster role must be student or teacher, not `{role}`"
                )));
            }
            Ok(RosterEntry {
                identity,
                name: e.name.unwrap_or_default(),
                role,
            })
        })
        .collect()
}

async fn put_session(app: App, room: String, auth: Option<String>, body: Bytes) -> ApiResult {
    let who = app.authenticate(auth.as_deref())?;
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
            .map_or(Ok(90), |v| percent("teacher_present_percent", v))?,
    };
    if details.title.len() > 500 {
        return Err(ApiError::bad_request("title must be at most 500 bytes"));
    }
    let roster = body.roster.map(roster_entries).transpose()?;
    let (session, created) = app
        .store
        .upsert_session(&room, &details, &schedule, roster.as_deref(), now_ms())
        .await?;
    tracing::info!(room = %room, by = %who.identity, created, "session scheduled");
    live::changed(&app, &room, None);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_reply(&SessionView::from(&session), status))
}

async fn put_roster(app: App, room: String, auth: Option<String>, body: Bytes) -> ApiResult {
    let who = app.authenticate(auth.as_deref())?;
    if !who.manages(&room) {
        return Err(ApiError::forbidden(
            "only the room's teacher or an administrator may set its roster",
        ));
    }
    let entries = match serde_json::from_slice::<RosterBody>(&body) {
        Ok(RosterBody::Wrapped { roster }) | Ok(RosterBody::Bare(roster)) => {
            roster_entries(roster)?
        }
        Err(e) => return Err(ApiError::bad_request(format!("invalid roster: {e}"))),
    };
    if !app.store.set_roster(&room, &entries, now_ms()).await? {
        return Err(no_session(&room));
    }
    tracing::info!(room = %room, by = %who.identity, people = entries.len(), "roster set");
    live::changed(&app, &room, None);
    Ok(json_reply(
        &json!({ "room": room, "roster": entries }),
        StatusCode::OK,
    ))
}

/// The 404 for a room nobody scheduled.
fn no_session(room: &str) -> ApiError {
    ApiError::not_found(format!("no session scheduled for room `{room}`"))
}

async fn get_roster(app: App, room: String, auth: Option<String>) -> ApiResult {
    let who = app.authenticate(auth.as_deref())?;
    if !who.manages(&room) {
        return Err(ApiError::forbidden(
            "only the room's teacher or an administrator may read its roster",
        ));
    }
    if app.store.session(&room).await?.is_none() {
        return Err(no_session(&room));
    }
    let roster = app.store.roster(&room, None).await?;
    Ok(json_reply(
        &json!({ "room": room, "roster": roster }),
        StatusCode::OK,
    ))
}

async fn get_session(app: App, room: String, auth: Option<String>) -> ApiResult {
    let who = app.authenticate(auth.as_deref())?;
    if !who.belongs_to(&room) {
        return Err(ApiError::forbidden("this token is for another room"));
    }
    let session = app
        .store
        .session(&room)
        .await?
        .ok_or_else(|| no_session(&room))?;
    Ok(json_reply(&SessionView::from(&session), StatusCode::OK))
}

#[derive(Debug, Deserialize)]
struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

/// An instant or a day (`2026-11-25`, taken as UTC midnight).
fn parse_bound(
    name: &str,
    text: Option<&str>,
    default: DateTime<Utc>,
) -> Result<DateTime<Utc>, ApiError> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(default);
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| ApiError::bad_request(format!("{name} must be RFC 3339 or YYYY-MM-DD")))
}

fn range(from: Option<&str>, to: Option<&str>) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let from = parse_bound("from", from, DateTime::<Utc>::MIN_UTC)?;
    let to = parse_bound("to", to, DateTime::<Utc>::MAX_UTC)?;
    if from > to {
        return Err(ApiError::bad_request("from must not be after to"));
    }
    Ok((from, to))
}

async fn list_sessions(app: App, auth: Option<String>, q: RangeQuery) -> ApiResult {
    let who = app.authenticate(auth.as_deref())?;
    let (from, to) = range(q.from.as_deref(), q.to.as_deref())?;
    let at = now();
    let mut sessions = Vec::new();
    for session in app
        .store
        .sessions_between(from.timestamp_millis(), to.timestamp_millis())
        .await?
    {
        if !who.manages(&session.room) {
            continue;
        }
        let facts = app.store.room_facts(&session.room).await?;
        let report = report::session_report(&session, &facts, &app.settings.classifier, None, at);
        let mut view = serde_json::to_value(SessionView::from(&session)).expect("serializable");
        view["phase"] = json!(report.phase);
        view["counts"] = json!(report.counts);
        view["students"] = json!(report.participants.len());
        view["teachers"] = json!(report.teachers.len());
        sessions.push(view);
    }
    Ok(json_reply(&json!({ "sessions": sessions }), StatusCode::OK))
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    format: Option<String>,
    tz: Option<String>,
}

fn wants_csv(format: Option<&str>, accept: Option<&str>) -> Result<bool, ApiError> {
    match format {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        None => Ok(accept.is_some_and(|a| a.contains("text/csv"))),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown format `{other}`; use json or csv"
        ))),
    }
}

fn csv_reply(text: String, name: &str) -> Response {
    let filename: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut response =
        warp::reply::with_header(text, header::CONTENT_TYPE, "text/csv; charset=utf-8")
            .into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}.csv\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

async fn session_report(
    app: App,
    room: String,
    auth: Option<String>,
    q: ReportQuery,
    accept: Option<String>,
) -> ApiResult {
    let who = app.authenticate(auth.as_deref())?;
    if !who.manages(&room) {
        return Err(ApiError::forbidden(
            "only the room's teacher or an administrator may read the whole class",
        ));
    }
    let zone =
        q.tz.as_deref()
            .filter(|z| !z.is_empty())
            .map(parse_zone)
            .transpose()?;
    let csv = wants_csv(q.format.as_deref(), accept.as_deref())?;
    let facts = app.store.room_facts(&room).await?;
    let session = facts.session.as_ref().ok_or_else(|| no_session(&room))?;
    let report = report::session_report(session, &facts, &app.settings.classifier, zone, now());
    if csv {
        let clock = report::Clock::for_session(session, zone);
        let text = report::csv(&report, clock.zone)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        return Ok(csv_reply(text, &format!("attendance-{room}")));
    }
    Ok(json_reply(&report, StatusCode::OK))
}

async fn participant_report(
    app: App,
    room: String,
    identity: String,
    auth: Option<String>,
) -> ApiResult {
    let who = app.authenticate(auth.as_deref())?;
    if !who.may_read(&room, &identity) {
        return Err(ApiError::forbidden(
            "a participant may read only their own attendance",
        ));
    }
    let facts = app.store.participant_facts(&room, &identity).await?;
    let session = facts.session.as_ref().ok_or_else(|| no_session(&room))?;
    let report =
        report::one_participant(session, &facts, &identity, &app.settings.classifier, now());
    Ok(json_reply(&report, StatusCode::OK))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    status: String,
    reason: String,
}

#[derive(Debug, Deserialize)]
struct ReasonQuery {
    reason: Option<String>,
}

async fn set_override(
    app: App,
    room: String,
    identity: String,
    auth: Option<String>,
    body: Bytes,
) -> ApiResult {
    let who = app.authenticate(auth.as_deref())?;
    if !who.manages(&room) {
        return Err(ApiError::forbidden(
            "only the room's teacher or an administrator may correct attendance",
        ));
    }
    let body: OverrideBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid override: {e}")))?;
    if !OVERRIDE_STATUSES.contains(&body.status.as_str()) {
        return Err(ApiError::bad_request(format!(
            "status must be one of {}",
            OVERRIDE_STATUSES.join(", ")
        )));
    }
    let reason = correction_reason(&body.reason, "a reason of 1 to 1000 bytes is required")?;
    let facts = app.store.participant_facts(&room, &identity).await?;
    if facts.session.is_none() {
        return Err(no_session(&room));
    }
    // A typo must not invent a student who "never joined".
    if facts.cycles.is_empty() && facts.roster.is_empty() && facts.overrides.is_empty() {
        return Err(ApiError::not_found(format!(
            "`{identity}` is neither on the roster of `{room}` nor seen in it"
        )));
    }
    app.store
        .set_override(
            &room,
            &identity,
            &body.status,
            reason,
            &who.identity,
            now_ms(),
        )
        .await?;
    tracing::info!(room = %room, identity = %identity, by = %who.identity, status = %body.status, "attendance corrected");
    live::changed(&app, &room, Some(&identity));
    participant_report(app, room, identity, auth).await
}

/// Every correction and its removal carry a reason for the audit trail.
fn correction_reason<'a>(reason: &'a str, refusal: &str) -> Result<&'a str, ApiError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 1000 {
        return Err(ApiError::bad_request(refusal.to_string()));
    }
    Ok(reason)
}

async fn remove_override(
    app: App,
    room: String,
    identity: String,
    auth: Option<String>,
    q: ReasonQuery,
) -> ApiResult {
    let who = app.authenticate(auth.as_deref())?;
    if !who.manages(&room) {
        return Err(ApiError::forbidden(
            "only the room's teacher or an administrator may correct attendance",
        ));
    }
    let reason = q.reason.unwrap_or_default();
    let reason = correction_reason(
        &reason,
        "removing a correction needs a reason (?reason=…) of 1 to 1000 bytes",
    )?;
    if !app
        .store
        .remove_override(&room, &identity, reason, &who.identity, now_ms())
        .await?
    {
        return Err(ApiError::not_found(format!(
            "`{identity}` has no override in `{room}`"
        )));
    }
    tracing::info!(room = %room, identity = %identity, by = %who.identity, "attendance correction removed");
    live::changed(&app, &room, Some(&identity));
    participant_report(app, room, identity, auth).await
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    room: Option<String>,
    limit: Option<i64>,
}

/// The corrections trail: administrators see all of it, a room's teacher
/// that room's.
async fn audit(app: App, auth: Option<String>, q: AuditQuery) -> ApiResult {
    let who = app.authenticate(auth.as_deref())?;
    let allowed = who.is_admin() || q.room.as_deref().is_some_and(|room| who.manages(room));
    if !allowed {
        return Err(ApiError::forbidden(
            "administrators, or the room's teacher for that room",
        ));
    }
    let rows = app
        .store
        .audit_trail(q.room.as_deref(), q.limit.unwrap_or(200).clamp(1, 5000))
        .await?;
    let entries: Vec<_> = rows
        .iter()
        .map(|a| {
            json!({ "room": a.room, "identity": a.identity, "action": a.action, "status": a.status,
                    "reason": a.reason, "author": a.author, "at": a.at })
        })
        .collect();
    Ok(json_reply(&json!({ "audit": entries }), StatusCode::OK))
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    identity: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
    tz: Option<String>,
}

/// One student's attendance across sessions (administrators).
async fn history(
    app: App,
    auth: Option<String>,
    q: HistoryQuery,
    accept: Option<String>,
) -> ApiResult {
    let who = app.authenticate(auth.as_deref())?;
    if !who.is_admin() {
        return Err(ApiError::forbidden("administrators only"));
    }
    let identity = q
        .identity
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::bad_request("identity is required"))?;
    let (from, to) = range(q.from.as_deref(), q.to.as_deref())?;
    let zone =
        q.tz.as_deref()
            .filter(|z| !z.is_empty())
            .map(parse_zone)
            .transpose()?;
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
        let text = report::history_csv(&rows, zone)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        return Ok(csv_reply(text, &format!("attendance-{identity}")));
    }
    let reports: Vec<_> = rows.iter().map(|(_, p)| p.clone()).collect();
    let counts = StatusCounts::of(&reports);
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
