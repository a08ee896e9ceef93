//! The events sent out, each a JSON `{"type", "timestamp", "data"}` as
//! Standard Webhooks recommends. Every payload is built here, from the same
//! views the API answers with, so a change to how sessions are keyed or shown
//! is made in one place.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::domain::{AuditRow, OutboundEvent, OverrideRow, RoomFacts, RosterEntry, SessionRow};
use crate::report::{self, Classifier, SessionReport, SessionView};

/// A session's counting window ended (or its final result changed since):
/// the whole final report, as `GET /api/sessions/{room}/attendance`.
pub const SESSION_FINALIZED: &str = "session.finalized";
/// A teacher set or removed an override: the audit entry and the
/// participant's new result.
pub const ATTENDANCE_CORRECTED: &str = "attendance.corrected";
/// A session was scheduled, or its schedule or roster changed.
pub const SESSION_UPDATED: &str = "session.updated";

pub const EVENT_TYPES: [&str; 3] = [SESSION_FINALIZED, ATTENDANCE_CORRECTED, SESSION_UPDATED];

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    event_type: &'a str,
    timestamp: String,
    data: T,
}

fn envelope(event_type: &str, data: impl Serialize, at: DateTime<Utc>) -> OutboundEvent {
    let payload = serde_json::to_string(&Envelope {
        event_type,
        timestamp: at.to_rfc3339_opts(SecondsFormat::Millis, true),
        data,
    })
    .expect("views serialize");
    OutboundEvent {
        event_type: event_type.to_string(),
        payload,
        created_at_ms: at.timestamp_millis(),
    }
}

pub fn session_finalized(report: &SessionReport, at: DateTime<Utc>) -> OutboundEvent {
    envelope(SESSION_FINALIZED, report, at)
}

/// What a final result is, for telling whether it changed: the schedule
/// and, per person, role, statuses, correction and counted time — not when
/// the report was made, names, or joins after the window (they count nothing).
pub fn final_digest(report: &SessionReport) -> String {
    let people: Vec<_> = report
        .participants
        .iter()
        .chain(&report.teachers)
        .chain(&report.excluded)
        .map(|p| {
            json!([
                p.identity,
                p.role,
                p.status,
                p.computed_status,
                p.correction.as_ref().map(|c| [&c.status, &c.reason]),
                p.attended_seconds,
                p.attendance_percentage,
                p.first_counted_at,
                p.present_percent,
            ])
        })
        .collect();
    let result = json!({
        "session_id": report.id,
        "room": report.room,
        "scheduled_at": report.scheduled_at,
        "duration_minutes": report.duration_minutes,
        "grace_minutes": report.grace_minutes,
        "people": people,
    });
    let digest = Sha256::digest(result.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `attendance.corrected`: the audit entry, and the participant's result
/// computed from `facts` (read before the change) with the change made.
pub fn attendance_corrected(
    mut facts: RoomFacts,
    audit: &AuditRow,
    classifier: &Classifier,
) -> Vec<OutboundEvent> {
    let identity = audit.identity.clone();
    match &audit.status {
        Some(status) => facts.overrides.insert(
            identity.clone(),
            OverrideRow {
                identity: identity.clone(),
                status: status.clone(),
                reason: audit.reason.clone(),
                author: audit.author.clone(),
                created_at: audit.at,
            },
        ),
        None => facts.overrides.remove(&identity),
    };
    let Some(session) = facts.session.as_ref() else {
        return Vec::new();
    };
    let attendance = report::one_participant(session, &facts, &identity, classifier, audit.at);
    let data = json!({
        "room": audit.room,
        "session_id": session.id,
        "identity": audit.identity,
        "audit": {
            "room": audit.room, "session_id": audit.session_id, "identity": audit.identity, "action": audit.action,
            "status": audit.status, "reason": audit.reason, "author": audit.author, "at": audit.at,
        },
        "attendance": attendance,
    });
    vec![envelope(ATTENDANCE_CORRECTED, data, audit.at)]
}

/// `session.updated` when something people set changed: the session was
/// created, its schedule (or title, zone, thresholds) changed, or its roster
/// did (`roster`: before and after, when one was given). Nothing otherwise.
pub fn session_updated(
    before: Option<&SessionRow>,
    after: &SessionRow,
    roster: Option<(&[RosterEntry], &[RosterEntry])>,
    at: DateTime<Utc>,
) -> Vec<OutboundEvent> {
    let mut changes = Vec::new();
    match before {
        None => changes.push("created"),
        Some(before) if !same_settings(before, after) => changes.push("schedule"),
        Some(_) => {}
    }
    let new_roster = roster.filter(|(old, new)| sorted(old) != sorted(new));
    if new_roster.is_some() {
        changes.push("roster");
    }
    if changes.is_empty() {
        return Vec::new();
    }
    let mut data = json!({
        "room": after.room,
        "session_id": after.id,
        "changes": changes,
        "session": SessionView::of(after, at),
    });
    if let Some((_, roster)) = new_roster {
        data["roster"] = json!(roster);
    }
    vec![envelope(SESSION_UPDATED, data, at)]
}

fn same_settings(a: &SessionRow, b: &SessionRow) -> bool {
    (
        &a.title,
        &a.schedule,
        &a.timezone,
        a.teacher_present_percent,
    ) == (
        &b.title,
        &b.schedule,
        &b.timezone,
        b.teacher_present_percent,
    )
}

fn sorted(roster: &[RosterEntry]) -> Vec<&RosterEntry> {
    let mut entries: Vec<_> = roster.iter().collect();
    entries.sort_by(|a, b| a.identity.cmp(&b.identity));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use attendance_rules::Schedule;

    fn session(minutes: u32) -> SessionRow {
        let mut session = crate::domain::lessons::tests::lesson(1, "2026-01-15T09:00:00Z", minutes);
        session.room = "math".into();
        session.title = "Algebra".into();
        // The default grace, unlike the lesson helper's.
        session.schedule = Schedule::new(session.schedule.scheduled_at, minutes);
        session
    }

    #[test]
    fn envelopes_carry_type_timestamp_and_data() {
        let at: DateTime<Utc> = "2026-01-15T10:00:00.5Z".parse().unwrap();
        let events = session_updated(None, &session(60), None, at);
        let body: serde_json::Value = serde_json::from_str(&events[0].payload).unwrap();
        assert_eq!(body["type"], SESSION_UPDATED);
        assert_eq!(body["timestamp"], "2026-01-15T10:00:00.500Z");
        assert_eq!(body["data"]["room"], "math");
        assert_eq!(body["data"]["changes"], json!(["created"]));
        assert!(events[0]
            .payload
            .starts_with(r#"{"type":"session.updated""#));
    }

    #[test]
    fn only_real_changes_are_announced() {
        let at = Utc::now();
        let (a, mut b) = (session(60), session(60));
        b.updated_at = at;
        assert!(session_updated(Some(&a), &b, None, at).is_empty());
        let ada = RosterEntry {
            identity: "ada".into(),
            name: String::new(),
            role: "student".into(),
        };
        let bo = RosterEntry {
            identity: "bo".into(),
            ..ada.clone()
        };
        let same = session_updated(
            Some(&a),
            &b,
            Some((&[ada.clone(), bo.clone()], &[bo.clone(), ada.clone()])),
            at,
        );
        assert!(same.is_empty());
        let roster = session_updated(Some(&a), &b, Some((std::slice::from_ref(&ada), &[bo])), at);
        assert!(roster[0].payload.contains(r#""changes":["roster"]"#));
        let longer = session_updated(Some(&a), &session(90), None, at);
        assert!(longer[0].payload.contains(r#""changes":["schedule"]"#));
    }
}
