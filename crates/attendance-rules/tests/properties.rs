//! Invariants of the rules on random inputs.

use attendance_rules::{
    assess, compute, compute_with_threshold, stay_until, timeline, union_length_ms, CloseReason,
    Cycle, EffectiveStatus, Interval, Person, Phase, Role, Schedule, Status, Thresholds,
};
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

const START: i64 = 1_764_068_400; // 2025-11-25T11:00:00Z

fn at(offset_s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(START + offset_s, 0).unwrap()
}

/// A small schedule, so that brute force per second stays cheap.
fn schedule() -> impl Strategy<Value = Schedule> {
    (1u32..=20, 0u32..=10, 0u32..=100).prop_map(|(duration, grace, present)| {
        let mut s = Schedule::new(at(0), duration);
        s.grace_minutes = grace;
        s.late_after_minutes = duration.min(3);
        s.present_percent = present;
        s
    })
}

/// Cycles around the window, including early joins and late leaves.
fn cycles() -> impl Strategy<Value = Vec<Cycle>> {
    prop::collection::vec(
        (-600i64..2400, prop::option::of(0i64..1500)).prop_map(|(join, length)| match length {
            Some(length) => Cycle::closed(at(join), at(join + length), CloseReason::Left),
            None => Cycle::open(at(join)),
        }),
        0..5,
    )
}

fn closed_cycles() -> impl Strategy<Value = Vec<Cycle>> {
    prop::collection::vec(
        (-600i64..2400, 0i64..1500)
            .prop_map(|(join, len)| Cycle::closed(at(join), at(join + len), CloseReason::Left)),
        0..5,
    )
}

/// The reference: count every second of the window that some cycle covers.
fn brute_force_seconds(schedule: &Schedule, cycles: &[Cycle], now: DateTime<Utc>) -> i64 {
    let window = schedule.window();
    let mut count = 0;
    let mut second = window.start;
    while second < window.end {
        let covered = cycles.iter().any(|c| {
            let end = c.left_at.unwrap_or(now).min(window.end);
            c.joined_at <= second && second < end
        });
        if covered {
            count += 1;
        }
        second += TimeDelta::seconds(1);
    }
    count
}

proptest! {
    #[test]
    fn never_more_than_the_window(s in schedule(), cs in cycles(), now in -600i64..4000) {
        let a = compute(&s, &cs, None, at(now));
        prop_assert!(a.attended_seconds >= 0);
        prop_assert!(a.attended_seconds <= s.window().length_seconds());
        prop_assert!(a.attendance_percentage <= 100.0);
    }

    #[test]
    fn never_decreases_as_now_grows(s in schedule(), cs in cycles(), now in -600i64..4000, later in 0i64..4000) {
        let before = compute(&s, &cs, None, at(now));
        let after = compute(&s, &cs, None, at(now + later));
        prop_assert!(after.attended_seconds >= before.attended_seconds);
    }

    #[test]
    fn after_the_end_nothing_changes(s in schedule(), cs in cycles(), beat in prop::option::of(-600i64..4000), later in 1i64..100_000) {
        let end = (s.window().end - at(0)).num_seconds();
        let beat = beat.map(at);
        let at_end = compute(&s, &cs, beat, at(end + 1));
        let much_later = compute(&s, &cs, beat, at(end + 1 + later));
        prop_assert_eq!(at_end, much_later);
    }

    #[test]
    fn independent_of_cycle_order(s in schedule(), mut cs in cycles(), now in -600i64..4000, beat in prop::option::of(-600i64..4000)) {
        let forward = compute(&s, &cs, beat.map(at), at(now));
        cs.reverse();
        let backward = compute(&s, &cs, beat.map(at), at(now));
        prop_assert_eq!(forward, backward);
    }

    #[test]
    fn another_cycle_never_lowers_attendance(s in schedule(), cs in cycles(), extra in cycles(), now in -600i64..4000) {
        let base = compute(&s, &cs, None, at(now));
        let mut more = cs.clone();
        more.extend(extra);
        let with_extra = compute(&s, &more, None, at(now));
        prop_assert!(with_extra.attended_seconds >= base.attended_seconds);
    }

    #[test]
    fn equals_a_per_second_count(s in schedule(), cs in cycles(), now in -600i64..4000) {
        let a = compute(&s, &cs, None, at(now));
        prop_assert_eq!(a.attended_seconds, brute_force_seconds(&s, &cs, at(now)));
    }

    #[test]
    fn closed_cycles_ignore_now_once_past(s in schedule(), cs in closed_cycles(), later in 0i64..10_000) {
        let last = cs.iter().filter_map(|c| c.left_at).max().unwrap_or(at(0));
        let a = compute(&s, &cs, None, last);
        let b = compute(&s, &cs, None, last + TimeDelta::seconds(later));
        prop_assert_eq!(a.attended_seconds, b.attended_seconds);
    }

    #[test]
    fn a_stale_heartbeat_never_counts_more_than_no_heartbeat(s in schedule(), cs in cycles(), beat in -600i64..4000, now in -600i64..4000) {
        let trusting = compute(&s, &cs, None, at(now));
        let checked = compute(&s, &cs, Some(at(beat)), at(now));
        prop_assert!(checked.attended_seconds <= trusting.attended_seconds);
    }

    #[test]
    fn the_timeline_draws_exactly_what_counts(s in schedule(), cs in cycles(), now in -600i64..4000) {
        let counted = compute(&s, &cs, None, at(now)).attended_seconds;
        let drawn = timeline(&s, &cs, at(now));
        let spans: Vec<Interval> = drawn
            .segments
            .iter()
            .map(|g| Interval { start: g.from.timestamp_millis(), end: g.to.timestamp_millis() })
            .collect();
        prop_assert_eq!(union_length_ms(&spans) / 1000, counted);
        for g in &drawn.segments {
            prop_assert!(0.0 <= g.x1 && g.x1 < g.x2 && g.x2 <= 1.0, "{:?}", g);
        }
    }

    #[test]
    fn a_correction_is_shown_and_the_computed_status_kept(
        s in schedule(),
        cs in cycles(),
        now in -600i64..4000,
        teacher in prop::option::of(0u32..=100),
        is_teacher in any::<bool>(),
        correction in prop::option::of(prop::sample::select(EffectiveStatus::ALL.to_vec())),
    ) {
        let thresholds = Thresholds::new(&s, teacher);
        let role = if is_teacher { Role::Teacher } else { Role::Student };
        let person = Person { role, cycles: cs.clone(), correction, ..Person::default() };
        let a = assess(&s, thresholds, &person, at(now));
        let threshold = if is_teacher { teacher.unwrap_or(90) } else { s.present_percent };
        prop_assert_eq!(a.present_percent, threshold);
        prop_assert_eq!(&a.attendance, &attendance_rules::compute_with_threshold(&s, &cs, None, at(now), threshold));
        match correction {
            Some(c) => prop_assert_eq!(a.status, c),
            None => prop_assert_eq!(a.status.as_str(), a.attendance.status.as_str()),
        }
    }

    #[test]
    fn staying_until_present_at_yields_the_reachable_status(
        s in schedule(), cs in cycles(), now in -600i64..4000, threshold in 0u32..=100,
    ) {
        let answer = stay_until(&s, &cs, None, at(now), threshold);
        let current = compute_with_threshold(&s, &cs, None, at(now), threshold);
        let Some(reachable) = answer.reachable_status else {
            prop_assert_eq!(current.phase, Phase::Ended);
            prop_assert_eq!(answer.present_at, None);
            prop_assert_eq!(answer.rejoin_by, None);
            return Ok(());
        };
        prop_assert!(current.phase != Phase::Ended);
        // Staying: the open cycles go on, or one opens now.
        let mut staying = cs.clone();
        if !current.in_meeting {
            staying.push(Cycle::open(at(now).max(s.window().start)));
        }
        let status_at = |t| compute_with_threshold(&s, &staying, None, t, threshold).status;
        prop_assert_eq!(status_at(s.window().end), reachable);
        match answer.present_at {
            Some(t) => {
                prop_assert!(matches!(reachable, Status::Present | Status::Late));
                prop_assert!(current.status != reachable);
                prop_assert_eq!(status_at(t), reachable);
                // And not a millisecond sooner.
                prop_assert!(status_at(t - TimeDelta::milliseconds(1)) != reachable);
            }
            None => prop_assert!(current.status == reachable || !matches!(reachable, Status::Present | Status::Late)),
        }
    }

    #[test]
    fn rejoining_by_rejoin_by_still_reaches_it_and_later_does_not(
        s in schedule(), cs in closed_cycles(), now in -600i64..4000, threshold in 0u32..=100,
    ) {
        let answer = stay_until(&s, &cs, None, at(now), threshold);
        let current = compute_with_threshold(&s, &cs, None, at(now), threshold);
        let end = s.window().end;
        let rejoining_at = |r| {
            let mut rejoined = cs.clone();
            rejoined.push(Cycle::open(r));
            compute_with_threshold(&s, &rejoined, None, end, threshold).status
        };
        match (answer.reachable_status, answer.rejoin_by) {
            (Some(reachable), Some(r)) => {
                prop_assert!(!current.in_meeting);
                prop_assert!(r >= at(now) && r <= end);
                prop_assert_eq!(rejoining_at(r), reachable);
                if r < end {
                    prop_assert!(rejoining_at(r + TimeDelta::milliseconds(1)) != reachable);
                }
            }
            (Some(reachable), None) => prop_assert!(
                current.status == reachable || !matches!(reachable, Status::Present | Status::Late)
            ),
            (None, rejoin_by) => prop_assert_eq!(rejoin_by, None),
        }
    }

    #[test]
    fn what_is_reached_stays_reached_and_lateness_is_kept(
        s in schedule(), cs in cycles(), beat in prop::option::of(-600i64..4000), now in -600i64..4000, threshold in 0u32..=100,
    ) {
        // Facts known at `now` happened before it.
        let cs: Vec<Cycle> = cs
            .into_iter()
            .filter(|c| c.joined_at <= at(now))
            .map(|c| Cycle { left_at: c.left_at.map(|left| left.min(at(now))), ..c })
            .collect();
        let beat = beat.map(at).filter(|beat| *beat <= at(now));
        let current = compute_with_threshold(&s, &cs, beat, at(now), threshold);
        let Some(reachable) = stay_until(&s, &cs, beat, at(now), threshold).reachable_status else {
            return Ok(());
        };
        if matches!(current.status, Status::Present | Status::Late) {
            prop_assert_eq!(reachable, current.status);
        }
        let late_after = s.window().start + TimeDelta::minutes(i64::from(s.late_after_minutes));
        if current.first_counted_at.is_some_and(|first| first > late_after) {
            prop_assert!(reachable != Status::Present);
        }
    }
}
