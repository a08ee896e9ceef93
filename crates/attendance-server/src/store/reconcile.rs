//! What reconciliation with LiveKit's RoomService reads and writes: which
//! rooms to check, whose turn it is (one instance per room per interval),
//! and the facts a check found.

use sqlx::Row;

use super::instances::ensure_instances;
use super::sql::{cycle_from_row, CYCLE_SELECT};
use super::{Store, StoreResult};
use crate::domain::{CycleRow, Reconciled};

impl Store {
    /// Rooms worth asking LiveKit about: in their counting window now, or
    /// holding a cycle still open here.
    pub async fn reconcile_targets(&self, now_ms: i64) -> StoreResult<Vec<String>> {
        sqlx::query(
            "SELECT room FROM sessions WHERE kind = 'lesson' AND scheduled_at_ms <= $1 \
             AND window_end_ms >= $1 \
             UNION SELECT room FROM cycles WHERE left_at_ms IS NULL ORDER BY room",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get("room"))
        .collect()
    }

    /// Takes the room's check, due at `now_ms`, and sets the next one for
    /// `next_at_ms`; `false` when it is not due (another instance took it).
    pub async fn claim_reconcile(
        &self,
        room: &str,
        now_ms: i64,
        next_at_ms: i64,
    ) -> StoreResult<bool> {
        let _turn = self.write_turn().await;
        let claimed = sqlx::query(
            "INSERT INTO reconcile_checks (room, next_at_ms) VALUES ($1, $2) \
             ON CONFLICT (room) DO UPDATE SET next_at_ms = excluded.next_at_ms \
             WHERE reconcile_checks.next_at_ms <= $3 RETURNING room",
        )
        .bind(room)
        .bind(next_at_ms)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(claimed.is_some())
    }

    /// Puts a room's next check off (LiveKit failed: back off).
    pub async fn defer_reconcile(&self, room: &str, next_at_ms: i64) -> StoreResult<()> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE reconcile_checks SET next_at_ms = $2 WHERE room = $1")
            .bind(room)
            .bind(next_at_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The room's open cycles, with the newest heartbeat of each identity.
    pub async fn open_cycles_in_room(
        &self,
        room: &str,
    ) -> StoreResult<Vec<(CycleRow, Option<i64>)>> {
        let rows = sqlx::query(&format!(
            "{CYCLE_SELECT} WHERE room = $1 AND left_at_ms IS NULL AND joined_at_ms IS NOT NULL"
        ))
        .bind(room)
        .fetch_all(&self.pool)
        .await?;
        let cycles = rows
            .iter()
            .map(cycle_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let beats =
            sqlx::query("SELECT identity, last_heartbeat_at_ms FROM heartbeats WHERE room = $1")
                .bind(room)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| {
                    Ok((
                        r.try_get::<String, _>("identity")?,
                        r.try_get::<i64, _>("last_heartbeat_at_ms")?,
                    ))
                })
                .collect::<StoreResult<std::collections::HashMap<_, _>>>()?;
        Ok(cycles
            .into_iter()
            .map(|c| {
                let beat = beats.get(&c.identity).copied();
                (c, beat)
            })
            .collect())
    }

    /// Applies one check's findings in one transaction; returns the
    /// identities whose facts changed. Idempotent, and never overrides
    /// LiveKit's own word: a close only closes what is still open, an open
    /// never touches a cycle a webhook wrote (it may reopen one that
    /// reconciliation itself closed, when LiveKit lists it again).
    pub async fn apply_reconciliation(
        &self,
        room: &str,
        found: &Reconciled,
        now_ms: i64,
    ) -> StoreResult<Vec<String>> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let mut changed = Vec::new();
        for (sid, at_ms) in &found.seen {
            sqlx::query(
                "UPDATE cycles SET seen_at_ms = $2 WHERE participant_sid = $1 \
                 AND (seen_at_ms IS NULL OR seen_at_ms < $2)",
            )
            .bind(sid)
            .bind(*at_ms)
            .execute(&mut *tx)
            .await?;
        }
        for (sid, identity, at_ms) in &found.closed {
            let closed = sqlx::query(
                "UPDATE cycles SET left_at_ms = $2, close_reason = 'reconciled', updated_at_ms = $3 \
                 WHERE participant_sid = $1 AND left_at_ms IS NULL",
            )
            .bind(sid)
            .bind(*at_ms)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if closed > 0 {
                changed.push(identity.clone());
            }
        }
        for (fact, seen_at_ms) in &found.opened {
            let opened = sqlx::query(
                "INSERT INTO cycles (participant_sid, room, room_sid, identity, name, kind, metadata, \
                 joined_at_ms, updated_at_ms, attributes, opened_by, seen_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'reconciled', $11) \
                 ON CONFLICT (participant_sid) DO UPDATE SET left_at_ms = NULL, close_reason = NULL, \
                 seen_at_ms = excluded.seen_at_ms, updated_at_ms = excluded.updated_at_ms \
                 WHERE cycles.close_reason = 'reconciled'",
            )
            .bind(&fact.participant_sid)
            .bind(room)
            .bind(&fact.room_sid)
            .bind(&fact.identity)
            .bind(&fact.name)
            .bind(&fact.kind)
            .bind(&fact.metadata)
            .bind(fact.joined_at_ms)
            .bind(now_ms)
            .bind(&fact.attributes)
            .bind(*seen_at_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if opened > 0 {
                changed.push(fact.identity.clone());
            }
        }
        let opened = ensure_instances(
            &mut tx,
            self.backend,
            found.opened.iter().map(|(fact, _)| fact),
            now_ms,
        )
        .await?;
        tx.commit().await?;
        for room in &opened {
            self.facts_cache.invalidate_room(room);
        }
        changed.sort();
        changed.dedup();
        for identity in &changed {
            self.facts_cache.invalidate(room, identity);
        }
        Ok(changed)
    }
}
