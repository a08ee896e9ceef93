//! A session's times as pages show them, and a person's cycles clipped to the
//! counting window for drawing.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::{from_ms, to_ms, Cycle, Phase, Schedule, Thresholds};

/// The session at `now`: when it starts, when the class ends, when counting
/// ends (after the grace), its phase and its thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overview {
    pub start: DateTime<Utc>,
    /// `start + duration`: the scheduled end of the class.
    pub class_end: DateTime<Utc>,
    /// `class_end + grace`: the end of the counting window.
    pub window_end: DateTime<Utc>,
    pub phase: Phase,
    /// A first counted second after `start` plus this many minutes is late.
    pub late_after_minutes: u32,
    #[serde(flatten)]
    pub thresholds: Thresholds,
}

pub fn overview(schedule: &Schedule, thresholds: Thresholds, now: DateTime<Utc>) -> Overview {
    let window = schedule.window();
    Overview {
        start: window.start,
        class_end: window.start + TimeDelta::minutes(i64::from(schedule.duration_minutes)),
        window_end: window.end,
        phase: window.phase(now),
        late_after_minutes: schedule.late_after_minutes,
        thresholds,
    }
}

/// One cycle's part inside the counting window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// The cycle as it happened (for labels), not clipped.
    pub joined_at: DateTime<Utc>,
    pub left_at: Option<DateTime<Utc>>,
    /// Still open: drawn up to `now` (or the window end).
    pub open: bool,
    /// The clipped span.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The clipped span as fractions of the window, `0 ≤ x1 < x2 ≤ 1`.
    pub x1: f64,
    pub x2: f64,
}

/// A person's cycles across the counting window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    /// Cycles with some part inside the window, in the order given.
    pub segments: Vec<Segment>,
    /// Where `now` is, as a fraction of the window, while the session is live.
    pub now_x: Option<f64>,
    /// Where the class ends and the grace begins, as a fraction of the window.
    pub class_end_x: f64,
}

/// Clips `cycles` to the counting window: an open cycle runs to `now`
/// (capped at the window end); what lies outside the window, or is empty
/// there, is left out.
pub fn timeline(schedule: &Schedule, cycles: &[Cycle], now: DateTime<Utc>) -> Timeline {
    let window = schedule.window();
    let start = to_ms(window.start);
    let span = (to_ms(window.end) - start).max(1) as f64;
    let fraction = |ms: i64| ((ms - start) as f64 / span).clamp(0.0, 1.0);
    let effective_now = now.min(window.end);
    let segments = cycles
        .iter()
        .filter_map(|cycle| {
            let to = cycle.left_at.unwrap_or(effective_now);
            let clipped = window.clip(cycle.joined_at, to)?;
            Some(Segment {
                joined_at: cycle.joined_at,
                left_at: cycle.left_at,
                open: cycle.is_open(),
                from: from_ms(clipped.start),
                to: from_ms(clipped.end),
                x1: fraction(clipped.start),
                x2: fraction(clipped.end),
            })
        })
        .collect();
    let class_end = window.start + TimeDelta::minutes(i64::from(schedule.duration_minutes));
    Timeline {
        segments,
        now_x: (window.phase(now) == Phase::Live).then(|| fraction(to_ms(now))),
        class_end_x: fraction(to_ms(class_end)),
    }
}
