//! The webhook inbox: verified webhooks stored before LiveKit gets its
//! 200, claimed for processing, retried or dead-lettered.

use std::collections::HashSet;

use sqlx::Row;

use super::sql::{event_from_row, Placeholders, EVENT_COLUMNS, EVENT_SELECT};
use super::writer::Durability;
use super::{Backend, Store, StoreResult};
use crate::domain::{InboxCounts, NewEvent, Shard, StoredEvent};

impl Store {
    /// Stores a batch of verified webhooks in one transaction (one fsync
    /// for all); per event, `false` when its id was already stored.
    pub async fn insert_events(&self, events: &[NewEvent], now_ms: i64) -> StoreResult<Vec<bool>> {
        let mut writer = self.writer(Durability::Durable).await?;
        let mut stored = vec![false; events.len()];
        // Always insert in id order: two instances storing the same
        // retried webhooks then lock rows in one order and never deadlock.
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by(|&a, &b| events[a].id.cmp(&events[b].id));
        // The same id twice in one batch: the first is stored, the rest are duplicates.
        order.dedup_by(|later, first| events[*later].id == events[*first].id);
        // Several rows per statement: one round trip to the database for
        // many webhooks is what group commit is for.
        if order.len() <= INSERT_ROWS_PER_STATEMENT {
            // One statement is a transaction of its own: no BEGIN and
            // COMMIT round trips around it.
            let inserted = insert_rows(&mut *writer, self.backend, events, &order, now_ms).await?;
            writer.finish();
            mark_stored(&mut stored, events, &order, &inserted);
            return Ok(stored);
        }
        let mut tx = writer.begin().await?;
        for chunk in order.chunks(INSERT_ROWS_PER_STATEMENT) {
            let inserted = insert_rows(&mut *tx, self.backend, events, chunk, now_ms).await?;
            mark_stored(&mut stored, events, chunk, &inserted);
        }
        tx.commit().await?;
        writer.finish();
        Ok(stored)
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

/// Rows per multi-row webhook insert (8 parameters each).
const INSERT_ROWS_PER_STATEMENT: usize = 64;

/// Inserts `events[rows]` in one statement; the ids that were new.
async fn insert_rows<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    backend: Backend,
    events: &[NewEvent],
    rows: &[usize],
    now_ms: i64,
) -> StoreResult<HashSet<String>> {
    let values =
        Placeholders::new(backend).rows("(?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?)", rows.len());
    let sql = format!(
        "INSERT INTO webhook_events (id, event, room, created_at_ms, received_at_ms, api_key, body, \
         status, attempts, next_attempt_at_ms) VALUES {values} ON CONFLICT (id) DO NOTHING RETURNING id"
    );
    let mut query = sqlx::query(&sql);
    for &index in rows {
        let event = &events[index];
        // Received now, due now.
        query = query
            .bind(&event.id)
            .bind(&event.event)
            .bind(&event.room)
            .bind(event.created_at_ms)
            .bind(now_ms)
            .bind(&event.api_key)
            .bind(&event.body)
            .bind(now_ms);
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
pub(super) async fn mark_processed<'a>(
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
            store.insert_events(&small, T).await.unwrap(),
            [true, true, false]
        );
        assert_eq!(pending(&store).await, 2);

        let n = INSERT_ROWS_PER_STATEMENT * 2 + 3;
        let mut large: Vec<NewEvent> = (0..n).map(|i| event(&format!("EV_{i:04}"))).collect();
        large.push(event("a")); // stored by the small batch
        large.push(event("EV_0007")); // twice in this batch
        let stored = store.insert_events(&large, T).await.unwrap();
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
}
