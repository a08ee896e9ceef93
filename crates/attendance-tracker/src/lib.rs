//! The browser tracker, compiled to WebAssembly.
//!
//! It keeps a student's page in touch with the attendance service — a
//! WebSocket for live numbers, heartbeats while the student is in the LiveKit
//! room — and renders their attendance once per second with
//! [`attendance_rules::compute`], the very code the server reports with.
//!
//! JS API (ES module built by `wasm-bindgen --target web`):
//! - `new AttendanceTracker({ serverUrl, room, token, element?, onUpdate?, heartbeatSeconds?, pollSeconds? })`
//! - `.connected()`, `.disconnected()`, `.attach(room)`, `.stop()`, `.attendance()`
//! - `computeAttendance(session, participant, nowMs)` for dashboards.

use attendance_rules::{compute_with_threshold, Attendance, Cycle, Phase, Schedule};
use chrono::{DateTime, Utc};
use js_sys::{Date, Object, Reflect};
use wasm_bindgen::prelude::*;

mod jwt;
mod text;
mod time;
mod tracker;
mod view;

pub use tracker::AttendanceTracker;

#[cfg(all(test, target_arch = "wasm32"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// The parts of the server's participant object the rules need. Every other
/// field is ignored (and copied through untouched by [`to_js`]).
#[derive(Debug, Default)]
pub(crate) struct Facts {
    cycles: Vec<Cycle>,
    last_heartbeat_at: Option<DateTime<Utc>>,
    /// `present_percent` for this participant's role; the session's when absent.
    threshold: Option<u32>,
    /// A teacher's correction (`override.status`): shown instead of the
    /// computed status.
    correction: Option<String>,
}

pub(crate) fn get(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// A timestamp field: null/absent is `None`, anything unreadable an error.
fn time_field(object: &JsValue, key: &str) -> Result<Option<DateTime<Utc>>, JsValue> {
    let value = get(object, key);
    if value.is_null() || value.is_undefined() {
        return Ok(None);
    }
    value
        .as_string()
        .and_then(|text| time::parse(&text))
        .map(Some)
        .ok_or_else(|| bad_field(key))
}

fn bad_field(key: &str) -> JsValue {
    let mut message = String::from("attendance: bad or missing field ");
    message.push_str(key);
    js_sys::TypeError::new(&message).into()
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
        let threshold = get(participant, "present_percent")
            .as_f64()
            .filter(|n| (0.0..=100.0).contains(n))
            .map(|n| n as u32);
        let correction = get(&get(participant, "override"), "status")
            .as_string()
            .filter(|s| !s.is_empty());
        Ok(Facts {
            cycles,
            last_heartbeat_at: time_field(participant, "last_heartbeat_at")?,
            threshold,
            correction,
        })
    }

    /// The rules at `now`, with this participant's threshold.
    pub(crate) fn compute(&self, schedule: &Schedule, now: DateTime<Utc>) -> Attendance {
        compute_with_threshold(
            schedule,
            &self.cycles,
            self.last_heartbeat_at,
            now,
            self.threshold.unwrap_or(schedule.present_percent),
        )
    }

    pub(crate) fn last_heartbeat_at(&self) -> Option<DateTime<Utc>> {
        self.last_heartbeat_at
    }

    pub(crate) fn correction(&self) -> Option<&str> {
        self.correction.as_deref()
    }
}

/// The session object's schedule fields (defaults as in the rules crate).
pub(crate) fn schedule_from_js(session: &JsValue) -> Result<Schedule, JsValue> {
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
    Ok(schedule)
}

pub(crate) fn at_ms(ms: f64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms as i64).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(crate) fn phase_str(phase: Phase) -> &'static str {
    match phase {
        Phase::Scheduled => "scheduled",
        Phase::Live => "live",
        Phase::Ended => "ended",
    }
}

fn iso(at: Option<DateTime<Utc>>) -> JsValue {
    match at {
        Some(at) => Date::new(&JsValue::from_f64(at.timestamp_millis() as f64))
            .to_iso_string()
            .into(),
        None => JsValue::NULL,
    }
}

fn set(target: &Object, key: &str, value: JsValue) {
    let _ = Reflect::set(target, &JsValue::from_str(key), &value);
}

/// The server's participant object with every computed field replaced by
/// what the rules say at this instant (`status`: the correction if any).
pub(crate) fn to_js(att: &Attendance, participant: &JsValue, facts: &Facts) -> Object {
    let out = Object::new();
    if participant.is_object() {
        Object::assign(&out, participant.unchecked_ref());
    }
    let num = |n: f64| JsValue::from_f64(n);
    set(&out, "attended_seconds", num(att.attended_seconds as f64));
    set(&out, "duration_minutes", num(att.duration_minutes as f64));
    set(
        &out,
        "attendance_percentage",
        num(att.attendance_percentage),
    );
    let computed = att.status.as_str();
    set(
        &out,
        "status",
        facts.correction().unwrap_or(computed).into(),
    );
    set(&out, "computed_status", computed.into());
    let correction = get(participant, "override");
    let correction = match correction.is_object() {
        true => correction,
        false => JsValue::NULL,
    };
    set(&out, "override", correction);
    set(&out, "phase", phase_str(att.phase).into());
    set(&out, "final", att.is_final.into());
    set(&out, "in_meeting", att.in_meeting.into());
    set(&out, "is_currently_in_meeting", att.in_meeting.into());
    set(&out, "heartbeat_stale", att.heartbeat_stale.into());
    set(&out, "join_count", num(att.join_count as f64));
    set(&out, "first_join_at", iso(att.first_join_at));
    set(&out, "last_leave_at", iso(att.last_leave_at));
    set(&out, "first_counted_at", iso(att.first_counted_at));
    set(&out, "last_heartbeat_at", iso(facts.last_heartbeat_at()));
    out
}

/// Computes one participant's attendance at `nowMs` (milliseconds since the
/// epoch, already corrected to the server's clock) from the server's session
/// and participant objects. `participant` may be null: no facts yet.
#[wasm_bindgen(js_name = computeAttendance)]
pub fn compute_attendance(
    session: JsValue,
    participant: JsValue,
    now_ms: f64,
) -> Result<Object, JsValue> {
    let schedule = schedule_from_js(&session)?;
    let facts = Facts::from_js(&participant)?;
    let att = facts.compute(&schedule, at_ms(now_ms));
    Ok(to_js(&att, &participant, &facts))
}
