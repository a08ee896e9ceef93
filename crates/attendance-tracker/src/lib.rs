//! The browser tracker, compiled to WebAssembly.
//!
//! It keeps a student's page in touch with the attendance service — a
//! WebSocket for live numbers, heartbeats while the student is in the LiveKit
//! room — and renders their attendance once per second with
//! [`attendance_rules`], the very code the server reports with.
//!
//! JS API (ES module built by `wasm-bindgen --target web`):
//! - `new AttendanceTracker({ serverUrl, room, token, element?, onUpdate?, heartbeatSeconds?, pollSeconds?, text?, format? })`:
//!   the card's words come from the page (`text(key, vars)`, e.g. `t` from
//!   `www/i18n.js`, or an object of templates) and its numbers and times
//!   are written by the page's `format: { clock, percent, time }`; English
//!   and ASCII digits for anything left out
//! - `.connected()`, `.disconnected()`, `.stop()`, `.attendance()`
//! - `.attach(room)`: follows a livekit-client `Room` (in the call or not,
//!   and the local camera, microphone and screen share muted or not, which
//!   it reports over the live socket)
//! - while the service cannot be reached the numbers freeze at the last
//!   contact and the card says since when (`data-stale` on the card)
//! - for dashboards, every figure a page shows, from the server's session and
//!   participant objects at `nowMs` (server clock): `computeAttendance` and
//!   `timeline` (the window, its phase and thresholds, and the cycles clipped
//!   to it), `countStatuses` (a class's students per status); for students,
//!   `stayUntil` (the best status still reachable and when).
//!
//! JS values are read and written property by property (`js.rs`), not with
//! `serde-wasm-bindgen`, for size. Measured on this crate (wasm + JS glue,
//! gzip, build-tracker.sh): 39.7 KB before these exports; with
//! `serde-wasm-bindgen` reading and writing them, 68.3 KB (its deserializer's
//! error messages bring in Rust's float formatting, about 21 KB); writing
//! only, still about 5 KB more than this code (a field-name cache and integer
//! formatting) — either over the 40 KB budget for the whole tracker.

use attendance_rules::{
    assess, overview, stay_until, timeline, Assessment, Cycle, EffectiveStatus, Person, Role,
    Schedule, StatusCounts, StayUntil, Thresholds,
};
use chrono::{DateTime, Utc};
use js_sys::{Array, Object};
use wasm_bindgen::prelude::*;

use js::{bad_field, get, iso, time_field, Out};

mod js;
mod jwt;
mod labels;
mod time;
mod tracker;
mod view;

pub use tracker::AttendanceTracker;

#[cfg(all(test, target_arch = "wasm32"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// A small allocator instead of the standard library's dlmalloc: about
/// 3.2 KB gzip less, which keeps the whole tracker within its 40 KB budget
/// (build-tracker.sh prints the size). The tracker holds few, small
/// allocations at a time: an address-ordered free list that merges
/// neighbouring free blocks stays short.
// SAFETY: wasm32-unknown-unknown without the atomics feature has one thread.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

/// A session as the rules see it: its schedule (defaults as in the rules
/// crate) and its thresholds per role.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) schedule: Schedule,
    pub(crate) thresholds: Thresholds,
}

impl Session {
    pub(crate) fn from_js(session: &JsValue) -> Result<Session, JsValue> {
        let scheduled_at =
            time_field(session, "scheduled_at")?.ok_or_else(|| bad_field("scheduled_at"))?;
        let minutes = |key: &str| -> Result<Option<u32>, JsValue> {
            let value = get(session, key);
            if value.is_null() || value.is_undefined() {
                return Ok(None);
            }
            match value.as_f64() {
                Some(n) if n >= 0.0 && n <= f64::from(u32::MAX) && n.fract() == 0.0 => {
                    Ok(Some(n as u32))
                }
                _ => Err(bad_field(key)),
            }
        };
        let duration = minutes("duration_minutes")?.ok_or_else(|| bad_field("duration_minutes"))?;
        let mut schedule = Schedule::new(scheduled_at, duration);
        if let Some(v) = minutes("grace_minutes")? {
            schedule.grace_minutes = v;
        }
        if let Some(v) = minutes("late_after_minutes")? {
            schedule.late_after_minutes = v;
        }
        if let Some(v) = minutes("present_percent")? {
            schedule.present_percent = v;
        }
        if let Some(v) = minutes("heartbeat_stale_seconds")? {
            schedule.heartbeat_stale_seconds = v;
        }
        let thresholds = Thresholds::new(&schedule, minutes("teacher_present_percent")?);
        Ok(Session {
            schedule,
            thresholds,
        })
    }
}

/// What the rules need about one participant, read from the server's
/// participant object (its other fields are copied through by
/// [`Facts::shown`]).
#[derive(Debug, Default)]
pub(crate) struct Facts {
    pub(crate) person: Person,
    /// The server's `override` object (status, reason, author, time), or
    /// anything else when there is none.
    correction: JsValue,
}

impl Facts {
    pub(crate) fn from_js(participant: &JsValue) -> Result<Facts, JsValue> {
        if !participant.is_object() {
            return Ok(Facts::default());
        }
        let mut cycles = Vec::new();
        let list = get(participant, "cycles");
        if let Some(list) = list.dyn_ref::<js_sys::Array>() {
            for cycle in list.iter() {
                // A leave whose join the server never saw has no start: it
                // counts nothing, so it is skipped.
                if let Some(joined_at) = time_field(&cycle, "joined_at")? {
                    cycles.push(Cycle {
                        joined_at,
                        left_at: time_field(&cycle, "left_at")?,
                        close_reason: None,
                    });
                }
            }
        }
        let role = match get(participant, "role").as_string().as_deref() {
            Some("teacher") => Role::Teacher,
            Some("excluded") => Role::Excluded,
            _ => Role::Student,
        };
        // A threshold that is not a percentage is ignored for the role's.
        let present_percent = get(participant, "present_percent")
            .as_f64()
            .filter(|n| (0.0..=100.0).contains(n))
            .map(|n| n as u32);
        let correction = get(participant, "override");
        let status = get(&correction, "status")
            .as_string()
            .and_then(|s| EffectiveStatus::parse(&s));
        Ok(Facts {
            person: Person {
                role,
                cycles,
                last_heartbeat_at: time_field(participant, "last_heartbeat_at")?,
                present_percent,
                correction: status,
            },
            correction,
        })
    }

    /// The rules at `now`: this participant's numbers, threshold and status.
    pub(crate) fn assess(&self, session: &Session, now: DateTime<Utc>) -> Assessment {
        assess(&session.schedule, session.thresholds, &self.person, now)
    }

    /// "Stay until" at `now`, with this participant's threshold.
    pub(crate) fn stay_until(&self, session: &Session, now: DateTime<Utc>) -> StayUntil {
        let p = &self.person;
        let threshold = session.thresholds.resolve(p.role, p.present_percent);
        stay_until(
            &session.schedule,
            &p.cycles,
            p.last_heartbeat_at,
            now,
            threshold,
        )
    }

    /// The server's participant object with every computed field replaced
    /// by what the rules say (`status`: the correction if any).
    pub(crate) fn shown(&self, a: &Assessment, participant: &JsValue) -> Object {
        let att = &a.attendance;
        let out = Object::new();
        if participant.is_object() {
            Object::assign(&out, participant.unchecked_ref());
        }
        let correction = match self.correction.is_object() {
            true => self.correction.clone(),
            false => JsValue::NULL,
        };
        Out(&out)
            .set("attended_seconds", (att.attended_seconds as f64).into())
            .set("duration_minutes", (att.duration_minutes as f64).into())
            .set("attendance_percentage", att.attendance_percentage.into())
            .set("status", a.status.as_str().into())
            .set("computed_status", att.status.as_str().into())
            .set("override", correction)
            .set("phase", phase_str(att.phase).into())
            .set("final", att.is_final.into())
            .set("in_meeting", att.in_meeting.into())
            .set("is_currently_in_meeting", att.in_meeting.into())
            .set("heartbeat_stale", att.heartbeat_stale.into())
            .set("join_count", (att.join_count as f64).into())
            .set("first_join_at", iso(att.first_join_at))
            .set("last_leave_at", iso(att.last_leave_at))
            .set("first_counted_at", iso(att.first_counted_at))
            .set("last_heartbeat_at", iso(self.person.last_heartbeat_at));
        out
    }
}

pub(crate) fn phase_str(phase: attendance_rules::Phase) -> &'static str {
    use attendance_rules::Phase;
    match phase {
        Phase::Scheduled => "scheduled",
        Phase::Live => "live",
        Phase::Ended => "ended",
    }
}

pub(crate) fn at_ms(ms: f64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms as i64).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Computes one participant's attendance at `nowMs` (milliseconds since the
/// epoch, already corrected to the server's clock) from the server's session
/// and participant objects. `participant` may be null: no facts yet. The
/// participant's threshold is the one it states (`present_percent`), else its
/// `role`'s; `status` is a teacher's correction (`override.status`) if any.
#[wasm_bindgen(js_name = computeAttendance)]
pub fn compute_attendance(
    session: JsValue,
    participant: JsValue,
    now_ms: f64,
) -> Result<Object, JsValue> {
    let session = Session::from_js(&session)?;
    let facts = Facts::from_js(&participant)?;
    let a = facts.assess(&session, at_ms(now_ms));
    Ok(facts.shown(&a, &participant))
}

/// The session's window and a participant's cycles clipped to it, at
/// `nowMs`, for drawing: `{ start, class_end, window_end, phase,
/// present_percent, teacher_present_percent, segments: [{ joined_at,
/// left_at, open, x1, x2 }], now_x, class_end_x }`. Instants are ISO strings,
/// `*_x` positions fractions of the window (`now_x` is null unless the
/// session is live); the thresholds are the students' and the teachers'.
/// `participant` may be null: the window alone.
#[wasm_bindgen(js_name = timeline)]
pub fn timeline_of(session: JsValue, participant: JsValue, now_ms: f64) -> Result<Object, JsValue> {
    let session = Session::from_js(&session)?;
    let facts = Facts::from_js(&participant)?;
    let now = at_ms(now_ms);
    let o = overview(&session.schedule, session.thresholds, now);
    let t = timeline(&session.schedule, &facts.person.cycles, now);
    let segments = Array::new();
    for s in &t.segments {
        let segment = Object::new();
        Out(&segment)
            .set("joined_at", iso(Some(s.joined_at)))
            .set("left_at", iso(s.left_at))
            .set("open", s.open.into())
            .set("x1", s.x1.into())
            .set("x2", s.x2.into());
        segments.push(&segment);
    }
    let out = Object::new();
    Out(&out)
        .set("start", iso(Some(o.start)))
        .set("class_end", iso(Some(o.class_end)))
        .set("window_end", iso(Some(o.window_end)))
        .set("phase", phase_str(o.phase).into())
        .set("late_after_minutes", o.late_after_minutes.into())
        .set("present_percent", o.thresholds.present_percent.into())
        .set(
            "teacher_present_percent",
            o.thresholds.teacher_present_percent.into(),
        )
        .set("segments", segments.into())
        .set("now_x", t.now_x.map_or(JsValue::NULL, JsValue::from))
        .set("class_end_x", t.class_end_x.into());
    Ok(out)
}

/// "Stay until" for one participant at `nowMs`, as the rules give it:
/// `{ reachable_status, present_at, rejoin_by }`. `reachable_status` is the
/// best status still reachable by staying (or rejoining now) until the window
/// ends (`present`, `late` or `partial`); `present_at` when it is reached
/// (null once reached, or when only `partial` is left); `rejoin_by`, for a
/// participant not in the meeting, the last instant a rejoin still reaches
/// it. All null once the session has ended. Arguments as `computeAttendance`.
#[wasm_bindgen(js_name = stayUntil)]
pub fn stay_until_of(
    session: JsValue,
    participant: JsValue,
    now_ms: f64,
) -> Result<Object, JsValue> {
    let session = Session::from_js(&session)?;
    let facts = Facts::from_js(&participant)?;
    let stay = facts.stay_until(&session, at_ms(now_ms));
    let out = Object::new();
    Out(&out)
        .set(
            "reachable_status",
            stay.reachable_status
                .map_or(JsValue::NULL, |s| s.as_str().into()),
        )
        .set("present_at", iso(stay.present_at))
        .set("rejoin_by", iso(stay.rejoin_by));
    Ok(out)
}

/// How many of `statuses` (as shown: `present`, `late`, `partial`,
/// `absent`, `excused`) there are of each: `{ present, late, partial,
/// absent, excused }`. Anything else is not counted.
#[wasm_bindgen(js_name = countStatuses)]
pub fn count_statuses(statuses: &Array) -> Object {
    let counts = StatusCounts::of(
        statuses
            .iter()
            .filter_map(|s| EffectiveStatus::parse(&s.as_string()?)),
    );
    let out = Object::new();
    Out(&out)
        .set("present", (counts.present as f64).into())
        .set("late", (counts.late as f64).into())
        .set("partial", (counts.partial as f64).into())
        .set("absent", (counts.absent as f64).into())
        .set("excused", (counts.excused as f64).into());
    out
}
