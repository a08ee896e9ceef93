//! The attendance server: LiveKit webhooks in, attendance reports and live
//! updates out. Facts are stored; every number is computed by
//! `attendance-rules` when it is read.

pub mod app;
pub mod auth;
pub mod demo;
pub mod facts_cache;
pub mod http;
pub mod hub;
pub mod inbox;
pub mod live;
pub mod metrics;
pub mod notify;
pub mod processor;
pub mod report;
pub mod sessions;
pub mod store;
pub mod sweeper;
pub mod webhook;
pub mod ws;

use std::net::SocketAddr;

use tokio::sync::watch;

pub use app::{App, Settings};

/// Serves until `shutdown` resolves, then stops accepting, lets the
/// background tasks finish their current step, and returns.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    // Every change announcement goes through one queue: out to all
    // instances by NOTIFY on PostgreSQL, straight to local subscribers on
    // SQLite.
    let (feed, rx) = notify::ChangeFeed::new();
    let _ = app.feed.set(feed.clone());
    match app.store.backend() {
        store::Backend::Postgres => {
            tasks.push(tokio::spawn(notify::run_notifier(
                app.clone(),
                feed,
                rx,
                stop_rx.clone(),
            )));
            tasks.push(tokio::spawn(notify::run_listener(
                app.clone(),
                app.store.url().to_string(),
                stop_rx.clone(),
            )));
        }
        store::Backend::Sqlite => tasks.push(tokio::spawn(live::run_local_delivery(
            app.clone(),
            feed,
            rx,
            stop_rx.clone(),
        ))),
    }
    let processor = tokio::spawn(processor::run(app.clone(), stop_rx.clone()));
    let sweeper = tokio::spawn(sweeper::run(app.clone(), stop_rx.clone()));
    tasks.push(tokio::spawn(flush_heartbeats(app.clone(), stop_rx.clone())));
    tracing::info!(%addr, backend = ?app.store.backend(), demo = app.settings.demo, "serving");
    warp::serve(http::routes(app))
        .incoming(listener)
        .graceful(async move {
            shutdown.await;
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        })
        .run()
        .await;
    let _ = processor.await;
    let _ = sweeper.await;
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

/// Writes buffered heartbeats every second, and once more at shutdown.
async fn flush_heartbeats(app: App, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        let stopping = tokio::select! {
            _ = ticker.tick() => false,
            _ = shutdown.changed() => true,
        };
        if let Err(error) = app.store.flush_heartbeats().await {
            tracing::warn!(%error, "heartbeats not written yet: store unavailable");
        }
        if stopping {
            return;
        }
    }
}
