//! Heartbeats: buffered in memory and written in batches, so a heartbeat
//! costs no commit of its own; losing the last second of them in a crash is
//! harmless (the next one comes within a minute).

use std::collections::HashMap;

use super::sql::Placeholders;
use super::{Store, StoreResult};

/// (room, identity) → (newest heartbeat in unix ms, heartbeats since the last flush).
pub(super) type HeartbeatBuffer = HashMap<(String, String), (i64, i64)>;

/// Rows per multi-row heartbeat write (4 parameters each).
const ROWS_PER_STATEMENT: usize = 100;

impl Store {
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
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let rows = Placeholders::new(self.backend).rows("(?, ?, ?, ?)", chunk.len());
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
    pub(super) fn buffered_heartbeats(
        &self,
        room: &str,
        identity: Option<&str>,
    ) -> Vec<(String, i64)> {
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
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use crate::store::test_support::{temp_store, T};

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
