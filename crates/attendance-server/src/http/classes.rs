//! Classes (courses): recurring slots in a time zone that produce a room's
//! lessons, with a roster and rule settings applying to each of them.
//! Creating a class makes all its lessons; a change (or a cancelled date)
//! applies to lessons still to come, never to past ones; a lesson changed
//! by hand keeps its change.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use warp::http::StatusCode;

use super::error::{json_reply, ApiError, ApiResult};
use super::params::{check_room, field, grade_points_over, parse_zone, percent};
use super::rosters::{roster_entries, RosterBodyEntry};
use super::App;
use crate::domain::classes::{plan, ClassRow};
use crate::domain::recurrence::{parse_time, weekday_code, Slot};
use crate::domain::{now, now_ms, RosterEntry};
use crate::livekit::Principal;
use crate::report::Clock;

/// `POST /api/classes`, `PUT /api/classes/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassBody {
    room: String,
    title: Option<String>,
    timezone: String,
    starts_on: NaiveDate,
    ends_on: NaiveDate,
    slots: Vec<SlotBody>,
    cancelled: Option<Vec<NaiveDate>>,
    /// The slots' length unless a slot says otherwise.
    duration_minutes: Option<i64>,
    grace_minutes: Option<i64>,
    late_after_minutes: Option<i64>,
    present_percent: Option<i64>,
    teacher_present_percent: Option<i64>,
    heartbeat_stale_seconds: Option<i64>,
    roster: Option<Vec<RosterBodyEntry>>,
    /// Identities judged as teachers in every lesson.
    teachers: Option<Vec<String>>,
    /// What each status is worth in its lessons, over the school's
    /// (`--grade-points`): `{"present": 2, "late": 1, …}`.
    grade_points: Option<attendance_rules::GradePointsChange>,
}

/// A slot: weekdays (`["MO", "WE"]` or `["monday"]`) or an iCalendar
/// RRULE (`FREQ=WEEKLY;INTERVAL=2;BYDAY=TU`), a local start and a length.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotBody {
    days: Option<Vec<String>>,
    rrule: Option<String>,
    start: String,
    duration_minutes: Option<i64>,
}

const MAX_SLOTS: usize = 20;
const MAX_DAYS: i64 = 3 * 366;

fn slots(body: &ClassBody) -> Result<Vec<Slot>, ApiError> {
    if body.slots.is_empty() || body.slots.len() > MAX_SLOTS {
        return Err(ApiError::bad_request(format!(
            "a class has 1 to {MAX_SLOTS} slots"
        )));
    }
    body.slots
        .iter()
        .map(|slot| {
            parse_time(&slot.start).map_err(ApiError::bad_request)?;
            let rrule = match (&slot.days, &slot.rrule) {
                (Some(days), None) if !days.is_empty() => {
                    let codes: Option<Vec<&str>> = days.iter().map(|d| weekday_code(d)).collect();
                    let codes = codes.ok_or_else(|| {
                        ApiError::bad_request("days are weekdays: MO, TU, … or monday, tuesday, …")
                    })?;
                    format!("FREQ=WEEKLY;BYDAY={}", codes.join(","))
                }
                (None, Some(rule)) if !rule.trim().is_empty() => rule.trim().to_string(),
                _ => {
                    return Err(ApiError::bad_request(
                        "each slot has either days or an rrule",
                    ))
                }
            };
            let minutes = slot
                .duration_minutes
                .or(body.duration_minutes)
                .ok_or_else(|| ApiError::bad_request("duration_minutes is required"))?;
            Ok(Slot {
                rrule,
                start: slot.start.clone(),
                duration_minutes: field("duration_minutes", minutes)?,
            })
        })
        .collect()
}

/// The class a body describes (`id` 0 for a new one) and its roster, if
/// one was given (`teachers` join it as teachers); `school` is what
/// statuses are worth unless it says otherwise.
fn class_of(
    body: ClassBody,
    id: i64,
    school: attendance_rules::GradePoints,
) -> Result<(ClassRow, Option<Vec<RosterEntry>>), ApiError> {
    check_room(&body.room)?;
    let zone = parse_zone(&body.timezone)?;
    let days = (body.ends_on - body.starts_on).num_days();
    if !(0..=MAX_DAYS).contains(&days) {
        return Err(ApiError::bad_request(format!(
            "ends_on must be on or after starts_on, at most {MAX_DAYS} days later"
        )));
    }
    let slots = slots(&body)?;
    let mut rules = attendance_rules::Schedule::new(DateTime::<Utc>::MIN_UTC, 1);
    for (name, value, target) in [
        (
            "grace_minutes",
            body.grace_minutes,
            &mut rules.grace_minutes,
        ),
        (
            "late_after_minutes",
            body.late_after_minutes,
            &mut rules.late_after_minutes,
        ),
        (
            "heartbeat_stale_seconds",
            body.heartbeat_stale_seconds,
            &mut rules.heartbeat_stale_seconds,
        ),
    ] {
        if let Some(v) = value {
            *target = field(name, v)?;
        }
    }
    if let Some(v) = body.present_percent {
        rules.present_percent = percent("present_percent", v)?;
    }
    let mut roster = body.roster.map(roster_entries).transpose()?;
    let teachers = body.teachers.unwrap_or_default();
    if roster.is_none() && !teachers.is_empty() {
        roster = Some(Vec::new());
    }
    if let Some(roster) = roster.as_mut() {
        for teacher in teachers {
            match roster.iter_mut().find(|e| e.identity == teacher) {
                Some(entry) => entry.role = "teacher".into(),
                None => roster.push(RosterEntry {
                    identity: teacher,
                    name: String::new(),
                    role: "teacher".into(),
                }),
            }
        }
    }
    let title = body.title.unwrap_or_default();
    if title.len() > 500 {
        return Err(ApiError::bad_request("title must be at most 500 bytes"));
    }
    let class = ClassRow {
        id,
        room: body.room,
        title,
        timezone: zone.name().to_string(),
        starts_on: body.starts_on,
        ends_on: body.ends_on,
        slots,
        cancelled: body.cancelled.unwrap_or_default(),
        rules,
        teacher_present_percent: body
            .teacher_present_percent
            .map_or(Ok(90), |v| percent("teacher_present_percent", v))?,
        grade_points: grade_points_over(school, body.grade_points)?,
        has_roster: roster
            .as_ref()
            .is_some_and(|r| r.iter().any(|e| e.role != "teacher")),
        created_at: now(),
        updated_at: now(),
    };
    Ok((class, roster))
}

/// Applies `class` to its lessons after `from`, saving it first; 409 when
/// a lesson would overlap another lesson of the room.
async fn apply(
    app: &App,
    mut class: ClassRow,
    roster: Option<Vec<RosterEntry>>,
    from: DateTime<Utc>,
) -> Result<ClassRow, ApiError> {
    let lessons = class.lessons().map_err(ApiError::bad_request)?;
    let at = now();
    let sessions = app.store.room_sessions(&class.room).await?;
    let own = match class.id {
        0 => Vec::new(),
        id => app.store.class_lessons(id).await?,
    };
    let plan = plan(&lessons, &sessions, &own, from, at).map_err(|ids| {
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "the class's lessons would overlap lesson {} of room `{}`",
                ids.join(", "),
                class.room
            ),
        )
    })?;
    class.id = app
        .store
        .save_class(&class, roster.as_deref(), now_ms())
        .await?;
    let roster = match roster {
        Some(roster) => Some(roster),
        None if class.id != 0 => Some(app.store.class_roster(class.id).await?),
        None => None,
    };
    app.store
        .apply_class(&class, &plan, roster.as_deref(), now_ms())
        .await?;
    app.live.changed(&class.room, None);
    for (old, _, _) in &own {
        if old.room != class.room {
            app.live.changed(&old.room, None);
        }
    }
    tracing::info!(class = class.id, room = %class.room, created = plan.create.len(), changed = plan.update.len(), removed = plan.delete.len(), "class applied to its lessons");
    Ok(class)
}

/// A class as the API shows it, with its roster and lessons.
async fn view(app: &App, class: &ClassRow) -> Result<Value, ApiError> {
    let clock = Clock {
        zone: Some(class.zone()),
    };
    let lessons: Vec<Value> = app
        .store
        .class_lessons(class.id)
        .await?
        .iter()
        .map(|(s, _, customized)| {
            json!({ "id": s.id, "room": s.room, "scheduled_at": s.start(),
                    "scheduled_at_local": clock.local(Some(s.start())),
                    "duration_minutes": s.schedule.duration_minutes,
                    "window_end": s.schedule.window().end, "customized": customized })
        })
        .collect();
    let r = &class.rules;
    Ok(json!({
        "id": class.id, "room": class.room, "title": class.title, "timezone": class.timezone,
        "starts_on": class.starts_on, "ends_on": class.ends_on, "slots": class.slots,
        "cancelled": class.cancelled, "grace_minutes": r.grace_minutes,
        "late_after_minutes": r.late_after_minutes, "present_percent": r.present_percent,
        "teacher_present_percent": class.teacher_present_percent,
        "grade_points": class.grade_points,
        "heartbeat_stale_seconds": r.heartbeat_stale_seconds, "has_roster": class.has_roster,
        "roster": app.store.class_roster(class.id).await?,
        "lessons": lessons, "created_at": class.created_at, "updated_at": class.updated_at,
    }))
}

fn refuse_unless_manager(who: &Principal, room: &str) -> Result<(), ApiError> {
    match who.manages(room) {
        true => Ok(()),
        false => Err(ApiError::forbidden(
            "only the room's teacher or an administrator may manage its classes",
        )),
    }
}

fn parse(body: &Bytes) -> Result<ClassBody, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid class: {e}")))
}

async fn existing(app: &App, who: &Principal, id: i64) -> Result<ClassRow, ApiError> {
    let class = app
        .store
        .class(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no class {id}")))?;
    refuse_unless_manager(who, &class.room)?;
    Ok(class)
}

/// `POST /api/classes`: the class and every lesson it produces.
pub async fn create(app: App, who: Principal, body: Bytes) -> ApiResult {
    let (class, roster) = class_of(parse(&body)?, 0, app.settings.grade_points)?;
    refuse_unless_manager(&who, &class.room)?;
    let class = apply(&app, class, roster, DateTime::<Utc>::MIN_UTC).await?;
    Ok(json_reply(&view(&app, &class).await?, StatusCode::CREATED))
}

/// `PUT /api/classes/{id}`: replaces the class; its lessons still to come
/// follow, past ones stay as they were.
pub async fn update(app: App, who: Principal, id: i64, body: Bytes) -> ApiResult {
    let before = existing(&app, &who, id).await?;
    let (mut class, roster) = class_of(parse(&body)?, id, app.settings.grade_points)?;
    refuse_unless_manager(&who, &class.room)?;
    class.created_at = before.created_at;
    if roster.is_none() {
        class.has_roster = before.has_roster;
    }
    let class = apply(&app, class, roster, now()).await?;
    Ok(json_reply(&view(&app, &class).await?, StatusCode::OK))
}

pub async fn get(app: App, who: Principal, id: i64) -> ApiResult {
    let class = existing(&app, &who, id).await?;
    Ok(json_reply(&view(&app, &class).await?, StatusCode::OK))
}

#[derive(Debug, Deserialize)]
pub struct ClassesQuery {
    room: Option<String>,
}

/// `GET /api/classes`: an administrator's every class, a teacher's room's.
pub async fn list(app: App, who: Principal, q: ClassesQuery) -> ApiResult {
    let mut classes = Vec::new();
    for class in app.store.classes(q.room.as_deref()).await? {
        if who.manages(&class.room) {
            classes.push(view(&app, &class).await?);
        }
    }
    Ok(json_reply(&json!({ "classes": classes }), StatusCode::OK))
}

/// `DELETE /api/classes/{id}`: the class and its lessons still to come go;
/// past lessons stay with everything recorded in them.
pub async fn delete(app: App, who: Principal, id: i64) -> ApiResult {
    let class = existing(&app, &who, id).await?;
    app.store.delete_class(id, now_ms()).await?;
    app.live.changed(&class.room, None);
    Ok(json_reply(&json!({ "deleted": id }), StatusCode::OK))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    date: NaiveDate,
}

/// `POST /api/classes/{id}/cancellations` `{"date"}` cancels that day's
/// lessons (if still to come); `DELETE …/cancellations/{date}` restores it.
pub async fn cancel(
    app: App,
    who: Principal,
    id: i64,
    body: Option<Bytes>,
    restore: Option<String>,
) -> ApiResult {
    let mut class = existing(&app, &who, id).await?;
    let date = match (&body, &restore) {
        (_, Some(day)) => day
            .parse::<NaiveDate>()
            .map_err(|_| ApiError::bad_request("the date is YYYY-MM-DD"))?,
        (Some(body), None) => {
            serde_json::from_slice::<CancelBody>(body)
                .map_err(|e| ApiError::bad_request(format!("invalid cancellation: {e}")))?
                .date
        }
        (None, None) => return Err(ApiError::bad_request("a date is required")),
    };
    class.cancelled.retain(|d| *d != date);
    if restore.is_none() {
        class.cancelled.push(date);
        class.cancelled.sort();
    }
    let class = apply(&app, class, None, now()).await?;
    Ok(json_reply(&view(&app, &class).await?, StatusCode::OK))
}
