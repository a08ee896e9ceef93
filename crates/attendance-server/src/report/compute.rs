//! Per-participant attendance from the facts, always computed by
//! `attendance-rules`.

use std::collections::BTreeSet;

use attendance_rules::{
    assess, media_time, stay_until, CloseReason, Connection, Cycle, EffectiveStatus, MediaEvent,
    MediaTime, Person, Schedule, Thresholds,
};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::classify::{Classifier, Role};
use super::views::{
    count_statuses, Clock, CycleView, OverrideView, ParticipantReport, SessionReport,
};
use crate::domain::{
    ms_to_time, CycleRow, MediaFact, OverrideRow, RoomFacts, RosterEntry, SessionRow,
};

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
    media: Vec<&'a MediaFact>,
}

fn participant(
    session: &SessionRow,
    subject: &Subject<'_>,
    classifier: &Classifier,
    clock: Clock,
    now: DateTime<Utc>,
) -> ParticipantReport {
    let schedule = session.schedule_at(now);
    let role = classifier.role(subject.roster, session.has_roster, &subject.cycles);
    let person = Person {
        role,
        cycles: subject
            .cycles
            .iter()
            .filter_map(|c| rules_cycle(c))
            .collect(),
        last_heartbeat_at: subject.last_heartbeat_at,
        present_percent: None,
        correction: subject
            .correction
            .and_then(|o| EffectiveStatus::parse(&o.status)),
    };
    let thresholds = Thresholds::new(&schedule, Some(session.teacher_present_percent));
    let assessed = assess(&schedule, thresholds, &person, now);
    let stay = stay_until(
        &schedule,
        &person.cycles,
        person.last_heartbeat_at,
        now,
        assessed.present_percent,
    );
    let media = (classifier.engagement && session.engagement)
        .then(|| media_seconds(&schedule, subject, person.last_heartbeat_at, now));
    let a = assessed.attendance;
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
        session_id: session.id,
        unscheduled: session.is_unscheduled(),
        identity: subject.identity.to_string(),
        name,
        role,
        kind: kind.to_string(),
        rostered: subject.roster.is_some(),
        never_joined: subject.cycles.is_empty(),
        status: assessed.status.as_str().to_string(),
        computed_status: a.status,
        correction: subject.correction.map(|o| OverrideView {
            status: o.status.clone(),
            reason: o.reason.clone(),
            author: o.author.clone(),
            at: o.created_at,
        }),
        present_percent: assessed.present_percent,
        stay_until: stay,
        media,
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
            .map(|c| cycle_view(c, clock))
            .collect(),
    }
}

/// Camera, microphone and screen-share time, by the rules, from this
/// identity's connections and media facts.
fn media_seconds(
    schedule: &Schedule,
    subject: &Subject<'_>,
    last_heartbeat_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> MediaTime {
    let connections: Vec<Connection> = subject
        .cycles
        .iter()
        .filter_map(|c| {
            Some(Connection {
                participant_sid: c.participant_sid.clone(),
                cycle: rules_cycle(c)?,
            })
        })
        .collect();
    let events: Vec<MediaEvent> = subject
        .media
        .iter()
        .filter_map(|m| media_event(m))
        .collect();
    media_time(schedule, &connections, last_heartbeat_at, &events, now)
}

fn media_event(fact: &MediaFact) -> Option<MediaEvent> {
    let text = |s: &str| serde_json::Value::String(s.to_string());
    Some(MediaEvent {
        participant_sid: fact.participant_sid.clone(),
        track_sid: fact.track_sid.clone(),
        source: serde_json::from_value(text(&fact.source)).ok()?,
        change: serde_json::from_value(text(&fact.change)).ok()?,
        at: ms_to_time(fact.at_ms),
        from_livekit: fact.origin != "tracker",
    })
}

fn cycle_view(c: &CycleRow, clock: Clock) -> CycleView {
    CycleView {
        participant_sid: c.participant_sid.clone(),
        joined_at: c.joined_at,
        left_at: c.left_at,
        close_reason: c.close_reason.clone(),
        disconnect_reason: (!c.disconnect_reason.is_empty()).then(|| c.disconnect_reason.clone()),
        opened_by: c.opened_by.clone(),
        joined_at_local: clock.local(c.joined_at),
        left_at_local: clock.local(c.left_at),
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
        media: facts
            .media
            .iter()
            .filter(|m| m.identity == identity)
            .collect(),
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
    let schedule = session.schedule_at(now);
    let window = schedule.window();
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
        id: session.id,
        room: session.room.clone(),
        kind: session.kind,
        unscheduled: session.is_unscheduled(),
        title: session.title.clone(),
        scheduled_at: schedule.scheduled_at,
        duration_minutes: schedule.duration_minutes,
        lesson_minutes: schedule.duration_minutes,
        grace_minutes: schedule.grace_minutes,
        window_end: window.end,
        timezone: clock.zone.map(|z| z.name().to_string()),
        scheduled_at_local: clock.local(Some(schedule.scheduled_at)),
        window_end_local: clock.local(Some(window.end)),
        phase: window.phase(now),
        generated_at: now,
        has_roster: session.has_roster,
        counts: count_statuses(&participants),
        participants,
        teachers,
        excluded,
    }
}
