//! The attendance rules, in one place.
//!
//! Every attendance number the product shows — in a teacher's report, in a CSV,
//! in a WebSocket push and in the student's browser every second — is computed
//! by [`compute`]. The crate is pure: no I/O, no clock (callers pass `now`), no
//! platform code, so the server and the WebAssembly tracker compile the very
//! same code and can never disagree.
//!
//! The contract, in short:
//! 1. The counting window is `[scheduled_at, scheduled_at + duration + grace]`;
//!    nothing outside it counts (no preparation time, no pages left open).
//! 2. A cycle (one LiveKit connection) counts from `max(joined_at, start)` to
//!    `min(end, window end)`, where `end` is `left_at`, else the last heartbeat
//!    when heartbeats went stale, else `now`.
//! 3. Overlapping cycles (two tabs, two devices) count once: the union.
//! 4. Once the window is over (`phase = ended`) nothing changes with `now`.
//!
//! Around it: the threshold of a person's role and a teacher's correction
//! ([`assess`]), the window's times and the cycles clipped for drawing
//! ([`overview`], [`timeline`]), and during a session the best status still
//! reachable and when ([`stay_until`]).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

mod grade;
mod interval;
mod media;
mod person;
mod schedule;
mod stay;
mod timeline;

pub use grade::{grade, Grade, GradePoints, GradePointsChange, MAX_STATUS_POINTS};
pub use interval::{union_length_ms, Interval};
pub use media::{
    media_time, media_time_since, Connection, MediaChange, MediaEvent, MediaOn, MediaSource,
    MediaTime,
};
pub use person::{
    assess, Assessment, EffectiveStatus, Person, Role, StatusCounts, Thresholds,
    DEFAULT_TEACHER_PRESENT_PERCENT,
};
pub use schedule::{Schedule, ScheduleError, Window};
pub use stay::{stay_until, StayUntil};
pub use timeline::{overview, timeline, Overview, Segment, Timeline};

/// Why a cycle was closed. Kept as a fact next to the cycle so a report can
/// say *how* a student's time ended, not only when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// LiveKit sent `participant_left`.
    Left,
    /// LiveKit sent `participant_connection_aborted`.
    ConnectionAborted,
    /// LiveKit sent `room_finished` while the participant was still in.
    RoomFinished,
    /// No heartbeat for longer than the schedule's stale limit.
    StaleHeartbeat,
    /// Still open when the counting window ended.
    SessionEnded,
    /// LiveKit's RoomService no longer listed the connection: closed at the
    /// last check that did.
    Reconciled,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Left => "left",
            CloseReason::ConnectionAborted => "connection_aborted",
            CloseReason::RoomFinished => "room_finished",
            CloseReason::StaleHeartbeat => "stale_heartbeat",
            CloseReason::SessionEnded => "session_ended",
            CloseReason::Reconciled => "reconciled",
        }
    }
}

/// One LiveKit connection of one identity, from join to leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cycle {
    pub joined_at: DateTime<Utc>,
    #[serde(default)]
    pub left_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub close_reason: Option<CloseReason>,
}

impl Cycle {
    pub fn open(joined_at: DateTime<Utc>) -> Self {
        Cycle {
            joined_at,
            left_at: None,
            close_reason: None,
        }
    }

    pub fn closed(joined_at: DateTime<Utc>, left_at: DateTime<Utc>, reason: CloseReason) -> Self {
        Cycle {
            joined_at,
            left_at: Some(left_at),
            close_reason: Some(reason),
        }
    }

    pub fn is_open(&self) -> bool {
        self.left_at.is_none()
    }
}

/// Where the session stands at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before the scheduled start: being in the room counts nothing yet.
    Scheduled,
    /// Inside the counting window.
    Live,
    /// After the window end: the numbers are final.
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Present,
    Late,
    Partial,
    Absent,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Present => "present",
            Status::Late => "late",
            Status::Partial => "partial",
            Status::Absent => "absent",
        }
    }
}

/// Everything the rules derive for one identity in one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attendance {
    pub attended_seconds: i64,
    /// `floor(attended_seconds / 60)`, the figure schools are used to.
    pub duration_minutes: i64,
    /// Share of the scheduled duration attended, capped at 100, one decimal.
    pub attendance_percentage: f64,
    pub status: Status,
    pub phase: Phase,
    /// True once the window has ended: the numbers will not change any more
    /// (unless the facts or the schedule change).
    #[serde(rename = "final")]
    pub is_final: bool,
    pub in_meeting: bool,
    /// True while the identity has an open cycle but its heartbeats stopped.
    pub heartbeat_stale: bool,
    pub join_count: usize,
    pub first_join_at: Option<DateTime<Utc>>,
    pub last_leave_at: Option<DateTime<Utc>>,
    /// The first second that counted, after capping at the window start.
    pub first_counted_at: Option<DateTime<Utc>>,
}

/// Computes attendance for one identity from the raw facts.
///
/// `last_heartbeat_at` is the newest heartbeat seen for this identity in this
/// session (`None` when its page never sent one: then LiveKit's events alone
/// decide). `threshold_percent` is the share needed for `present`; pass
/// `schedule.present_percent` for students.
pub fn compute(
    schedule: &Schedule,
    cycles: &[Cycle],
    last_heartbeat_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Attendance {
    compute_with_threshold(
        schedule,
        cycles,
        last_heartbeat_at,
        now,
        schedule.present_percent,
    )
}

/// [`compute`] with an explicit `present` threshold (e.g. a stricter one for
/// teachers, whose attendance may decide their pay).
pub fn compute_with_threshold(
    schedule: &Schedule,
    cycles: &[Cycle],
    last_heartbeat_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    threshold_percent: u32,
) -> Attendance {
    let window = schedule.window();
    let phase = window.phase(now);
    // Time stops at the window end: after it, neither open cycles nor the
    // staleness of heartbeats may move a number, so results become final.
    let effective_now = now.min(window.end);
    let heartbeat_stale =
        last_heartbeat_at.is_some_and(|beat| effective_now - beat > schedule.heartbeat_stale());

    let counted: Vec<Interval> = cycles
        .iter()
        .filter_map(|cycle| {
            let end = match (cycle.left_at, last_heartbeat_at) {
                (Some(left), _) => left,
                (None, Some(beat)) if heartbeat_stale => beat,
                (None, _) => effective_now,
            };
            window.clip(cycle.joined_at, end)
        })
        .collect();
    let attended_ms = union_length_ms(&counted);
    let attended_seconds = attended_ms / 1000;
    let first_counted_at = counted.iter().map(|i| i.start).min().map(from_ms);

    let attendance_percentage = percentage(attended_seconds, schedule.duration_minutes);

    let late_after = window.start + TimeDelta::minutes(i64::from(schedule.late_after_minutes));
    let status = if attended_seconds == 0 {
        Status::Absent
    } else if attendance_percentage < f64::from(threshold_percent) {
        Status::Partial
    } else if first_counted_at.is_some_and(|first| first > late_after) {
        Status::Late
    } else {
        Status::Present
    };

    let any_open = cycles.iter().any(Cycle::is_open);
    Attendance {
        attended_seconds,
        duration_minutes: attended_seconds / 60,
        attendance_percentage,
        status,
        phase,
        is_final: phase == Phase::Ended,
        in_meeting: any_open && !heartbeat_stale && phase != Phase::Ended,
        heartbeat_stale: any_open && heartbeat_stale,
        join_count: cycles.len(),
        first_join_at: cycles.iter().map(|c| c.joined_at).min(),
        last_leave_at: cycles.iter().filter_map(|c| c.left_at).max(),
        first_counted_at,
    }
}

/// Where an open cycle should be closed by a sweeper at `now`, and why, or
/// `None` while it may stay open. Stale heartbeats close at the last heartbeat;
/// a cycle still open after the window closes at the window end.
pub fn sweep_close(
    schedule: &Schedule,
    cycle: &Cycle,
    last_heartbeat_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, CloseReason)> {
    if !cycle.is_open() {
        return None;
    }
    let window = schedule.window();
    let effective_now = now.min(window.end);
    if let Some(beat) = last_heartbeat_at {
        if effective_now - beat > schedule.heartbeat_stale() {
            // A heartbeat older than the join belongs to an earlier
            // connection: close the cycle empty rather than before it began.
            return Some((beat.max(cycle.joined_at), CloseReason::StaleHeartbeat));
        }
    }
    if now > window.end {
        return Some((window.end.max(cycle.joined_at), CloseReason::SessionEnded));
    }
    None
}

/// The share of a `duration_minutes` class that `attended_seconds` are, as
/// shown everywhere: capped at 100, rounded to one decimal. Computed from the
/// whole seconds shown, so seconds, minutes and percentage always agree.
pub fn percentage(attended_seconds: i64, duration_minutes: u32) -> f64 {
    let scheduled_ms = i64::from(duration_minutes) * 60_000;
    round_percent((attended_seconds as f64 * 1000.0 / scheduled_ms as f64 * 100.0).min(100.0))
}

/// A percentage rounded to one decimal (half away from zero): the only
/// rounding any figure gets.
pub fn round_percent(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

pub(crate) fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The golden-vector runner shared by the native and the wasm tests.
pub mod golden;
