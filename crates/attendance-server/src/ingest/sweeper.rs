//! Closes cycles that LiveKit will not close for us: heartbeats gone stale
//! (a lost `participant_left`) and cycles still open after the window. When
//! and why is decided by `attendance_rules::sweep_close`.

use tokio::sync::watch;

use super::Ingest;
use crate::domain::now;
use crate::metrics::Metrics;

pub async fn run(ingest: Ingest, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(ingest.settings.sweep_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Err(error) = sweep(&ingest).await {
            tracing::warn!(%error, "sweep skipped: store unavailable");
        }
    }
}

/// One pass; returns how many cycles were closed.
pub async fn sweep(ingest: &Ingest) -> Result<usize, sqlx::Error> {
    // Judge staleness on every heartbeat received so far.
    ingest.store.flush_heartbeats().await?;
    let at = now();
    let mut closed = 0;
    for (cycle, session, last_beat) in ingest.store.open_cycles_with_sessions().await? {
        let Some(rules_cycle) = cycle.joined_at.map(attendance_rules::Cycle::open) else {
            continue;
        };
        let Some((close_at, reason)) =
            attendance_rules::sweep_close(&session.schedule, &rules_cycle, last_beat, at)
        else {
            continue;
        };
        if ingest
            .store
            .close_open_cycle(
                &cycle,
                close_at.timestamp_millis(),
                reason,
                at.timestamp_millis(),
            )
            .await?
        {
            closed += 1;
            Metrics::inc(&ingest.metrics.cycles_swept);
            tracing::info!(room = %cycle.room, identity = %cycle.identity, participant_sid = %cycle.participant_sid, reason = reason.as_str(), close_at = %close_at, "cycle closed by sweeper");
            ingest.live.changed(&cycle.room, Some(&cycle.identity));
        }
    }
    Ok(closed)
}
