//! The one storage interface. SQLite (embedded default) and PostgreSQL run the
//! same SQL through sqlx's `Any` driver; each keeps its own migrations folder
//! (types differ), and the few dialect differences are named in [`Backend`].
//! Instants are stored as unix milliseconds (BIGINT) in both.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attendance_rules::{CloseReason, Schedule};
use chrono::{DateTime, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use crate::facts_cache::{FactsCache, Kept};

pub type StoreResult<T> = Result<T, sqlx::Error>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    url: String,
    /// Heartbeats not yet written: (room, identity) → newest instant and
    /// count. Written in one transaction per flush (`flush_heartbeats`), so a
    /// heartbeat costs no commit of its own; losing the last second of them
    /// in a crash is harmless (the next one comes within a minute).
    unflushed_heartbeats: Arc<Mutex<HeartbeatBuffer>>,
    /// One flush at a time: overlapping flushes would write (and count) the
    /// same heartbeats twice and lock rows against each other.
    flushing: Arc<tokio::sync::Mutex<()>>,
    /// Participants' facts as last read, for heartbeat replies; every write
    /// below that changes facts drops what it changes.
    facts_cache: FactsCache,
    /// SQLite takes one writer at a time, and a writer that finds the lock
    /// taken sleeps in SQLite's busy handler (1, 2, 5 … 100 ms steps): the
    /// inbox writer and the processor would make each other's tail latency.
    /// They queue here instead, in order. Unused on PostgreSQL.
    sqlite_writer: Arc<tokio::sync::Mutex<()>>,
}

/// (room, identity) → (newest heartbeat in unix ms, heartbeats since the last flush).
type HeartbeatBuffer = HashMap<(String, String), (i64, i64)>;

/// A stored session: the schedule plus what people call it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub room: String,
    pub title: String,
    pub schedule: Schedule,
    /// IANA time zone people read times in; empty = UTC.
    pub timezone: String,
    /// The `present` threshold for teachers (schools may pay by it).
    pub teacher_present_percent: u32,
    /// Whether a roster was set (an empty roster is still a roster).
    pub has_roster: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a teacher or admin sets besides the schedule.
#[derive(Debug, Clone, Default)]
pub struct SessionDetails {
    pub title: String,
    pub timezone: String,
    pub teacher_present_percent: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RosterEntry {
    pub identity: String,
    pub name: String,
    /// `student` or `teacher`.
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRow {
    pub identity: String,
    pub status: String,
    pub reason: String,
    pub author: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub room: String,
    pub identity: String,
    pub action: String,
    pub status: Option<String>,
    pub reason: String,
    pub author: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CycleRow {
    pub participant_sid: String,
    pub room: String,
    pub room_sid: String,
    pub identity: String,
    pub name: String,
    pub kind: String,
    pub metadata: String,
    /// LiveKit participant attributes, as a JSON object (or empty).
    pub attributes: String,
    pub joined_at: Option<DateTime<Utc>>,
    pub left_at: Option<DateTime<Utc>>,
    pub close_reason: Option<String>,
}

/// A webhook as stored in the inbox.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: String,
    pub event: String,
    pub room: String,
    pub created_at_ms: i64,
    pub body: String,
    pub status: String,
    pub attempts: i64,
    pub received_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// A verified webhook about to enter the inbox.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub event: String,
    pub room: String,
    pub created_at_ms: i64,
    /// The API key that signed it.
    pub api_key: String,
    /// The body exactly as received.
    pub body: String,
}

/// A connection opened (`participant_joined`) or seen closing.
#[derive(Debug, Clone)]
pub struct CycleFact {
    pub participant_sid: String,
    pub room: String,
    pub room_sid: String,
    pub identity: String,
    pub name: String,
    pub kind: String,
    pub metadata: String,
    pub attributes: String,
    pub joined_at_ms: Option<i64>,
}

impl CycleFact {
    /// Another join of the same connection, as a later upsert would merge
    /// it: its non-empty fields win, the first join time stays.
    fn fill_from(&mut self, later: &CycleFact) {
        for (mine, theirs) in [
            (&mut self.name, &later.name),
            (&mut self.kind, &later.kind),
            (&mut self.metadata, &later.metadata),
            (&mut self.room_sid, &later.room_sid),
            (&mut self.attributes, &later.attributes),
        ] {
            if !theirs.is_empty() {
                mine.clone_from(theirs);
            }
        }
        self.joined_at_ms = self.joined_at_ms.or(later.joined_at_ms);
    }
}

/// Everything needed to compute a room's attendance.
#[derive(Debug, Clone, Default)]
pub struct RoomFacts {
    pub session: Option<SessionRow>,
    pub cycles: Vec<CycleRow>,
    pub heartbeats: HashMap<String, DateTime<Utc>>,
    pub roster: Vec<RosterEntry>,
    pub overrides: HashMap<String, OverrideRow>,
}

impl RoomFacts {
    /// Records a heartbeat of `identity`, keeping the newer of two.
    pub fn note_heartbeat(&mut self, identity: &str, at: DateTime<Utc>) {
        let known = self.heartbeats.entry(identity.to_string()).or_insert(at);
        *known = (*known).max(at);
    }
}

pub fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The close reasons our own sweeper writes. LiveKit's own word about a
/// participant (`participant_left`, `participant_connection_aborted`)
/// replaces them; they never replace LiveKit's.
const SWEEPER_REASONS: &str = "('stale_heartbeat', 'session_ended')";

impl Store {
    /// Connects, applying SQLite's durability settings and the migrations.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let (url, backend) = if url.starts_with("sqlite:") {
            let url = if url.contains("mode=") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (url, Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (url.to_string(), Backend::Postgres)
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite: or postgres:, got `{url}`");
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            // Fail fast when the database is gone: the caller answers 503 and
            // LiveKit retries, rather than every request hanging.
            .acquire_timeout(Duration::from_secs(3))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL + synchronous=FULL: a commit is on disk before
                        // we acknowledge a webhook, even on power loss.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("../../migrations/sqlite").run(&pool).await?,
            Backend::Postgres => {
                sqlx::migrate!("../../migrations/postgres")
                    .run(&pool)
                    .await?
            }
        }
        Ok(Store {
            pool,
            backend,
            url,
            unflushed_heartbeats: Arc::default(),
            flushing: Arc::default(),
            facts_cache: FactsCache::default(),
            sqlite_writer: Arc::default(),
        })
    }

    /// Waits for this process's turn to write (SQLite only; see `sqlite_writer`).
    async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.sqlite_writer.lock().await),
            Backend::Postgres => None,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    // ----- sessions -----

    /// Creates or replaces a session (and its roster, when given); returns
    /// it and whether it was new.
    pub async fn upsert_session(
        &self,
        room: &str,
        details: &SessionDetails,
        schedule: &Schedule,
        roster: Option<&[RosterEntry]>,
        now_ms: i64,
    ) -> StoreResult<(SessionRow, bool)> {
        let existed = self.session(room).await?.is_some();
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
        tx.commit().await?;
        self.facts_cache.invalidate_room(room);
        let session = self.session(room).await?.ok_or(sqlx::Error::RowNotFound)?;
        Ok((session, !existed))
    }

    /// Replaces a session's roster; `false` if the session does not exist.
    pub async fn set_roster(
        &self,
        room: &str,
        roster: &[RosterEntry],
        now_ms: i64,
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
        }
        tx.commit().await?;
        self.facts_cache.invalidate_room(room);
        Ok(found)
    }

    // ----- overrides -----

    /// Sets a teacher's correction and records it in the audit trail.
    pub async fn set_override(
        &self,
        room: &str,
        identity: &str,
        status: &str,
        reason: &str,
        author: &str,
        now_ms: i64,
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
        tx.commit().await?;
        self.facts_cache.invalidate(room, identity);
        Ok(())
    }

    /// Removes a correction; `false` if there was none.
    pub async fn remove_override(
        &self,
        room: &str,
        identity: &str,
        reason: &str,
        author: &str,
        now_ms: i64,
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

    // ----- the webhook inbox -----

    /// Stores a batch of verified webhooks in one transaction (one fsync
    /// for all); per event, `false` when its id was already stored.
    pub async fn insert_events(&self, events: &[NewEvent], now_ms: i64) -> StoreResult<Vec<bool>> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let mut stored = vec![false; events.len()];
        // Always insert in id order: two instances storing the same
        // retried webhooks then lock rows in one order and never deadlock.
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by(|&a, &b| events[a].id.cmp(&events[b].id));
        // The same id twice in one batch: the first is stored, the rest are duplicates.
        order.dedup_by(|later, first| events[*later].id == events[*first].id);
        // Several rows per statement: one round trip to the database for
        // many webhooks is what group commit is for.
        for chunk in order.chunks(INSERT_ROWS_PER_STATEMENT) {
            // $1 is the time of receipt, shared by all rows.
            let rows = numbered_rows("(?, ?, ?, ?, $1, ?, ?, 'pending', 0, $1)", chunk.len(), 2);
            let sql = format!(
                "INSERT INTO webhook_events (id, event, room, created_at_ms, received_at_ms, api_key, body, \
                 status, attempts, next_attempt_at_ms) VALUES {rows} ON CONFLICT (id) DO NOTHING RETURNING id"
            );
            let mut query = sqlx::query(&sql).bind(now_ms);
            for &index in chunk {
                let event = &events[index];
                query = query
                    .bind(&event.id)
                    .bind(&event.event)
                    .bind(&event.room)
                    .bind(event.created_at_ms)
                    .bind(&event.api_key)
                    .bind(&event.body);
            }
            let inserted = query
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| row.try_get::<String, _>("id"))
                .collect::<StoreResult<HashSet<String>>>()?;
            for &index in chunk {
                stored[index] = inserted.contains(&events[index].id);
            }
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// Claims up to `limit` due events, oldest first, for `lease_ms`: other
    /// instances skip them until the lease runs out (so the work of an
    /// instance that died is picked up again, never lost).
    pub async fn claim_due_events(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredEvent>> {
        let rows = match self.backend {
            Backend::Postgres => {
                sqlx::query(&format!(
                    "UPDATE webhook_events SET next_attempt_at_ms = $2 WHERE id IN (\
                     SELECT id FROM webhook_events WHERE status = 'pending' AND next_attempt_at_ms <= $1 \
                     ORDER BY created_at_ms, received_at_ms, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                     RETURNING {EVENT_COLUMNS}"
                ))
                .bind(now_ms)
                .bind(now_ms + lease_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            // One instance per database file: nobody to reserve events from
            // (and after a crash the restarted instance resumes at once), so
            // a read, not a write with its own sync.
            Backend::Sqlite => {
                sqlx::query(&format!(
                    "{EVENT_SELECT} WHERE status = 'pending' AND next_attempt_at_ms <= $1 \
                     ORDER BY created_at_ms, received_at_ms, id LIMIT $2"
                ))
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        let mut events = rows
            .iter()
            .map(event_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        // RETURNING has no order: restore the order of events in time.
        events.sort_by(|a, b| {
            (a.created_at_ms, a.received_at, &a.id).cmp(&(b.created_at_ms, b.received_at, &b.id))
        });
        Ok(events)
    }

    pub async fn events_by_status(
        &self,
        status: &str,
        limit: i64,
    ) -> StoreResult<Vec<StoredEvent>> {
        let rows = sqlx::query(&format!(
            "{EVENT_SELECT} WHERE status = $1 ORDER BY received_at_ms DESC, id LIMIT $2"
        ))
        .bind(status)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Records a failed attempt: retried at `retry_at_ms`, or dead-lettered.
    pub async fn event_failed(
        &self,
        id: &str,
        error: &str,
        retry_at_ms: Option<i64>,
    ) -> StoreResult<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE webhook_events SET attempts = attempts + 1, last_error = $2, \
             status = CASE WHEN $3 < 0 THEN 'failed' ELSE 'pending' END, \
             next_attempt_at_ms = CASE WHEN $3 < 0 THEN next_attempt_at_ms ELSE $3 END \
             WHERE id = $1",
        )
        .bind(id)
        .bind(error)
        .bind(retry_at_ms.unwrap_or(-1))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Puts a dead-lettered event back in the queue; `false` if unknown.
    pub async fn replay_event(&self, id: &str, now_ms: i64) -> StoreResult<bool> {
        let _turn = self.write_turn().await;
        let result = sqlx::query(
            "UPDATE webhook_events SET status = 'pending', attempts = 0, next_attempt_at_ms = $2 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    pub async fn oldest_pending_received_ms(&self) -> StoreResult<Option<i64>> {
        sqlx::query(
            "SELECT MIN(received_at_ms) AS oldest FROM webhook_events WHERE status = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?
        .try_get("oldest")
    }

    pub async fn event_counts(&self) -> StoreResult<HashMap<String, i64>> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM webhook_events GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect()
    }

    /// Applies a batch of events' facts and marks them processed, in one
    /// transaction: each event is processed exactly once even if the process
    /// dies in between, or two instances race for it. Per event, `false` if
    /// it was already processed.
    pub async fn apply_events(
        &self,
        events: &[(&str, &EventFacts)],
        now_ms: i64,
    ) -> StoreResult<Vec<bool>> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let mut pending = mark_processed(&mut tx, events.iter().map(|(id, _)| *id), now_ms).await?;
        let mut applied = Vec::with_capacity(events.len());
        let mut ours = Vec::with_capacity(events.len());
        for (id, facts) in events {
            // Marked by another instance, or processed already: not again.
            let mine = pending.remove(*id);
            if mine {
                ours.push(*facts);
            }
            applied.push(mine);
        }
        apply_batch(&mut tx, &ours, now_ms).await?;
        tx.commit().await?;
        for (_, facts) in events {
            match facts {
                EventFacts::Joined(fact) | EventFacts::Closed { fact, .. } => {
                    self.facts_cache.invalidate(&fact.room, &fact.identity)
                }
                EventFacts::RoomFinished { room, .. } => self.facts_cache.invalidate_room(room),
                EventFacts::Ignored => {}
            }
        }
        Ok(applied)
    }

    // ----- cycles and heartbeats -----

    pub async fn room_facts(&self, room: &str) -> StoreResult<RoomFacts> {
        self.facts(room, None).await
    }

    /// One identity's facts in a room.
    pub async fn participant_facts(&self, room: &str, identity: &str) -> StoreResult<RoomFacts> {
        self.facts(room, Some(identity)).await
    }

    /// One identity's facts, from what was kept since the last change to
    /// them when possible (see [`FactsCache`]); heartbeats are as fresh as
    /// [`Store::participant_facts`] gives them.
    pub async fn participant_facts_kept(
        &self,
        room: &str,
        identity: &str,
    ) -> StoreResult<RoomFacts> {
        // Buffer first, as in `facts`: an entry leaves it only once written,
        // and a written one has been noted in the kept entry.
        let buffered = self.buffered_heartbeats(room, Some(identity));
        let kept = match self.facts_cache.get(room, identity) {
            Ok(kept) => kept,
            Err(ticket) => {
                let facts = Arc::new(self.facts(room, Some(identity)).await?);
                self.facts_cache.keep(ticket, facts.clone());
                Kept {
                    facts,
                    heartbeat_ms: None,
                }
            }
        };
        let mut facts = Arc::unwrap_or_clone(kept.facts);
        let newest = buffered
            .into_iter()
            .map(|(_, at_ms)| at_ms)
            .chain(kept.heartbeat_ms)
            .max();
        if let Some(at_ms) = newest {
            facts.note_heartbeat(identity, ms_to_time(at_ms));
        }
        Ok(facts)
    }

    /// What is kept for heartbeat replies; another instance's announcements
    /// update it (this instance's own writes already do).
    pub fn facts_cache(&self) -> &FactsCache {
        &self.facts_cache
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

    /// A room's facts, for everyone or for one identity (`$2 = ''` = all).
    async fn facts(&self, room: &str, identity: Option<&str>) -> StoreResult<RoomFacts> {
        let who = identity.unwrap_or("");
        let buffered = self.buffered_heartbeats(room, identity);
        let session = self.session(room).await?;
        let cycles = sqlx::query(&format!(
            "{CYCLE_SELECT} WHERE room = $1 AND ($2 = '' OR identity = $2) \
             ORDER BY identity, joined_at_ms, participant_sid"
        ))
        .bind(room)
        .bind(who)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(cycle_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        let heartbeats = sqlx::query(
            "SELECT identity, last_heartbeat_at_ms FROM heartbeats WHERE room = $1 AND ($2 = '' OR identity = $2)",
        )
        .bind(room)
        .bind(who)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("identity")?, ms_to_time(r.try_get("last_heartbeat_at_ms")?))))
        .collect::<StoreResult<HashMap<_, _>>>()?;
        let roster = self.roster(room, identity).await?;
        let overrides = sqlx::query(
            "SELECT identity, status, reason, author, created_at_ms FROM attendance_overrides \
             WHERE room = $1 AND ($2 = '' OR identity = $2)",
        )
        .bind(room)
        .bind(who)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let o = OverrideRow {
                identity: r.try_get("identity")?,
                status: r.try_get("status")?,
                reason: r.try_get("reason")?,
                author: r.try_get("author")?,
                created_at: ms_to_time(r.try_get("created_at_ms")?),
            };
            Ok((o.identity.clone(), o))
        })
        .collect::<StoreResult<HashMap<_, _>>>()?;
        let mut facts = RoomFacts {
            session,
            cycles,
            heartbeats,
            roster,
            overrides,
        };
        for (who, at_ms) in buffered {
            facts.note_heartbeat(&who, ms_to_time(at_ms));
        }
        Ok(facts)
    }

    /// Rooms in which `identity` has cycles, an override or a roster place.
    pub async fn rooms_of_identity(&self, identity: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT room FROM cycles WHERE identity = $1 UNION SELECT room FROM roster WHERE identity = $1 \
             UNION SELECT room FROM attendance_overrides WHERE identity = $1",
        )
        .bind(identity)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get("room")).collect()
    }

    /// Notes a heartbeat; written by the next [`Store::flush_heartbeats`].
    /// Returns the previous heartbeat this instance knows of, if any.
    pub fn record_heartbeat(&self, room: &str, identity: &str, at_ms: i64) {
        let mut pending = self.unflushed_heartbeats.lock().expect("heartbeat buffer");
        let entry = pending
            .entry((room.to_string(), identity.to_string()))
            .or_insert((at_ms, 0));
        entry.0 = entry.0.max(at_ms);
        entry.1 += 1;
    }

    /// Writes every buffered heartbeat in one transaction. Entries leave the
    /// buffer only once written, so reads never miss one in between.
    pub async fn flush_heartbeats(&self) -> StoreResult<usize> {
        let _one_at_a_time = self.flushing.lock().await;
        let batch = self
            .unflushed_heartbeats
            .lock()
            .expect("heartbeat buffer")
            .clone();
        if batch.is_empty() {
            return Ok(0);
        }
        // A fixed row order: instances flushing at once never deadlock.
        let mut rows: Vec<_> = batch.iter().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks(APPLY_ROWS_PER_STATEMENT) {
            let rows = numbered_rows("(?, ?, ?, ?)", chunk.len(), 1);
            let sql = format!(
                "INSERT INTO heartbeats (room, identity, last_heartbeat_at_ms, beats) VALUES {rows} \
                 ON CONFLICT (room, identity) DO UPDATE SET beats = heartbeats.beats + excluded.beats, \
                 last_heartbeat_at_ms = CASE WHEN excluded.last_heartbeat_at_ms > heartbeats.last_heartbeat_at_ms \
                 THEN excluded.last_heartbeat_at_ms ELSE heartbeats.last_heartbeat_at_ms END"
            );
            let mut query = sqlx::query(&sql);
            for ((room, identity), (at_ms, beats)) in chunk {
                query = query.bind(room).bind(identity).bind(*at_ms).bind(*beats);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        for ((room, identity), (at_ms, _)) in &batch {
            self.facts_cache.note_heartbeat(room, identity, *at_ms);
        }
        let mut pending = self.unflushed_heartbeats.lock().expect("heartbeat buffer");
        for (key, (at_ms, beats)) in &batch {
            if let Some(entry) = pending.get_mut(key) {
                if entry.0 <= *at_ms && entry.1 <= *beats {
                    pending.remove(key);
                } else {
                    entry.1 -= beats; // newer beats arrived meanwhile: keep them
                }
            }
        }
        Ok(batch.len())
    }

    /// Buffered heartbeats of a room (or one identity), so they count as
    /// soon as they arrive. Read *before* the table: an entry leaves the
    /// buffer only after its write committed, so one of the two has it.
    fn buffered_heartbeats(&self, room: &str, identity: Option<&str>) -> Vec<(String, i64)> {
        let pending = self.unflushed_heartbeats.lock().expect("heartbeat buffer");
        match identity {
            Some(who) => pending
                .get(&(room.to_string(), who.to_string()))
                .map(|(at_ms, _)| vec![(who.to_string(), *at_ms)])
                .unwrap_or_default(),
            None => pending
                .iter()
                .filter(|((r, _), _)| r == room)
                .map(|((_, who), (at_ms, _))| (who.clone(), *at_ms))
                .collect(),
        }
    }

    /// Open cycles in rooms that have a schedule, for the sweeper.
    pub async fn open_cycles_with_sessions(
        &self,
    ) -> StoreResult<Vec<(CycleRow, SessionRow, Option<DateTime<Utc>>)>> {
        let rows = sqlx::query(
            "SELECT c.participant_sid, c.room, c.room_sid, c.identity, c.name, c.kind, c.metadata, \
             c.attributes, c.joined_at_ms, c.left_at_ms, c.close_reason, \
             s.title, s.scheduled_at_ms, s.duration_minutes, s.grace_minutes, s.late_after_minutes, \
             s.present_percent, s.heartbeat_stale_seconds, s.created_at_ms, s.updated_at_ms, \
             s.timezone, s.teacher_present_percent, s.has_roster, \
             h.last_heartbeat_at_ms \
             FROM cycles c JOIN sessions s ON s.room = c.room \
             LEFT JOIN heartbeats h ON h.room = c.room AND h.identity = c.identity \
             WHERE c.left_at_ms IS NULL AND c.joined_at_ms IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let beat: Option<i64> = r.try_get("last_heartbeat_at_ms")?;
                Ok((
                    cycle_from_row(r)?,
                    session_from_row(r)?,
                    beat.map(ms_to_time),
                ))
            })
            .collect()
    }

    /// Closes a still-open cycle; `false` if someone closed it first.
    pub async fn close_open_cycle(
        &self,
        cycle: &CycleRow,
        at_ms: i64,
        reason: CloseReason,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let _turn = self.write_turn().await;
        let result = sqlx::query(
            "UPDATE cycles SET left_at_ms = $2, close_reason = $3, updated_at_ms = $4 \
             WHERE participant_sid = $1 AND left_at_ms IS NULL",
        )
        .bind(&cycle.participant_sid)
        .bind(at_ms)
        .bind(reason.as_str())
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        self.facts_cache.invalidate(&cycle.room, &cycle.identity);
        Ok(result.rows_affected() == 1)
    }

    /// Open cycles of one identity in a room (demo mode's "leave").
    pub async fn open_cycles(&self, room: &str, identity: &str) -> StoreResult<Vec<CycleRow>> {
        sqlx::query(&format!(
            "{CYCLE_SELECT} WHERE room = $1 AND identity = $2 AND left_at_ms IS NULL"
        ))
        .bind(room)
        .bind(identity)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(cycle_from_row)
        .collect()
    }
}

/// What one webhook means for the cycles table.
#[derive(Debug, Clone)]
pub enum EventFacts {
    Joined(CycleFact),
    Closed {
        fact: CycleFact,
        at_ms: i64,
        reason: CloseReason,
    },
    RoomFinished {
        room: String,
        room_sid: String,
        at_ms: i64,
    },
    Ignored,
}

const SESSION_SELECT: &str =
    "SELECT room, title, scheduled_at_ms, duration_minutes, grace_minutes, \
     late_after_minutes, present_percent, heartbeat_stale_seconds, created_at_ms, updated_at_ms, \
     timezone, teacher_present_percent, has_roster FROM sessions";

const CYCLE_SELECT: &str =
    "SELECT participant_sid, room, room_sid, identity, name, kind, metadata, \
     attributes, joined_at_ms, left_at_ms, close_reason FROM cycles";

/// `rows` copies of `row`, comma-separated, each `?` numbered as a
/// parameter (`$first`, `$first + 1`, … across all rows), for multi-row
/// statements: `numbered_rows("(?, ?)", 2, 2)` is `($2, $3), ($4, $5)`.
fn numbered_rows(row: &str, rows: usize, first: usize) -> String {
    let mut next = first;
    let mut out = String::with_capacity(rows * (row.len() + 8));
    for i in 0..rows {
        if i > 0 {
            out.push_str(", ");
        }
        for c in row.chars() {
            if c == '?' {
                out.push('$');
                out.push_str(&next.to_string());
                next += 1;
            } else {
                out.push(c);
            }
        }
    }
    out
}

/// Ids per statement when marking a batch processed.
const MARK_IDS_PER_STATEMENT: usize = 256;

/// Rows per multi-row webhook insert (7 parameters each).
const INSERT_ROWS_PER_STATEMENT: usize = 64;

const EVENT_COLUMNS: &str =
    "id, event, room, created_at_ms, body, status, attempts, received_at_ms, last_error";

const EVENT_SELECT: &str = "SELECT id, event, room, created_at_ms, body, status, attempts, received_at_ms, last_error FROM webhook_events";

fn small(row: &AnyRow, column: &str) -> StoreResult<u32> {
    let value: i64 = row.try_get(column)?;
    u32::try_from(value).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn session_from_row(row: &AnyRow) -> StoreResult<SessionRow> {
    Ok(SessionRow {
        room: row.try_get("room")?,
        title: row.try_get("title")?,
        schedule: Schedule {
            scheduled_at: ms_to_time(row.try_get("scheduled_at_ms")?),
            duration_minutes: small(row, "duration_minutes")?,
            grace_minutes: small(row, "grace_minutes")?,
            late_after_minutes: small(row, "late_after_minutes")?,
            present_percent: small(row, "present_percent")?,
            heartbeat_stale_seconds: small(row, "heartbeat_stale_seconds")?,
        },
        timezone: row.try_get("timezone")?,
        teacher_present_percent: small(row, "teacher_present_percent")?,
        has_roster: row.try_get::<i64, _>("has_roster")? != 0,
        created_at: ms_to_time(row.try_get("created_at_ms")?),
        updated_at: ms_to_time(row.try_get("updated_at_ms")?),
    })
}

fn cycle_from_row(row: &AnyRow) -> StoreResult<CycleRow> {
    let joined: Option<i64> = row.try_get("joined_at_ms")?;
    let left: Option<i64> = row.try_get("left_at_ms")?;
    Ok(CycleRow {
        participant_sid: row.try_get("participant_sid")?,
        room: row.try_get("room")?,
        room_sid: row.try_get("room_sid")?,
        identity: row.try_get("identity")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        metadata: row.try_get("metadata")?,
        attributes: row.try_get("attributes")?,
        joined_at: joined.map(ms_to_time),
        left_at: left.map(ms_to_time),
        close_reason: row.try_get("close_reason")?,
    })
}

fn event_from_row(row: &AnyRow) -> StoreResult<StoredEvent> {
    Ok(StoredEvent {
        id: row.try_get("id")?,
        event: row.try_get("event")?,
        room: row.try_get("room")?,
        created_at_ms: row.try_get("created_at_ms")?,
        body: row.try_get("body")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        received_at: ms_to_time(row.try_get("received_at_ms")?),
        last_error: row.try_get("last_error")?,
    })
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

/// Marks the batch's still-pending events processed, in one statement, and
/// returns their ids. This takes the rows' locks first: a racing instance
/// waits there, then finds them no longer pending and backs off.
async fn mark_processed<'a>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ids: impl Iterator<Item = &'a str>,
    now_ms: i64,
) -> StoreResult<std::collections::HashSet<String>> {
    let mut ids: Vec<&str> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    let mut marked = HashSet::new();
    for chunk in ids.chunks(MARK_IDS_PER_STATEMENT) {
        let ids = numbered_rows("?", chunk.len(), 2);
        let sql = format!(
            "UPDATE webhook_events SET status = 'processed', attempts = attempts + 1, \
             processed_at_ms = $1, last_error = NULL WHERE status = 'pending' AND id IN ({ids}) RETURNING id"
        );
        let mut query = sqlx::query(&sql).bind(now_ms);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            marked.insert(row.try_get::<String, _>("id")?);
        }
    }
    Ok(marked)
}

/// Rows per multi-row statement when applying a batch (at most 10
/// parameters each).
const APPLY_ROWS_PER_STATEMENT: usize = 100;

/// Applies a batch's facts in a handful of statements, not several per
/// event: every statement is a round trip to the database.
///
/// The result does not depend on the order of events inside the batch, as
/// it does not across batches: cycles are written first (what a leave says,
/// then what a join says over it), then rooms that finished close what is
/// open in them, then LiveKit's closes (of two closes the earlier wins, and
/// replaces a sweeper's guess), then joins into rooms that had already
/// finished are closed at the finish.
async fn apply_batch(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    batch: &[&EventFacts],
    now_ms: i64,
) -> StoreResult<()> {
    // Per participant sid, in sid order (a fixed row order: concurrent
    // batches lock rows in the same order).
    let mut joins: BTreeMap<&str, CycleFact> = BTreeMap::new();
    let mut closes: BTreeMap<&str, (&CycleFact, i64, CloseReason)> = BTreeMap::new();
    let mut finished = Vec::new();
    for facts in batch {
        match facts {
            EventFacts::Joined(fact) => {
                joins
                    .entry(&fact.participant_sid)
                    .and_modify(|known| known.fill_from(fact))
                    .or_insert_with(|| fact.clone());
            }
            EventFacts::Closed {
                fact,
                at_ms,
                reason,
            } => {
                let close = closes
                    .entry(&fact.participant_sid)
                    .or_insert((fact, *at_ms, *reason));
                if *at_ms < close.1 {
                    *close = (fact, *at_ms, *reason);
                }
            }
            EventFacts::RoomFinished {
                room,
                room_sid,
                at_ms,
            } => finished.push((room, room_sid, *at_ms)),
            EventFacts::Ignored => {}
        }
    }
    let close_facts: Vec<&CycleFact> = closes.values().map(|(fact, _, _)| *fact).collect();
    upsert_cycles(
        tx,
        &close_facts,
        now_ms,
        "joined_at_ms = COALESCE(cycles.joined_at_ms, excluded.joined_at_ms)",
    )
    .await?;
    let join_facts: Vec<&CycleFact> = joins.values().collect();
    // What LiveKit says at join fills in what a reordered leave could not.
    upsert_cycles(
        tx,
        &join_facts,
        now_ms,
        "joined_at_ms = COALESCE(cycles.joined_at_ms, excluded.joined_at_ms), \
         name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE cycles.name END, \
         kind = CASE WHEN excluded.kind <> '' THEN excluded.kind ELSE cycles.kind END, \
         metadata = CASE WHEN excluded.metadata <> '' THEN excluded.metadata ELSE cycles.metadata END, \
         room_sid = CASE WHEN excluded.room_sid <> '' THEN excluded.room_sid ELSE cycles.room_sid END, \
         updated_at_ms = excluded.updated_at_ms, \
         attributes = CASE WHEN excluded.attributes <> '' THEN excluded.attributes ELSE cycles.attributes END",
    )
    .await?;
    for (room, room_sid, at_ms) in finished {
        sqlx::query(
            "INSERT INTO finished_rooms (room_sid, room, finished_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (room_sid) DO NOTHING",
        )
        .bind(room_sid)
        .bind(room)
        .bind(at_ms)
        .execute(&mut **tx)
        .await?;
        // Without a room sid, close by name: every open cycle there.
        sqlx::query(
            "UPDATE cycles SET left_at_ms = $3, close_reason = 'room_finished', updated_at_ms = $4 \
             WHERE left_at_ms IS NULL AND room = $1 AND (room_sid = $2 OR $2 = '')",
        )
        .bind(room)
        .bind(room_sid)
        .bind(at_ms)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
    }
    let closes: Vec<_> = closes.into_iter().collect();
    for chunk in closes.chunks(APPLY_ROWS_PER_STATEMENT) {
        let values = numbered_rows("(?, ?, ?)", chunk.len(), 2);
        // LiveKit's close wins over the sweeper's guess; of two LiveKit
        // closes, the earlier one is the truth.
        let sql = format!(
            "WITH closing (sid, close_at_ms, reason) AS (VALUES {values}) \
             UPDATE cycles SET left_at_ms = closing.close_at_ms, close_reason = closing.reason, \
             updated_at_ms = $1 FROM closing WHERE cycles.participant_sid = closing.sid \
             AND (cycles.left_at_ms IS NULL OR cycles.close_reason IN {SWEEPER_REASONS} \
             OR cycles.left_at_ms > closing.close_at_ms)"
        );
        let mut query = sqlx::query(&sql).bind(now_ms);
        for (sid, (_, at_ms, reason)) in chunk {
            query = query.bind(*sid).bind(*at_ms).bind(reason.as_str());
        }
        query.execute(&mut **tx).await?;
    }
    // A join into a room that had already finished (events reordered).
    let joined: Vec<&str> = joins.keys().copied().collect();
    for chunk in joined.chunks(APPLY_ROWS_PER_STATEMENT) {
        let sids = numbered_rows("?", chunk.len(), 2);
        let sql = format!(
            "UPDATE cycles SET left_at_ms = (SELECT finished_at_ms FROM finished_rooms f \
             WHERE f.room_sid = cycles.room_sid), close_reason = 'room_finished', updated_at_ms = $1 \
             WHERE participant_sid IN ({sids}) AND left_at_ms IS NULL AND room_sid <> '' \
             AND EXISTS (SELECT 1 FROM finished_rooms f WHERE f.room_sid = cycles.room_sid)"
        );
        let mut query = sqlx::query(&sql).bind(now_ms);
        for sid in chunk {
            query = query.bind(*sid);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Inserts cycles, or updates those already there with `on_conflict` (an
/// `ON CONFLICT … DO UPDATE SET` list; `excluded.*` is the fact). At most one
/// fact per participant sid.
async fn upsert_cycles(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    facts: &[&CycleFact],
    now_ms: i64,
    on_conflict: &str,
) -> StoreResult<()> {
    for chunk in facts.chunks(APPLY_ROWS_PER_STATEMENT) {
        // $1 is the write time, shared by all rows.
        let rows = numbered_rows(
            "(?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, $1, ?)",
            chunk.len(),
            2,
        );
        let sql = format!(
            "INSERT INTO cycles (participant_sid, room, room_sid, identity, name, kind, metadata, \
             joined_at_ms, left_at_ms, close_reason, updated_at_ms, attributes) VALUES {rows} \
             ON CONFLICT (participant_sid) DO UPDATE SET {on_conflict}"
        );
        let mut query = sqlx::query(&sql).bind(now_ms);
        for fact in chunk {
            query = query
                .bind(&fact.participant_sid)
                .bind(&fact.room)
                .bind(&fact.room_sid)
                .bind(&fact.identity)
                .bind(&fact.name)
                .bind(&fact.kind)
                .bind(&fact.metadata)
                .bind(fact.joined_at_ms)
                .bind(&fact.attributes);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_764_000_000_000; // some instant, in ms
    const MINUTE: i64 = 60_000;

    fn fact(sid: &str, identity: &str, joined_minute: Option<i64>, name: &str) -> CycleFact {
        CycleFact {
            participant_sid: sid.into(),
            room: "r".into(),
            room_sid: "RM_1".into(),
            identity: identity.into(),
            name: name.into(),
            kind: String::new(),
            metadata: String::new(),
            attributes: String::new(),
            joined_at_ms: joined_minute.map(|m| T + m * MINUTE),
        }
    }

    /// A close whose participant info says it joined at `joined`.
    fn closed(sid: &str, identity: &str, joined: i64, minute: i64) -> EventFacts {
        EventFacts::Closed {
            fact: fact(sid, identity, Some(joined), ""),
            at_ms: T + minute * MINUTE,
            reason: CloseReason::Left,
        }
    }

    /// Stores `batch` as pending webhooks, then applies it as one batch.
    async fn apply(store: &Store, prefix: &str, batch: &[EventFacts]) -> Vec<bool> {
        let ids: Vec<String> = (0..batch.len())
            .map(|i| format!("EV_{prefix}{i}"))
            .collect();
        let events: Vec<NewEvent> = ids
            .iter()
            .map(|id| NewEvent {
                id: id.clone(),
                event: "test".into(),
                room: "r".into(),
                created_at_ms: T,
                api_key: "k".into(),
                body: "{}".into(),
            })
            .collect();
        store.insert_events(&events, T).await.unwrap();
        let pairs: Vec<(&str, &EventFacts)> =
            ids.iter().map(String::as_str).zip(batch.iter()).collect();
        store.apply_events(&pairs, T).await.unwrap()
    }

    fn cycle<'a>(facts: &'a RoomFacts, sid: &str) -> &'a CycleRow {
        facts
            .cycles
            .iter()
            .find(|c| c.participant_sid == sid)
            .unwrap_or_else(|| panic!("no cycle {sid}"))
    }

    /// A store on a fresh SQLite file, removed with the returned directory.
    async fn temp_store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        (Store::connect(&url, 2).await.unwrap(), dir)
    }

    fn minute(at: Option<DateTime<Utc>>) -> Option<i64> {
        at.map(|t| (t.timestamp_millis() - T) / MINUTE)
    }

    /// Everything that can meet inside one batch, out of order: the result is
    /// what the rules say for the facts, whatever the order.
    #[tokio::test]
    async fn one_batch_in_any_order_gives_the_facts_result() {
        let (store, _dir) = temp_store().await;
        let batch = vec![
            closed("PA_a", "ada", 0, 30),
            EventFacts::Joined(fact("PA_a", "ada", Some(0), "Ada")),
            EventFacts::Joined(fact("PA_a", "ada", Some(5), "")), // a repeat: fills nothing
            closed("PA_a", "ada", 0, 20),                         // the earlier of two closes wins
            EventFacts::Joined(fact("PA_b", "bo", Some(10), "Bo")),
            EventFacts::RoomFinished {
                room: "r".into(),
                room_sid: "RM_1".into(),
                at_ms: T + 45 * MINUTE,
            },
            closed("PA_c", "cy", 40, 50), // left after the room finished
            EventFacts::Joined(fact("PA_c", "cy", Some(40), "Cy")),
        ];
        let applied = apply(&store, "one", &batch).await;
        assert_eq!(applied, vec![true; batch.len()]);
        let facts = store.room_facts("r").await.unwrap();
        let a = cycle(&facts, "PA_a");
        assert_eq!(
            (minute(a.joined_at), minute(a.left_at)),
            (Some(0), Some(20))
        );
        assert_eq!(a.close_reason.as_deref(), Some("left"));
        assert_eq!(a.name, "Ada");
        let b = cycle(&facts, "PA_b");
        assert_eq!(minute(b.left_at), Some(45));
        assert_eq!(b.close_reason.as_deref(), Some("room_finished"));
        // Of LiveKit's two closes (finish at 45, leave at 50) the earlier wins.
        let c = cycle(&facts, "PA_c");
        assert_eq!(
            (minute(c.joined_at), minute(c.left_at)),
            (Some(40), Some(45))
        );
        assert_eq!(c.close_reason.as_deref(), Some("room_finished"));

        // A later batch: a join into the finished room is closed at the finish;
        // events already processed are not applied again.
        let late = vec![EventFacts::Joined(fact("PA_d", "di", Some(50), "Di"))];
        assert_eq!(apply(&store, "two", &late).await, vec![true]);
        let again: Vec<(&str, &EventFacts)> = vec![("EV_one0", &batch[0])];
        assert_eq!(store.apply_events(&again, T).await.unwrap(), vec![false]);
        let facts = store.room_facts("r").await.unwrap();
        let d = cycle(&facts, "PA_d");
        assert_eq!(minute(d.left_at), Some(45));
        assert_eq!(cycle(&facts, "PA_a").close_reason.as_deref(), Some("left"));
    }

    #[test]
    fn numbered_rows_number_every_placeholder_across_rows() {
        assert_eq!(numbered_rows("(?, ?)", 2, 2), "($2, $3), ($4, $5)");
        assert_eq!(
            numbered_rows("(?, $1, ?)", 2, 2),
            "($2, $1, $3), ($4, $1, $5)"
        );
        assert_eq!(numbered_rows("?", 3, 1), "$1, $2, $3");
        assert_eq!(numbered_rows("?", 0, 1), "");
    }

    #[tokio::test]
    async fn heartbeat_flushes_add_up_and_keep_the_newest() {
        let (store, _dir) = temp_store().await;
        for at in [T + 3, T + 1, T + 2] {
            store.record_heartbeat("r", "a", at);
        }
        store.record_heartbeat("r", "b", T);
        // More rows than one statement takes.
        for i in 0..250 {
            store.record_heartbeat("big", &format!("s{i}"), T + i);
        }
        assert_eq!(store.flush_heartbeats().await.unwrap(), 252);
        store.record_heartbeat("r", "a", T + 1); // older than what is stored
        store.record_heartbeat("r", "a", T);
        assert_eq!(store.flush_heartbeats().await.unwrap(), 1);
        assert_eq!(store.flush_heartbeats().await.unwrap(), 0);
        let rows = sqlx::query("SELECT identity, last_heartbeat_at_ms, beats FROM heartbeats WHERE room = 'r' ORDER BY identity")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        let read: Vec<(String, i64, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r.get("identity"),
                    r.get("last_heartbeat_at_ms"),
                    r.get("beats"),
                )
            })
            .collect();
        assert_eq!(read, vec![("a".into(), T + 3, 5), ("b".into(), T, 1)]);
        let big: i64 = sqlx::query("SELECT COUNT(*) AS n FROM heartbeats WHERE room = 'big'")
            .fetch_one(&store.pool)
            .await
            .unwrap()
            .get("n");
        assert_eq!(big, 250);
    }
}
