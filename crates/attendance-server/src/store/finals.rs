//! What `session.finalized` needs: which ended sessions to look at again
//! (their window just ended, or their facts changed since), and the digest
//! of the final result last announced per session, swapped in the same
//! transaction as the announcement is put in the outbox.

use sqlx::Row;

use super::outbox::enqueue;
use super::{Store, StoreResult};
use crate::domain::OutboundEvent;

/// The longest counting window (24 h of class and 24 h of grace), in ms: a
/// session whose window ends after `since` was scheduled after `since` minus this.
const LONGEST_WINDOW_MS: i64 = 48 * 3600 * 1000;

/// The window's end, in SQL over `sessions` (an unscheduled session's is
/// known only from its instance: it is looked at whenever its facts change).
const WINDOW_END: &str = "window_end_ms";

impl Store {
    /// Up to when facts have been checked for changed final results; `None`
    /// before the first check on this database.
    pub async fn finals_checked_ms(&self) -> StoreResult<Option<i64>> {
        let row = sqlx::query("SELECT value FROM outbound_state WHERE name = 'finals_checked_ms'")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("value")).transpose()
    }

    /// Moves the mark forward (never back: instances may race).
    pub async fn set_finals_checked_ms(&self, at_ms: i64) -> StoreResult<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO outbound_state (name, value) VALUES ('finals_checked_ms', $1) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value \
             WHERE outbound_state.value < excluded.value",
        )
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sessions (lessons) whose window has ended by `now_ms` and either
    /// ended after `since_ms` or had their schedule, roster, their room's
    /// cycles or their corrections written after `since_ms`.
    pub async fn final_candidates(&self, since_ms: i64, now_ms: i64) -> StoreResult<Vec<i64>> {
        let rows = sqlx::query(&format!(
            "SELECT id FROM sessions WHERE (kind = 'unscheduled' OR {WINDOW_END} <= $2) AND (\
               (kind <> 'unscheduled' AND scheduled_at_ms > $3 AND {WINDOW_END} > $1) \
               OR updated_at_ms > $1 \
               OR room IN (SELECT room FROM cycles WHERE updated_at_ms > $1) \
               OR id IN (SELECT session_id FROM override_audit WHERE at_ms > $1)) \
             ORDER BY id"
        ))
        .bind(since_ms)
        .bind(now_ms)
        .bind(since_ms - LONGEST_WINDOW_MS)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get("id")).collect()
    }

    /// Records `digest` as the session's announced final result and puts
    /// `event` in the outbox, in one transaction — only if the digest
    /// differs from the one recorded and was computed from facts read later
    /// than it (an instance with an older read never overwrites a newer).
    /// Returns whether it did.
    pub async fn record_final(
        &self,
        session_id: i64,
        room: &str,
        digest: &str,
        computed_at_ms: i64,
        event: &OutboundEvent,
    ) -> StoreResult<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "INSERT INTO outbound_finals (session_id, room, digest, computed_at_ms, sent_at_ms) \
             VALUES ($1, $5, $2, $3, $4) ON CONFLICT (session_id) DO UPDATE SET digest = excluded.digest, \
             computed_at_ms = excluded.computed_at_ms, sent_at_ms = excluded.sent_at_ms \
             WHERE outbound_finals.digest <> excluded.digest \
             AND outbound_finals.computed_at_ms < excluded.computed_at_ms RETURNING session_id",
        )
        .bind(session_id)
        .bind(digest)
        .bind(computed_at_ms)
        .bind(event.created_at_ms)
        .bind(room)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if changed {
            enqueue(&mut tx, std::slice::from_ref(event)).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }
}
