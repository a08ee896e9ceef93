//! For operators: health and Prometheus metrics.

use std::sync::atomic::Ordering;

use serde_json::json;
use warp::http::{header, StatusCode};
use warp::reply::Reply;

use super::error::{json_reply, ApiResult};
use super::App;
use crate::domain::now_ms;

pub async fn healthz(app: App) -> ApiResult {
    app.store.ping().await?;
    Ok(json_reply(&json!({ "status": "ok" }), StatusCode::OK))
}

/// Ready for traffic: the database answers, its schema is the one this build
/// expects, and (PostgreSQL) the LISTEN connection that carries other
/// instances' changes is up. `/healthz` only says the process is alive.
pub async fn readyz(app: App) -> ApiResult {
    let database = app.store.ping().await.is_ok();
    let migrations = database && app.store.migrations_current().await.unwrap_or(false);
    let listening = app.live.listening.load(Ordering::Relaxed);
    let ready = database && migrations && listening;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(json_reply(
        &json!({
            "status": if ready { "ready" } else { "not ready" },
            "database": if database { "ok" } else { "unavailable" },
            "migrations": if migrations { "current" } else { "not current" },
            "live_updates": if listening { "connected" } else { "reconnecting" },
        }),
        status,
    ))
}

pub async fn metrics(app: App) -> ApiResult {
    let counts = app.store.event_counts().await.unwrap_or_default();
    let oldest = app.store.oldest_pending_received_ms().await.ok().flatten();
    let backlog_age = oldest.map_or(0.0, |ms| (now_ms() - ms).max(0) as f64 / 1000.0);
    let subscribers = app.live.hub.subscriber_count() as f64;
    let outbound = app.store.outbound_counts().await.unwrap_or_default();
    let outbound = |key: &str| outbound.get(key).copied().unwrap_or(0) as f64;
    let text = app.metrics.render(&[
        (
            "attendance_webhooks_pending",
            "Stored webhooks waiting to be processed",
            counts.pending as f64,
        ),
        (
            "attendance_webhooks_dead_letters",
            "Webhooks in the dead-letter state",
            counts.failed as f64,
        ),
        (
            "attendance_webhooks_backlog_age_seconds",
            "Age of the oldest webhook waiting to be processed",
            backlog_age,
        ),
        (
            "attendance_websocket_subscribers",
            "Open WebSocket subscriptions on this instance",
            subscribers,
        ),
        (
            "attendance_outbound_messages_pending",
            "Outbound webhooks waiting to be delivered (or retried)",
            outbound("pending"),
        ),
        (
            "attendance_outbound_messages_delivered",
            "Outbound webhooks delivered and still kept (30 days)",
            outbound("delivered"),
        ),
        (
            "attendance_outbound_messages_failed",
            "Outbound webhooks whose retries were exhausted",
            outbound("failed"),
        ),
        (
            "attendance_outbound_endpoints_disabled",
            "Outbound webhook endpoints disabled",
            outbound("endpoints_disabled"),
        ),
    ]);
    Ok(
        warp::reply::with_header(text, header::CONTENT_TYPE, "text/plain; version=0.0.4")
            .into_response(),
    )
}
