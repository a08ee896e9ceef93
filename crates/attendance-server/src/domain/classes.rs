//! Classes (courses): a room, a time zone, rule settings, a roster and
//! recurring slots that produce lessons. A change to a class applies to
//! its future lessons only; a lesson changed by hand keeps its change.
//! Pure: callers pass `now`.

use std::collections::{BTreeMap, HashSet};

use attendance_rules::Schedule;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use super::facts::{SessionDetails, SessionRow};
use super::recurrence::{occurrences, Occurrence, Slot};

/// A class as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassRow {
    pub id: i64,
    pub room: String,
    pub title: String,
    pub timezone: String,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub slots: Vec<Slot>,
    pub cancelled: Vec<NaiveDate>,
    /// Grace, lateness, thresholds and staleness for its lessons (the
    /// schedule's start and length come from each slot).
    pub rules: Schedule,
    pub teacher_present_percent: u32,
    /// What each status is worth in its lessons; `None`: the school's.
    pub grade_points: Option<attendance_rules::GradePoints>,
    pub has_roster: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One lesson of a class, keyed by its local day and its order that day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub key: i64,
    pub schedule: Schedule,
}

/// What applying a class to its lessons does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassPlan {
    /// New lessons; each may take over an unscheduled session (`Some(id)`).
    pub create: Vec<(Planned, Option<i64>)>,
    /// Lessons of the class updated in place.
    pub update: Vec<(i64, Planned)>,
    /// Future lessons of the class no slot produces any more (cancelled).
    pub delete: Vec<i64>,
}

impl ClassRow {
    pub fn zone(&self) -> Tz {
        self.timezone.parse().unwrap_or(Tz::UTC)
    }

    /// What its lessons are called and judged by, besides their schedule.
    pub fn details(&self) -> SessionDetails {
        SessionDetails {
            title: self.title.clone(),
            timezone: self.timezone.clone(),
            teacher_present_percent: self.teacher_present_percent,
            grade_points: self.grade_points,
        }
    }

    /// Every lesson its slots produce, keyed.
    pub fn lessons(&self) -> Result<Vec<Planned>, String> {
        let found = occurrences(
            &self.slots,
            self.zone(),
            self.starts_on,
            self.ends_on,
            &self.cancelled,
        )?;
        let zone = self.zone();
        let mut per_day: BTreeMap<NaiveDate, i64> = BTreeMap::new();
        found
            .into_iter()
            .map(
                |Occurrence {
                     start,
                     duration_minutes,
                 }| {
                    let day = start.with_timezone(&zone).date_naive();
                    let order = per_day.entry(day).or_default();
                    *order += 1;
                    let midnight = day.and_time(chrono::NaiveTime::MIN).and_utc();
                    let schedule = Schedule {
                        scheduled_at: start,
                        duration_minutes,
                        ..self.rules.clone()
                    };
                    schedule.validate().map_err(|e| e.to_string())?;
                    Ok(Planned {
                        key: midnight.timestamp_millis() + *order - 1,
                        schedule,
                    })
                },
            )
            .collect()
    }
}

/// How the class's `lessons` apply to the room: only lessons starting after
/// `from` are created, changed or removed (all of them when a class is
/// created; those after now when it changes). `sessions` are the room's
/// sessions; `own` the class's existing lessons with their keys. Any other
/// lesson a planned one would overlap is a conflict: `Err` with its ids.
pub fn plan(
    lessons: &[Planned],
    sessions: &[SessionRow],
    own: &[(SessionRow, Option<i64>, bool)],
    from: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<ClassPlan, Vec<i64>> {
    let mut plan = ClassPlan::default();
    let by_key: BTreeMap<i64, &(SessionRow, Option<i64>, bool)> =
        own.iter().filter_map(|o| Some((o.1?, o))).collect();
    let mut kept = HashSet::new();
    for lesson in lessons.iter().filter(|l| l.schedule.scheduled_at > from) {
        match by_key.get(&lesson.key) {
            Some((session, _, customized)) => {
                kept.insert(session.id);
                if !customized {
                    plan.update.push((session.id, lesson.clone()));
                }
            }
            None => plan.create.push((lesson.clone(), None)),
        }
    }
    plan.delete = own
        .iter()
        .filter(|(s, _, _)| s.start() > from && !kept.contains(&s.id))
        .map(|(s, _, _)| s.id)
        .collect();
    // Sessions the plan rewrites do not conflict with it.
    let replaced: HashSet<i64> = plan
        .update
        .iter()
        .map(|(id, _)| *id)
        .chain(plan.delete.iter().copied())
        .collect();
    let mut conflicts = Vec::new();
    let mut taken = HashSet::new();
    let others = || sessions.iter().filter(|s| !replaced.contains(&s.id));
    for (lesson, over) in plan.create.iter_mut() {
        let window = lesson.schedule.window();
        for s in others().filter(|s| s.overlaps(window.start, window.end, now)) {
            if !s.is_unscheduled() {
                conflicts.push(s.id);
            } else if over.is_none() && taken.insert(s.id) {
                *over = Some(s.id); // scheduled over it: it becomes this lesson
            }
        }
    }
    for (_, lesson) in &plan.update {
        let window = lesson.schedule.window();
        conflicts.extend(
            others()
                .filter(|s| !s.is_unscheduled() && s.overlaps(window.start, window.end, now))
                .map(|s| s.id),
        );
    }
    conflicts.sort_unstable();
    conflicts.dedup();
    match conflicts.is_empty() {
        true => Ok(plan),
        false => Err(conflicts),
    }
}
