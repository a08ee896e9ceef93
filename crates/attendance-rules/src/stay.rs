//! "Stay until": during a session, the best status a person can still reach
//! and when they reach it if they stay (or rejoin now and stay) without a
//! break.
//!
//! Every answer is checked against [`compute_with_threshold`] itself: the
//! future is played as extra facts (the open cycle goes on, or a rejoin
//! opens one) and the rules are asked at later instants. So lateness already
//! incurred, time already counted, overlapping devices, the grace period and
//! the rounding of the percentage are all taken into account exactly as the
//! final report will take them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{compute_with_threshold, from_ms, to_ms, CloseReason, Cycle, Phase, Schedule, Status};

/// What staying still brings, at one instant of a session. All `None` once
/// the session has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StayUntil {
    /// The best status reachable by staying (or rejoining now) until the
    /// window ends: `present`, `late` (a late arrival can be no better), or
    /// `partial` when neither can be reached any more (`absent` only in the
    /// window's very last second, when not even one second can be added).
    pub reachable_status: Option<Status>,
    /// When `reachable_status` (`present` or `late`) is reached by staying,
    /// or by rejoining now and staying. `None` when it is already reached,
    /// or only `partial` is left.
    pub present_at: Option<DateTime<Utc>>,
    /// For a person not in the meeting: the latest instant a rejoin (kept
    /// until the window ends) still reaches `reachable_status`. `None` while
    /// in the meeting, when it is already reached, or only `partial` is left.
    pub rejoin_by: Option<DateTime<Utc>>,
}

impl StayUntil {
    const NOTHING: StayUntil = StayUntil {
        reachable_status: None,
        present_at: None,
        rejoin_by: None,
    };
}

/// "Stay until" for one person at `now`, with their `present` threshold
/// (the same arguments as [`compute_with_threshold`]).
pub fn stay_until(
    schedule: &Schedule,
    cycles: &[Cycle],
    last_heartbeat_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    threshold_percent: u32,
) -> StayUntil {
    let window = schedule.window();
    if window.phase(now) == Phase::Ended {
        return StayUntil::NOTHING;
    }
    let current =
        compute_with_threshold(schedule, cycles, last_heartbeat_at, now, threshold_percent);
    // Nothing counts before the start: staying from now is staying from it.
    let from = to_ms(now.max(window.start));
    let end = to_ms(window.end);

    // The facts as counted so far, with time going on: an open cycle whose
    // heartbeats went stale ends at its last heartbeat (as it is counted);
    // one still alive goes on, its heartbeats assumed to keep coming.
    let mut future: Vec<Cycle> = cycles
        .iter()
        .map(|cycle| match (cycle.left_at, last_heartbeat_at) {
            (None, Some(beat)) if current.heartbeat_stale => Cycle::closed(
                cycle.joined_at,
                beat.max(cycle.joined_at),
                CloseReason::StaleHeartbeat,
            ),
            _ => cycle.clone(),
        })
        .collect();
    // Not in the meeting: the person rejoins (at first now) and stays.
    if !current.in_meeting {
        future.push(Cycle::open(from_ms(from)));
    }
    let status_at = |future: &[Cycle], at: i64| {
        compute_with_threshold(schedule, future, None, from_ms(at), threshold_percent).status
    };

    let reachable = status_at(&future, end);
    let target = matches!(reachable, Status::Present | Status::Late) && current.status != reachable;
    let present_at = target.then(|| {
        // Staying only adds time, and the first counted second is already
        // fixed: the status rises monotonically, so the first instant that
        // reaches the target is found by bisection.
        first_at(from, end, |at| status_at(&future, at) == reachable)
    });
    let rejoin_by = (target && !current.in_meeting).then(|| {
        // A later rejoin counts less and no earlier: the last rejoin that
        // still reaches the target is found by bisection too.
        last_at(from, end, |at| {
            if let Some(rejoin) = future.last_mut() {
                rejoin.joined_at = from_ms(at);
            }
            status_at(&future, end) == reachable
        })
    });
    StayUntil {
        reachable_status: Some(reachable),
        present_at: present_at.map(from_ms),
        rejoin_by: rejoin_by.map(from_ms),
    }
}

/// The first `at` in `[lo, hi]` with `holds(at)`, given `holds(hi)` and that
/// `holds` never turns false again once true.
fn first_at(mut lo: i64, mut hi: i64, holds: impl Fn(i64) -> bool) -> i64 {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if holds(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    hi
}

/// The last `at` in `[lo, hi]` with `holds(at)`, given `holds(lo)` and that
/// `holds` never turns true again once false.
fn last_at(mut lo: i64, mut hi: i64, mut holds: impl FnMut(i64) -> bool) -> i64 {
    while lo < hi {
        let mid = lo + (hi - lo + 1) / 2;
        if holds(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}
