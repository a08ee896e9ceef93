//! The rules on arbitrary schedules and cycles: no panic, and the
//! invariants every report relies on.
#![no_main]

use arbitrary::Arbitrary;
use attendance_rules::{compute, sweep_close, CloseReason, Cycle, Schedule, Status};
use chrono::{DateTime, TimeDelta, Utc};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    duration_minutes: u16,
    grace_minutes: u16,
    late_after_minutes: u16,
    present_percent: u8,
    stale_seconds: u16,
    cycles: Vec<(i32, Option<u32>)>,
    heartbeat: Option<i32>,
    now: i32,
}

const BASE: i64 = 1_764_068_400;

fn at(offset: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(BASE + offset, 0).unwrap()
}

fuzz_target!(|input: Input| {
    let mut schedule = Schedule::new(at(0), u32::from(input.duration_minutes));
    schedule.grace_minutes = u32::from(input.grace_minutes);
    schedule.late_after_minutes = u32::from(input.late_after_minutes);
    schedule.present_percent = u32::from(input.present_percent);
    schedule.heartbeat_stale_seconds = u32::from(input.stale_seconds);
    if schedule.validate().is_err() {
        return; // the API refuses these before the rules see them
    }
    let cycles: Vec<Cycle> = input
        .cycles
        .iter()
        .take(32)
        .map(|&(join, length)| match length {
            Some(length) => Cycle::closed(at(join.into()), at(i64::from(join) + i64::from(length)), CloseReason::Left),
            None => Cycle::open(at(join.into())),
        })
        .collect();
    let beat = input.heartbeat.map(|b| at(b.into()));
    let now = at(input.now.into());
    let a = compute(&schedule, &cycles, beat, now);
    let window = schedule.window();
    assert!(a.attended_seconds >= 0);
    assert!(a.attended_seconds <= window.length_seconds());
    assert!((0.0..=100.0).contains(&a.attendance_percentage));
    assert_eq!(a.status == Status::Absent, a.attended_seconds == 0);
    assert_eq!(a.join_count, cycles.len());
    // After the window nothing moves.
    let later = compute(&schedule, &cycles, beat, window.end + TimeDelta::days(1));
    let at_end = compute(&schedule, &cycles, beat, window.end + TimeDelta::seconds(1));
    assert_eq!(later, at_end);
    // A sweeper close never lands before the join or after the window.
    for cycle in &cycles {
        if let Some((close_at, _)) = sweep_close(&schedule, cycle, beat, now) {
            assert!(close_at >= cycle.joined_at);
            assert!(close_at <= window.end.max(cycle.joined_at));
        }
    }
});
