//! Turns stored facts into what people read: the session, per-participant
//! attendance (always computed by `attendance-rules`), JSON and CSV.

use std::collections::BTreeMap;

use attendance_rules::{compute, Attendance, CloseReason, Cycle, Phase, Schedule};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::store::{CycleRow, RoomFacts, SessionRow};

/// The session as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub room: String,
    pub title: String,
    #[serde(flatten)]
    pub schedule: Schedule,
    pub window_end: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&SessionRow> for SessionView {
    fn from(row: &SessionRow) -> Self {
        SessionView {
            room: row.room.clone(),
            title: row.title.clone(),
            schedule: row.schedule.clone(),
            window_end: row.schedule.window().end,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CycleView {
    pub participant_sid: String,
    pub joined_at: Option<DateTime<Utc>>,
    pub left_at: Option<DateTime<Utc>>,
    pub close_reason: Option<String>,
}

/// One participant's attendance: the old system's field names are kept
/// (`is_currently_in_meeting`, `duration_minutes`) next to the new ones.
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantReport {
    pub identity: String,
    pub name: String,
    #[serde(flatten)]
    pub attendance: Attendance,
    pub is_currently_in_meeting: bool,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub cycles: Vec<CycleView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionReport {
    pub room: String,
    pub title: String,
    pub scheduled_at: DateTime<Utc>,
    pub duration_minutes: u32,
    pub grace_minutes: u32,
    pub window_end: DateTime<Utc>,
    pub phase: Phase,
    pub generated_at: DateTime<Utc>,
    pub participants: Vec<ParticipantReport>,
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

/// Computes one participant from their cycles (all of the same identity).
pub fn participant(
    schedule: &Schedule,
    identity: &str,
    cycles: &[&CycleRow],
    last_heartbeat_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> ParticipantReport {
    let rule_cycles: Vec<Cycle> = cycles.iter().filter_map(|c| rules_cycle(c)).collect();
    let attendance = compute(schedule, &rule_cycles, last_heartbeat_at, now);
    // The newest name LiveKit told us (people fix typos between joins).
    let name = cycles
        .iter()
        .rev()
        .map(|c| c.name.as_str())
        .find(|n| !n.is_empty())
        .unwrap_or_default()
        .to_string();
    ParticipantReport {
        identity: identity.to_string(),
        name,
        is_currently_in_meeting: attendance.in_meeting,
        attendance,
        last_heartbeat_at,
        cycles: cycles
            .iter()
            .map(|c| CycleView {
                participant_sid: c.participant_sid.clone(),
                joined_at: c.joined_at,
                left_at: c.left_at,
                close_reason: c.close_reason.clone(),
            })
            .collect(),
    }
}

/// Every participant of a room with a schedule, sorted by identity.
pub fn participants(
    session: &SessionRow,
    facts: &RoomFacts,
    now: DateTime<Utc>,
) -> Vec<ParticipantReport> {
    let mut by_identity: BTreeMap<&str, Vec<&CycleRow>> = BTreeMap::new();
    for cycle in &facts.cycles {
        by_identity
            .entry(cycle.identity.as_str())
            .or_default()
            .push(cycle);
    }
    by_identity
        .into_iter()
        .map(|(identity, cycles)| {
            participant(
                &session.schedule,
                identity,
                &cycles,
                facts.heartbeats.get(identity).copied(),
                now,
            )
        })
        .collect()
}

/// One identity's report, also when they never joined (all zeros).
pub fn one_participant(
    session: &SessionRow,
    facts: &RoomFacts,
    identity: &str,
    now: DateTime<Utc>,
) -> ParticipantReport {
    let cycles: Vec<&CycleRow> = facts
        .cycles
        .iter()
        .filter(|c| c.identity == identity)
        .collect();
    participant(
        &session.schedule,
        identity,
        &cycles,
        facts.heartbeats.get(identity).copied(),
        now,
    )
}

pub fn session_report(
    session: &SessionRow,
    facts: &RoomFacts,
    now: DateTime<Utc>,
) -> SessionReport {
    let window = session.schedule.window();
    SessionReport {
        room: session.room.clone(),
        title: session.title.clone(),
        scheduled_at: session.schedule.scheduled_at,
        duration_minutes: session.schedule.duration_minutes,
        grace_minutes: session.schedule.grace_minutes,
        window_end: window.end,
        phase: window.phase(now),
        generated_at: now,
        participants: participants(session, facts, now),
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

fn rfc3339(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The report as a spreadsheet-friendly CSV: one row per participant.
pub fn csv(report: &SessionReport) -> Result<String, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "room",
        "title",
        "scheduled_at",
        "identity",
        "name",
        "status",
        "attended_seconds",
        "duration_minutes",
        "attendance_percentage",
        "join_count",
        "first_join_at",
        "last_leave_at",
        "in_meeting",
        "final",
    ])?;
    for p in &report.participants {
        let a = &p.attendance;
        out.write_record([
            &*spreadsheet_safe(&report.room),
            &*spreadsheet_safe(&report.title),
            &rfc3339(Some(report.scheduled_at)),
            &*spreadsheet_safe(&p.identity),
            &*spreadsheet_safe(&p.name),
            a.status.as_str(),
            &a.attended_seconds.to_string(),
            &a.duration_minutes.to_string(),
            &format!("{:.1}", a.attendance_percentage),
            &a.join_count.to_string(),
            &rfc3339(a.first_join_at),
            &rfc3339(a.last_leave_at),
            if a.in_meeting { "yes" } else { "no" },
            if a.is_final { "yes" } else { "no" },
        ])?;
    }
    let bytes = out.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).expect("csv writes UTF-8"))
}
