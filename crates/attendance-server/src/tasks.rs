//! Starts and stops everything that runs in the background, in one place:
//! the inbox writer, the processor, the sweeper, the heartbeat flusher,
//! live delivery (PostgreSQL NOTIFY/LISTEN, or local delivery on SQLite) and
//! outbound webhooks (delivery, and finalized sessions).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::connections::{self, Limits};
use crate::domain::Shard;
use crate::http::{self, App};
use crate::ingest::{processor, reconciler, sweeper};
use crate::live::{bus, delivery};
use crate::outbound;
use crate::store::{Backend, Store};

/// Webhook processors per instance on PostgreSQL.
const PROCESSORS_ON_POSTGRES: i64 = 4;

/// Serves until `shutdown` resolves, then stops accepting, lets the
/// background tasks finish their current step, and returns.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks = start(&app, stop_rx);
    tracing::info!(
        %addr,
        backend = ?app.store.backend(),
        demo = app.settings.demo,
        max_connections = limits.max_connections,
        "serving"
    );
    let routes = warp::service(http::routes(app));
    let handler = move |request| {
        let mut routes = routes.clone();
        tower_service::Service::call(&mut routes, request)
    };
    connections::serve(handler, listener, limits, async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    })
    .await;
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

/// Spawns every background task; each ends when `stop` turns true (the
/// inbox writer when the last handle on it is gone).
fn start(app: &App, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    if let Some(writer) = app.ingest.take_inbox_writer() {
        tokio::spawn(writer.run());
    }
    let mut tasks = Vec::new();
    // Every change announcement goes through one feed: out to all
    // instances by NOTIFY on PostgreSQL, straight to local subscribers on
    // SQLite.
    if let Some(feed) = app.live.take_feed() {
        match app.store.backend() {
            Backend::Postgres => {
                tasks.push(tokio::spawn(bus::run_notifier(
                    app.live.clone(),
                    feed,
                    stop.clone(),
                )));
                tasks.push(tokio::spawn(bus::run_listener(
                    app.live.clone(),
                    stop.clone(),
                )));
            }
            Backend::Sqlite => tasks.push(tokio::spawn(delivery::run_local_delivery(
                app.live.clone(),
                feed,
                stop.clone(),
            ))),
        }
    }
    // On PostgreSQL several processors apply batches side by side, each for
    // its own share of the rooms (a room's events stay in order in one of
    // them), so applying is not one round trip after another. SQLite has
    // one writer whatever the number.
    let processors = match app.store.backend() {
        Backend::Postgres => PROCESSORS_ON_POSTGRES,
        Backend::Sqlite => 1,
    };
    for index in 0..processors {
        tasks.push(tokio::spawn(processor::run(
            app.ingest.clone(),
            Shard {
                index,
                of: processors,
            },
            stop.clone(),
        )));
    }
    tasks.push(tokio::spawn(sweeper::run(app.ingest.clone(), stop.clone())));
    match app.settings.ingest.reconcile.clone() {
        Some(settings) => tasks.push(tokio::spawn(reconciler::run(
            app.ingest.clone(),
            settings,
            stop.clone(),
        ))),
        None => tracing::info!(
            "no LiveKit URL (--livekit-url): not reconciling with LiveKit; lost webhooks are \
             covered by heartbeats and the session window only"
        ),
    }
    tasks.push(tokio::spawn(outbound::delivery::run(
        app.outbound.clone(),
        stop.clone(),
    )));
    tasks.push(tokio::spawn(outbound::finalizer::run(
        app.outbound.clone(),
        stop.clone(),
    )));
    tasks.push(tokio::spawn(flush_heartbeats(app.store.clone(), stop)));
    tasks
}

/// Writes buffered heartbeats every second, and once more at shutdown.
async fn flush_heartbeats(store: Store, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        let stopping = tokio::select! {
            _ = ticker.tick() => false,
            _ = shutdown.changed() => true,
        };
        if let Err(error) = store.flush_heartbeats().await {
            tracing::warn!(%error, "heartbeats not written yet: store unavailable");
        }
        if stopping {
            return;
        }
    }
}
