//! `GET /api/sessions/{room}/live`: a snapshot on connect, then every change
//! the token may see; heartbeats may come back over the same socket.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use headers::{
    Connection, HeaderMapExt, SecWebsocketAccept, SecWebsocketKey, SecWebsocketVersion, Upgrade,
};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{interval, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, HeaderMap, StatusCode};
use warp::reply::{Reply, Response};
use warp::Filter;

use super::error::ApiError;
use super::lessons::{self, LessonQuery};
use super::params::Name;
use super::{heartbeats, App};
use crate::domain::{now, SessionRow};
use crate::live::delivery;
use crate::live::hub::Change;
use crate::livekit::Principal;
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
/// tungstenite allocates (and zero-fills) its read buffer up front for every
/// socket; its 128 KiB default would make an idle student cost ~136 KiB.
/// Client messages are at most [`MAX_MESSAGE_BYTES`], so a small buffer suffices.
const READ_BUFFER_BYTES: usize = 4 * 1024;

type Socket = WebSocketStream<TokioIo<Upgraded>>;

fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        // Every message is flushed as it is sent; nothing waits in a buffer.
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// The parts of a WebSocket upgrade request (RFC 6455 §4.2.1) the server
/// needs to answer it. warp's own `ws()` filter cannot size tungstenite's
/// buffers, so the upgrade is done here with hyper's [`OnUpgrade`], checked
/// and answered with the typed headers warp's filter uses.
struct UpgradeRequest {
    key: SecWebsocketKey,
    on_upgrade: OnUpgrade,
}

fn upgrade_request(
) -> impl Filter<Extract = (Result<UpgradeRequest, Box<Response>>,), Error = std::convert::Infallible>
       + Clone {
    warp::header::headers_cloned()
        .and(warp::ext::optional::<OnUpgrade>())
        .map(|headers: HeaderMap, on_upgrade: Option<OnUpgrade>| {
            let is_websocket = headers
                .typed_get::<Connection>()
                .is_some_and(|c| c.contains("upgrade"))
                && headers
                    .get(header::UPGRADE)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
                && headers.typed_get::<SecWebsocketVersion>() == Some(SecWebsocketVersion::V13);
            match (headers.typed_get::<SecWebsocketKey>(), on_upgrade) {
                (Some(key), Some(on_upgrade)) if is_websocket => Ok(UpgradeRequest { key, on_upgrade }),
                _ => Err(Box::new(
                    ApiError::new(
                        StatusCode::UPGRADE_REQUIRED,
                        "this endpoint is a WebSocket (version 13): connect with a WebSocket client",
                    )
                    .into_response(),
                )),
            }
        })
}

fn switching_protocols(key: SecWebsocketKey) -> Response {
    let mut response = Response::default();
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.typed_insert(Connection::upgrade());
    headers.typed_insert(Upgrade::websocket());
    headers.typed_insert(SecWebsocketAccept::from(key));
    response
}

#[derive(Deserialize)]
struct LiveQuery {
    access_token: Option<String>,
    /// A lesson by id: its snapshot, and only its updates.
    session: Option<i64>,
}

#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
}

pub fn route(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "sessions" / Name / "live")
        .and(warp::get())
        .and(warp::any().map(move || app.clone()))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::query::<LiveQuery>())
        .and(upgrade_request())
        .map(
            |room: Name,
             app: App,
             auth: Option<String>,
             q: LiveQuery,
             upgrade: Result<UpgradeRequest, Box<Response>>| {
                let room = room.0;
                let upgrade = match upgrade {
                    Ok(upgrade) => upgrade,
                    Err(response) => return *response,
                };
                let token = q.access_token.map(|t| format!("Bearer {t}")).or(auth);
                let who = match app.authenticate(token.as_deref()) {
                    Ok(who) if who.belongs_to(&room) => who,
                    Ok(_) => {
                        return ApiError::forbidden("this token is for another room")
                            .into_response()
                    }
                    Err(e) => return e.into_response(),
                };
                let Some(slot) =
                    app.live
                        .hub
                        .admit(&room, &who.identity, MAX_CONNECTIONS_PER_IDENTITY)
                else {
                    return ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too many live connections for this identity",
                    )
                    .into_response();
                };
                let response = switching_protocols(upgrade.key);
                // hyper completes the upgrade once the 101 above has been written.
                tokio::spawn(async move {
                    match upgrade.on_upgrade.await {
                        Ok(upgraded) => {
                            let socket = WebSocketStream::from_raw_socket(
                                TokioIo::new(upgraded),
                                Role::Server,
                                Some(socket_config()),
                            )
                            .await;
                            let lesson = LessonQuery { session: q.session };
                            serve(app, room, who, lesson, socket).await;
                        }
                        Err(error) => tracing::debug!(%error, "WebSocket upgrade failed"),
                    }
                    drop(slot);
                });
                response
            },
        )
}

/// Sends within [`SEND_TIMEOUT`]; `false` means the client is gone or too slow.
async fn send_message(socket: &mut Socket, message: Message) -> bool {
    matches!(
        timeout(SEND_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

async fn send(socket: &mut Socket, text: impl Into<String>) -> bool {
    send_message(socket, Message::text(text.into())).await
}

async fn serve(app: App, room: String, who: Principal, lesson: LessonQuery, mut socket: Socket) {
    // A socket opened for one lesson (`?session=ID`) follows that lesson.
    let pinned = match lesson.session {
        Some(_) => match lessons::lesson(&app, &room, lesson).await {
            Ok(session) => Some(session),
            Err(e) => {
                let _ = send(
                    &mut socket,
                    json!({ "type": "error", "message": e.message }).to_string(),
                )
                .await;
                return;
            }
        },
        None => None,
    };
    Metrics::inc(&app.metrics.websocket_connections);
    let mut changes = app.live.hub.subscribe(&room);
    let mut ping = interval(PING_EVERY);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ping.tick().await;
    let mut awaiting_pong = false;
    let mut last_heartbeat: Option<Instant> = None;
    let mut window = (Instant::now(), 0u32);
    tracing::debug!(room = %room, identity = %who.identity, "live subscriber connected");

    if !send_snapshot(&app, &room, &who, pinned.as_ref(), &mut socket).await {
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
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: CloseCode::Policy, reason: "too many messages".into() }))).await;
                    break;
                }
                if message.is_pong() {
                    awaiting_pong = false;
                } else if message.is_close() {
                    break;
                } else if let Message::Text(text) = &message {
                    let reply = match serde_json::from_str::<ClientMessage>(text.as_str()) {
                        Ok(m) if m.kind == "heartbeat" => {
                            let recent = last_heartbeat.is_some_and(|t| t.elapsed() < MIN_HEARTBEAT_GAP);
                            if recent {
                                json!({ "type": "heartbeat.ack", "throttled": true, "server_time": now() })
                            } else {
                                last_heartbeat = Some(Instant::now());
                                match heartbeats::record(&app, &room, &who) {
                                    Ok(at) => json!({ "type": "heartbeat.ack", "last_heartbeat_at": at, "server_time": at }),
                                    Err(e) => json!({ "type": "error", "message": e.message }),
                                }
                            }
                        }
                        Ok(m) if m.kind == "resync" => {
                            if !send_snapshot(&app, &room, &who, pinned.as_ref(), &mut socket).await { break }
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
                    Ok(Change::Participant { identity, session, json }) => {
                        let other_lesson = pinned.as_ref().is_some_and(|p| p.id != session);
                        if who.may_read(&room, &identity) && !other_lesson { send(&mut socket, json.to_string()).await } else { true }
                    }
                    // Lagged: this client missed messages; a snapshot repairs it.
                    Ok(Change::Room) | Err(RecvError::Lagged(_)) => send_snapshot(&app, &room, &who, pinned.as_ref(), &mut socket).await,
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
                if !send_message(&mut socket, Message::Ping(Default::default())).await { break }
            }
        }
    }
    let _ = socket.close(None).await;
    tracing::debug!(room = %room, identity = %who.identity, "live subscriber gone");
}

async fn send_snapshot(
    app: &App,
    room: &str,
    who: &Principal,
    pinned: Option<&SessionRow>,
    socket: &mut Socket,
) -> bool {
    match delivery::snapshot(&app.live, room, who, pinned).await {
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
