//! Rooms nobody scheduled: a LiveKit room instance (its `room_sid`) none of
//! whose connections began inside a lesson's window, nor up to
//! [`EARLY_JOIN`] before one, gets an unscheduled session covering the
//! instance, so its attendance is still reported. Scheduling a lesson over
//! it later turns it into that lesson (see [`super::sessions`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use attendance_rules::Schedule;
use sqlx::Row;

use super::sql::Placeholders;
use super::{Backend, StoreResult};
use crate::domain::lessons::EARLY_JOIN;
use crate::domain::{ms_to_time, CycleFact};

/// Makes sure every room instance the facts show has its session (an
/// unscheduled one where no lesson covers it); returns the rooms that got
/// a new session. Idempotent, and safe when two instances race.
///
/// The batch's instances are looked up first, in two statements for all
/// of them: nearly always each already has its session, starting before
/// these joins, or belongs to a lesson, and then nothing more is asked of
/// the database for it.
pub(super) async fn ensure_instances<'f>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    facts: impl IntoIterator<Item = &'f CycleFact>,
    now_ms: i64,
) -> StoreResult<Vec<String>> {
    // (room sid) → (room, first join), in a fixed order.
    let mut instances: BTreeMap<&str, (&str, i64)> = BTreeMap::new();
    for fact in facts {
        let Some(joined) = fact.joined_at_ms else {
            continue;
        };
        if fact.room_sid.is_empty() {
            continue;
        }
        let entry = instances
            .entry(&fact.room_sid)
            .or_insert((&fact.room, joined));
        entry.1 = entry.1.min(joined);
    }
    let sessions = sessions_of_instances(tx, backend, instances.keys().copied()).await?;
    // Instances without a session that a lesson covers (the common case
    // in a scheduled room): asked once for the batch, not per instance.
    let covered = covered_by_lessons(
        tx,
        backend,
        instances
            .keys()
            .copied()
            .filter(|sid| !sessions.contains_key(*sid)),
    )
    .await?;
    let defaults = Schedule::new(ms_to_time(0), 1);
    let mut created = Vec::new();
    for (room_sid, (room, joined)) in instances {
        if let Some((kind, start)) = sessions.get(room_sid) {
            // An unscheduled session that starts after these joins starts
            // earlier; one that starts before them, or a lesson the
            // instance became, stays.
            if kind == "unscheduled" && *start > joined {
                sqlx::query(
                    "UPDATE sessions SET scheduled_at_ms = $2, window_end_ms = $2 \
                     WHERE room_sid = $1 AND room_sid <> '' AND kind = 'unscheduled' AND scheduled_at_ms > $2",
                )
                .bind(room_sid)
                .bind(joined)
                .execute(&mut **tx)
                .await?;
            }
            continue;
        }
        if covered.contains(room_sid) {
            continue;
        }
        // The statement checks again: another instance may have opened
        // the session, or a lesson covered it, since the lookups.
        let inserted = sqlx::query(&format!(
            "INSERT INTO sessions (room, kind, room_sid, title, scheduled_at_ms, duration_minutes, \
             grace_minutes, late_after_minutes, present_percent, heartbeat_stale_seconds, window_end_ms, \
             created_at_ms, updated_at_ms) \
             SELECT $1, 'unscheduled', $2, '', $3, 1, 0, 1, $4, $5, $3, $6, $6 \
             WHERE NOT EXISTS (SELECT 1 FROM sessions WHERE room_sid = $2 AND room_sid <> '') \
             AND NOT EXISTS (SELECT 1 FROM cycles c, sessions s WHERE c.room_sid = $2 AND {}) \
             ON CONFLICT (room_sid) WHERE room_sid <> '' DO NOTHING RETURNING id",
            lesson_covers_cycle("$7")
        ))
        .bind(room)
        .bind(room_sid)
        .bind(joined)
        .bind(i64::from(defaults.present_percent))
        .bind(i64::from(defaults.heartbeat_stale_seconds))
        .bind(now_ms)
        .bind(EARLY_JOIN.num_milliseconds())
        .fetch_optional(&mut **tx)
        .await?;
        if inserted.is_some() {
            tracing::info!(
                room,
                room_sid,
                "unscheduled session opened for a room nobody scheduled"
            );
            created.push(room.to_string());
        }
    }
    Ok(created)
}

/// (kind, start) of the session of each of `room_sids` that has one.
///
/// (`room_sid <> ''` here and in [`ensure_instances`] lets the planners use
/// the partial index of instances' sessions, which they cannot infer from a
/// parameter; without it each was a scan of every session.)
async fn sessions_of_instances<'a>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    room_sids: impl Iterator<Item = &'a str>,
) -> StoreResult<HashMap<String, (String, i64)>> {
    let room_sids: Vec<&str> = room_sids.collect();
    let mut sessions = HashMap::with_capacity(room_sids.len());
    for chunk in room_sids.chunks(LOOKUPS_PER_STATEMENT) {
        let sql = format!(
            "SELECT room_sid, kind, scheduled_at_ms FROM sessions WHERE room_sid IN ({}) \
             AND room_sid <> ''",
            Placeholders::new(backend).rows("?", chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for sid in chunk {
            query = query.bind(*sid);
        }
        for row in query.fetch_all(&mut **tx).await? {
            sessions.insert(
                row.try_get("room_sid")?,
                (row.try_get("kind")?, row.try_get("scheduled_at_ms")?),
            );
        }
    }
    Ok(sessions)
}

/// Which of `room_sids` have a connection that joined inside one of their
/// room's lessons (or up to [`EARLY_JOIN`] before it): such an instance is
/// that lesson's and gets no session of its own.
async fn covered_by_lessons<'a>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    room_sids: impl Iterator<Item = &'a str>,
) -> StoreResult<HashSet<String>> {
    let room_sids: Vec<&str> = room_sids.collect();
    let mut covered = HashSet::new();
    for chunk in room_sids.chunks(LOOKUPS_PER_STATEMENT) {
        let mut params = Placeholders::new(backend);
        let sids = params.rows("?", chunk.len());
        let early = params.one();
        let sql = format!(
            "SELECT DISTINCT c.room_sid FROM cycles c, sessions s WHERE c.room_sid IN ({sids}) \
             AND {}",
            lesson_covers_cycle(&early)
        );
        let mut query = sqlx::query(&sql);
        for sid in chunk {
            query = query.bind(*sid);
        }
        for row in query
            .bind(EARLY_JOIN.num_milliseconds())
            .fetch_all(&mut **tx)
            .await?
        {
            covered.insert(row.try_get("room_sid")?);
        }
    }
    Ok(covered)
}

/// SQL: session `s` is a lesson of cycle `c`'s room that `c` joined
/// inside, or up to `early` (a placeholder for [`EARLY_JOIN`]) before: the
/// room instance of `c` belongs to that lesson.
fn lesson_covers_cycle(early: &str) -> String {
    format!(
        "s.room = c.room AND s.kind = 'lesson' AND c.joined_at_ms >= s.scheduled_at_ms - {early} \
         AND c.joined_at_ms <= s.window_end_ms"
    )
}

/// Room instances per lookup statement.
const LOOKUPS_PER_STATEMENT: usize = 256;
