//! The webhook inbox: verified webhooks stored before LiveKit gets its
//! 200, claimed for processing, retried or dead-lettered.

use std::collections::HashSet;

use sqlx::Row;

use super::cycles::apply_facts;
use super::sql::{event_from_row, Placeholders, EVENT_COLUMNS, EVENT_SELECT};
use super::writer::Durability;
use super::{Backend, Store, StoreResult};
use crate::domain::{EventFacts, InboxCounts, NewEvent, Shard, StoredBatch, StoredEvent};

/// Whether a batch's facts are applied as it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Apply {
    /// Those of its events that carry them (`NewEvent::facts`).
    Facts,
    /// None: every event is stored pending, for the processor.
    Later,
}

impl Store {
    /// Stores a batch of verified webhooks in one transaction (one fsync
    /// for all) and, in the same transaction, applies the facts of those
    /// that are new and were read on receipt (`NewEvent::facts`): they are
    /// stored processed, and never claimed, re-read or marked afterwards.
    /// Should applying fail (two instances' batches deadlocking on the same
    /// cycles, say), the batch is stored pending instead, for the processor.
    pub async fn insert_events(
        &self,
        events: &[NewEvent],
        now_ms: i64,
    ) -> StoreResult<StoredBatch> {
        if events.iter().any(|event| event.facts.is_some()) {
            match self.store_events(events, Apply::Facts, now_ms).await {
                Ok(batch) => return Ok(batch),
                Err(error) => {
                    tracing::debug!(%error, "webhooks not applied as stored; storing them pending")
                }
            }
        }
        self.store_events(events, Apply::Later, now_ms).await
    }

    async fn store_events(
        &self,
        events: &[NewEvent],
        apply: Apply,
        now_ms: i64,
    ) -> StoreResult<StoredBatch> {
        let mut writer = self.writer(Durability::Durable).await?;
        let mut new = vec![false; events.len()];
        // Always insert in id order: two instances storing the same
        // retried webhooks then lock rows in one order and never deadlock.
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by(|&a, &b| events[a].id.cmp(&events[b].id));
        // The same id twice in one batch: the first is stored, the rest are duplicates.
        order.dedup_by(|later, first| events[*later].id == events[*first].id);
        // Several rows per statement: one round trip to the database for
        // many webhooks is what group commit is for.
        if apply == Apply::Later && order.len() <= INSERT_ROWS_PER_STATEMENT {
            // One statement is a transaction of its own: no BEGIN and
            // COMMIT round trips around it.
            let inserted =
                insert_rows(&mut *writer, self.backend, events, &order, apply, now_ms).await?;
            writer.finish();
            mark_stored(&mut new, events, &order, &inserted);
            return Ok(StoredBatch {
                new,
                applied: false,
                opened: Vec::new(),
            });
        }
        let mut tx = writer.begin().await?;
        for chunk in order.chunks(INSERT_ROWS_PER_STATEMENT) {
            let inserted =
                insert_rows(&mut *tx, self.backend, events, chunk, apply, now_ms).await?;
            mark_stored(&mut new, events, chunk, &inserted);
        }
        // Only what this batch stored is applied: a repeated id was
        // applied (or left pending) when it was first stored.
        let applying: Vec<&EventFacts> = match apply {
            Apply::Facts => events
                .iter()
                .zip(&new)
                .filter(|(_, new)| **new)
                .filter_map(|(event, _)| event.facts.as_ref())
                .collect(),
            Apply::Later => Vec::new(),
        };
        let opened = apply_facts(&mut tx, self.backend, &applying, now_ms).await?;
        tx.commit().await?;
        writer.finish();
        self.forget_applied(applying.into_iter(), &opened);
        Ok(StoredBatch {
            new,
            applied: apply == Apply::Facts,
            opened,
        })
    }

    /// Applies a batch of events' facts and marks them processed, in one
    /// transaction: each event is processed exactly once even if the process
    /// dies in between, or two instances race for it. Per event, `false` if
    /// it was already processed; and the rooms that got a new (unscheduled)
    /// session.
    pub async fn apply_events(
        &self,
        events: &[(&str, &EventFacts)],
        now_ms: i64,
    ) -> StoreResult<(Vec<bool>, Vec<String>)> {
        // Derived from stored webhooks: lost in a power cut, they are
        // applied again (see `writer`).
        let mut writer = self.writer(Durability::Relaxed).await?;
        let mut tx = writer.begin().await?;
        let mut pending = mark_processed(
            &mut tx,
            self.backend,
            events.iter().map(|(id, _)| *id),
            now_ms,
        )
        .await?;
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
        let opened = apply_facts(&mut tx, self.backend, &ours, now_ms).await?;
        tx.commit().await?;
        writer.finish();
        self.forget_applied(events.iter().map(|(_, facts)| *facts), &opened);
        Ok((applied, opened))
    }

    /// Claims up to `limit` due events, oldest first, for `lease_ms`: other
    /// instances skip them until the lease runs out (so the work of an
    /// instance that died is picked up again, never lost).
    ///
    /// Only the events of `shard`'s rooms (on PostgreSQL, where an instance
    /// runs several processors; SQLite has one).
    pub async fn claim_due_events(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
        shard: Shard,
    ) -> StoreResult<Vec<StoredEvent>> {
        let rows = match self.backend {
            Backend::Postgres => {
                // A claim is a lease, not a fact: lost in a power cut, the
                // events are claimable again (see `writer`).
                let mut writer = self.writer(Durability::Relaxed).await?;
                let mut tx = writer.begin().await?;
                let rows = sqlx::query(&format!(
                    "UPDATE webhook_events SET next_attempt_at_ms = $2 WHERE id IN (\
                     SELECT id FROM webhook_events WHERE status = 'pending' AND next_attempt_at_ms <= $1 \
                     AND mod(abs(hashtext(room)::bigint), $5) = $4 \
                     ORDER BY created_at_ms, received_at_ms, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                     RETURNING {EVENT_COLUMNS}"
                ))
                .bind(now_ms)
                .bind(now_ms + lease_ms)
                .bind(limit)
                .bind(shard.index)
                .bind(shard.of.max(1))
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                writer.finish();
                rows
            }
            // One instance per database file: nobody to reserve events from
            // (and after a crash the restarted instance resumes at once), so
            // a read, not a write with its own sync. On the writer, whose
            // cache holds the pages the inbox writer just wrote; relaxed,
            // as applying the claimed events will be.
            Backend::Sqlite => {
                let mut writer = self.writer(Durability::Relaxed).await?;
                let rows = sqlx::query(&format!(
                    "{EVENT_SELECT} WHERE status = 'pending' AND next_attempt_at_ms <= $1 \
                     ORDER BY created_at_ms, received_at_ms, id LIMIT $2"
                ))
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&mut *writer)
                .await?;
                writer.finish();
                rows
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

    /// Pending and dead-lettered webhooks, for `/metrics`. Counted by
    /// status through its index: the processed ones (nearly every row of a
    /// long-lived inbox) are never read.
    pub async fn event_counts(&self) -> StoreResult<InboxCounts> {
        let mut counts = InboxCounts::default();
        for (status, count) in [
            ("pending", &mut counts.pending),
            ("failed", &mut counts.failed),
        ] {
            // The status written out, not bound: a plan for `status = 'pending'`
            // may use the partial index of pending webhooks.
            let sql = format!("SELECT COUNT(*) AS n FROM webhook_events WHERE status = '{status}'");
            let n: i64 = sqlx::query(&sql)
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
            *count = n;
        }
        Ok(counts)
    }
}

/// Ids per statement when marking a batch processed.
const MARK_IDS_PER_STATEMENT: usize = 256;

/// Rows per multi-row webhook insert (11 parameters each).
const INSERT_ROWS_PER_STATEMENT: usize = 64;

/// Inserts `events[rows]` in one statement, processed where `apply` applies
/// their facts in this transaction, else pending; the ids that were new.
async fn insert_rows<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    backend: Backend,
    events: &[NewEvent],
    rows: &[usize],
    apply: Apply,
    now_ms: i64,
) -> StoreResult<HashSet<String>> {
    let values = Placeholders::new(backend).rows("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows.len());
    let sql = format!(
        "INSERT INTO webhook_events (id, event, room, created_at_ms, received_at_ms, api_key, body, \
         status, attempts, next_attempt_at_ms, processed_at_ms) VALUES {values} \
         ON CONFLICT (id) DO NOTHING RETURNING id"
    );
    let mut query = sqlx::query(&sql);
    for &index in rows {
        let event = &events[index];
        let applied = apply == Apply::Facts && event.facts.is_some();
        // Received now; processed now, or due now.
        query = query
            .bind(&event.id)
            .bind(&event.event)
            .bind(&event.room)
            .bind(event.created_at_ms)
            .bind(now_ms)
            .bind(&event.api_key)
            .bind(&event.body)
            .bind(if applied { "processed" } else { "pending" })
            .bind(i64::from(applied))
            .bind(now_ms)
            .bind(applied.then_some(now_ms));
    }
    query
        .fetch_all(executor)
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect()
}

fn mark_stored(
    stored: &mut [bool],
    events: &[NewEvent],
    rows: &[usize],
    inserted: &HashSet<String>,
) {
    for &index in rows {
        stored[index] = inserted.contains(&events[index].id);
    }
}

/// Marks the batch's still-pending events processed, in one statement, and
/// returns their ids. This takes the rows' locks first: a racing instance
/// waits there, then finds them no longer pending and backs off.
async fn mark_processed<'a>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    ids: impl Iterator<Item = &'a str>,
    now_ms: i64,
) -> StoreResult<std::collections::HashSet<String>> {
    let mut ids: Vec<&str> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    let mut marked = HashSet::new();
    for chunk in ids.chunks(MARK_IDS_PER_STATEMENT) {
        let mut params = Placeholders::new(backend);
        let at = params.one();
        let ids = params.rows("?", chunk.len());
        let sql = format!(
            "UPDATE webhook_events SET status = 'processed', attempts = attempts + 1, \
             processed_at_ms = {at}, last_error = NULL WHERE status = 'pending' AND id IN ({ids}) RETURNING id"
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{temp_store, T};

    fn event(id: &str) -> NewEvent {
        NewEvent {
            id: id.to_string(),
            event: "participant_joined".into(),
            room: "math 101".into(),
            created_at_ms: T,
            api_key: "key".into(),
            body: format!("{{\"id\":\"{id}\"}}"),
            facts: None,
        }
    }

    async fn pending(store: &Store) -> i64 {
        store.event_counts().await.unwrap().pending
    }

    /// Small batches are one statement, large ones a transaction of several:
    /// either way each new id is stored once and a repeated one reported.
    #[tokio::test]
    async fn batches_of_any_size_store_each_id_once() {
        let (store, _dir) = temp_store().await;
        let small: Vec<NewEvent> = ["b", "a", "b"].into_iter().map(event).collect();
        assert_eq!(
            store.insert_events(&small, T).await.unwrap().new,
            [true, true, false]
        );
        assert_eq!(pending(&store).await, 2);

        let n = INSERT_ROWS_PER_STATEMENT * 2 + 3;
        let mut large: Vec<NewEvent> = (0..n).map(|i| event(&format!("EV_{i:04}"))).collect();
        large.push(event("a")); // stored by the small batch
        large.push(event("EV_0007")); // twice in this batch
        let stored = store.insert_events(&large, T).await.unwrap().new;
        assert_eq!(stored.len(), n + 2);
        assert!(stored[..n].iter().all(|s| *s), "{stored:?}");
        assert_eq!(&stored[n..], [false, false]);
        assert_eq!(pending(&store).await, 2 + n as i64);
        // The bodies are stored as received.
        let events = store
            .claim_due_events(T, 1000, 1000, Shard::ALL)
            .await
            .unwrap();
        assert_eq!(events.len(), 2 + n);
        assert!(events
            .iter()
            .all(|e| e.body == format!("{{\"id\":\"{}\"}}", e.id)));
    }

    fn join(id: &str, sid: &str, name: &str) -> NewEvent {
        let fact = crate::domain::CycleFact {
            participant_sid: sid.into(),
            room: "math 101".into(),
            room_sid: "RM_1".into(),
            identity: format!("student {sid}"),
            name: name.into(),
            kind: String::new(),
            metadata: String::new(),
            attributes: String::new(),
            joined_at_ms: Some(T),
            disconnect_reason: String::new(),
        };
        NewEvent {
            facts: Some(EventFacts::Joined(fact)),
            ..event(id)
        }
    }

    async fn cycle_names(store: &Store) -> Vec<(String, String)> {
        sqlx::query("SELECT participant_sid, name FROM cycles ORDER BY participant_sid")
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
            .collect()
    }

    /// Webhooks whose facts were read on receipt are applied as they are
    /// stored: processed at once, never claimed; a repeated id is neither
    /// stored nor applied again, and one without facts waits for the
    /// processor.
    #[tokio::test]
    async fn facts_read_on_receipt_are_applied_in_the_storing_transaction() {
        let (store, _dir) = temp_store().await;
        let batch = vec![
            join("EV_1", "PA_a", "Ada"),
            join("EV_2", "PA_b", "Bo"),
            event("EV_3"),
        ];
        let stored = store.insert_events(&batch, T).await.unwrap();
        assert_eq!(stored.new, [true, true, true]);
        assert!(stored.applied);
        // The room nobody scheduled got its session.
        assert_eq!(stored.opened, ["math 101"]);
        assert_eq!(
            cycle_names(&store).await,
            [("PA_a".into(), "Ada".into()), ("PA_b".into(), "Bo".into())]
        );
        let pending: Vec<String> = store
            .claim_due_events(T, 1000, 1000, Shard::ALL)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(pending, ["EV_3"]);

        // LiveKit retries EV_1, with other facts: nothing changes.
        let again = store
            .insert_events(&[join("EV_1", "PA_a", "Someone else")], T)
            .await
            .unwrap();
        assert_eq!(again.new, [false]);
        assert!(again.opened.is_empty());
        assert_eq!(cycle_names(&store).await[0].1, "Ada");
    }

    /// When applying fails, the webhooks are still stored (pending, for the
    /// processor): an acknowledged webhook is never lost to its facts.
    #[tokio::test]
    async fn a_batch_that_cannot_be_applied_is_stored_pending() {
        let (store, _dir) = temp_store().await;
        sqlx::query(
            "CREATE TRIGGER refuse_cycles BEFORE INSERT ON cycles \
             BEGIN SELECT RAISE(ABORT, 'cycles refused'); END",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let batch = vec![join("EV_1", "PA_a", "Ada"), join("EV_2", "PA_b", "Bo")];
        let stored = store.insert_events(&batch, T).await.unwrap();
        assert_eq!(stored.new, [true, true]);
        assert!(!stored.applied);
        assert_eq!(pending(&store).await, 2);
        assert!(cycle_names(&store).await.is_empty());
    }
}
