//! What a LiveKit webhook means for the stored facts. Pure: no I/O.

use attendance_rules::CloseReason;

use super::webhook::WebhookEvent;
use crate::domain::{CycleFact, EventFacts, MediaFact, MEDIA_SOURCES};

/// What a webhook means for the cycles table. Pure: no I/O.
pub fn facts_of(event: &WebhookEvent) -> Result<EventFacts, String> {
    let created_at_ms = event.created_at * 1000;
    let room = event.room.clone().unwrap_or_default();
    let cycle_fact = || -> Result<CycleFact, String> {
        let p = event
            .participant
            .as_ref()
            .ok_or_else(|| format!("{} without a participant", event.event))?;
        if p.sid.is_empty() || p.identity.is_empty() {
            return Err(format!(
                "{} without participant sid or identity",
                event.event
            ));
        }
        if room.name.is_empty() {
            return Err(format!("{} without a room name", event.event));
        }
        Ok(CycleFact {
            participant_sid: p.sid.clone(),
            room: room.name.clone(),
            room_sid: room.sid.clone(),
            identity: p.identity.clone(),
            name: p.name.clone(),
            kind: p.kind.clone(),
            metadata: p.metadata.clone(),
            attributes: if p.attributes.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&p.attributes).expect("a map of strings serializes")
            },
            joined_at_ms: p.joined_at_ms(),
            disconnect_reason: p.disconnect_reason.clone().unwrap_or_default(),
        })
    };
    let close = |reason| -> Result<EventFacts, String> {
        if created_at_ms <= 0 {
            return Err(format!("{} without createdAt", event.event));
        }
        let fact = cycle_fact()?;
        // `createdAt` is whole seconds, `joinedAtMs` is not: a connection
        // that ends in the second it began would otherwise end before it
        // began, and fall outside a lesson that starts on that second.
        let at_ms = created_at_ms.max(fact.joined_at_ms.unwrap_or(0));
        Ok(EventFacts::Closed {
            fact,
            at_ms,
            reason,
        })
    };
    match event.event.as_str() {
        "participant_joined" => {
            let mut fact = cycle_fact()?;
            // LiveKit's own join time; the event time only as a fallback.
            if fact.joined_at_ms.is_none() && created_at_ms > 0 {
                fact.joined_at_ms = Some(created_at_ms);
            }
            Ok(EventFacts::Joined(fact))
        }
        "participant_left" => close(CloseReason::Left),
        "participant_connection_aborted" => close(CloseReason::ConnectionAborted),
        "room_finished" => {
            if room.name.is_empty() || created_at_ms <= 0 {
                return Err("room_finished without room name or createdAt".into());
            }
            Ok(EventFacts::RoomFinished {
                room: room.name,
                room_sid: room.sid,
                at_ms: created_at_ms,
            })
        }
        "track_published" | "track_unpublished" => media_facts(event, created_at_ms),
        _ => Ok(EventFacts::Ignored),
    }
}

/// A camera, microphone or screen share published or unpublished. Other
/// tracks (screen-share audio, data, unknown sources), and track events that
/// name no connection, carry nothing for attendance: they stay in the inbox
/// and are otherwise ignored.
fn media_facts(event: &WebhookEvent, at_ms: i64) -> Result<EventFacts, String> {
    let (Some(track), Some(p), Some(room)) = (&event.track, &event.participant, &event.room) else {
        return Ok(EventFacts::Ignored);
    };
    let source = track.source.as_str();
    let complete = !track.sid.is_empty() && !p.sid.is_empty() && !room.name.is_empty();
    if !MEDIA_SOURCES.contains(&source) || !complete || at_ms <= 0 {
        return Ok(EventFacts::Ignored);
    }
    let fact = |change: &str| MediaFact {
        room: room.name.clone(),
        participant_sid: p.sid.clone(),
        identity: p.identity.clone(),
        track_sid: track.sid.clone(),
        source: source.to_string(),
        change: change.to_string(),
        at_ms,
        origin: "webhook".to_string(),
    };
    Ok(EventFacts::Media(match event.event.as_str() {
        "track_published" if track.muted => vec![fact("published"), fact("muted")],
        "track_published" => vec![fact("published")],
        _ => vec![fact("unpublished")],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_time_prefers_livekit_ms() {
        let body = br#"{"event":"participant_joined","id":"EV_1","createdAt":"200","room":{"name":"r","sid":"RM_1"},"participant":{"sid":"PA_1","identity":"s","joinedAt":"100","joinedAtMs":"100500"}}"#;
        let facts = facts_of(&WebhookEvent::parse(body).unwrap()).unwrap();
        match facts {
            EventFacts::Joined(f) => assert_eq!(f.joined_at_ms, Some(100_500)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_leave_in_the_second_of_its_join_ends_after_it() {
        let body = br#"{"event":"participant_left","id":"EV_2","createdAt":"100","room":{"name":"r","sid":"RM_1"},"participant":{"sid":"PA_1","identity":"s","joinedAt":"100","joinedAtMs":"100873"}}"#;
        match facts_of(&WebhookEvent::parse(body).unwrap()).unwrap() {
            EventFacts::Closed { at_ms, .. } => assert_eq!(at_ms, 100_873),
            other => panic!("{other:?}"),
        }
        let later = br#"{"event":"participant_left","id":"EV_3","createdAt":"160","room":{"name":"r","sid":"RM_1"},"participant":{"sid":"PA_1","identity":"s","joinedAtMs":"100873"}}"#;
        match facts_of(&WebhookEvent::parse(later).unwrap()).unwrap() {
            EventFacts::Closed { at_ms, .. } => assert_eq!(at_ms, 160_000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cameras_microphones_and_screens_are_media_facts() {
        let body = br#"{"event":"track_published", "id":"EV_t", "createdAt":"1732529100", "room":{"sid":"RM_1", "name":"r"}, "participant":{"sid":"PA_1", "identity":"ada"}, "track":{"sid":"TR_1", "type":"VIDEO", "source":"CAMERA", "muted":true, "width":640}}"#;
        let Ok(EventFacts::Media(facts)) = facts_of(&WebhookEvent::parse(body).unwrap()) else {
            panic!("not media");
        };
        let changes: Vec<&str> = facts.iter().map(|f| f.change.as_str()).collect();
        assert_eq!(changes, ["published", "muted"]);
        assert_eq!(facts[0].source, "CAMERA");
        assert_eq!(facts[0].at_ms, 1_732_529_100_000);
        // Microphones omit `type` (AUDIO is 0); numbers stand for names.
        let mic = br#"{"event":"track_unpublished","id":"EV_m","createdAt":"5","room":{"name":"r"},"participant":{"sid":"PA_1","identity":"ada"},"track":{"sid":"TR_2","source":2}}"#;
        let Ok(EventFacts::Media(facts)) = facts_of(&WebhookEvent::parse(mic).unwrap()) else {
            panic!("not media");
        };
        assert_eq!(
            (facts[0].source.as_str(), facts[0].change.as_str()),
            ("MICROPHONE", "unpublished")
        );
        let screen_audio = br#"{"event":"track_published","id":"EV_a","createdAt":"5","room":{"name":"r"},"participant":{"sid":"PA_1","identity":"ada"},"track":{"sid":"TR_3","source":"SCREEN_SHARE_AUDIO"}}"#;
        assert!(matches!(
            facts_of(&WebhookEvent::parse(screen_audio).unwrap()),
            Ok(EventFacts::Ignored)
        ));
    }

    #[test]
    fn track_events_naming_no_connection_are_ignored_not_failed() {
        let bare = br#"{"event":"track_published","id":"EV_b","createdAt":"5","room":{"name":"r"},"track":{"sid":"TR_1","source":"CAMERA"}}"#;
        assert!(matches!(
            facts_of(&WebhookEvent::parse(bare).unwrap()),
            Ok(EventFacts::Ignored)
        ));
    }

    #[test]
    fn other_events_are_ignored_and_broken_ones_refused() {
        let egress = br#"{"event":"egress_started","id":"EV_2","room":{"name":"r"}}"#;
        assert!(matches!(
            facts_of(&WebhookEvent::parse(egress).unwrap()),
            Ok(EventFacts::Ignored)
        ));
        let broken =
            br#"{"event":"participant_left","id":"EV_3","createdAt":"5","room":{"name":"r"}}"#;
        assert!(facts_of(&WebhookEvent::parse(broken).unwrap()).is_err());
    }
}
