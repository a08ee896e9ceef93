//! Join/leave cycles: webhooks' facts applied in batches (exactly once,
//! whatever the order inside a batch), and the closes the sweeper makes.

use std::collections::{BTreeMap, BTreeSet};

use attendance_rules::CloseReason;
use chrono::{DateTime, Utc};

use super::instances::ensure_instances;
use super::media::insert_media;
use super::sql::{cycle_from_row, Placeholders, CYCLE_SELECT, SWEEPER_REASONS};
use super::{Backend, Store, StoreResult};
use crate::domain::{ms_to_time, CycleFact, CycleRow, EventFacts};
use sqlx::Row;

impl Store {
    /// Every open cycle with its identity's newest heartbeat, for the
    /// sweeper.
    pub async fn open_cycles_with_heartbeats(
        &self,
    ) -> StoreResult<Vec<(CycleRow, Option<DateTime<Utc>>)>> {
        let rows = sqlx::query(
            "SELECT c.participant_sid, c.room, c.room_sid, c.identity, c.name, c.kind, c.metadata, \
             c.attributes, c.joined_at_ms, c.left_at_ms, c.close_reason, c.disconnect_reason, \
             c.opened_by, c.seen_at_ms, h.last_heartbeat_at_ms \
             FROM cycles c LEFT JOIN heartbeats h ON h.room = c.room AND h.identity = c.identity \
             WHERE c.left_at_ms IS NULL AND c.joined_at_ms IS NOT NULL ORDER BY c.room",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let beat: Option<i64> = r.try_get("last_heartbeat_at_ms")?;
                Ok((cycle_from_row(r)?, beat.map(ms_to_time)))
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

impl Store {
    /// Drops what the facts cache holds of what `applied` (committed) changed.
    pub(super) fn forget_applied<'f>(
        &self,
        applied: impl Iterator<Item = &'f EventFacts>,
        opened: &[String],
    ) {
        for room in opened {
            self.facts_cache.invalidate_room(room);
        }
        for facts in applied {
            match facts {
                EventFacts::Joined(fact) | EventFacts::Closed { fact, .. } => {
                    self.facts_cache.invalidate(&fact.room, &fact.identity)
                }
                EventFacts::RoomFinished { room, .. } => self.facts_cache.invalidate_room(room),
                EventFacts::Media(facts) => facts
                    .iter()
                    .for_each(|f| self.facts_cache.invalidate(&f.room, &f.identity)),
                EventFacts::Ignored => {}
            }
        }
    }
}

/// Applies a batch's facts (see [`apply_batch`]) and gives every room
/// instance they show its session; returns the rooms that got one.
pub(super) async fn apply_facts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    batch: &[&EventFacts],
    now_ms: i64,
) -> StoreResult<Vec<String>> {
    apply_batch(tx, backend, batch, now_ms).await?;
    ensure_instances(
        tx,
        backend,
        batch.iter().filter_map(|facts| match facts {
            EventFacts::Joined(fact) | EventFacts::Closed { fact, .. } => Some(fact),
            _ => None,
        }),
        now_ms,
    )
    .await
}

/// Rows per multi-row statement when applying a batch (at most 10
/// parameters each).
const APPLY_ROWS_PER_STATEMENT: usize = 100;

/// Applies a batch's facts in a handful of statements, not several per
/// event: every statement is a round trip to the database.
///
/// The result does not depend on the order of events inside the batch, as
/// it does not across batches: what joins say is written first, then rooms
/// that finished close what is open in them, then LiveKit's closes (of two
/// closes the earlier wins, and replaces a sweeper's guess; a leave that
/// came before its join writes the cycle, closed), then joins into rooms
/// that had already finished are closed at the finish.
///
/// No close is put before its join: LiveKit dates a close in whole seconds
/// (`createdAt`) and a join in milliseconds, so a connection that ends in
/// the second it began ends at its join, not up to a second before it.
async fn apply_batch(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    batch: &[&EventFacts],
    now_ms: i64,
) -> StoreResult<()> {
    // Per participant sid, in sid order (a fixed row order: concurrent
    // batches lock rows in the same order).
    let mut joins: BTreeMap<&str, CycleFact> = BTreeMap::new();
    let mut closes: BTreeMap<&str, (&CycleFact, i64, CloseReason)> = BTreeMap::new();
    let mut finished = Vec::new();
    let mut media = Vec::new();
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
            EventFacts::Media(facts) => media.extend(facts.iter().cloned()),
            EventFacts::Ignored => {}
        }
    }
    insert_media(tx, backend, &media).await?;
    if !finished.is_empty() {
        // A room that finished closes what is open in it, the cycles of
        // this batch's leaves included, so they are written before it
        // (their closes follow, below).
        let leaves: Vec<CycleWrite> = closes.values().map(|(fact, _, _)| (*fact, None)).collect();
        upsert_cycles(
            tx,
            backend,
            &leaves,
            now_ms,
            "joined_at_ms = COALESCE(cycles.joined_at_ms, excluded.joined_at_ms)",
        )
        .await?;
    }
    let join_facts: Vec<CycleWrite> = joins.values().map(|fact| (fact, None)).collect();
    // What LiveKit says at join fills in what a reordered leave could not.
    let left_at = ended_after_join(
        "COALESCE(cycles.joined_at_ms, excluded.joined_at_ms)",
        "cycles.left_at_ms",
    );
    upsert_cycles(
        tx,
        backend,
        &join_facts,
        now_ms,
        &format!(
            "joined_at_ms = COALESCE(cycles.joined_at_ms, excluded.joined_at_ms), \
         left_at_ms = {left_at}, \
         name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE cycles.name END, \
         kind = CASE WHEN excluded.kind <> '' THEN excluded.kind ELSE cycles.kind END, \
         metadata = CASE WHEN excluded.metadata <> '' THEN excluded.metadata ELSE cycles.metadata END, \
         room_sid = CASE WHEN excluded.room_sid <> '' THEN excluded.room_sid ELSE cycles.room_sid END, \
         updated_at_ms = excluded.updated_at_ms, \
         attributes = CASE WHEN excluded.attributes <> '' THEN excluded.attributes ELSE cycles.attributes END"
        ),
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
        // Without a room sid, close by name: every open cycle there. As
        // with a participant's close, LiveKit's word replaces a later guess
        // of the sweeper's.
        sqlx::query(&format!(
            "UPDATE cycles SET left_at_ms = {}, close_reason = 'room_finished', updated_at_ms = $4 \
             WHERE room = $1 AND (room_sid = $2 OR $2 = '') AND (left_at_ms IS NULL \
             OR (close_reason IN {SWEEPER_REASONS} AND left_at_ms > $3))",
            ended_after_join("joined_at_ms", "$3")
        ))
        .bind(room)
        .bind(room_sid)
        .bind(at_ms)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
    }
    // LiveKit's closes: a cycle not seen yet (its leave came before its
    // join) is written closed; one seen is closed unless it already has a
    // LiveKit close as early. LiveKit's close wins over the sweeper's
    // guess; of two LiveKit closes, the earlier one is the truth.
    let closing = format!(
        "(cycles.left_at_ms IS NULL OR cycles.close_reason IN {SWEEPER_REASONS} \
         OR cycles.left_at_ms > excluded.left_at_ms)"
    );
    let joined = "COALESCE(cycles.joined_at_ms, excluded.joined_at_ms)";
    let left_at = ended_after_join(joined, "excluded.left_at_ms");
    let closes: Vec<CycleWrite> = closes
        .values()
        .map(|(fact, at_ms, reason)| (*fact, Some((*at_ms, *reason))))
        .collect();
    upsert_cycles(
        tx,
        backend,
        &closes,
        now_ms,
        &format!(
            "joined_at_ms = {joined}, \
             left_at_ms = CASE WHEN {closing} THEN {left_at} ELSE cycles.left_at_ms END, \
             close_reason = CASE WHEN {closing} THEN excluded.close_reason ELSE cycles.close_reason END, \
             disconnect_reason = CASE WHEN {closing} THEN excluded.disconnect_reason \
             ELSE cycles.disconnect_reason END, \
             updated_at_ms = CASE WHEN {closing} THEN excluded.updated_at_ms ELSE cycles.updated_at_ms END"
        ),
    )
    .await?;
    // A join into a room that had already finished (events reordered).
    // Rare: the batch's room instances are looked up by key first, and
    // only joins into a finished one (or of unknown instance) are closed.
    // (Never one UPDATE over every join: as an open cycle, each matches
    // the partial index of open cycles, and a plan that scans it costs a
    // scan of every open cycle per batch.)
    let finished =
        finished_instances(tx, backend, joins.values().map(|f| f.room_sid.as_str())).await?;
    let joined: Vec<&str> = joins
        .iter()
        .filter(|(_, f)| f.room_sid.is_empty() || finished.contains(f.room_sid.as_str()))
        .map(|(sid, _)| *sid)
        .collect();
    for chunk in joined.chunks(APPLY_ROWS_PER_STATEMENT) {
        let mut params = Placeholders::new(backend);
        let at = params.one();
        let sids = params.rows("?", chunk.len());
        let left_at = ended_after_join("cycles.joined_at_ms", "f.finished_at_ms");
        let sql = format!(
            "UPDATE cycles SET left_at_ms = (SELECT {left_at} FROM finished_rooms f \
             WHERE f.room_sid = cycles.room_sid), close_reason = 'room_finished', updated_at_ms = {at} \
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

/// SQL for a cycle's end at `at`, but not before its join `joined` (see
/// [`apply_batch`]); NULL stays NULL.
fn ended_after_join(joined: &str, at: &str) -> String {
    format!("CASE WHEN {joined} > {at} THEN {joined} ELSE {at} END")
}

/// Which of `room_sids` (room instances) LiveKit said finished.
async fn finished_instances<'a>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    room_sids: impl Iterator<Item = &'a str>,
) -> StoreResult<BTreeSet<String>> {
    let wanted: BTreeSet<&str> = room_sids.filter(|sid| !sid.is_empty()).collect();
    let wanted: Vec<&str> = wanted.into_iter().collect();
    let mut finished = BTreeSet::new();
    for chunk in wanted.chunks(APPLY_ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT room_sid FROM finished_rooms WHERE room_sid IN ({})",
            Placeholders::new(backend).rows("?", chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for sid in chunk {
            query = query.bind(*sid);
        }
        for row in query.fetch_all(&mut **tx).await? {
            finished.insert(row.try_get("room_sid")?);
        }
    }
    Ok(finished)
}

/// A cycle to write: what LiveKit said of the connection, and when and why
/// it ended if this is its close.
type CycleWrite<'a> = (&'a CycleFact, Option<(i64, CloseReason)>);

/// Inserts cycles, or updates those already there with `on_conflict` (an
/// `ON CONFLICT … DO UPDATE SET` list; `excluded.*` is the row as it would
/// be inserted: open, or closed when it is a close). At most one row per
/// participant sid.
async fn upsert_cycles(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    cycles: &[CycleWrite<'_>],
    now_ms: i64,
    on_conflict: &str,
) -> StoreResult<()> {
    for chunk in cycles.chunks(APPLY_ROWS_PER_STATEMENT) {
        let rows =
            Placeholders::new(backend).rows("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", chunk.len());
        let sql = format!(
            "INSERT INTO cycles (participant_sid, room, room_sid, identity, name, kind, metadata, \
             joined_at_ms, left_at_ms, close_reason, disconnect_reason, updated_at_ms, attributes) \
             VALUES {rows} ON CONFLICT (participant_sid) DO UPDATE SET {on_conflict}"
        );
        let mut query = sqlx::query(&sql);
        for (fact, close) in chunk {
            // A close is never put before its join (see `apply_batch`).
            let left_at_ms =
                close.map(|(at_ms, _)| fact.joined_at_ms.map_or(at_ms, |j| j.max(at_ms)));
            query = query
                .bind(&fact.participant_sid)
                .bind(&fact.room)
                .bind(&fact.room_sid)
                .bind(&fact.identity)
                .bind(&fact.name)
                .bind(&fact.kind)
                .bind(&fact.metadata)
                .bind(fact.joined_at_ms)
                .bind(left_at_ms)
                .bind(close.map(|(_, reason)| reason.as_str()))
                .bind(close.map_or("", |_| fact.disconnect_reason.as_str()))
                .bind(now_ms)
                .bind(&fact.attributes);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NewEvent, RoomFacts};
    use crate::store::test_support::temp_store;

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
            disconnect_reason: String::new(),
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
                facts: None,
            })
            .collect();
        store.insert_events(&events, T).await.unwrap();
        let pairs: Vec<(&str, &EventFacts)> =
            ids.iter().map(String::as_str).zip(batch.iter()).collect();
        store.apply_events(&pairs, T).await.unwrap().0
    }

    /// Every cycle of room `r`, whatever session they belong to.
    async fn all_cycles(store: &Store) -> RoomFacts {
        let cycles = sqlx::query(&format!("{CYCLE_SELECT} WHERE room = 'r'"))
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| cycle_from_row(r).unwrap())
            .collect();
        RoomFacts {
            cycles,
            ..RoomFacts::default()
        }
    }

    fn cycle<'a>(facts: &'a RoomFacts, sid: &str) -> &'a CycleRow {
        facts
            .cycles
            .iter()
            .find(|c| c.participant_sid == sid)
            .unwrap_or_else(|| panic!("no cycle {sid}"))
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
        let facts = all_cycles(&store).await;
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

        // A later batch: a join into the finished room is closed at once (at
        // its join, as no close comes before its join); events already
        // processed are not applied again.
        let late = vec![EventFacts::Joined(fact("PA_d", "di", Some(50), "Di"))];
        assert_eq!(apply(&store, "two", &late).await, vec![true]);
        let again: Vec<(&str, &EventFacts)> = vec![("EV_one0", &batch[0])];
        assert_eq!(store.apply_events(&again, T).await.unwrap().0, vec![false]);
        let facts = all_cycles(&store).await;
        let d = cycle(&facts, "PA_d");
        assert_eq!(
            (minute(d.left_at), d.close_reason.as_deref()),
            (Some(50), Some("room_finished"))
        );
        assert_eq!(cycle(&facts, "PA_a").close_reason.as_deref(), Some("left"));
    }

    /// LiveKit's closes in a batch with no room finishing (the common
    /// case): the earlier of two wins, one replaces a sweeper's guess, one
    /// later than a close already stored changes nothing, a leave whose
    /// join never came writes its cycle closed, and no close is put before
    /// its join.
    #[tokio::test]
    async fn closes_apply_over_what_is_stored() {
        let (store, _dir) = temp_store().await;
        let joins = ["PA_a", "PA_s", "PA_e"]
            .map(|sid| EventFacts::Joined(fact(sid, &sid[3..], Some(0), sid)));
        apply(&store, "joins", &joins).await;
        apply(&store, "early", &[closed("PA_e", "e", 0, 10)]).await;
        sqlx::query(
            "UPDATE cycles SET left_at_ms = $1, close_reason = 'stale_heartbeat' \
             WHERE participant_sid = 'PA_s'",
        )
        .bind(T + 40 * MINUTE)
        .execute(&store.pool)
        .await
        .unwrap();

        let batch = vec![
            closed("PA_a", "a", 0, 30),
            closed("PA_s", "s", 0, 50),
            closed("PA_j", "j", 12, 11), // dated a second before its join
            closed("PA_e", "e", 0, 25),
            closed("PA_n", "n", 5, 15), // its join never came
            closed("PA_a", "a", 0, 20),
            EventFacts::Joined(fact("PA_j", "j", Some(12), "Jo")),
        ];
        assert_eq!(apply(&store, "closes", &batch).await, vec![true; 7]);
        let facts = all_cycles(&store).await;
        let ended = |sid: &str| {
            let c = cycle(&facts, sid);
            (
                minute(c.joined_at),
                minute(c.left_at),
                c.close_reason.clone().unwrap_or_default(),
            )
        };
        let left = |joined, left| (Some(joined), Some(left), "left".to_string());
        assert_eq!(ended("PA_a"), left(0, 20), "the earlier of two");
        assert_eq!(ended("PA_s"), left(0, 50), "over the sweeper's guess");
        assert_eq!(
            ended("PA_e"),
            left(0, 10),
            "the close stored first was earlier"
        );
        assert_eq!(ended("PA_n"), left(5, 15), "written closed");
        assert_eq!(ended("PA_j"), left(12, 12), "not before its join");
        assert_eq!(cycle(&facts, "PA_j").name, "Jo");
    }
}
