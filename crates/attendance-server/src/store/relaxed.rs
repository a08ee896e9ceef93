//! Connections whose commits do not wait for the disk, for writes that a
//! power cut may take back without losing anything: what applying stored
//! webhooks writes (cycles, media, the processed marks), and the leases of
//! claimed webhooks.
//!
//! If the machine loses power right after such a commit, the commit is lost
//! *as a whole*: an applied batch with its processed marks (its webhooks are
//! pending again and are applied again from the inbox, whose commits do
//! wait for the disk), or a lease (the webhooks are claimable again). Both
//! databases keep their log in order, so any later commit that waited for
//! the disk (an acknowledged webhook, a correction, an outbound delivery)
//! makes every earlier one durable too: nothing durable can rest on a
//! relaxed commit that was lost. A process crash (`kill -9`) loses nothing
//! either way; the log is written before the commit returns, only not
//! flushed.

use sqlx::pool::PoolConnection;
use sqlx::{Any, Executor};

use super::{Backend, Store, StoreResult};

/// A pooled connection whose commits do not wait for the disk. On SQLite
/// the setting belongs to the connection, so it is set back before the
/// connection returns to the pool; one that could not be set back (an
/// error, a cancelled future) is closed instead of reused.
pub(super) struct RelaxedConnection {
    conn: PoolConnection<Any>,
    backend: Backend,
    restored: bool,
}

impl Store {
    pub(super) async fn relaxed_connection(&self) -> StoreResult<RelaxedConnection> {
        let mut conn = self.pool.acquire().await?;
        if self.backend == Backend::Sqlite {
            // In WAL mode, NORMAL syncs at checkpoints only (FULL: at every commit).
            conn.execute("PRAGMA synchronous = NORMAL").await?;
        }
        Ok(RelaxedConnection {
            conn,
            backend: self.backend,
            restored: self.backend != Backend::Sqlite,
        })
    }
}

impl RelaxedConnection {
    /// Begins a transaction whose commit does not wait for the disk.
    pub(super) async fn begin(&mut self) -> StoreResult<sqlx::Transaction<'_, Any>> {
        let mut tx = sqlx::Connection::begin(&mut *self.conn).await?;
        if self.backend == Backend::Postgres {
            tx.execute("SET LOCAL synchronous_commit TO OFF").await?;
        }
        Ok(tx)
    }

    /// Gives the connection back to the pool with the durable setting
    /// every other writer relies on (or closes it, if that fails: what was
    /// committed stays committed).
    pub(super) async fn release(mut self) {
        if !self.restored {
            match self.conn.execute("PRAGMA synchronous = FULL").await {
                Ok(_) => self.restored = true,
                Err(error) => {
                    tracing::warn!(%error, "closing a connection whose durability could not be set back")
                }
            }
        }
    }
}

impl Drop for RelaxedConnection {
    fn drop(&mut self) {
        if !self.restored {
            self.conn.close_on_drop();
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::super::test_support::temp_store;
    use super::*;

    async fn synchronous(store: &Store) -> i64 {
        sqlx::query("PRAGMA synchronous")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap()
    }

    #[tokio::test]
    async fn a_released_connection_is_durable_again_and_a_dropped_one_is_closed() {
        let (store, _dir) = temp_store().await;
        const FULL: i64 = 2;
        assert_eq!(synchronous(&store).await, FULL);

        let mut relaxed = store.relaxed_connection().await.unwrap();
        let tx = relaxed.begin().await.unwrap();
        tx.commit().await.unwrap();
        relaxed.release().await;
        // The pool holds at most two: every connection it has is FULL.
        assert_eq!(synchronous(&store).await, FULL);
        let (a, b) = (
            store.pool().acquire().await.unwrap(),
            store.pool().acquire().await.unwrap(),
        );
        drop((a, b));
        assert_eq!(synchronous(&store).await, FULL);

        // Not released (an error, a cancelled future): closed, not reused.
        let open = store.pool().size();
        let relaxed = store.relaxed_connection().await.unwrap();
        drop(relaxed);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(
            store.pool().size() < open.max(1),
            "the relaxed connection went back to the pool"
        );
        for _ in 0..4 {
            assert_eq!(synchronous(&store).await, FULL);
        }
    }
}
