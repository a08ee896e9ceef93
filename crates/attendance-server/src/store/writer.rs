//! The connection the hot writes go through: storing webhooks, claiming
//! and applying them.
//!
//! On SQLite it is one connection kept for the life of the process. A
//! connection drops its whole page cache whenever another connection has
//! committed; with the inbox writer and the processor on different pooled
//! connections, every batch read its pages back from the log. One writer
//! keeps them warm. Writes elsewhere (corrections, classes, …) take the same
//! turn (`Store::write_turn`) on pooled connections: rare, they only cool
//! the cache once. On PostgreSQL a writer is any pooled connection; writers
//! run side by side.
//!
//! A writer is durable (every commit waits for the disk) or relaxed, for
//! writes that a power cut may take back without losing anything: what
//! applying stored webhooks writes (cycles, media, the processed marks),
//! and the leases of claimed webhooks. If the machine loses power right
//! after such a commit, the commit is lost *as a whole*: an applied batch
//! with its processed marks (its webhooks are pending again and are applied
//! again from the inbox, whose commits do wait for the disk), or a lease
//! (the webhooks are claimable again). Both databases keep their log in
//! order, so any later commit that waited for the disk (an acknowledged
//! webhook, a correction, an outbound delivery) makes every earlier one
//! durable too: nothing durable can rest on a relaxed commit that was lost.
//! A process crash (`kill -9`) loses nothing either way; the log is written
//! before the commit returns, only not flushed.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Connection, Executor};
use tokio::sync::MutexGuard;

use super::{Backend, Store, StoreResult};

/// Whether a writer's commits wait for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    Durable,
    /// See the module's documentation for when this is allowed.
    Relaxed,
}

/// SQLite's writer connection, behind the write turn's lock.
#[derive(Default)]
pub(super) struct SqliteWriter {
    /// Opened at the first turn, and again after a turn that did not finish.
    conn: Option<AnyConnection>,
    /// Whether the connection may be at `synchronous = NORMAL`. Set before
    /// NORMAL is asked for and cleared only once FULL is back, so a
    /// cancelled turn can leave it wrongly set, never wrongly clear.
    relaxed: bool,
}

/// One turn on a writer connection. Call [`Writer::finish`] when the work
/// is done: a turn dropped unfinished (an error, a cancelled future) closes
/// SQLite's connection, and the next turn opens a fresh one, so no
/// half-done state (an open transaction, a setting) outlives it.
pub(super) struct Writer<'a> {
    inner: Inner<'a>,
    durability: Durability,
    finished: bool,
}

enum Inner<'a> {
    Sqlite(MutexGuard<'a, SqliteWriter>),
    Pooled(PoolConnection<Any>),
}

impl Store {
    /// This process's turn on a writer connection (see the module).
    pub(super) async fn writer(&self, durability: Durability) -> StoreResult<Writer<'_>> {
        let inner = match self.backend {
            Backend::Postgres => Inner::Pooled(self.pool.acquire().await?),
            Backend::Sqlite => {
                let mut state = self.sqlite_writer.lock().await;
                if state.conn.is_none() {
                    state.conn = Some(self.connect_sqlite_writer().await?);
                    state.relaxed = false;
                }
                match durability {
                    // In WAL mode, NORMAL syncs at checkpoints only (FULL: at every commit).
                    Durability::Relaxed if !state.relaxed => {
                        state.relaxed = true;
                        connection(&mut state)
                            .execute("PRAGMA synchronous = NORMAL")
                            .await?;
                    }
                    Durability::Durable if state.relaxed => {
                        connection(&mut state)
                            .execute("PRAGMA synchronous = FULL")
                            .await?;
                        state.relaxed = false;
                    }
                    _ => {}
                }
                Inner::Sqlite(state)
            }
        };
        Ok(Writer {
            inner,
            durability,
            finished: false,
        })
    }

    async fn connect_sqlite_writer(&self) -> StoreResult<AnyConnection> {
        let mut conn = AnyConnection::connect(&self.url).await?;
        for pragma in super::SQLITE_PRAGMAS {
            conn.execute(*pragma).await?;
        }
        Ok(conn)
    }
}

fn connection<'c>(state: &'c mut MutexGuard<'_, SqliteWriter>) -> &'c mut AnyConnection {
    state.conn.as_mut().expect("the writer connection is open")
}

impl Writer<'_> {
    /// Begins a transaction with this writer's durability.
    pub(super) async fn begin(&mut self) -> StoreResult<sqlx::Transaction<'_, Any>> {
        let relaxed_postgres =
            matches!(self.inner, Inner::Pooled(_)) && self.durability == Durability::Relaxed;
        let mut tx = Connection::begin(&mut **self).await?;
        if relaxed_postgres {
            tx.execute("SET LOCAL synchronous_commit TO OFF").await?;
        }
        Ok(tx)
    }

    /// Ends the turn, keeping the connection for the next one.
    pub(super) fn finish(mut self) {
        self.finished = true;
    }
}

impl Deref for Writer<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match &self.inner {
            Inner::Sqlite(state) => state.conn.as_ref().expect("the writer connection is open"),
            Inner::Pooled(conn) => conn,
        }
    }
}

impl DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.inner {
            Inner::Sqlite(state) => connection(state),
            Inner::Pooled(conn) => conn,
        }
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        // PostgreSQL's relaxed setting is the transaction's own, and a
        // pooled connection in a transaction is rolled back by the pool.
        if let (false, Inner::Sqlite(state)) = (self.finished, &mut self.inner) {
            state.conn = None;
            state.relaxed = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::super::test_support::temp_store;
    use super::*;

    const NORMAL: i64 = 1;
    const FULL: i64 = 2;

    async fn synchronous(conn: &mut AnyConnection) -> i64 {
        sqlx::query("PRAGMA synchronous")
            .fetch_one(conn)
            .await
            .unwrap()
            .try_get(0)
            .unwrap()
    }

    #[tokio::test]
    async fn a_durable_turn_is_full_whatever_the_turn_before_it_left() {
        let (store, _dir) = temp_store().await;
        let mut writer = store.writer(Durability::Durable).await.unwrap();
        assert_eq!(synchronous(&mut writer).await, FULL);
        writer.finish();

        let mut relaxed = store.writer(Durability::Relaxed).await.unwrap();
        assert_eq!(synchronous(&mut relaxed).await, NORMAL);
        let tx = relaxed.begin().await.unwrap();
        tx.commit().await.unwrap();
        relaxed.finish();
        // Kept relaxed between relaxed turns, made durable again on demand.
        let mut writer = store.writer(Durability::Durable).await.unwrap();
        assert_eq!(synchronous(&mut writer).await, FULL);
        writer.finish();

        // A relaxed turn that never finished (an error, a cancelled
        // future): its connection is gone, the next one is opened durable.
        let mut relaxed = store.writer(Durability::Relaxed).await.unwrap();
        let tx = relaxed.begin().await.unwrap();
        std::mem::forget(tx);
        drop(relaxed);
        let mut writer = store.writer(Durability::Durable).await.unwrap();
        assert_eq!(synchronous(&mut writer).await, FULL);
        // And no transaction was left open on it.
        let tx = writer.begin().await.unwrap();
        tx.commit().await.unwrap();
        writer.finish();
    }

    #[tokio::test]
    async fn a_finished_turn_keeps_its_connection() {
        let (store, _dir) = temp_store().await;
        let mut writer = store.writer(Durability::Durable).await.unwrap();
        sqlx::query("CREATE TEMP TABLE marker (x INTEGER)")
            .execute(&mut *writer)
            .await
            .unwrap();
        writer.finish();
        // A temporary table lives as long as its connection.
        let mut writer = store.writer(Durability::Relaxed).await.unwrap();
        sqlx::query("SELECT COUNT(*) FROM marker")
            .fetch_one(&mut *writer)
            .await
            .unwrap();
        drop(writer);
        let mut writer = store.writer(Durability::Durable).await.unwrap();
        assert!(sqlx::query("SELECT COUNT(*) FROM marker")
            .fetch_one(&mut *writer)
            .await
            .is_err());
        writer.finish();
    }
}
