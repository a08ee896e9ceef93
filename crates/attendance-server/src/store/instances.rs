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
             AND NOT EXISTS (SELECT 1 FROM cycles c WHERE c.room_sid = $2 AND {}) \
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
        let sql = covered_by_lessons_sql(backend, chunk.len());
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

/// SQL for [`covered_by_lessons`] over `instances` room sids, then the
/// early-join allowance.
fn covered_by_lessons_sql(backend: Backend, instances: usize) -> String {
    let mut params = Placeholders::new(backend);
    let sids = params.rows("?", instances);
    let early = params.one();
    format!(
        "SELECT DISTINCT c.room_sid FROM cycles c WHERE c.room_sid IN ({sids}) AND {}",
        lesson_covers_cycle(&early)
    )
}

/// SQL: cycle `c` joined inside a lesson of its room, or up to `early` (a
/// placeholder for [`EARLY_JOIN`]) before one: the room instance of `c`
/// belongs to that lesson.
///
/// Asked per cycle, as one probe of the lessons index (room, start): the
/// cycles of a few instances are few, a school's lessons are many. `LIMIT 1
/// OFFSET 0` keeps PostgreSQL from turning the test into a join, whose plan
/// depends on table statistics: with statistics older than the tables
/// (autovacuum off, or tables that just grew), it chose to walk every lesson
/// and look up its cycles, 5–12 ms per webhook batch at 636 lessons instead
/// of 0.2 ms.
fn lesson_covers_cycle(early: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM sessions s WHERE s.room = c.room \
         AND s.scheduled_at_ms <= c.joined_at_ms + {early} AND s.window_end_ms >= c.joined_at_ms \
         AND s.kind = 'lesson' LIMIT 1 OFFSET 0)"
    )
}

/// Room instances per lookup statement.
const LOOKUPS_PER_STATEMENT: usize = 256;

#[cfg(test)]
mod tests {
    use std::panic::AssertUnwindSafe;

    use futures_util::FutureExt;
    use sqlx::{Connection, Executor};

    use super::*;
    use crate::store::test_support::temp_store;
    use crate::store::Store;

    const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
    const LESSONS: i64 = 600;

    /// A school's worth of lessons, 30 connections in each, and no
    /// statistics gathered since they were written (as with autovacuum
    /// off, or right after a morning's classes began).
    async fn fill(store: &Store) {
        let numbers = |count: i64| {
            format!("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {count})")
        };
        let lessons = format!(
            "{} INSERT INTO sessions (room, kind, scheduled_at_ms, duration_minutes, grace_minutes, \
             late_after_minutes, present_percent, heartbeat_stale_seconds, window_end_ms, \
             created_at_ms, updated_at_ms) \
             SELECT 'room ' || i, 'lesson', 1000000, 45, 5, 10, 80, 180, 4000000, 0, 0 FROM n",
            numbers(LESSONS)
        );
        let connections = format!(
            "{} INSERT INTO cycles (participant_sid, room, room_sid, identity, joined_at_ms, updated_at_ms) \
             SELECT 'PA_' || i, 'room ' || (i % {LESSONS}), 'RM_' || (i % {LESSONS}), 'p' || i, \
             1000000 + i, 0 FROM n",
            numbers(LESSONS * 30)
        );
        for sql in [lessons, connections] {
            store.pool().execute(sql.as_str()).await.unwrap();
        }
    }

    /// The database's plan for the lookup over five instances, one line per node.
    async fn plan(store: &Store) -> String {
        // SQLite's plan rows are (id, parent, notused, detail).
        let (explain, detail) = match store.backend() {
            Backend::Postgres => ("EXPLAIN", 0),
            Backend::Sqlite => ("EXPLAIN QUERY PLAN", 3),
        };
        let sql = format!("{explain} {}", covered_by_lessons_sql(store.backend(), 5));
        let mut query = sqlx::query(&sql);
        for sid in ["RM_1", "RM_2", "RM_3", "RM_4", "RM_5"] {
            query = query.bind(sid);
        }
        let rows = query
            .bind(EARLY_JOIN.num_milliseconds())
            .fetch_all(store.pool())
            .await
            .unwrap();
        rows.iter()
            .map(|row| row.try_get::<String, _>(detail).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn covered(store: &Store, sids: &[&str]) -> HashSet<String> {
        let mut conn = store.pool().acquire().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        let covered = covered_by_lessons(&mut tx, store.backend(), sids.iter().copied())
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        covered
    }

    /// Every webhook batch asks this: it must cost a few index probes per
    /// connection of the batch's instances, never a walk over the lessons.
    async fn lookup_probes_the_lessons_index(store: &Store) {
        fill(store).await;
        let plan = plan(store).await;
        let probes_lessons = match store.backend() {
            Backend::Postgres => plan.contains("Index Scan using sessions_by_room on sessions"),
            Backend::Sqlite => plan.contains("SEARCH s USING INDEX sessions_by_room"),
        };
        assert!(probes_lessons, "lessons not looked up by room:\n{plan}");
        assert!(
            !plan.contains("Seq Scan on sessions") && !plan.contains("SCAN s"),
            "every lesson read:\n{plan}"
        );
        // And it answers: RM_1's connections joined in their lesson; an
        // instance with no connections is nobody's.
        assert_eq!(
            covered(store, &["RM_1", "RM_nobody"]).await,
            HashSet::from(["RM_1".to_string()])
        );
    }

    #[tokio::test]
    async fn covered_lookup_probes_the_lessons_index_on_sqlite() {
        let (store, _dir) = temp_store().await;
        lookup_probes_the_lessons_index(&store).await;
    }

    #[tokio::test]
    async fn covered_lookup_probes_the_lessons_index_on_postgres() {
        let name = format!("plan_{}_{}", std::process::id(), crate::domain::now_ms());
        let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL).await.unwrap();
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        let store = Store::connect(&url, 2).await.unwrap();
        // The database is dropped whether the checks pass or not.
        let checked = AssertUnwindSafe(lookup_probes_the_lessons_index(&store))
            .catch_unwind()
            .await;
        store.pool().close().await;
        admin
            .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
            .await
            .unwrap();
        if let Err(panic) = checked {
            std::panic::resume_unwind(panic);
        }
    }
}
