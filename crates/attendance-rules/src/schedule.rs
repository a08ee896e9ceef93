use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::{to_ms, Interval, Phase};

/// The longest session the rules accept: a school day is long, a week is a
/// typo. Also keeps every computed instant far away from chrono's limits.
pub const MAX_DURATION_MINUTES: u32 = 24 * 60;
/// Grace after the scheduled end during which time still counts.
pub const MAX_GRACE_MINUTES: u32 = 24 * 60;
pub const MAX_HEARTBEAT_STALE_SECONDS: u32 = 24 * 60 * 60;

/// A session's schedule and the thresholds that turn seconds into a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub scheduled_at: DateTime<Utc>,
    pub duration_minutes: u32,
    #[serde(default = "Schedule::default_grace_minutes")]
    pub grace_minutes: u32,
    #[serde(default = "Schedule::default_late_after_minutes")]
    pub late_after_minutes: u32,
    #[serde(default = "Schedule::default_present_percent")]
    pub present_percent: u32,
    #[serde(default = "Schedule::default_heartbeat_stale_seconds")]
    pub heartbeat_stale_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    ZeroDuration,
    DurationTooLong,
    GraceTooLong,
    LateAfterBeyondDuration,
    PresentPercentOver100,
    HeartbeatStaleOutOfRange,
}

impl std::fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reason = match self {
            ScheduleError::ZeroDuration => "duration_minutes must be greater than 0".to_string(),
            ScheduleError::DurationTooLong => {
                format!("duration_minutes must be at most {MAX_DURATION_MINUTES}")
            }
            ScheduleError::GraceTooLong => {
                format!("grace_minutes must be at most {MAX_GRACE_MINUTES}")
            }
            ScheduleError::LateAfterBeyondDuration => {
                "late_after_minutes must not exceed duration_minutes".to_string()
            }
            ScheduleError::PresentPercentOver100 => {
                "present_percent must be between 0 and 100".to_string()
            }
            ScheduleError::HeartbeatStaleOutOfRange => format!(
                "heartbeat_stale_seconds must be between 1 and {MAX_HEARTBEAT_STALE_SECONDS}"
            ),
        };
        f.write_str(&reason)
    }
}

impl std::error::Error for ScheduleError {}

impl Schedule {
    pub const fn default_grace_minutes() -> u32 {
        30
    }
    pub const fn default_late_after_minutes() -> u32 {
        10
    }
    pub const fn default_present_percent() -> u32 {
        80
    }
    pub const fn default_heartbeat_stale_seconds() -> u32 {
        300
    }

    /// A schedule with every threshold at its default.
    pub fn new(scheduled_at: DateTime<Utc>, duration_minutes: u32) -> Self {
        Schedule {
            scheduled_at,
            duration_minutes,
            grace_minutes: Self::default_grace_minutes(),
            late_after_minutes: Self::default_late_after_minutes(),
            present_percent: Self::default_present_percent(),
            heartbeat_stale_seconds: Self::default_heartbeat_stale_seconds(),
        }
    }

    /// Refuses schedules no school means: zero or years-long sessions and
    /// thresholds out of range.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if self.duration_minutes == 0 {
            return Err(ScheduleError::ZeroDuration);
        }
        if self.duration_minutes > MAX_DURATION_MINUTES {
            return Err(ScheduleError::DurationTooLong);
        }
        if self.grace_minutes > MAX_GRACE_MINUTES {
            return Err(ScheduleError::GraceTooLong);
        }
        if self.late_after_minutes > self.duration_minutes {
            return Err(ScheduleError::LateAfterBeyondDuration);
        }
        if self.present_percent > 100 {
            return Err(ScheduleError::PresentPercentOver100);
        }
        if self.heartbeat_stale_seconds == 0
            || self.heartbeat_stale_seconds > MAX_HEARTBEAT_STALE_SECONDS
        {
            return Err(ScheduleError::HeartbeatStaleOutOfRange);
        }
        Ok(())
    }

    pub fn window(&self) -> Window {
        let minutes = i64::from(self.duration_minutes) + i64::from(self.grace_minutes);
        Window {
            start: self.scheduled_at,
            end: self.scheduled_at + TimeDelta::minutes(minutes),
        }
    }

    pub fn heartbeat_stale(&self) -> TimeDelta {
        TimeDelta::seconds(i64::from(self.heartbeat_stale_seconds))
    }
}

/// The counting window `[scheduled_at, scheduled_at + duration + grace]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    pub fn phase(&self, now: DateTime<Utc>) -> Phase {
        if now < self.start {
            Phase::Scheduled
        } else if now > self.end {
            Phase::Ended
        } else {
            Phase::Live
        }
    }

    /// The part of `[from, to]` inside the window, or `None` if empty.
    pub fn clip(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<Interval> {
        let start = to_ms(from.max(self.start));
        let end = to_ms(to.min(self.end));
        (end > start).then_some(Interval { start, end })
    }

    pub fn length_seconds(&self) -> i64 {
        (self.end - self.start).num_seconds()
    }
}
