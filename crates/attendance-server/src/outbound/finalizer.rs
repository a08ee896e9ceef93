//! `session.finalized`: once a session's counting window has ended, its
//! final report goes in the outbox — and again, as a new message, whenever a
//! late fact or a schedule change alters the final result. What counts as
//! the result is hashed ([`final_digest`]); the digest last announced is
//! swapped in the same transaction as the message is written, so several
//! instances announce a result once.
//!
//! Which sessions to look at: those whose window ended since the last pass,
//! and ended ones whose schedule, roster, cycles or corrections were written
//! since (`updated_at`s in the database, so nothing is missed across
//! restarts). A pass looks [`MARGIN_MS`] further back than the last one
//! ended, to cover writes committed late and clocks that differ between
//! instances; looking twice costs a report, never a duplicate message.

use attendance_rules::Phase;
use tokio::sync::watch;

use super::events::{final_digest, session_finalized};
use super::Outbound;
use crate::domain::{now, now_ms};
use crate::report;

/// How much further back than the last pass each pass looks, in ms.
pub const MARGIN_MS: i64 = 60_000;

/// On a database never checked, sessions that ended this recently are
/// finalized (older ones are taken as announced long ago), in ms.
const FIRST_LOOKBACK_MS: i64 = 2 * 24 * 3600 * 1000;

pub async fn run(outbound: Outbound, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(outbound.settings.finalize_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(error) = finalize(&outbound).await {
            tracing::warn!(%error, "ended sessions not checked yet: store unavailable");
        }
    }
}

/// One pass; returns how many `session.finalized` were put in the outbox.
pub async fn finalize(outbound: &Outbound) -> Result<usize, sqlx::Error> {
    let started = now_ms();
    let since = match outbound.store.finals_checked_ms().await? {
        Some(checked) => checked - MARGIN_MS,
        None => started - FIRST_LOOKBACK_MS,
    };
    let mut announced = 0;
    for id in outbound.store.final_candidates(since, started).await? {
        let read_at = now();
        let Some(session) = outbound.store.session_by_id(id).await? else {
            continue;
        };
        let facts = outbound.store.session_facts(&session, None).await?;
        let report = report::session_report(&session, &facts, &outbound.classifier, None, read_at);
        if report.phase != Phase::Ended {
            continue;
        }
        let digest = final_digest(&report);
        let event = session_finalized(&report, read_at);
        if outbound
            .store
            .record_final(
                id,
                &session.room,
                &digest,
                read_at.timestamp_millis(),
                &event,
            )
            .await?
        {
            announced += 1;
            tracing::info!(room = %session.room, session = id, %digest, "session final result announced");
        }
    }
    outbound.store.set_finals_checked_ms(started).await?;
    if announced > 0 {
        outbound.kick();
    }
    Ok(announced)
}
