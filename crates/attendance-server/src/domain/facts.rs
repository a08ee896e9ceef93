//! What happened, as stored: sessions, rosters, corrections, join/leave
//! cycles and heartbeats. Every number people see is computed from these by
//! `attendance-rules`; nothing here is a computed result.

use std::collections::HashMap;

use attendance_rules::{CloseReason, Schedule};

use chrono::{DateTime, Utc};

/// A stored session: one lesson in one room, its schedule plus what
/// people call it. A room has any number of them over time.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// Stable id, used to address this lesson (`?session=ID`).
    pub id: i64,
    pub room: String,
    pub kind: SessionKind,
    pub title: String,
    /// For an unscheduled session, what it was when read: use
    /// [`SessionRow::schedule_at`] for the schedule at a given instant.
    pub schedule: Schedule,
    /// IANA time zone people read times in; empty = UTC.
    pub timezone: String,
    /// The `present` threshold for teachers (schools may pay by it).
    pub teacher_present_percent: u32,
    /// Whether a roster was set (an empty roster is still a roster).
    pub has_roster: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The class that made it, if any.
    pub class_id: Option<i64>,
    /// The LiveKit room instance an unscheduled session covers.
    pub room_sid: String,
    /// Unscheduled: where its instance ended (`room_finished`, or the last
    /// leave once everyone left); `None` while it runs.
    pub ended_at: Option<DateTime<Utc>>,
    /// Unscheduled: the start of the room's next lesson, where it stops.
    pub cut_at: Option<DateTime<Utc>>,
    /// What each status is worth in this lesson; `None`: the school's.
    pub grade_points: Option<attendance_rules::GradePoints>,
    /// Camera, microphone and screen-share time kept and shown for this
    /// lesson (`"engagement": false` turns it off).
    pub engagement: bool,
}

/// What a teacher or admin sets besides the schedule.
#[derive(Debug, Clone, Default)]
pub struct SessionDetails {
    pub title: String,
    pub timezone: String,
    pub teacher_present_percent: u32,
    /// What each status is worth in this lesson; `None`: the school's.
    pub grade_points: Option<attendance_rules::GradePoints>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RosterEntry {
    pub identity: String,
    pub name: String,
    /// `student` or `teacher`.
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRow {
    pub identity: String,
    pub status: String,
    pub reason: String,
    pub author: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub room: String,
    /// The session corrected (`None` only for entries older than lessons
    /// whose room had no session).
    pub session_id: Option<i64>,
    pub identity: String,
    pub action: String,
    pub status: Option<String>,
    pub reason: String,
    pub author: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CycleRow {
    pub participant_sid: String,
    pub room: String,
    pub room_sid: String,
    pub identity: String,
    pub name: String,
    pub kind: String,
    pub metadata: String,
    /// LiveKit participant attributes, as a JSON object (or empty).
    pub attributes: String,
    pub joined_at: Option<DateTime<Utc>>,
    pub left_at: Option<DateTime<Utc>>,
    pub close_reason: Option<String>,
    /// LiveKit's `disconnectReason` at close (`CLIENT_INITIATED`, …), or empty.
    pub disconnect_reason: String,
    /// `webhook`, or `reconciled`: found by asking LiveKit's RoomService.
    pub opened_by: String,
    /// The last reconciliation check at which LiveKit listed this connection.
    pub seen_at: Option<DateTime<Utc>>,
}

/// A connection opened (`participant_joined`) or seen closing.
#[derive(Debug, Clone)]
pub struct CycleFact {
    pub participant_sid: String,
    pub room: String,
    pub room_sid: String,
    pub identity: String,
    pub name: String,
    pub kind: String,
    pub metadata: String,
    pub attributes: String,
    pub joined_at_ms: Option<i64>,
    /// LiveKit's `disconnectReason`, on a close; empty otherwise.
    pub disconnect_reason: String,
}

impl CycleFact {
    /// Another join of the same connection, as a later upsert would merge
    /// it: its non-empty fields win, the first join time stays.
    pub fn fill_from(&mut self, later: &CycleFact) {
        for (mine, theirs) in [
            (&mut self.name, &later.name),
            (&mut self.kind, &later.kind),
            (&mut self.metadata, &later.metadata),
            (&mut self.room_sid, &later.room_sid),
            (&mut self.attributes, &later.attributes),
        ] {
            if !theirs.is_empty() {
                mine.clone_from(theirs);
            }
        }
        self.joined_at_ms = self.joined_at_ms.or(later.joined_at_ms);
    }
}

/// Everything needed to compute one session's attendance: its facts
/// clipped to the cycles that overlap its window.
#[derive(Debug, Clone, Default)]
pub struct RoomFacts {
    pub session: Option<SessionRow>,
    /// Read as the room's current session: it stays the current one until
    /// this instant (unix ms), if nothing is written meanwhile; `None`: for good.
    pub current_until_ms: Option<i64>,
    pub cycles: Vec<CycleRow>,
    pub heartbeats: HashMap<String, DateTime<Utc>>,
    pub roster: Vec<RosterEntry>,
    pub overrides: HashMap<String, OverrideRow>,
    /// Cameras, microphones and screen shares turning on and off, in time order.
    pub media: Vec<MediaFact>,
}

impl RoomFacts {
    /// Records a heartbeat of `identity`, keeping the newer of two.
    pub fn note_heartbeat(&mut self, identity: &str, at: DateTime<Utc>) {
        let known = self.heartbeats.entry(identity.to_string()).or_insert(at);
        *known = (*known).max(at);
    }
}

/// A camera, microphone or screen share of one connection turning on or off,
/// as LiveKit (`track_published`/`track_unpublished`, RoomService) or the
/// participant's own page (mute, unmute) told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFact {
    pub room: String,
    pub participant_sid: String,
    pub identity: String,
    pub track_sid: String,
    /// `CAMERA`, `MICROPHONE` or `SCREEN_SHARE`.
    pub source: String,
    /// `published`, `unpublished`, `muted` or `unmuted`.
    pub change: String,
    pub at_ms: i64,
    /// `webhook`, `tracker` or `room_service`: who said so.
    pub origin: String,
}

/// The sources media time is counted for.
pub const MEDIA_SOURCES: [&str; 3] = ["CAMERA", "MICROPHONE", "SCREEN_SHARE"];

/// What one webhook means for the cycles table.
#[derive(Debug, Clone)]
pub enum EventFacts {
    Joined(CycleFact),
    Closed {
        fact: CycleFact,
        at_ms: i64,
        reason: CloseReason,
    },
    RoomFinished {
        room: String,
        room_sid: String,
        at_ms: i64,
    },
    /// A track published or unpublished (and, when published muted, muted).
    Media(Vec<MediaFact>),
    Ignored,
}

/// What one reconciliation check found, as facts to apply: connections
/// LiveKit still lists (seen now), ones it no longer lists (closed at the
/// last instant it did), and ones it lists that no webhook told us of.
#[derive(Debug, Clone, Default)]
pub struct Reconciled {
    /// (participant sid, instant LiveKit listed it).
    pub seen: Vec<(String, i64)>,
    /// (participant sid, identity, close instant).
    pub closed: Vec<(String, String, i64)>,
    /// Connections to open, with the instant LiveKit listed them.
    pub opened: Vec<(CycleFact, i64)>,
}

/// A session is a lesson someone scheduled, or the session made for a
/// LiveKit room instance nobody scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    Lesson,
    Unscheduled,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Lesson => "lesson",
            SessionKind::Unscheduled => "unscheduled",
        }
    }

    pub fn parse(text: &str) -> SessionKind {
        match text {
            "unscheduled" => SessionKind::Unscheduled,
            _ => SessionKind::Lesson,
        }
    }
}
