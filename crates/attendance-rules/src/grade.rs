//! Grades from attendance, as schools grade it: each status is worth some
//! points (by default present 2, late 1, partial 1, excused 1, absent 0),
//! and a student's grade over some lessons is the points they got divided
//! by the most they could have got.

use serde::{Deserialize, Serialize};

use crate::person::EffectiveStatus;
use crate::round_percent;

/// Most points one status may be worth.
pub const MAX_STATUS_POINTS: u32 = 1000;

/// What each status is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GradePoints {
    pub present: u32,
    pub late: u32,
    pub partial: u32,
    pub absent: u32,
    pub excused: u32,
}

impl Default for GradePoints {
    fn default() -> Self {
        GradePoints {
            present: 2,
            late: 1,
            partial: 1,
            absent: 0,
            excused: 1,
        }
    }
}

/// Some statuses' points, to set over others (`None`: unchanged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradePointsChange {
    pub present: Option<u32>,
    pub late: Option<u32>,
    pub partial: Option<u32>,
    pub absent: Option<u32>,
    pub excused: Option<u32>,
}

impl GradePoints {
    /// The points `status` is worth.
    pub fn points(&self, status: EffectiveStatus) -> u32 {
        match status {
            EffectiveStatus::Present => self.present,
            EffectiveStatus::Late => self.late,
            EffectiveStatus::Partial => self.partial,
            EffectiveStatus::Absent => self.absent,
            EffectiveStatus::Excused => self.excused,
        }
    }

    /// The most one lesson is worth: its best status's points.
    pub fn maximum(&self) -> u32 {
        EffectiveStatus::ALL
            .into_iter()
            .map(|status| self.points(status))
            .max()
            .unwrap_or(0)
    }

    /// These points with `change` set over them; each at most
    /// [`MAX_STATUS_POINTS`].
    pub fn with(self, change: &GradePointsChange) -> Result<GradePoints, String> {
        let points = GradePoints {
            present: change.present.unwrap_or(self.present),
            late: change.late.unwrap_or(self.late),
            partial: change.partial.unwrap_or(self.partial),
            absent: change.absent.unwrap_or(self.absent),
            excused: change.excused.unwrap_or(self.excused),
        };
        match EffectiveStatus::ALL
            .into_iter()
            .find(|s| points.points(*s) > MAX_STATUS_POINTS)
        {
            Some(status) => Err(format!(
                "grade points for {} must be at most {MAX_STATUS_POINTS}",
                status.as_str()
            )),
            None => Ok(points),
        }
    }

    /// `present=2,late=1,…` (statuses left out keep these points).
    pub fn parse_over(self, text: &str) -> Result<GradePoints, String> {
        self.with(&GradePointsChange::parse(text)?)
    }
}

impl GradePointsChange {
    /// `present=2,late=1,…`: the statuses named, and their points.
    pub fn parse(text: &str) -> Result<GradePointsChange, String> {
        let mut change = GradePointsChange::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}`: write status=points, e.g. present=2"))?;
            let value: u32 = value.trim().parse().map_err(|_| {
                format!("`{pair}`: points must be a whole number from 0 to {MAX_STATUS_POINTS}")
            })?;
            let slot = match EffectiveStatus::parse(name.trim()) {
                Some(EffectiveStatus::Present) => &mut change.present,
                Some(EffectiveStatus::Late) => &mut change.late,
                Some(EffectiveStatus::Partial) => &mut change.partial,
                Some(EffectiveStatus::Absent) => &mut change.absent,
                Some(EffectiveStatus::Excused) => &mut change.excused,
                None => {
                    return Err(format!(
                        "`{}` is not a status: use present, late, partial, absent or excused",
                        name.trim()
                    ))
                }
            };
            *slot = Some(value);
        }
        Ok(change)
    }
}

/// Points got over points possible, and their ratio as a percentage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Grade {
    pub points: u64,
    pub max_points: u64,
    /// `points ÷ max_points` in percent, rounded to one decimal; `None`
    /// when nothing could be got (no lesson, or every status worth 0).
    pub percent: Option<f64>,
}

/// The grade of lessons, each a shown status and the points its lesson
/// gives.
pub fn grade<'a>(lessons: impl IntoIterator<Item = (EffectiveStatus, &'a GradePoints)>) -> Grade {
    let (mut points, mut max_points) = (0u64, 0u64);
    for (status, worth) in lessons {
        points += u64::from(worth.points(status));
        max_points += u64::from(worth.maximum());
    }
    Grade {
        points,
        max_points,
        percent: (max_points > 0).then(|| round_percent(points as f64 * 100.0 / max_points as f64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EffectiveStatus::*;

    #[test]
    fn the_default_points_are_the_schools_usual_ones() {
        let p = GradePoints::default();
        let worth: Vec<u32> = EffectiveStatus::ALL.iter().map(|s| p.points(*s)).collect();
        assert_eq!(worth, [2, 1, 1, 0, 1]); // present, late, partial, absent, excused
        assert_eq!(p.maximum(), 2);
    }

    #[test]
    fn a_grade_is_points_over_the_most_possible() {
        let p = GradePoints::default();
        // 2 + 1 + 0 + 1 of 4 × 2.
        let g = grade([(Present, &p), (Late, &p), (Absent, &p), (Excused, &p)]);
        assert_eq!((g.points, g.max_points, g.percent), (4, 8, Some(50.0)));
        // Rounded to one decimal: 2 of 3 lessons present, one late = 5 / 6.
        let g = grade([(Present, &p), (Present, &p), (Late, &p)]);
        assert_eq!(g.percent, Some(83.3));
        assert_eq!(grade([(Present, &p)]).percent, Some(100.0));
    }

    #[test]
    fn each_lesson_counts_with_its_own_points() {
        let school = GradePoints::default();
        let strict = GradePoints {
            present: 4,
            late: 0,
            ..school
        };
        // Late in the strict lesson: 0 of 4; present in the usual one: 2 of 2.
        let g = grade([(Late, &strict), (Present, &school)]);
        assert_eq!((g.points, g.max_points, g.percent), (2, 6, Some(33.3)));
    }

    #[test]
    fn nothing_to_get_is_no_grade() {
        assert_eq!(grade([]).percent, None);
        let zero = GradePoints {
            present: 0,
            late: 0,
            partial: 0,
            absent: 0,
            excused: 0,
        };
        assert_eq!(grade([(Present, &zero)]), Grade::default());
    }

    #[test]
    fn the_best_status_sets_the_maximum_whatever_it_is() {
        let odd = GradePoints {
            excused: 3,
            ..GradePoints::default()
        };
        assert_eq!(odd.maximum(), 3);
        assert_eq!(grade([(Present, &odd)]).percent, Some(66.7));
    }

    #[test]
    fn points_parse_over_others() {
        let p = GradePoints::default()
            .parse_over("present=3, late=2,absent=0")
            .unwrap();
        assert_eq!(
            p,
            GradePoints {
                present: 3,
                late: 2,
                ..GradePoints::default()
            }
        );
        assert_eq!(
            GradePoints::default().parse_over(""),
            Ok(GradePoints::default())
        );
        for bad in [
            "present",
            "present=two",
            "present=-1",
            "tardy=1",
            "late=1001",
        ] {
            assert!(GradePoints::default().parse_over(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_change_keeps_what_it_leaves_out() {
        let change: GradePointsChange = serde_json::from_str(r#"{"late": 0}"#).unwrap();
        let p = GradePoints::default().with(&change).unwrap();
        assert_eq!((p.present, p.late, p.excused), (2, 0, 1));
        assert!(serde_json::from_str::<GradePointsChange>(r#"{"tardy": 1}"#).is_err());
        let too_many = GradePointsChange {
            present: Some(MAX_STATUS_POINTS + 1),
            ..GradePointsChange::default()
        };
        assert!(GradePoints::default().with(&too_many).is_err());
    }
}
