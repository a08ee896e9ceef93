//! The one storage interface. SQLite (embedded default) and PostgreSQL run the
//! same SQL through sqlx's `Any` driver; each keeps its own migrations folder
//! (types differ), and the few dialect differences are named in [`Backend`].
//! Instants are stored as unix milliseconds (BIGINT) in both.
//!
//! One file per concern: [`sessions`] (lessons and rosters), [`corrections`],
//! [`instances`] (unscheduled sessions for LiveKit room instances),
//! [`inbox`] (webhooks), [`cycles`] (join/leave facts), [`heartbeats`],
//! [`facts`] (reading them back) and the [`facts_cache`]; outbound webhooks'
//! [`endpoints`], [`outbox`] and [`finals`].

pub mod classes;
pub mod corrections;
pub mod cycles;
pub mod endpoints;
pub mod facts;
pub mod facts_cache;
pub mod finals;
pub mod heartbeats;
pub mod inbox;
pub mod instances;
pub mod media;
pub mod outbox;
pub mod reconcile;
pub mod sessions;
mod sql;
mod writer;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor, Row};

use facts_cache::FactsCache;
use heartbeats::HeartbeatBuffer;
use writer::SqliteWriter;

pub type StoreResult<T> = Result<T, sqlx::Error>;

/// The schema, per backend (types differ), embedded at build time.
fn migrator(backend: Backend) -> &'static sqlx::migrate::Migrator {
    static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
    static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");
    match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    }
}

/// Every SQLite connection's settings. WAL + synchronous=FULL: a commit is
/// on disk before we acknowledge a webhook, even on power loss. Temporary
/// storage in memory: a statement that changes many rows inside a
/// transaction (a batch's processed marks) keeps an undo journal, which
/// otherwise spills to a new temporary file past 64 KiB: a file created,
/// written and deleted per batch.
const SQLITE_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA temp_store = MEMORY",
];

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
    /// They queue here instead, in order, and the hot ones write on the
    /// connection kept here (see `writer`). Unused on PostgreSQL.
    sqlite_writer: Arc<tokio::sync::Mutex<SqliteWriter>>,
}

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
            // No ping before each use: it costs a round trip (on SQLite, two
            // thread hand-offs) per query. A connection that broke fails its
            // query, is closed by sqlx, and the caller answers 503 or retries.
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        for pragma in SQLITE_PRAGMAS {
                            conn.execute(*pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        migrator(backend).run(&pool).await?;
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
    async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, SqliteWriter>> {
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

    /// Whether every migration this build knows has been applied (another
    /// instance may be running an older or newer build on the database).
    pub async fn migrations_current(&self) -> StoreResult<bool> {
        let newest = migrator(self.backend).iter().map(|m| m.version).max();
        let applied: Option<i64> =
            sqlx::query("SELECT MAX(version) AS v FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?
                .try_get("v")?;
        Ok(applied == newest)
    }

    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::Store;

    /// Some instant, in ms.
    pub const T: i64 = 1_764_000_000_000;

    /// A store on a fresh SQLite file, removed with the returned directory.
    pub async fn temp_store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        (Store::connect(&url, 2).await.unwrap(), dir)
    }
}
