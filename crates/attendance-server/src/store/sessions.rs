//! Sessions (lessons): a room has any number of them, each with a stable
//! id; reading a room's sessions (unscheduled ones with their instance's
//! span), the current one, and scheduling one (with its roster).

use std::collections::BTreeSet;

use attendance_rules::Schedule;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::outbox::enqueue;
use super::sql::{
    bind_schedule, grade_points_text, roster_entry_from_row, session_from_row, SESSION_SELECT,
};
use super::{Store, StoreResult};
use crate::domain::lessons::{current, current_until, Placement};
use crate::domain::{ms_to_time, OutboundEvent, RosterEntry, SessionDetails, SessionRow};

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

    /// Every session of a room, by start; unscheduled ones carry where
    /// their instance ended and where the next lesson cuts them.
    pub async fn room_sessions(&self, room: &str) -> StoreResult<Vec<SessionRow>> {
        let mut sessions = sqlx::query(&format!(
            "{SESSION_SELECT} WHERE room = $1 ORDER BY scheduled_at_ms, id"
        ))
        .bind(room)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(session_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        if sessions.iter().any(SessionRow::is_unscheduled) {
            self.resolve_instances(room, &mut sessions).await?;
        }
        Ok(sessions)
    }

    /// One session, by id.
    pub async fn session_by_id(&self, id: i64) -> StoreResult<Option<SessionRow>> {
        let room: Option<String> = sqlx::query("SELECT room FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("room"))
            .transpose()?;
        let Some(room) = room else { return Ok(None) };
        Ok(self
            .room_sessions(&room)
            .await?
            .into_iter()
            .find(|s| s.id == id))
    }

    /// The room's current session at `now` (window containing now, else the
    /// next upcoming, else the most recent), and until when it stays so.
    pub async fn current_session(
        &self,
        room: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(SessionRow, Option<i64>)>> {
        let sessions = self.room_sessions(room).await?;
        Ok(current(&sessions, now).map(|s| {
            let until = current_until(&sessions, s).map(|t| t.timestamp_millis());
            (s.clone(), until)
        }))
    }

    /// Sessions starting in `[from, to)`, by time: one row per lesson.
    pub async fn sessions_between(&self, from_ms: i64, to_ms: i64) -> StoreResult<Vec<SessionRow>> {
        let rows = sqlx::query(&format!(
            "{SESSION_SELECT} WHERE scheduled_at_ms >= $1 AND scheduled_at_ms < $2 \
             ORDER BY scheduled_at_ms, room, id"
        ))
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut sessions = rows
            .iter()
            .map(session_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let rooms: BTreeSet<String> = sessions
            .iter()
            .filter(|s| s.is_unscheduled())
            .map(|s| s.room.clone())
            .collect();
        for room in rooms {
            let resolved = self.room_sessions(&room).await?;
            for session in sessions.iter_mut().filter(|s| s.room == room) {
                if let Some(found) = resolved.iter().find(|r| r.id == session.id) {
                    *session = found.clone();
                }
            }
        }
        Ok(sessions)
    }

    /// Schedules a lesson as `placement` says; returns it and whether it
    /// was created.
    #[allow(clippy::too_many_arguments)]
    pub async fn schedule_lesson(
        &self,
        room: &str,
        placement: &Placement,
        details: &SessionDetails,
        schedule: &Schedule,
        roster: Option<&[RosterEntry]>,
        now_ms: i64,
        announce: impl FnOnce(Option<&SessionRow>, &SessionRow) -> Vec<OutboundEvent> + Send,
    ) -> StoreResult<(SessionRow, bool)> {
        let before = match placement.target {
            Some(id) => self.session_by_id(id).await?,
            None => None,
        };
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let id = match placement.target {
            Some(id) => {
                let update = sqlx::query(
                    "UPDATE sessions SET room = $2, kind = 'lesson', title = $3, scheduled_at_ms = $4, \
                     duration_minutes = $5, grace_minutes = $6, late_after_minutes = $7, present_percent = $8, \
                     heartbeat_stale_seconds = $9, window_end_ms = $10, timezone = $11, \
                     teacher_present_percent = $12, updated_at_ms = $13, grade_points = $14, \
                     customized = CASE WHEN class_id IS NULL THEN 0 ELSE 1 END WHERE id = $1",
                );
                bind_schedule(update.bind(id).bind(room).bind(&details.title), schedule)
                    .bind(&details.timezone)
                    .bind(i64::from(details.teacher_present_percent))
                    .bind(now_ms)
                    .bind(grade_points_text(details.grade_points.as_ref()))
                    .execute(&mut *tx)
                    .await?;
                id
            }
            None => insert_lesson(&mut tx, room, details, schedule, None, now_ms).await?,
        };
        for other in &placement.absorb {
            absorb(&mut tx, id, *other).await?;
        }
        if let Some(roster) = roster {
            replace_roster(&mut tx, id, roster, false).await?;
        }
        let session = session_in(&mut tx, id).await?;
        enqueue(&mut tx, &announce(before.as_ref(), &session)).await?;
        tx.commit().await?;
        self.facts_cache.invalidate_room(room);
        Ok((session, placement.target.is_none()))
    }

    /// Replaces a session's roster (it is then the lesson's own, no longer
    /// its class's); `false` if the session does not exist. `announce`
    /// turns the session into outbound events, written in the same
    /// transaction.
    pub async fn set_roster(
        &self,
        session: &SessionRow,
        roster: &[RosterEntry],
        now_ms: i64,
        announce: impl FnOnce(&SessionRow) -> Vec<OutboundEvent> + Send,
    ) -> StoreResult<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query("UPDATE sessions SET updated_at_ms = $2 WHERE id = $1")
            .bind(session.id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if found {
            replace_roster(&mut tx, session.id, roster, false).await?;
            let session = session_in(&mut tx, session.id).await?;
            enqueue(&mut tx, &announce(&session)).await?;
        }
        tx.commit().await?;
        self.facts_cache.invalidate_room(&session.room);
        Ok(found)
    }

    /// A session's roster, or one identity's place on it.
    pub async fn roster(
        &self,
        session_id: i64,
        identity: Option<&str>,
    ) -> StoreResult<Vec<RosterEntry>> {
        sqlx::query(
            "SELECT identity, name, role FROM roster WHERE session_id = $1 \
             AND ($2 = '' OR identity = $2) ORDER BY identity",
        )
        .bind(session_id)
        .bind(identity.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(roster_entry_from_row)
        .collect()
    }

    /// Rooms in which `identity` has cycles, an override or a roster place.
    ///
    /// The cycles are asked room by room (the next room after the last one,
    /// then that room's cycles of `identity`, each a seek in the index on
    /// room and identity): cycles have no index on identity alone, which
    /// every join would write into a page of its own, and a history is read
    /// far more rarely than a webhook is stored.
    pub async fn rooms_of_identity(&self, identity: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "WITH RECURSIVE rooms (room) AS ( \
               SELECT (SELECT room FROM cycles ORDER BY room LIMIT 1) \
               UNION ALL SELECT (SELECT c.room FROM cycles c WHERE c.room > rooms.room ORDER BY c.room LIMIT 1) \
               FROM rooms WHERE rooms.room IS NOT NULL) \
             SELECT room FROM rooms WHERE room IS NOT NULL \
             AND EXISTS (SELECT 1 FROM cycles c WHERE c.room = rooms.room AND c.identity = $1) \
             UNION SELECT s.room FROM roster r JOIN sessions s ON s.id = r.session_id WHERE r.identity = $1 \
             UNION SELECT room FROM attendance_overrides WHERE identity = $1",
        )
        .bind(identity)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get("room")).collect()
    }

    /// The lessons `identity` teaches by a roster: on the lesson's roster as
    /// a teacher, or on its class's.
    pub async fn lessons_taught_by(&self, identity: &str) -> StoreResult<BTreeSet<i64>> {
        let rows = sqlx::query(
            "SELECT r.session_id AS id FROM roster r WHERE r.identity = $1 AND r.role = 'teacher' \
             UNION SELECT s.id AS id FROM sessions s JOIN class_roster c ON c.class_id = s.class_id \
             WHERE c.identity = $1 AND c.role = 'teacher'",
        )
        .bind(identity)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get("id")).collect()
    }

    /// Whether `identity` teaches lesson `session_id` of `room` by a roster
    /// (see [`Store::lessons_taught_by`]).
    pub async fn teaches(&self, identity: &str, session_id: i64, room: &str) -> StoreResult<bool> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM sessions s WHERE s.id = $2 AND s.room = $3 AND (\
             EXISTS (SELECT 1 FROM roster r WHERE r.session_id = s.id AND r.identity = $1 AND r.role = 'teacher') \
             OR EXISTS (SELECT 1 FROM class_roster c WHERE c.class_id = s.class_id AND c.identity = $1 \
             AND c.role = 'teacher'))",
        )
        .bind(identity)
        .bind(session_id)
        .bind(room)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        Ok(n > 0)
    }

    /// Fills in where each unscheduled session's instance ended (LiveKit's
    /// `room_finished`, else the last leave once nobody is connected) and
    /// where the room's next lesson cuts it.
    async fn resolve_instances(&self, room: &str, sessions: &mut [SessionRow]) -> StoreResult<()> {
        let spans = sqlx::query(
            "SELECT c.room_sid, MAX(c.left_at_ms) AS last_left, \
             SUM(CASE WHEN c.left_at_ms IS NULL THEN 1 ELSE 0 END) AS open, \
             MAX(f.finished_at_ms) AS finished \
             FROM cycles c LEFT JOIN finished_rooms f ON f.room_sid = c.room_sid \
             WHERE c.room = $1 AND c.room_sid IN \
             (SELECT room_sid FROM sessions WHERE room = $1 AND kind = 'unscheduled') \
             GROUP BY c.room_sid",
        )
        .bind(room)
        .fetch_all(&self.pool)
        .await?;
        let lessons: Vec<DateTime<Utc>> = sessions
            .iter()
            .filter(|s| !s.is_unscheduled())
            .map(SessionRow::start)
            .collect();
        for session in sessions.iter_mut().filter(|s| s.is_unscheduled()) {
            let span = spans.iter().find(|r| {
                r.try_get::<String, _>("room_sid").ok().as_ref() == Some(&session.room_sid)
            });
            if let Some(span) = span {
                let finished: Option<i64> = span.try_get("finished")?;
                let last_left: Option<i64> = span.try_get("last_left")?;
                let open: i64 = span.try_get("open")?;
                session.ended_at = finished.or(last_left.filter(|_| open == 0)).map(ms_to_time);
            }
            session.cut_at = lessons.iter().copied().find(|&s| s > session.start());
        }
        Ok(())
    }
}

/// A session as the transaction sees it.
async fn session_in(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: i64) -> StoreResult<SessionRow> {
    let row = sqlx::query(&format!("{SESSION_SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    session_from_row(&row)
}

/// Inserts a lesson; returns its id.
pub(super) async fn insert_lesson(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    room: &str,
    details: &SessionDetails,
    schedule: &Schedule,
    class: Option<(i64, i64)>,
    now_ms: i64,
) -> StoreResult<i64> {
    let insert = sqlx::query(
        "INSERT INTO sessions (room, kind, title, scheduled_at_ms, duration_minutes, grace_minutes, \
         late_after_minutes, present_percent, heartbeat_stale_seconds, window_end_ms, timezone, \
         teacher_present_percent, created_at_ms, updated_at_ms, class_id, occurrence_ms, grade_points) \
         VALUES ($1, 'lesson', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15) RETURNING id",
    );
    let row = bind_schedule(insert.bind(room).bind(&details.title), schedule)
        .bind(&details.timezone)
        .bind(i64::from(details.teacher_present_percent))
        .bind(now_ms)
        .bind(class.map(|c| c.0))
        .bind(class.map(|c| c.1))
        .bind(grade_points_text(details.grade_points.as_ref()))
        .fetch_one(&mut **tx)
        .await?;
    row.try_get("id")
}

/// An unscheduled session taken over by lesson `into`: its corrections
/// (where the lesson has none for that person) and audit entries move
/// there, then it goes.
async fn absorb(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    into: i64,
    other: i64,
) -> StoreResult<()> {
    for sql in [
        "UPDATE attendance_overrides SET session_id = $1 WHERE session_id = $2 AND identity NOT IN \
         (SELECT identity FROM attendance_overrides WHERE session_id = $1)",
        "UPDATE override_audit SET session_id = $1 WHERE session_id = $2",
        "DELETE FROM attendance_overrides WHERE session_id = $2 AND $1 = $1",
        "DELETE FROM roster WHERE session_id = $2 AND $1 = $1",
        "DELETE FROM sessions WHERE id = $2 AND kind = 'unscheduled' AND $1 = $1",
    ] {
        sqlx::query(sql)
            .bind(into)
            .bind(other)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Replaces a session's roster; `from_class` marks it as the class's.
pub(super) async fn replace_roster(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    session_id: i64,
    roster: &[RosterEntry],
    from_class: bool,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM roster WHERE session_id = $1")
        .bind(session_id)
        .execute(&mut **tx)
        .await?;
    for entry in roster {
        sqlx::query(
            "INSERT INTO roster (session_id, identity, name, role) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (session_id, identity) DO UPDATE SET name = excluded.name, role = excluded.role",
        )
        .bind(session_id)
        .bind(&entry.identity)
        .bind(&entry.name)
        .bind(&entry.role)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("UPDATE sessions SET has_roster = 1, roster_from_class = $2 WHERE id = $1")
        .bind(session_id)
        .bind(i64::from(from_class))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
