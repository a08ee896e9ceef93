//! Lessons in a room: which one is current, which ones a window overlaps,
//! which one an open connection is judged by, and the schedule of a
//! session nobody scheduled. Pure: callers pass `now`.

use attendance_rules::Schedule;
use chrono::{DateTime, TimeDelta, Utc};

pub use super::facts::SessionKind;
use super::facts::SessionRow;

/// A room instance that starts this long before a lesson (or inside its
/// window) belongs to that lesson: people join early, they do not start
/// another meeting. Scheduling a lesson takes over the unscheduled
/// sessions it overlaps, or that start this long before it.
pub const EARLY_JOIN: TimeDelta = TimeDelta::minutes(60);

/// A connection still open after a lesson's window is judged by the next
/// lesson in the room when that one starts within this break (back-to-back
/// lessons), else closed at the end of its own.
pub const LESSON_BREAK: TimeDelta = TimeDelta::minutes(60);

impl SessionRow {
    pub fn is_unscheduled(&self) -> bool {
        self.kind == SessionKind::Unscheduled
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.schedule.scheduled_at
    }

    /// Where the session stops counting; `None` for an unscheduled session
    /// still running (its end is now).
    pub fn end(&self) -> Option<DateTime<Utc>> {
        match self.kind {
            SessionKind::Lesson => Some(self.schedule.window().end),
            SessionKind::Unscheduled => match (self.ended_at, self.cut_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
            .map(|end| end.max(self.start())),
        }
    }

    /// The end, or `now` while it runs.
    pub fn end_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.end().unwrap_or(now.max(self.start()))
    }

    /// The schedule the rules compute with at `now`. A lesson's is its own.
    /// An unscheduled session's covers its instance: percentages are taken
    /// against the instance's length in whole minutes, nobody is late, and
    /// while it runs the window reaches two minutes past `now` (the length so
    /// far is refreshed every minute).
    pub fn schedule_at(&self, now: DateTime<Utc>) -> Schedule {
        if !self.is_unscheduled() {
            return self.schedule.clone();
        }
        let start = self.start();
        let seconds = (self.end_at(now) - start).num_seconds().max(0);
        let minutes = u32::try_from((seconds / 60).clamp(1, 24 * 60)).unwrap_or(1);
        let grace = match self.end() {
            None => 2,
            Some(_) => u32::from(seconds > i64::from(minutes) * 60),
        };
        Schedule {
            scheduled_at: start,
            duration_minutes: minutes,
            grace_minutes: grace,
            late_after_minutes: minutes,
            ..self.schedule.clone()
        }
    }

    /// Whether `[from, to]` overlaps this session's window (touching is
    /// not overlapping); an unscheduled one counts from `EARLY_JOIN` before
    /// its start to its end (or `now`).
    pub fn overlaps(&self, from: DateTime<Utc>, to: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        match self.kind {
            SessionKind::Lesson => self.start() < to && from < self.schedule.window().end,
            SessionKind::Unscheduled => self.start() < to && from - EARLY_JOIN < self.end_at(now),
        }
    }
}

/// The room's current session among `sessions` (sorted by start): the one
/// whose window contains `now`, else the next upcoming one, else the most
/// recent one.
pub fn current(sessions: &[SessionRow], now: DateTime<Utc>) -> Option<&SessionRow> {
    let containing = sessions
        .iter()
        .rev()
        .find(|s| s.start() <= now && s.end().is_none_or(|end| now <= end));
    containing
        .or_else(|| sessions.iter().find(|s| s.start() > now))
        .or_else(|| sessions.iter().rev().find(|s| s.start() <= now))
}

/// Until when `current` stays what it is at `now` if nothing is written:
/// the end of its window when a later session exists, else for good.
pub fn current_until(sessions: &[SessionRow], current: &SessionRow) -> Option<DateTime<Utc>> {
    let later = sessions.iter().any(|s| s.start() > current.start());
    match current.end() {
        Some(end) if later => Some(end + TimeDelta::milliseconds(1)),
        _ => None,
    }
}

/// What scheduling a lesson does: update `target` (or create a session
/// when `None`), taking over the unscheduled sessions in `absorb`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub target: Option<i64>,
    pub absorb: Vec<i64>,
}

/// Where a lesson over `[from, to]` goes among the room's `sessions`:
/// into `target` when one is named; else into the room's current session
/// when the window overlaps it (a schedule fix), into an unscheduled
/// session it overlaps (which becomes this lesson), or a new session. Any
/// other lesson it would overlap is a conflict: `Err` with their ids.
pub fn place(
    sessions: &[SessionRow],
    target: Option<i64>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Placement, Vec<i64>> {
    let over = |unscheduled: bool| -> Vec<i64> {
        sessions
            .iter()
            .filter(|s| s.is_unscheduled() == unscheduled && Some(s.id) != target)
            .filter(|s| s.overlaps(from, to, now))
            .map(|s| s.id)
            .collect()
    };
    let (lessons, unscheduled) = (over(false), over(true));
    if target.is_some() {
        return match lessons.is_empty() {
            true => Ok(Placement {
                target,
                absorb: unscheduled,
            }),
            false => Err(lessons),
        };
    }
    let now_current = current(sessions, now).map(|s| s.id);
    match lessons.as_slice() {
        [] => Ok(match unscheduled.split_first() {
            Some((first, rest)) => Placement {
                target: Some(*first),
                absorb: rest.to_vec(),
            },
            None => Placement::default(),
        }),
        [only] if Some(*only) == now_current => Ok(Placement {
            target: Some(*only),
            absorb: unscheduled,
        }),
        _ => Err(lessons),
    }
}

/// The session an open connection that began at `joined` is judged by
/// (closed at its end once it is over): the first whose window ends at or
/// after the join, carried on to the next one while lessons follow each
/// other within [`LESSON_BREAK`]; else the most recent one.
pub fn judging(
    sessions: &[SessionRow],
    joined: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<&SessionRow> {
    let first = sessions.iter().position(|s| s.end_at(now) >= joined);
    let Some(mut index) = first else {
        return sessions.last();
    };
    while let Some(next) = sessions.get(index + 1) {
        let end = sessions[index].end_at(now);
        if next.start() - end > LESSON_BREAK {
            break;
        }
        index += 1;
    }
    sessions.get(index)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn lesson(id: i64, start: &str, minutes: u32) -> SessionRow {
        let at: DateTime<Utc> = start.parse().unwrap();
        let mut schedule = Schedule::new(at, minutes);
        schedule.grace_minutes = 0;
        SessionRow {
            id,
            room: "r".into(),
            kind: SessionKind::Lesson,
            title: String::new(),
            schedule,
            timezone: String::new(),
            teacher_present_percent: 90,
            has_roster: false,
            created_at: at,
            updated_at: at,
            class_id: None,
            room_sid: String::new(),
            ended_at: None,
            cut_at: None,
            grade_points: None,
            engagement: true,
        }
    }

    fn t(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn current_is_containing_else_upcoming_else_most_recent() {
        let rows = vec![
            lesson(1, "2026-01-05T09:00:00Z", 60),
            lesson(2, "2026-01-12T09:00:00Z", 60),
        ];
        let at = |text| current(&rows, t(text)).map(|s| s.id);
        assert_eq!(at("2026-01-01T00:00:00Z"), Some(1));
        assert_eq!(at("2026-01-05T09:30:00Z"), Some(1));
        assert_eq!(at("2026-01-05T10:00:01Z"), Some(2));
        assert_eq!(at("2026-01-12T10:00:00Z"), Some(2));
        assert_eq!(at("2026-02-01T00:00:00Z"), Some(2));
        assert_eq!(
            current_until(&rows, &rows[0]),
            Some(t("2026-01-05T10:00:00.001Z"))
        );
        assert_eq!(current_until(&rows, &rows[1]), None);
    }

    #[test]
    fn an_unscheduled_session_counts_its_instance_in_whole_minutes() {
        let mut auto = lesson(3, "2026-01-05T09:00:00Z", 1);
        auto.kind = SessionKind::Unscheduled;
        let now = t("2026-01-05T09:10:30Z");
        let running = auto.schedule_at(now);
        assert_eq!((running.duration_minutes, running.grace_minutes), (10, 2));
        auto.ended_at = Some(t("2026-01-05T09:30:20Z"));
        let ended = auto.schedule_at(now);
        assert_eq!((ended.duration_minutes, ended.grace_minutes), (30, 1));
        auto.cut_at = Some(t("2026-01-05T09:20:00Z"));
        assert_eq!(auto.schedule_at(now).duration_minutes, 20);
        assert!(auto.overlaps(t("2026-01-05T10:00:00Z"), t("2026-01-05T11:00:00Z"), now));
        assert!(!auto.overlaps(t("2026-01-05T10:21:00Z"), t("2026-01-05T11:00:00Z"), now));
    }

    #[test]
    fn a_window_over_the_current_lesson_moves_it_and_a_new_one_is_created() {
        let rows = vec![
            lesson(1, "2026-01-05T09:00:00Z", 60),
            lesson(2, "2026-01-12T09:00:00Z", 60),
        ];
        let now = t("2026-01-12T08:00:00Z"); // lesson 2 is current
        let place_at = |from: &str, to: &str, target| place(&rows, target, t(from), t(to), now);
        // A fix of the current lesson (10 minutes later).
        let fix = place_at("2026-01-12T09:10:00Z", "2026-01-12T10:10:00Z", None);
        assert_eq!(fix.unwrap().target, Some(2));
        // Another week: a new lesson.
        let new = place_at("2026-01-19T09:00:00Z", "2026-01-19T10:00:00Z", None);
        assert_eq!(new, Ok(Placement::default()));
        // Over last week's lesson: refused unless it is named.
        let past = place_at("2026-01-05T09:30:00Z", "2026-01-05T10:30:00Z", None);
        assert_eq!(past, Err(vec![1]));
        let named = place_at("2026-01-05T09:30:00Z", "2026-01-05T10:30:00Z", Some(1));
        assert_eq!(named.unwrap().target, Some(1));
        // An unscheduled session that a lesson is scheduled over becomes it.
        let mut rows = rows;
        let mut auto = lesson(3, "2026-01-19T08:50:00Z", 1);
        auto.kind = SessionKind::Unscheduled;
        rows.push(auto);
        let now = t("2026-01-19T09:05:00Z");
        let over = place(
            &rows,
            None,
            t("2026-01-19T09:00:00Z"),
            t("2026-01-19T10:00:00Z"),
            now,
        );
        assert_eq!(over.unwrap().target, Some(3));
    }

    #[test]
    fn open_connections_are_judged_across_back_to_back_lessons_only() {
        let rows = vec![
            lesson(1, "2026-01-05T09:00:00Z", 60),
            lesson(2, "2026-01-05T10:30:00Z", 60),
            lesson(3, "2026-01-12T09:00:00Z", 60),
        ];
        let now = t("2026-01-20T00:00:00Z");
        let judged = |joined| judging(&rows, t(joined), now).map(|s| s.id);
        assert_eq!(judged("2026-01-05T08:50:00Z"), Some(2));
        assert_eq!(judged("2026-01-06T08:50:00Z"), Some(3));
        assert_eq!(judged("2026-01-19T08:50:00Z"), Some(3));
    }
}
