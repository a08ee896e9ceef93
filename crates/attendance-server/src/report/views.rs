//! What the API shows: sessions, participants, cycles and counts, with
//! instants in UTC and, when a zone is known, local time.

use attendance_rules::{
    EffectiveStatus, GradePoints, MediaTime, Phase, Schedule, Status, StatusCounts, StayUntil,
};
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::classify::Role;
use crate::domain::{SessionKind, SessionRow};

/// How to show instants: UTC always, local time when a zone is known.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    pub zone: Option<Tz>,
}

impl Clock {
    pub fn for_session(session: &SessionRow, requested: Option<Tz>) -> Clock {
        Clock {
            zone: requested.or_else(|| session.timezone.parse().ok()),
        }
    }

    /// RFC 3339 in the zone, with its offset (`2026-03-29T13:00:00+02:00`).
    pub fn local(&self, at: Option<DateTime<Utc>>) -> Option<String> {
        let (zone, at) = (self.zone?, at?);
        Some(
            at.with_timezone(&zone)
                .to_rfc3339_opts(SecondsFormat::Secs, false),
        )
    }

    /// For CSV: local with offset when a zone is known, else UTC.
    pub fn text(&self, at: Option<DateTime<Utc>>) -> String {
        self.local(at)
            .or_else(|| at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)))
            .unwrap_or_default()
    }
}

/// The session as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    /// The lesson's stable id (`?session=ID`).
    pub id: i64,
    pub room: String,
    /// `lesson`, or `unscheduled`: made for a LiveKit room instance nobody
    /// scheduled (percentages against the instance's length).
    pub kind: SessionKind,
    pub unscheduled: bool,
    /// The class that made it, if any.
    pub class_id: Option<i64>,
    pub title: String,
    #[serde(flatten)]
    pub schedule: Schedule,
    /// The lesson's length in minutes (`duration_minutes`, named plainly).
    pub lesson_minutes: u32,
    /// Unscheduled: still running (its length grows).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub running: bool,
    /// Unscheduled: the LiveKit room instance it covers.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub room_sid: String,
    pub teacher_present_percent: u32,
    pub timezone: Option<String>,
    pub window_end: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_at_local: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_end_local: Option<String>,
    pub has_roster: bool,
    /// What each status is worth in this lesson's grades; null: the
    /// school's (`--grade-points`).
    pub grade_points: Option<GradePoints>,
    /// Camera, microphone and screen-share time kept and shown for this
    /// lesson (the service's `--engagement off` hides them everywhere).
    pub engagement: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SessionView {
    /// The session as it stands at `now` (an unscheduled one's length grows
    /// while it runs).
    pub fn at(row: &SessionRow, clock: Clock, now: DateTime<Utc>) -> Self {
        let schedule = row.schedule_at(now);
        let end = schedule.window().end;
        SessionView {
            id: row.id,
            room: row.room.clone(),
            kind: row.kind,
            unscheduled: row.is_unscheduled(),
            class_id: row.class_id,
            title: row.title.clone(),
            lesson_minutes: schedule.duration_minutes,
            running: row.is_unscheduled() && row.end().is_none(),
            room_sid: row.room_sid.clone(),
            schedule,
            teacher_present_percent: row.teacher_present_percent,
            timezone: (!row.timezone.is_empty()).then(|| row.timezone.clone()),
            window_end: end,
            scheduled_at_local: clock.local(Some(row.start())),
            window_end_local: clock.local(Some(end)),
            has_roster: row.has_roster,
            grade_points: row.grade_points,
            engagement: row.engagement,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

impl SessionView {
    /// In the session's own time zone.
    pub fn of(row: &SessionRow, now: DateTime<Utc>) -> Self {
        SessionView::at(row, Clock::for_session(row, None), now)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CycleView {
    pub participant_sid: String,
    pub joined_at: Option<DateTime<Utc>>,
    pub left_at: Option<DateTime<Utc>>,
    /// How it ended: `left`, `connection_aborted`, `room_finished`,
    /// `stale_heartbeat`, `session_ended` or `reconciled`; null while open.
    pub close_reason: Option<String>,
    /// LiveKit's own reason (`CLIENT_INITIATED`, `PARTICIPANT_REMOVED`, …)
    /// when it gave one.
    pub disconnect_reason: Option<String>,
    /// `webhook`, or `reconciled` when LiveKit's RoomService listed a
    /// participant whose `participant_joined` never arrived.
    pub opened_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joined_at_local: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_at_local: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OverrideView {
    pub status: String,
    pub reason: String,
    pub author: String,
    pub at: DateTime<Utc>,
}

/// One participant's attendance. The old system's field names are kept
/// (`is_currently_in_meeting`, `duration_minutes`) next to the new ones.
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantReport {
    /// The session (lesson) this attendance is in.
    pub session_id: i64,
    /// In a session nobody scheduled: judged against the room instance's
    /// length, and never late.
    pub unscheduled: bool,
    pub identity: String,
    pub name: String,
    pub role: Role,
    /// LiveKit participant kind (`STANDARD`, `EGRESS`, …; empty if unknown).
    pub kind: String,
    /// On the session's roster (always false without a roster).
    pub rostered: bool,
    /// Rostered (or corrected) but never connected.
    pub never_joined: bool,
    /// The status shown: the teacher's override if any, else computed.
    pub status: String,
    pub computed_status: Status,
    #[serde(rename = "override")]
    pub correction: Option<OverrideView>,
    /// The share needed for `present` for this participant's role.
    pub present_percent: u32,
    /// While the session runs: the best status still reachable, when it is
    /// reached by staying (`present_at`), and for someone not in the meeting
    /// the latest rejoin that still reaches it (`rejoin_by`); null after.
    #[serde(flatten)]
    pub stay_until: StayUntil,
    /// `camera_seconds`, `microphone_seconds`, `screen_share_seconds`;
    /// absent when engagement is off.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaTime>,
    pub attended_seconds: i64,
    pub duration_minutes: i64,
    pub attendance_percentage: f64,
    pub phase: Phase,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub in_meeting: bool,
    pub is_currently_in_meeting: bool,
    pub heartbeat_stale: bool,
    pub join_count: usize,
    pub first_join_at: Option<DateTime<Utc>>,
    pub last_leave_at: Option<DateTime<Utc>>,
    pub first_counted_at: Option<DateTime<Utc>>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_join_at_local: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_leave_at_local: Option<String>,
    pub cycles: Vec<CycleView>,
}

/// Students per status, counted by the rules from the statuses shown.
pub fn count_statuses(participants: &[ParticipantReport]) -> StatusCounts {
    StatusCounts::of(
        participants
            .iter()
            .filter_map(|p| EffectiveStatus::parse(&p.status)),
    )
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionReport {
    /// The session's (lesson's) id.
    pub id: i64,
    pub room: String,
    pub kind: SessionKind,
    pub unscheduled: bool,
    pub title: String,
    pub scheduled_at: DateTime<Utc>,
    /// The lesson's length in minutes (also `lesson_minutes`).
    pub duration_minutes: u32,
    pub lesson_minutes: u32,
    pub grace_minutes: u32,
    pub window_end: DateTime<Utc>,
    pub timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_at_local: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_end_local: Option<String>,
    pub phase: Phase,
    pub generated_at: DateTime<Utc>,
    pub has_roster: bool,
    /// Students per status (teachers and excluded participants not counted).
    pub counts: StatusCounts,
    /// Students, rostered ones first-class, guests marked `rostered: false`.
    pub participants: Vec<ParticipantReport>,
    pub teachers: Vec<ParticipantReport>,
    /// Recorders, bridges, agents and observers: facts kept, not counted.
    pub excluded: Vec<ParticipantReport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_carry_their_offset() {
        let clock = Clock {
            zone: Some("Africa/Cairo".parse().unwrap()),
        };
        let at: DateTime<Utc> = "2026-01-15T09:00:00Z".parse().unwrap();
        assert_eq!(clock.local(Some(at)).unwrap(), "2026-01-15T11:00:00+02:00");
        assert_eq!(Clock::default().text(Some(at)), "2026-01-15T09:00:00Z");
    }
}
