//! Turns stored facts into what people read: the session, per-participant
//! attendance (always computed by `attendance-rules`), JSON and CSV.
//!
//! Who counts as what is decided here too: a roster says who is a student
//! or a teacher; without one, LiveKit metadata/attributes (`role`) do;
//! recorders, ingress, SIP bridges, agents and observers are kept as facts
//! but left out of the class statistics.

use std::collections::{BTreeMap, BTreeSet};

use attendance_rules::{
    compute_with_threshold, Attendance, CloseReason, Cycle, Phase, Schedule, Status,
};
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::store::{CycleRow, OverrideRow, RoomFacts, RosterEntry, SessionRow};

/// Statuses a teacher may set by hand: the computed ones plus `excused`.
pub const OVERRIDE_STATUSES: [&str; 5] = ["present", "late", "partial", "absent", "excused"];

/// Server-wide choices about who counts.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// LiveKit participant kinds that are not people (e.g. EGRESS, AGENT).
    pub excluded_kinds: Vec<String>,
    /// `role` values (metadata/attributes) left out of statistics.
    pub excluded_roles: Vec<String>,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier {
            excluded_kinds: ["INGRESS", "EGRESS", "SIP", "AGENT"]
                .map(String::from)
                .to_vec(),
            excluded_roles: vec!["observer".into()],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Student,
    Teacher,
    /// Not counted: a recorder, bridge, agent or observer.
    Excluded,
}

/// A participant's role from their LiveKit metadata (JSON with `role`) or
/// attributes (`role`), newest connection first.
fn declared_role(cycles: &[&CycleRow]) -> Option<String> {
    cycles.iter().rev().find_map(|c| {
        let from_metadata = serde_json::from_str::<serde_json::Value>(&c.metadata)
            .ok()
            .and_then(|m| m.get("role")?.as_str().map(str::to_string));
        let from_attributes = serde_json::from_str::<BTreeMap<String, String>>(&c.attributes)
            .ok()
            .and_then(|a| a.get("role").cloned());
        from_attributes.or(from_metadata)
    })
}

impl Classifier {
    pub fn role(
        &self,
        roster: Option<&RosterEntry>,
        has_roster: bool,
        cycles: &[&CycleRow],
    ) -> Role {
        if cycles.iter().any(|c| {
            self.excluded_kinds
                .iter()
                .any(|k| k.eq_ignore_ascii_case(&c.kind))
        }) {
            return Role::Excluded;
        }
        let declared = declared_role(cycles).map(|r| r.to_ascii_lowercase());
        if declared
            .as_ref()
            .is_some_and(|r| self.excluded_roles.contains(r))
        {
            return Role::Excluded;
        }
        match roster {
            Some(entry) if entry.role == "teacher" => Role::Teacher,
            Some(_) => Role::Student,
            // With a roster, only the roster names teachers.
            None if !has_roster && declared.as_deref() == Some("teacher") => Role::Teacher,
            None => Role::Student,
        }
    }
}

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
    pub room: String,
    pub title: String,
    #[serde(flatten)]
    pub schedule: Schedule,
    pub teacher_present_percent: u32,
    pub timezone: Option<String>,
    pub window_end: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_at_local: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_end_local: Option<String>,
    pub has_roster: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SessionView {
    pub fn new(row: &SessionRow, clock: Clock) -> Self {
        let end = row.schedule.window().end;
        SessionView {
            room: row.room.clone(),
            title: row.title.clone(),
            schedule: row.schedule.clone(),
            teacher_present_percent: row.teacher_present_percent,
            timezone: (!row.timezone.is_empty()).then(|| row.timezone.clone()),
            window_end: end,
            scheduled_at_local: clock.local(Some(row.schedule.scheduled_at)),
            window_end_local: clock.local(Some(end)),
            has_roster: row.has_roster,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

impl From<&SessionRow> for SessionView {
    fn from(row: &SessionRow) -> Self {
        SessionView::new(row, Clock::for_session(row, None))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CycleView {
    pub participant_sid: String,
    pub joined_at: Option<DateTime<Utc>>,
    pub left_at: Option<DateTime<Utc>>,
    pub close_reason: Option<String>,
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

#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusCounts {
    pub present: usize,
    pub late: usize,
    pub partial: usize,
    pub absent: usize,
    pub excused: usize,
}

impl StatusCounts {
    pub fn of(participants: &[ParticipantReport]) -> StatusCounts {
        let mut counts = StatusCounts::default();
        for p in participants {
            match p.status.as_str() {
                "present" => counts.present += 1,
                "late" => counts.late += 1,
                "partial" => counts.partial += 1,
                "absent" => counts.absent += 1,
                "excused" => counts.excused += 1,
                _ => {}
            }
        }
        counts
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionReport {
    pub room: String,
    pub title: String,
    pub scheduled_at: DateTime<Utc>,
    pub duration_minutes: u32,
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

/// A cycle as the rules see it. A leave whose join never arrived (and had
/// no `joinedAt`) has no start: it is kept as a fact but counts nothing.
fn rules_cycle(row: &CycleRow) -> Option<Cycle> {
    Some(Cycle {
        joined_at: row.joined_at?,
        left_at: row.left_at,
        close_reason: row.close_reason.as_deref().and_then(parse_reason),
    })
}

fn parse_reason(text: &str) -> Option<CloseReason> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
}

/// Everything known about one identity in one session.
struct Subject<'a> {
    identity: &'a str,
    cycles: Vec<&'a CycleRow>,
    roster: Option<&'a RosterEntry>,
    correction: Option<&'a OverrideRow>,
    last_heartbeat_at: Option<DateTime<Utc>>,
}

fn participant(
    session: &SessionRow,
    subject: &Subject<'_>,
    classifier: &Classifier,
    clock: Clock,
    now: DateTime<Utc>,
) -> ParticipantReport {
    let role = classifier.role(subject.roster, session.has_roster, &subject.cycles);
    let threshold = match role {
        Role::Teacher => session.teacher_present_percent,
        _ => session.schedule.present_percent,
    };
    let rule_cycles: Vec<Cycle> = subject
        .cycles
        .iter()
        .filter_map(|c| rules_cycle(c))
        .collect();
    let a: Attendance = compute_with_threshold(
        &session.schedule,
        &rule_cycles,
        subject.last_heartbeat_at,
        now,
        threshold,
    );
    // The newest name LiveKit told us (people fix typos between joins),
    // else the roster's.
    let name = subject
        .cycles
        .iter()
        .rev()
        .map(|c| c.name.as_str())
        .find(|n| !n.is_empty())
        .or(subject.roster.map(|r| r.name.as_str()))
        .unwrap_or_default()
        .to_string();
    let kind = subject
        .cycles
        .iter()
        .rev()
        .map(|c| c.kind.as_str())
        .find(|k| !k.is_empty())
        .unwrap_or_default();
    ParticipantReport {
        identity: subject.identity.to_string(),
        name,
        role,
        kind: kind.to_string(),
        rostered: subject.roster.is_some(),
        never_joined: subject.cycles.is_empty(),
        status: subject
            .correction
            .map_or(a.status.as_str(), |o| o.status.as_str())
            .to_string(),
        computed_status: a.status,
        correction: subject.correction.map(|o| OverrideView {
            status: o.status.clone(),
            reason: o.reason.clone(),
            author: o.author.clone(),
            at: o.created_at,
        }),
        present_percent: threshold,
        attended_seconds: a.attended_seconds,
        duration_minutes: a.duration_minutes,
        attendance_percentage: a.attendance_percentage,
        phase: a.phase,
        is_final: a.is_final,
        in_meeting: a.in_meeting,
        is_currently_in_meeting: a.in_meeting,
        heartbeat_stale: a.heartbeat_stale,
        join_count: a.join_count,
        first_join_at: a.first_join_at,
        last_leave_at: a.last_leave_at,
        first_counted_at: a.first_counted_at,
        last_heartbeat_at: subject.last_heartbeat_at,
        first_join_at_local: clock.local(a.first_join_at),
        last_leave_at_local: clock.local(a.last_leave_at),
        cycles: subject
            .cycles
            .iter()
            .map(|c| CycleView {
                participant_sid: c.participant_sid.clone(),
                joined_at: c.joined_at,
                left_at: c.left_at,
                close_reason: c.close_reason.clone(),
                joined_at_local: clock.local(c.joined_at),
                left_at_local: clock.local(c.left_at),
            })
            .collect(),
    }
}

/// Every identity the facts know in a room: connected, rostered or corrected.
fn subjects(facts: &RoomFacts) -> Vec<Subject<'_>> {
    let mut identities: BTreeSet<&str> = facts.cycles.iter().map(|c| c.identity.as_str()).collect();
    identities.extend(facts.roster.iter().map(|r| r.identity.as_str()));
    identities.extend(facts.overrides.keys().map(String::as_str));
    identities
        .into_iter()
        .map(|identity| subject(facts, identity))
        .collect()
}

fn subject<'a>(facts: &'a RoomFacts, identity: &'a str) -> Subject<'a> {
    Subject {
        identity,
        cycles: facts
            .cycles
            .iter()
            .filter(|c| c.identity == identity)
            .collect(),
        roster: facts.roster.iter().find(|r| r.identity == identity),
        correction: facts.overrides.get(identity),
        last_heartbeat_at: facts.heartbeats.get(identity).copied(),
    }
}

/// One identity's report, also when they never joined (all zeros).
pub fn one_participant(
    session: &SessionRow,
    facts: &RoomFacts,
    identity: &str,
    classifier: &Classifier,
    now: DateTime<Utc>,
) -> ParticipantReport {
    participant(
        session,
        &subject(facts, identity),
        classifier,
        Clock::for_session(session, None),
        now,
    )
}

pub fn session_report(
    session: &SessionRow,
    facts: &RoomFacts,
    classifier: &Classifier,
    zone: Option<Tz>,
    now: DateTime<Utc>,
) -> SessionReport {
    let clock = Clock::for_session(session, zone);
    let window = session.schedule.window();
    let (mut participants, mut teachers, mut excluded) = (Vec::new(), Vec::new(), Vec::new());
    for subject in subjects(facts) {
        let report = participant(session, &subject, classifier, clock, now);
        match report.role {
            Role::Student => participants.push(report),
            Role::Teacher => teachers.push(report),
            Role::Excluded => excluded.push(report),
        }
    }
    SessionReport {
        room: session.room.clone(),
        title: session.title.clone(),
        scheduled_at: session.schedule.scheduled_at,
        duration_minutes: session.schedule.duration_minutes,
        grace_minutes: session.schedule.grace_minutes,
        window_end: window.end,
        timezone: clock.zone.map(|z| z.name().to_string()),
        scheduled_at_local: clock.local(Some(session.schedule.scheduled_at)),
        window_end_local: clock.local(Some(window.end)),
        phase: window.phase(now),
        generated_at: now,
        has_roster: session.has_roster,
        counts: StatusCounts::of(&participants),
        participants,
        teachers,
        excluded,
    }
}

/// Text a spreadsheet would run as a formula gets a leading `'`
/// (OWASP's advice against CSV injection); other text is unchanged.
fn spreadsheet_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

const CSV_HEADER: [&str; 20] = [
    "room",
    "title",
    "scheduled_at",
    "identity",
    "name",
    "role",
    "rostered",
    "status",
    "computed_status",
    "override_reason",
    "override_by",
    "attended_seconds",
    "duration_minutes",
    "attendance_percentage",
    "join_count",
    "first_join_at",
    "last_leave_at",
    "in_meeting",
    "final",
    "timezone",
];

fn csv_row(
    out: &mut csv::Writer<Vec<u8>>,
    session: (&str, &str, DateTime<Utc>),
    p: &ParticipantReport,
    clock: Clock,
) -> Result<(), csv::Error> {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let role = match p.role {
        Role::Student => "student",
        Role::Teacher => "teacher",
        Role::Excluded => "excluded",
    };
    out.write_record([
        &*spreadsheet_safe(session.0),
        &*spreadsheet_safe(session.1),
        &clock.text(Some(session.2)),
        &*spreadsheet_safe(&p.identity),
        &*spreadsheet_safe(&p.name),
        role,
        yes_no(p.rostered),
        p.status.as_str(),
        p.computed_status.as_str(),
        &*spreadsheet_safe(p.correction.as_ref().map_or("", |o| o.reason.as_str())),
        &*spreadsheet_safe(p.correction.as_ref().map_or("", |o| o.author.as_str())),
        &p.attended_seconds.to_string(),
        &p.duration_minutes.to_string(),
        &format!("{:.1}", p.attendance_percentage),
        &p.join_count.to_string(),
        &clock.text(p.first_join_at),
        &clock.text(p.last_leave_at),
        yes_no(p.in_meeting),
        yes_no(p.is_final),
        clock.zone.map_or("UTC", |z| z.name()),
    ])
}

/// The report as a spreadsheet-friendly CSV: one row per student, then
/// per teacher; times local with their offset when a zone is set.
pub fn csv(report: &SessionReport, zone: Option<Tz>) -> Result<String, csv::Error> {
    let clock = Clock { zone };
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(CSV_HEADER)?;
    for p in report.participants.iter().chain(&report.teachers) {
        csv_row(
            &mut out,
            (&report.room, &report.title, report.scheduled_at),
            p,
            clock,
        )?;
    }
    finish(out)
}

/// One student's history across sessions, as CSV.
pub fn history_csv(
    rows: &[(SessionRow, ParticipantReport)],
    zone: Option<Tz>,
) -> Result<String, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(CSV_HEADER)?;
    for (session, p) in rows {
        let clock = Clock::for_session(session, zone);
        csv_row(
            &mut out,
            (&session.room, &session.title, session.schedule.scheduled_at),
            p,
            clock,
        )?;
    }
    finish(out)
}

fn finish(out: csv::Writer<Vec<u8>>) -> Result<String, csv::Error> {
    let bytes = out.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).expect("csv writes UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycle(kind: &str, metadata: &str, attributes: &str) -> CycleRow {
        CycleRow {
            participant_sid: "PA_1".into(),
            room: "r".into(),
            room_sid: String::new(),
            identity: "x".into(),
            name: String::new(),
            kind: kind.into(),
            metadata: metadata.into(),
            attributes: attributes.into(),
            joined_at: None,
            left_at: None,
            close_reason: None,
        }
    }

    #[test]
    fn roles_from_kind_metadata_attributes_and_roster() {
        let c = Classifier::default();
        let teacher_entry = RosterEntry {
            identity: "x".into(),
            name: String::new(),
            role: "teacher".into(),
        };
        assert_eq!(
            c.role(None, false, &[&cycle("EGRESS", "", "")]),
            Role::Excluded
        );
        assert_eq!(
            c.role(None, false, &[&cycle("AGENT", "", "")]),
            Role::Excluded
        );
        assert_eq!(
            c.role(None, false, &[&cycle("", r#"{"role":"observer"}"#, "")]),
            Role::Excluded
        );
        assert_eq!(
            c.role(None, false, &[&cycle("", "", r#"{"role":"observer"}"#)]),
            Role::Excluded
        );
        assert_eq!(
            c.role(
                None,
                false,
                &[&cycle("STANDARD", r#"{"role":"teacher"}"#, "")]
            ),
            Role::Teacher
        );
        assert_eq!(
            c.role(
                None,
                true,
                &[&cycle("STANDARD", r#"{"role":"teacher"}"#, "")]
            ),
            Role::Student
        );
        assert_eq!(c.role(Some(&teacher_entry), true, &[]), Role::Teacher);
        assert_eq!(
            c.role(None, false, &[&cycle("STANDARD", "not json", "")]),
            Role::Student
        );
    }

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
