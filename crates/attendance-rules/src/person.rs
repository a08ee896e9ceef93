//! From the numbers to what a person is shown: the `present` threshold of
//! their role, a teacher's correction over the computed status, and the
//! per-status counts of a class.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{compute_with_threshold, Attendance, Cycle, Schedule, Status};

/// The share of the class a teacher must attend for `present` when the
/// session names none (stricter than students': it may decide their pay).
pub const DEFAULT_TEACHER_PRESENT_PERCENT: u32 = 90;

/// Who a participant is, as far as the rules care.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Student,
    Teacher,
    /// A recorder, bridge, agent or observer: judged like a student, but
    /// left out of the class's counts.
    Excluded,
}

/// A session's `present` thresholds, per role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// For students (and excluded participants): `schedule.present_percent`.
    pub present_percent: u32,
    /// For teachers.
    pub teacher_present_percent: u32,
}

impl Thresholds {
    /// The schedule's student threshold and the session's teacher one
    /// (`None`: [`DEFAULT_TEACHER_PRESENT_PERCENT`]).
    pub fn new(schedule: &Schedule, teacher_present_percent: Option<u32>) -> Thresholds {
        Thresholds {
            present_percent: schedule.present_percent,
            teacher_present_percent: teacher_present_percent
                .unwrap_or(DEFAULT_TEACHER_PRESENT_PERCENT),
        }
    }

    pub fn for_role(self, role: Role) -> u32 {
        match role {
            Role::Teacher => self.teacher_present_percent,
            Role::Student | Role::Excluded => self.present_percent,
        }
    }

    /// The threshold for one person: the one already stated for them (as a
    /// report carries it) when it is a percentage, else their role's.
    pub fn resolve(self, role: Role, stated: Option<u32>) -> u32 {
        stated
            .filter(|percent| *percent <= 100)
            .unwrap_or_else(|| self.for_role(role))
    }
}

/// The status a person is shown: a computed one, or `excused`, which only a
/// teacher's correction gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectiveStatus {
    Present,
    Late,
    Partial,
    Absent,
    Excused,
}

impl EffectiveStatus {
    /// Every status a teacher may set.
    pub const ALL: [EffectiveStatus; 5] = [
        EffectiveStatus::Present,
        EffectiveStatus::Late,
        EffectiveStatus::Partial,
        EffectiveStatus::Absent,
        EffectiveStatus::Excused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EffectiveStatus::Present => "present",
            EffectiveStatus::Late => "late",
            EffectiveStatus::Partial => "partial",
            EffectiveStatus::Absent => "absent",
            EffectiveStatus::Excused => "excused",
        }
    }

    /// `None` for anything but the five names.
    pub fn parse(text: &str) -> Option<EffectiveStatus> {
        EffectiveStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
    }

    /// A correction replaces the computed status; without one, the computed
    /// status is shown.
    pub fn of(computed: Status, correction: Option<EffectiveStatus>) -> EffectiveStatus {
        correction.unwrap_or(match computed {
            Status::Present => EffectiveStatus::Present,
            Status::Late => EffectiveStatus::Late,
            Status::Partial => EffectiveStatus::Partial,
            Status::Absent => EffectiveStatus::Absent,
        })
    }
}

/// Everything the rules need about one person in one session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    #[serde(default)]
    pub role: Role,
    #[serde(default)]
    pub cycles: Vec<Cycle>,
    #[serde(default)]
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// The threshold already stated for this person (see [`Thresholds::resolve`]).
    #[serde(default)]
    pub present_percent: Option<u32>,
    /// A teacher's correction of the status.
    #[serde(default)]
    pub correction: Option<EffectiveStatus>,
}

/// One person's attendance as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// The rules' numbers with this person's threshold (`status` in it is
    /// the computed one).
    pub attendance: Attendance,
    /// The status shown: the correction if any, else the computed one.
    pub status: EffectiveStatus,
    /// The threshold `present` was judged against.
    pub present_percent: u32,
}

/// [`compute_with_threshold`] with the person's threshold, and the status
/// they are shown.
pub fn assess(
    schedule: &Schedule,
    thresholds: Thresholds,
    person: &Person,
    now: DateTime<Utc>,
) -> Assessment {
    let present_percent = thresholds.resolve(person.role, person.present_percent);
    let attendance = compute_with_threshold(
        schedule,
        &person.cycles,
        person.last_heartbeat_at,
        now,
        present_percent,
    );
    Assessment {
        status: EffectiveStatus::of(attendance.status, person.correction),
        attendance,
        present_percent,
    }
}

/// How many people are shown with each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    pub present: usize,
    pub late: usize,
    pub partial: usize,
    pub absent: usize,
    pub excused: usize,
}

impl StatusCounts {
    pub fn of(statuses: impl IntoIterator<Item = EffectiveStatus>) -> StatusCounts {
        let mut counts = StatusCounts::default();
        for status in statuses {
            *match status {
                EffectiveStatus::Present => &mut counts.present,
                EffectiveStatus::Late => &mut counts.late,
                EffectiveStatus::Partial => &mut counts.partial,
                EffectiveStatus::Absent => &mut counts.absent,
                EffectiveStatus::Excused => &mut counts.excused,
            } += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back() {
        for status in EffectiveStatus::ALL {
            assert_eq!(EffectiveStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(EffectiveStatus::parse("Present"), None);
        assert_eq!(EffectiveStatus::parse(""), None);
    }

    #[test]
    fn counts_each_status() {
        use EffectiveStatus::*;
        let counts = StatusCounts::of([Present, Late, Present, Excused, Absent]);
        assert_eq!(
            counts,
            StatusCounts {
                present: 2,
                late: 1,
                partial: 0,
                absent: 1,
                excused: 1
            }
        );
    }
}
