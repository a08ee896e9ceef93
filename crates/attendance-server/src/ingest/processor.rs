//! Applies stored webhooks that are still pending to the cycles table, in
//! the background, after LiveKit already has its 200: those whose facts
//! could not be read or applied as they were stored (see [`super::inbox`]),
//! retries, replays, and whatever a crash left. Failures are retried with exponential
//! backoff and end as dead letters (`status = 'failed'`), never dropped.

use std::time::Duration;

use tokio::sync::watch;

use super::applied::AppliedChanges;
use super::Ingest;
use crate::domain::{now, now_ms, EventFacts, Shard, StoredEvent};
use crate::livekit::WebhookEvent;
use crate::metrics::Metrics;

const BATCH: i64 = 256;
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Runs until `shutdown` turns true, applying the events of the rooms of
/// `shard` (see [`crate::store::Store::claim_due_events`]).
pub async fn run(ingest: Ingest, shard: Shard, mut shutdown: watch::Receiver<bool>) {
    loop {
        let worked = match process_due(&ingest, shard).await {
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
                _ = ingest.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Processes one batch of due events in one transaction; returns how many
/// were handled.
pub async fn process_due(ingest: &Ingest, shard: Shard) -> Result<usize, sqlx::Error> {
    let lease = ingest.settings.processing_lease.as_millis() as i64;
    let due = ingest
        .store
        .claim_due_events(now_ms(), lease, BATCH, shard)
        .await?;
    let mut good = Vec::with_capacity(due.len());
    for stored in &due {
        match WebhookEvent::parse(stored.body.as_bytes()).and_then(|e| ingest.facts_of(&e)) {
            Ok(facts) => good.push((stored, facts)),
            Err(reason) => record_failure(ingest, stored, &reason).await?,
        }
    }
    if good.is_empty() {
        return Ok(due.len());
    }
    // A database error is not the events' fault: they stay claimed and are
    // retried when the lease runs out, without spending an attempt.
    let batch: Vec<(&str, &EventFacts)> = good.iter().map(|(s, f)| (s.id.as_str(), f)).collect();
    let (applied, opened) = match ingest.store.apply_events(&batch, now_ms()).await {
        Ok(result) => result,
        // A batch can lose a deadlock against another instance's batch;
        // one event per transaction then cannot.
        Err(error) if batch.len() > 1 => {
            tracing::debug!(%error, "batch not applied; applying its events one by one");
            let mut applied = Vec::with_capacity(batch.len());
            let mut opened = Vec::new();
            for one in &batch {
                let (done, rooms) = ingest
                    .store
                    .apply_events(std::slice::from_ref(one), now_ms())
                    .await?;
                applied.extend(done);
                opened.extend(rooms);
            }
            (applied, opened)
        }
        Err(error) => return Err(error),
    };
    let mut changes = AppliedChanges::default();
    for room in &opened {
        changes.room_opened(room);
    }
    for ((stored, facts), applied) in good.iter().zip(applied) {
        if !applied {
            continue; // another instance got there first
        }
        let lag = (now() - stored.received_at).to_std().unwrap_or_default();
        changes.applied(
            &ingest.metrics,
            &stored.id,
            &stored.event,
            &stored.room,
            facts,
            lag,
        );
    }
    changes.publish(&ingest.live);
    Ok(due.len())
}

/// An event that cannot be applied: retried with backoff, then dead-lettered.
async fn record_failure(
    ingest: &Ingest,
    stored: &StoredEvent,
    error: &str,
) -> Result<(), sqlx::Error> {
    let attempts = stored.attempts as u32 + 1;
    if attempts >= ingest.settings.max_attempts {
        Metrics::inc(&ingest.metrics.events_dead_lettered);
        tracing::error!(event_id = %stored.id, event = %stored.event, room = %stored.room, attempts, %error, "webhook dead-lettered; replay with `attendance-server replay`");
        ingest.store.event_failed(&stored.id, error, None).await
    } else {
        let delay = backoff(ingest.settings.retry_base, attempts);
        Metrics::inc(&ingest.metrics.event_retries);
        tracing::warn!(event_id = %stored.id, event = %stored.event, room = %stored.room, attempts, retry_in_ms = delay.as_millis() as u64, %error, "webhook processing failed; will retry");
        ingest
            .store
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
}
