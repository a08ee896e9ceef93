//! LiveKit's webhooks in, and the administrator's view of them: dead letters
//! listed and replayed.

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;

use super::error::{json_reply, ApiError, ApiResult};
use super::App;
use crate::livekit::Principal;

/// `POST /webhooks/livekit`: 200 only once the event is stored durably.
pub async fn receive(app: App, authorization: Option<String>, body: bytes::Bytes) -> ApiResult {
    let (received, id) = app.ingest.receive(authorization.as_deref(), &body).await?;
    Ok(json_reply(
        &json!({ "status": received.as_str(), "id": id }),
        StatusCode::OK,
    ))
}

#[derive(Debug, Deserialize)]
pub struct WebhookQuery {
    status: Option<String>,
    limit: Option<i64>,
}

pub async fn list(app: App, who: Principal, q: WebhookQuery) -> ApiResult {
    if !who.is_admin() {
        return Err(ApiError::forbidden("administrators only"));
    }
    let status = q.status.unwrap_or_else(|| "failed".into());
    if !["pending", "processed", "failed"].contains(&status.as_str()) {
        return Err(ApiError::bad_request(
            "status must be pending, processed or failed",
        ));
    }
    let events = app
        .store
        .events_by_status(&status, q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    let list: Vec<_> = events
        .iter()
        .map(|e| {
            json!({
                "id": e.id, "event": e.event, "room": e.room, "status": e.status,
                "attempts": e.attempts, "received_at": e.received_at, "last_error": e.last_error,
            })
        })
        .collect();
    Ok(json_reply(&json!({ "webhooks": list }), StatusCode::OK))
}

pub async fn replay(app: App, who: Principal, id: String) -> ApiResult {
    if !who.is_admin() {
        return Err(ApiError::forbidden("administrators only"));
    }
    if !app.ingest.replay(&id).await? {
        return Err(ApiError::not_found(format!("no webhook with id `{id}`")));
    }
    tracing::info!(event_id = %id, by = %who.identity, "webhook queued for replay");
    Ok(json_reply(
        &json!({ "status": "queued", "id": id }),
        StatusCode::ACCEPTED,
    ))
}
