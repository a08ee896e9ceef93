//! Teachers' corrections of one session's attendance, and their audit trail.

use sqlx::Row;

use super::outbox::enqueue;
use super::{Store, StoreResult};
use crate::domain::{ms_to_time, AuditRow, OutboundEvent, SessionRow};

/// One correction, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct Correction<'a> {
    pub identity: &'a str,
    /// `None` when the correction is removed.
    pub status: Option<&'a str>,
    pub reason: &'a str,
    pub author: &'a str,
    pub at_ms: i64,
}

impl Store {
    /// Sets a teacher's correction in one session and records it in the
    /// audit trail.
    pub async fn set_override(
        &self,
        session: &SessionRow,
        correction: Correction<'_>,
        outbound: &[OutboundEvent],
    ) -> StoreResult<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO attendance_overrides (session_id, room, identity, status, reason, author, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (session_id, identity) DO UPDATE SET \
             status = excluded.status, reason = excluded.reason, author = excluded.author, \
             created_at_ms = excluded.created_at_ms",
        )
        .bind(session.id)
        .bind(&session.room)
        .bind(correction.identity)
        .bind(correction.status.unwrap_or_default())
        .bind(correction.reason)
        .bind(correction.author)
        .bind(correction.at_ms)
        .execute(&mut *tx)
        .await?;
        audit(&mut tx, session, "set", correction).await?;
        enqueue(&mut tx, outbound).await?;
        tx.commit().await?;
        self.facts_cache
            .invalidate(&session.room, correction.identity);
        Ok(())
    }

    /// Removes a correction from one session; `false` if there was none.
    pub async fn remove_override(
        &self,
        session: &SessionRow,
        correction: Correction<'_>,
        outbound: &[OutboundEvent],
    ) -> StoreResult<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let removed =
            sqlx::query("DELETE FROM attendance_overrides WHERE session_id = $1 AND identity = $2")
                .bind(session.id)
                .bind(correction.identity)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
        if removed {
            audit(&mut tx, session, "remove", correction).await?;
            enqueue(&mut tx, outbound).await?;
        }
        tx.commit().await?;
        self.facts_cache
            .invalidate(&session.room, correction.identity);
        Ok(removed)
    }

    /// The corrections trail, newest first: everything, one room's, or one
    /// session's.
    pub async fn audit_trail(
        &self,
        room: Option<&str>,
        session_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT room, session_id, identity, action, status, reason, author, at_ms FROM override_audit \
             WHERE ($1 = '' OR room = $1) AND ($2 = 0 OR session_id = $2) \
             ORDER BY at_ms DESC, id DESC LIMIT $3",
        )
        .bind(room.unwrap_or(""))
        .bind(session_id.unwrap_or(0))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    room: r.try_get("room")?,
                    session_id: r.try_get("session_id")?,
                    identity: r.try_get("identity")?,
                    action: r.try_get("action")?,
                    status: r.try_get("status")?,
                    reason: r.try_get("reason")?,
                    author: r.try_get("author")?,
                    at: ms_to_time(r.try_get("at_ms")?),
                })
            })
            .collect()
    }
}

async fn audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    session: &SessionRow,
    action: &str,
    correction: Correction<'_>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO override_audit (room, session_id, identity, action, status, reason, author, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&session.room)
    .bind(session.id)
    .bind(correction.identity)
    .bind(action)
    .bind(correction.status)
    .bind(correction.reason)
    .bind(correction.author)
    .bind(correction.at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
