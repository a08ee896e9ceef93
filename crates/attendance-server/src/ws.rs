//! `GET /api/sessions/{room}/live`: a snapshot on connect, then every change
//! the token may see; heartbeats may come back over the same socket.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{interval, timeout, Instant, MissedTickBehavior};
use warp::filters::ws::{Message, WebSocket, Ws};
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::app::App;
use crate::auth::Principal;
use crate::http::{self, ApiError};
use crate::hub::Change;
use crate::live;
use crate::metrics::Metrics;

/// Browsers send small JSON messages; anything bigger is abuse.
const MAX_MESSAGE_BYTES: usize = 4 * 1024;
const PING_EVERY: Duration = Duration::from_secs(30);
/// A client that cannot take a message within this time is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Heartbeats closer together than this are acknowledged but not stored.
const MIN_HEARTBEAT_GAP: Duration = Duration::from_secs(5);
/// Live connections one identity may hold in one room (tabs, devices).
const MAX_CONNECTIONS_PER_IDENTITY: usize = 8;
/// Messages a client may send per window before it is disconnected.
const MAX_MESSAGES_PER_WINDOW: u32 = 30;
const MESSAGE_WINDOW: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
struct LiveQuery {
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
}

pub fn route(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "sessions" / String / "live")
        .and(warp::get())
        .and(warp::any().map(move || app.clone()))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::query::<LiveQuery>())
        .and(warp::ws())
        .map(
            |room: String, app: App, auth: Option<String>, q: LiveQuery, ws: Ws| {
                let token = q.access_token.map(|t| format!("Bearer {t}")).or(auth);
                let who = match app.authenticate(token.as_deref()) {
                    Ok(who) if who.belongs_to(&room) => who,
                    Ok(_) => {
                        return ApiError::forbidden("this token is for another room")
                            .into_response()
                    }
                    Err(e) => return e.into_response(),
                };
                let Some(slot) = app
                    .hub
                    .admit(&room, &who.identity, MAX_CONNECTIONS_PER_IDENTITY)
                else {
                    return ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too many live connections for this identity",
                    )
                    .into_response();
                };
                ws.max_message_size(MAX_MESSAGE_BYTES)
                    .max_frame_size(MAX_MESSAGE_BYTES)
                    .on_upgrade(move |socket| async move {
                        serve(app, room, who, socket).await;
                        drop(slot);
                    })
                    .into_response()
            },
        )
}

/// Sends within [`SEND_TIMEOUT`]; `false` means the client is gone or too slow.
async fn send_message(socket: &mut WebSocket, message: Message) -> bool {
    matches!(
        timeout(SEND_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

async fn send(socket: &mut WebSocket, text: impl Into<String>) -> bool {
    send_message(socket, Message::text(text.into())).await
}

async fn serve(app: App, room: String, who: Principal, mut socket: WebSocket) {
    Metrics::inc(&app.metrics.websocket_connections);
    let mut changes = app.hub.subscribe(&room);
    let mut ping = interval(PING_EVERY);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ping.tick().await;
    let mut awaiting_pong = false;
    let mut last_heartbeat: Option<Instant> = None;
    let mut window = (Instant::now(), 0u32);
    tracing::debug!(room = %room, identity = %who.identity, "live subscriber connected");

    if !send_snapshot(&app, &room, &who, &mut socket).await {
        return;
    }
    loop {
        tokio::select! {
            incoming = socket.next() => {
                let Some(Ok(message)) = incoming else { break };
                if window.0.elapsed() > MESSAGE_WINDOW {
                    window = (Instant::now(), 0);
                }
                window.1 += 1;
                if window.1 > MAX_MESSAGES_PER_WINDOW {
                    tracing::warn!(room = %room, identity = %who.identity, "live client over its message rate: disconnected");
                    let _ = socket.send(Message::close_with(1008u16, "too many messages")).await;
                    break;
                }
                if message.is_pong() {
                    awaiting_pong = false;
                } else if message.is_close() {
                    break;
                } else if let Ok(text) = message.to_str() {
                    let reply = match serde_json::from_str::<ClientMessage>(text) {
                        Ok(m) if m.kind == "heartbeat" => {
                            let recent = last_heartbeat.is_some_and(|t| t.elapsed() < MIN_HEARTBEAT_GAP);
                            if recent {
                                json!({ "type": "heartbeat.ack", "throttled": true, "server_time": crate::app::now() })
                            } else {
                                last_heartbeat = Some(Instant::now());
                                match http::heartbeat(&app, &room, &who) {
                                    Ok(at) => json!({ "type": "heartbeat.ack", "last_heartbeat_at": at, "server_time": at }),
                                    Err(e) => json!({ "type": "error", "message": e.message }),
                                }
                            }
                        }
                        Ok(m) if m.kind == "resync" => {
                            if !send_snapshot(&app, &room, &who, &mut socket).await { break }
                            continue;
                        }
                        Ok(m) => json!({ "type": "error", "message": format!("unknown message type `{}`", m.kind) }),
                        Err(e) => json!({ "type": "error", "message": format!("malformed message: {e}") }),
                    };
                    if !send(&mut socket, reply.to_string()).await { break }
                }
            }
            change = changes.recv() => {
                let ok = match change {
                    Ok(Change::Participant { identity, json }) => {
                        if who.may_read(&room, &identity) { send(&mut socket, json.to_string()).await } else { true }
                    }
                    // Lagged: this client missed messages; a snapshot repairs it.
                    Ok(Change::Room) | Err(RecvError::Lagged(_)) => send_snapshot(&app, &room, &who, &mut socket).await,
                    Err(RecvError::Closed) => false,
                };
                if !ok { break }
            }
            _ = ping.tick() => {
                if awaiting_pong {
                    tracing::debug!(room = %room, identity = %who.identity, "no pong: dropping dead socket");
                    break;
                }
                awaiting_pong = true;
                if !send_message(&mut socket, Message::ping(Vec::new())).await { break }
            }
        }
    }
    let _ = socket.close().await;
    tracing::debug!(room = %room, identity = %who.identity, "live subscriber gone");
}

async fn send_snapshot(app: &App, room: &str, who: &Principal, socket: &mut WebSocket) -> bool {
    match live::snapshot(app, room, who).await {
        Ok(text) => send(socket, text).await,
        Err(error) => {
            tracing::warn!(%error, "snapshot failed");
            send(
                socket,
                json!({ "type": "error", "message": "the database is unavailable; retrying" })
                    .to_string(),
            )
            .await
        }
    }
}
