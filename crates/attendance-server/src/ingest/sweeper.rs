//! Closes cycles that LiveKit will not close for us: heartbeats gone stale
//! (a lost `participant_left`) and cycles still open after their lesson's
//! window. When and why is decided by `attendance_rules::sweep_close`.

use tokio::sync::watch;

use chrono::{DateTime, Utc};

use super::Ingest;
use crate::domain::lessons::{current, judging};
use crate::domain::{now, SessionRow};
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

/// One pass; returns how many cycles were closed. Each open cycle is
/// judged by the lesson it is in (see [`judging`]): closed when its
/// heartbeats went stale, or at that lesson's end once it is over.
pub async fn sweep(ingest: &Ingest) -> Result<usize, sqlx::Error> {
    // Judge staleness on every heartbeat received so far.
    ingest.store.flush_heartbeats().await?;
    let at = now();
    let mut closed = 0;
    let open = ingest.store.open_cycles_with_heartbeats().await?;
    let mut sessions: (String, Vec<SessionRow>) = (String::new(), Vec::new());
    for (cycle, last_beat) in open {
        if sessions.0 != cycle.room {
            sessions = (
                cycle.room.clone(),
                ingest.store.room_sessions(&cycle.room).await?,
            );
            refresh_if_running(ingest, &sessions.1, at);
        }
        let Some(joined) = cycle.joined_at else {
            continue;
        };
        let Some(session) = judging(&sessions.1, joined, at) else {
            continue; // nothing to judge by: no session in the room
        };
        let rules_cycle = attendance_rules::Cycle::open(joined);
        let schedule = session.schedule_at(at);
        let Some((close_at, reason)) =
            attendance_rules::sweep_close(&schedule, &rules_cycle, last_beat, at)
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

/// An unscheduled session still running grows every minute: once a
/// minute its room's live subscribers resync (its length so far).
fn refresh_if_running(ingest: &Ingest, sessions: &[SessionRow], at: DateTime<Utc>) {
    let Some(session) = current(sessions, at) else {
        return;
    };
    if !session.is_unscheduled() || session.end().is_some() {
        return;
    }
    let into_minute = (at - session.start()).num_milliseconds().rem_euclid(60_000);
    let every = ingest.settings.sweep_interval.as_millis() as i64;
    if into_minute < every.max(1) {
        ingest.live.changed(&session.room, None);
    }
}
