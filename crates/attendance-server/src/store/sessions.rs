//! Sessions, rosters and teachers' corrections (with their audit trail).

use attendance_rules::Schedule;
use sqlx::Row;

use super::outbox::enqueue;
use super::sql::{session_from_row, SESSION_SELECT};
use super::{Store, StoreResult};
use crate::domain::{ms_to_time, AuditRow, OutboundEvent, RosterEntry, SessionDetails, SessionRow};

impl Store {
    /// How many sessions are in rooms not named with `prefix` (demo mode
    /// refuses a database with real classes in it).
    pub async fn sessions_outside(&self, prefix: &str) -> StoreResult<i64> {
        sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE substr(room, 1, length($1)) <> $1")
            .bind(prefix)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")
    }

    /// Creates or replaces a session (and its roster, when given); returns
    /// it and whether it was new. `announce` turns the session before and
    /// after into outbound events, written in the same transaction.
    pub async fn upsert_session(
        &self,
        room: &str,
        details: &SessionDetails,
        schedule: &Schedule,
        roster: Option<&[RosterEntry]>,
        now_ms: i64,
        announce: impl FnOnce(Option<&SessionRow>, &SessionRow) -> Vec<OutboundEvent> + Send,
    ) -> StoreResult<(SessionRow, bool)> {
        let before = self.session(room).await?;
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (room, title, scheduled_at_ms, duration_minutes, grace_minutes, \
             late_after_minutes, present_percent, heartbeat_stale_seconds, created_at_ms, updated_at_ms, \
             timezone, teacher_present_percent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11) \
             ON CONFLICT (room) DO UPDATE SET title = excluded.title, \
             scheduled_at_ms = excluded.scheduled_at_ms, duration_minutes = excluded.duration_minutes, \
             grace_minutes = excluded.grace_minutes, late_after_minutes = excluded.late_after_minutes, \
             present_percent = excluded.present_percent, \
             heartbeat_stale_seconds = excluded.heartbeat_stale_seconds, updated_at_ms = excluded.updated_at_ms, \
             timezone = excluded.timezone, teacher_present_percent = excluded.teacher_present_percent",
        )
        .bind(room)
        .bind(&details.title)
        .bind(schedule.scheduled_at.timestamp_millis())
        .bind(i64::from(schedule.duration_minutes))
        .bind(i64::from(schedule.grace_minutes))
        .bind(i64::from(schedule.late_after_minutes))
        .bind(i64::from(schedule.present_percent))
        .bind(i64::from(schedule.heartbeat_stale_seconds))
        .bind(now_ms)
        .bind(&details.timezone)
        .bind(i64::from(details.teacher_present_percent))
        .execute(&mut *tx)
        .await?;
        if let Some(roster) = roster {
            replace_roster(&mut tx, room, roster).await?;
        }
        let session = session_in(&mut tx, room).await?;
        enqueue(&mut tx, &announce(before.as_ref(), &session)).await?;
        tx.commit().await?;
        self.facts_cache.invalidate_room(room);
        Ok((session, before.is_none()))
    }

    /// Replaces a session's roster; `false` if the session does not exist.
    /// `announce` turns the session into outbound events, written in the
    /// same transaction.
    pub async fn set_roster(
        &self,
        room: &str,
        roster: &[RosterEntry],
        now_ms: i64,
        announce: impl FnOnce(&SessionRow) -> Vec<OutboundEvent> + Send,
    ) -> StoreResult<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query("UPDATE sessions SET updated_at_ms = $2 WHERE room = $1")
            .bind(room)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if found {
            replace_roster(&mut tx, room, roster).await?;
            let session = session_in(&mut tx, room).await?;
            enqueue(&mut tx, &announce(&session)).await?;
        }
        tx.commit().await?;
        self.facts_cache.invalidate_room(room);
        Ok(found)
    }

    // ----- overrides -----

    /// Sets a teacher's correction and records it in the audit trail, with
    /// `outbound` events in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_override(
        &self,
        room: &str,
        identity: &str,
        status: &str,
        reason: &str,
        author: &str,
        now_ms: i64,
        outbound: &[OutboundEvent],
    ) -> StoreResult<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO attendance_overrides (room, identity, status, reason, author, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (room, identity) DO UPDATE SET \
             status = excluded.status, reason = excluded.reason, author = excluded.author, \
             created_at_ms = excluded.created_at_ms",
        )
        .bind(room)
        .bind(identity)
        .bind(status)
        .bind(reason)
        .bind(author)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            room,
            identity,
            "set",
            Some(status),
            reason,
            author,
            now_ms,
        )
        .await?;
        enqueue(&mut tx, outbound).await?;
        tx.commit().await?;
        self.facts_cache.invalidate(room, identity);
        Ok(())
    }

    /// Removes a correction, with `outbound` events in the same
    /// transaction; `false` if there was none.
    pub async fn remove_override(
        &self,
        room: &str,
        identity: &str,
        reason: &str,
        author: &str,
        now_ms: i64,
        outbound: &[OutboundEvent],
    ) -> StoreResult<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let removed =
            sqlx::query("DELETE FROM attendance_overrides WHERE room = $1 AND identity = $2")
                .bind(room)
                .bind(identity)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
        if removed {
            audit(
                &mut tx, room, identity, "remove", None, reason, author, now_ms,
            )
            .await?;
            enqueue(&mut tx, outbound).await?;
        }
        tx.commit().await?;
        self.facts_cache.invalidate(room, identity);
        Ok(removed)
    }

    pub async fn audit_trail(&self, room: Option<&str>, limit: i64) -> StoreResult<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT room, identity, action, status, reason, author, at_ms FROM override_audit \
             WHERE ($1 = '' OR room = $1) ORDER BY at_ms DESC, id DESC LIMIT $2",
        )
        .bind(room.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    room: r.try_get("room")?,
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

    /// Sessions scheduled in `[from, to)`, by time.
    pub async fn sessions_between(&self, from_ms: i64, to_ms: i64) -> StoreResult<Vec<SessionRow>> {
        let rows = sqlx::query(&format!(
            "{SESSION_SELECT} WHERE scheduled_at_ms >= $1 AND scheduled_at_ms < $2 ORDER BY scheduled_at_ms, room"
        ))
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    pub async fn session(&self, room: &str) -> StoreResult<Option<SessionRow>> {
        let row = sqlx::query(&format!("{SESSION_SELECT} WHERE room = $1"))
            .bind(room)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| session_from_row(&r)).transpose()
    }

    /// A room's roster, or one identity's place on it.
    pub async fn roster(
        &self,
        room: &str,
        identity: Option<&str>,
    ) -> StoreResult<Vec<RosterEntry>> {
        sqlx::query(
            "SELECT identity, name, role FROM roster WHERE room = $1 AND ($2 = '' OR identity = $2) ORDER BY identity",
        )
        .bind(room)
        .bind(identity.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok(RosterEntry { identity: r.try_get("identity")?, name: r.try_get("name")?, role: r.try_get("role")? }))
        .collect()
    }
}

/// A session as the transaction sees it.
async fn session_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    room: &str,
) -> StoreResult<SessionRow> {
    let row = sqlx::query(&format!("{SESSION_SELECT} WHERE room = $1"))
        .bind(room)
        .fetch_one(&mut **tx)
        .await?;
    session_from_row(&row)
}

async fn replace_roster(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    room: &str,
    roster: &[RosterEntry],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM roster WHERE room = $1")
        .bind(room)
        .execute(&mut **tx)
        .await?;
    for entry in roster {
        sqlx::query(
            "INSERT INTO roster (room, identity, name, role) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (room, identity) DO UPDATE SET name = excluded.name, role = excluded.role",
        )
        .bind(room)
        .bind(&entry.identity)
        .bind(&entry.name)
        .bind(&entry.role)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("UPDATE sessions SET has_roster = 1 WHERE room = $1")
        .bind(room)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    room: &str,
    identity: &str,
    action: &str,
    status: Option<&str>,
    reason: &str,
    author: &str,
    at_ms: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO override_audit (room, identity, action, status, reason, author, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(room)
    .bind(identity)
    .bind(action)
    .bind(status)
    .bind(reason)
    .bind(author)
    .bind(at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
