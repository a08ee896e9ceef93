//! Applies stored webhooks to the cycles table, in the background, after
//! LiveKit already has its 200. Failures are retried with exponential
//! backoff and end as dead letters (`status = 'failed'`), never dropped.

use std::time::Duration;

use attendance_rules::CloseReason;
use tokio::sync::watch;

use crate::app::{now_ms, App};
use crate::live;
use crate::metrics::Metrics;
use crate::notify::Changed;
use crate::store::{CycleFact, EventFacts, StoredEvent};
use crate::webhook::WebhookEvent;

const BATCH: i64 = 256;
const MAX_BACKOFF: Duration = Duration::from_secs(600);

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
        })
    };
    let close = |reason| -> Result<EventFacts, String> {
        if created_at_ms <= 0 {
            return Err(format!("{} without createdAt", event.event));
        }
        Ok(EventFacts::Closed {
            fact: cycle_fact()?,
            at_ms: created_at_ms,
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
        _ => Ok(EventFacts::Ignored),
    }
}

/// Runs until `shutdown` turns true.
pub async fn run(app: App, mut shutdown: watch::Receiver<bool>) {
    loop {
        let worked = match process_due(&app).await {
            Ok(n) => n > 0,
            Err(error) => {
                tracing::warn!(%error, "webhook processing paused: store unavailable");
                false
            }
        };
        if *shutdown.borrow() {
            return;
        }
        if !worked {
            tokio::select! {
                _ = app.processor_wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Processes one batch of due events in one transaction; returns how many
/// were handled.
pub async fn process_due(app: &App) -> Result<usize, sqlx::Error> {
    let lease = app.settings.processing_lease.as_millis() as i64;
    let due = app.store.claim_due_events(now_ms(), lease, BATCH).await?;
    let mut good = Vec::with_capacity(due.len());
    for stored in &due {
        match WebhookEvent::parse(stored.body.as_bytes()).and_then(|e| facts_of(&e).map(|f| (e, f)))
        {
            Ok((event, facts)) => good.push((stored, event, facts)),
            Err(reason) => record_failure(app, stored, &reason).await?,
        }
    }
    if good.is_empty() {
        return Ok(due.len());
    }
    // A database error is not the events' fault: they stay claimed and are
    // retried when the lease runs out, without spending an attempt.
    let batch: Vec<(&str, &EventFacts)> = good.iter().map(|(s, _, f)| (s.id.as_str(), f)).collect();
    let applied = match app.store.apply_events(&batch, now_ms()).await {
        Ok(applied) => applied,
        // A batch can lose a deadlock against another instance's batch;
        // one event per transaction then cannot.
        Err(error) if batch.len() > 1 => {
            tracing::debug!(%error, "batch not applied; applying its events one by one");
            let mut applied = Vec::with_capacity(batch.len());
            for one in &batch {
                applied.extend(
                    app.store
                        .apply_events(std::slice::from_ref(one), now_ms())
                        .await?,
                );
            }
            applied
        }
        Err(error) => return Err(error),
    };
    let mut changes = std::collections::BTreeSet::new();
    for ((stored, event, facts), applied) in good.iter().zip(applied) {
        if !applied {
            continue; // another instance got there first
        }
        Metrics::inc(&app.metrics.events_processed);
        let lag = (crate::app::now() - stored.received_at)
            .to_std()
            .unwrap_or_default();
        app.metrics.processing_lag.observe(lag);
        let identity = event
            .participant
            .as_ref()
            .map_or("", |p| p.identity.as_str());
        tracing::info!(event_id = %stored.id, event = %stored.event, room = %stored.room, identity, "webhook processed");
        match facts {
            EventFacts::Joined(f) | EventFacts::Closed { fact: f, .. } => {
                changes.insert((f.room.clone(), Some(f.identity.clone())));
            }
            EventFacts::RoomFinished { room, .. } => {
                changes.insert((room.clone(), None));
            }
            EventFacts::Ignored => {}
        }
    }
    // One push per participant per batch, however many events touched them.
    let changes: Vec<Changed> = changes
        .into_iter()
        .map(|(room, identity)| Changed {
            room,
            identity,
            heartbeat_at_ms: None,
        })
        .collect();
    live::changed_many(app, changes);
    Ok(due.len())
}

/// An event that cannot be applied: retried with backoff, then dead-lettered.
async fn record_failure(app: &App, stored: &StoredEvent, error: &str) -> Result<(), sqlx::Error> {
    let attempts = stored.attempts as u32 + 1;
    if attempts >= app.settings.max_attempts {
        Metrics::inc(&app.metrics.events_dead_lettered);
        tracing::error!(event_id = %stored.id, event = %stored.event, room = %stored.room, attempts, %error, "webhook dead-lettered; replay with `attendance-server replay`");
        app.store.event_failed(&stored.id, error, None).await
    } else {
        let delay = backoff(app.settings.retry_base, attempts);
        Metrics::inc(&app.metrics.event_retries);
        tracing::warn!(event_id = %stored.id, event = %stored.event, room = %stored.room, attempts, retry_in_ms = delay.as_millis() as u64, %error, "webhook processing failed; will retry");
        app.store
            .event_failed(&stored.id, error, Some(now_ms() + delay.as_millis() as i64))
            .await
    }
}

/// `base * 2^(attempts-1)`, capped.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(1);
        assert_eq!(backoff(base, 1), Duration::from_secs(1));
        assert_eq!(backoff(base, 2), Duration::from_secs(2));
        assert_eq!(backoff(base, 4), Duration::from_secs(8));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }

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
    fn other_events_are_ignored_and_broken_ones_refused() {
        let track = br#"{"event":"track_published","id":"EV_2","room":{"name":"r"}}"#;
        assert!(matches!(
            facts_of(&WebhookEvent::parse(track).unwrap()),
            Ok(EventFacts::Ignored)
        ));
        let broken =
            br#"{"event":"participant_left","id":"EV_3","createdAt":"5","room":{"name":"r"}}"#;
        assert!(facts_of(&WebhookEvent::parse(broken).unwrap()).is_err());
    }
}
