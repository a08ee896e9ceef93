//! `GET /api/sessions/{room}/live`: a snapshot on connect, then every change
//! the token may see; heartbeats, and a page's mute and unmute reports
//! (`{"type":"media",…}`, see [`super::media`]), may come back over it.
//!
//! The token comes in the `Sec-WebSocket-Protocol` header (subprotocols
//! `attendance.v1` and `access_token.<jwt>`, answered with `attendance.v1`),
//! or in a first message `{"type":"auth","token":"<jwt>"}` within
//! [`AUTH_WITHIN`], or (old clients) in `?access_token=` or `Authorization`.
//! Messages bigger than 64 KiB go in parts ([`crate::live::parts`]). Every
//! write and close has a time limit, so a client that stops reading is
//! dropped and its place freed. The socket is closed with a code and a
//! reason (README, "Live socket protocol") when its token expires.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{interval, sleep_until, timeout, timeout_at, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, HeaderValue};
use warp::reply::{Reply, Response};
use warp::Filter;

use super::error::ApiError;
use super::lessons::{self, LessonQuery};
use super::live_admission::{admit, close_code, refresh, Admitted};
use super::live_upgrade::{
    offered, switching_protocols, upgrade_request, UpgradeRequest, PROTOCOL, TOKEN_PROTOCOL,
};
use super::params::Name;
use super::{heartbeats, media, App};
use crate::domain::{now, SessionRow};
use crate::live::delivery;
use crate::live::hub::Change;
use crate::live::parts;
use crate::livekit::tokens::token_from_header;
use crate::livekit::Principal;
use crate::metrics::Metrics;

/// Browsers send small JSON messages; anything bigger is abuse.
const MAX_MESSAGE_BYTES: usize = 4 * 1024;
const PING_EVERY: Duration = Duration::from_secs(30);
/// A client that cannot take a message (each part of one) within this
/// time is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Closing (the close frame out, the client's answer in) takes at most this.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);
/// After a broken-off read, a client silent this long has sent all it had.
const LINGER: Duration = Duration::from_millis(200);
/// A socket opened without a token must authenticate within this time.
const AUTH_WITHIN: Duration = Duration::from_secs(10);
/// Heartbeats closer together than this are acknowledged but not stored.
const MIN_HEARTBEAT_GAP: Duration = Duration::from_secs(5);
/// Messages a client may send per window before it is disconnected.
const MAX_MESSAGES_PER_WINDOW: u32 = 30;
const MESSAGE_WINDOW: Duration = Duration::from_secs(10);
/// tungstenite allocates (and zero-fills) its read buffer up front for every
/// socket; its 128 KiB default would make an idle student cost ~136 KiB.
/// Client messages are small (a heartbeat is ~30 bytes); a bigger one (up to
/// [`MAX_MESSAGE_BYTES`]) gets its exact room once its header is read.
const READ_BUFFER_BYTES: usize = 512;

type Socket = WebSocketStream<TokioIo<Upgraded>>;

// Every send, snapshot, close and database wait of a socket is a boxed
// future (`BoxFuture`, or `Box::pin` where it is awaited): a connection
// resting in its `select!` would otherwise hold the largest of them inline,
// and 20,000 idle sockets should not each carry a query's or a send's state.

fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        // Every message is flushed as it is sent; nothing waits in a buffer.
        .write_buffer_size(0)
        // Parts are at most 64 KiB: a frame always fits.
        .max_write_buffer_size(4 * parts::PART_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
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
    token: Option<String>,
}

pub fn route(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "sessions" / Name / "live")
        .and(warp::get())
        .and(warp::any().map(move || app.clone()))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .and(warp::query::<LiveQuery>())
        .and(upgrade_request())
        .map(
            |room: Name,
             app: App,
             auth: Option<String>,
             protocols: Option<String>,
             q: LiveQuery,
             upgrade: Result<UpgradeRequest, Box<Response>>| {
                match upgrade {
                    Ok(upgrade) => accept(app, room.0, auth, protocols, q, upgrade),
                    Err(response) => *response,
                }
            },
        )
}

fn accept(
    app: App,
    room: String,
    auth: Option<String>,
    protocols: Option<String>,
    q: LiveQuery,
    upgrade: UpgradeRequest,
) -> Response {
    let lesson = LessonQuery { session: q.session };
    let offered = offered(protocols.as_deref());
    if offered.any && !offered.ours {
        return ApiError::bad_request(format!(
            "offer the `{PROTOCOL}` subprotocol (with `{TOKEN_PROTOCOL}<token>`, or send the \
             token in a first `auth` message)"
        ))
        .into_response();
    }
    let token = offered
        .token
        .or(q.access_token)
        .or_else(|| token_from_header(auth.as_deref()).map(str::to_string))
        .filter(|t| !t.is_empty());
    // With a token, refusals are plain HTTP answers; without one, the
    // socket opens and the first message must authenticate it.
    let admitted = match token {
        Some(token) => match admit(&app, &room, &token, lesson.session.is_some()) {
            Ok(admitted) => Some(admitted),
            Err(refusal) => return refusal.error.into_response(),
        },
        None => None,
    };
    let mut response = switching_protocols(upgrade.key);
    if offered.ours {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(PROTOCOL),
        );
    }
    // hyper completes the upgrade once the 101 above has been written.
    tokio::spawn(async move {
        let upgraded = match upgrade.on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "WebSocket upgrade failed");
                return;
            }
        };
        let mut socket = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(socket_config()),
        )
        .await;
        let admitted = match admitted {
            Some(admitted) => admitted,
            None => {
                match Box::pin(first_message_auth(
                    &app,
                    &room,
                    lesson.session.is_some(),
                    &mut socket,
                ))
                .await
                {
                    Ok(admitted) => admitted,
                    Err(stop) => return finish(socket, stop).await,
                }
            }
        };
        // A socket opened for one lesson (`?session=ID`) follows that lesson.
        let pinned = match lesson.session {
            Some(_) => match Box::pin(lessons::lesson(&app, &room, lesson)).await {
                Ok(session) => Some(session),
                Err(e) => return finish(socket, Stop::close(CloseCode::Policy, e.message)).await,
            },
            None => None,
        };
        let Admitted { who, expires, slot } = admitted;
        let who = match Box::pin(lessons::member(&app, who, &room, lesson)).await {
            Ok(who) => who,
            Err(e) => return finish(socket, Stop::close(close_code::FORBIDDEN, e.message)).await,
        };
        let stop = serve(&app, &room, who, expires, pinned.as_ref(), &mut socket).await;
        finish(socket, stop).await;
        drop(slot);
    });
    response
}

/// Why a socket ends.
#[derive(Debug)]
enum Stop {
    /// The client went away (or broke the protocol beyond answering).
    Gone,
    /// The client closed; its close is answered.
    ClosedByClient,
    /// We close, with this code and reason.
    Close(CloseCode, String),
}

impl Stop {
    fn close(code: impl Into<CloseCode>, reason: impl Into<String>) -> Stop {
        Stop::Close(code.into(), reason.into())
    }

    /// What a failed read means.
    fn read_error(error: WsError) -> Stop {
        match error {
            WsError::Capacity(_) => Stop::close(
                CloseCode::Size,
                format!("message too big: at most {MAX_MESSAGE_BYTES} bytes"),
            ),
            WsError::Protocol(_) => Stop::close(CloseCode::Protocol, "protocol error"),
            _ => Stop::Gone,
        }
    }
}

/// A close reason fits in a control frame: at most 123 bytes.
fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

/// Ends a socket: the close frame (if any) and the client's answer within
/// [`CLOSE_WITHIN`], then the connection is dropped whatever the client does.
fn finish(mut socket: Socket, stop: Stop) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let closing = async {
            match stop {
                Stop::Gone => return,
                Stop::ClosedByClient => {
                    let _ = socket.close(None).await;
                }
                Stop::Close(code, reason) => {
                    let frame = CloseFrame {
                        code,
                        reason: close_reason(&reason).into(),
                    };
                    if socket.send(Message::Close(Some(frame))).await.is_err() {
                        return;
                    }
                }
            }
            // The client's close (or anything else) until it hangs up.
            while let Some(Ok(_)) = socket.next().await {}
            // A read that broke off (a message over the limit) leaves the rest
            // of the client's bytes unread: dropping the connection then would
            // reset it and lose the close frame on the way. They are read and
            // discarded until the client falls silent.
            let mut discard = [0u8; 1024];
            while let Ok(Ok(1..)) = timeout(LINGER, socket.get_mut().read(&mut discard)).await {}
        };
        let _ = timeout(CLOSE_WITHIN, closing).await;
    })
}

/// Sends within [`SEND_TIMEOUT`]; a client too slow to take it is closed.
fn send_message(socket: &mut Socket, message: Message) -> BoxFuture<'_, Result<(), Stop>> {
    Box::pin(async move {
        match timeout(SEND_TIMEOUT, socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Gone),
            Err(_) => Err(Stop::close(
                CloseCode::Policy,
                "too slow: a message waited 10 s to be read",
            )),
        }
    })
}

/// Sends one JSON text message, in parts when it is over 64 KiB.
fn send<'a>(
    socket: &'a mut Socket,
    ids: &'a mut u64,
    text: &'a str,
) -> BoxFuture<'a, Result<(), Stop>> {
    Box::pin(async move {
        if text.len() <= parts::PART_BYTES {
            return send_message(socket, Message::text(text.to_string())).await;
        }
        *ids += 1;
        for part in parts::split(text, *ids) {
            send_message(socket, Message::text(part)).await?;
        }
        Ok(())
    })
}

/// Waits for `{"type":"auth","token":…}`, the first message of a socket
/// opened without a token.
async fn first_message_auth(
    app: &App,
    room: &str,
    pinned: bool,
    socket: &mut Socket,
) -> Result<Admitted, Stop> {
    let deadline = Instant::now() + AUTH_WITHIN;
    loop {
        let message = match timeout_at(deadline, socket.next()).await {
            Err(_) => {
                return Err(Stop::close(
                    CloseCode::Policy,
                    "no token: send {\"type\":\"auth\",\"token\":…} within 10 s",
                ))
            }
            Ok(None) => return Err(Stop::Gone),
            Ok(Some(Err(error))) => return Err(Stop::read_error(error)),
            Ok(Some(Ok(message))) => message,
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => return Err(Stop::ClosedByClient),
            Message::Ping(_) | Message::Pong(_) => continue,
            _ => String::new().into(),
        };
        return match serde_json::from_str::<ClientMessage>(text.as_str()) {
            Ok(ClientMessage {
                kind,
                token: Some(token),
            }) if kind == "auth" => admit(app, room, &token, pinned)
                .map_err(|refusal| Stop::close(refusal.close_code, refusal.error.message)),
            _ => Err(Stop::close(
                CloseCode::Policy,
                "the first message must be {\"type\":\"auth\",\"token\":…}",
            )),
        };
    }
}

async fn serve(
    app: &App,
    room: &str,
    mut who: Principal,
    expires: Instant,
    pinned: Option<&SessionRow>,
    socket: &mut Socket,
) -> Stop {
    Metrics::inc(&app.metrics.websocket_connections);
    let mut changes = app.live.hub.subscribe(room);
    // A participant's own page is known by its connection slot; a
    // dashboard that sees everyone is counted here.
    let _seeing_everyone = who
        .manages(room)
        .then(|| app.live.hub.seeing_everyone(room));
    let mut ping = interval(PING_EVERY);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ping.tick().await;
    let mut awaiting_pong = false;
    let mut last_heartbeat: Option<Instant> = None;
    let mut window = (Instant::now(), 0u32);
    let mut ids = 0u64;
    // The session object this subscriber was last sent (its hash).
    let mut shown_session = 0u64;
    let expiry = sleep_until(expires);
    tokio::pin!(expiry);
    tracing::debug!(room = %room, identity = %who.identity, "live subscriber connected");

    if let Err(stop) = send_snapshot(
        app,
        room,
        &who,
        pinned,
        socket,
        &mut ids,
        &mut shown_session,
    )
    .await
    {
        return stop;
    }
    let stop = loop {
        let step: Result<(), Stop> = tokio::select! {
            incoming = socket.next() => {
                let message = match incoming {
                    None => break Stop::Gone,
                    Some(Err(error)) => break Stop::read_error(error),
                    Some(Ok(message)) => message,
                };
                if window.0.elapsed() > MESSAGE_WINDOW {
                    window = (Instant::now(), 0);
                }
                window.1 += 1;
                if window.1 > MAX_MESSAGES_PER_WINDOW {
                    tracing::warn!(room = %room, identity = %who.identity, "live client over its message rate: disconnected");
                    break Stop::close(CloseCode::Policy, "too many messages");
                }
                match message {
                    Message::Pong(_) => {
                        awaiting_pong = false;
                        Ok(())
                    }
                    Message::Close(_) => break Stop::ClosedByClient,
                    Message::Text(text) => {
                        let reply = match serde_json::from_str::<ClientMessage>(text.as_str()) {
                            Ok(m) if m.kind == "heartbeat" => {
                                let recent = last_heartbeat.is_some_and(|t| t.elapsed() < MIN_HEARTBEAT_GAP);
                                if recent {
                                    // The common case of a busy socket, written without a JSON tree.
                                    let at = serde_json::to_string(&now()).unwrap_or_default();
                                    let ack = format!(r#"{{"type":"heartbeat.ack","throttled":true,"server_time":{at}}}"#);
                                    if let Err(stop) = send(socket, &mut ids, &ack).await {
                                        break stop;
                                    }
                                    continue;
                                } else {
                                    last_heartbeat = Some(Instant::now());
                                    match heartbeats::record(app, room, &who) {
                                        Ok(at) => json!({ "type": "heartbeat.ack", "last_heartbeat_at": at, "server_time": at }),
                                        Err(e) => json!({ "type": "error", "message": e.message }),
                                    }
                                }
                            }
                            // Mute and unmute from the participant's own page.
                            Ok(m) if m.kind == "media" => {
                                match serde_json::from_str::<media::MediaReport>(text.as_str()) {
                                    Ok(report) => match Box::pin(media::record(app, room, &who, &report)).await {
                                        Ok(kept) => json!({ "type": "media.ack", "kept": kept, "server_time": now() }),
                                        Err(e) => json!({ "type": "error", "message": e.message }),
                                    },
                                    Err(e) => json!({ "type": "error", "message": format!("malformed media message: {e}") }),
                                }
                            }
                            Ok(m) if m.kind == "resync" => {
                                if let Err(stop) = send_snapshot(app, room, &who, pinned, socket, &mut ids, &mut shown_session).await {
                                    break stop;
                                }
                                continue;
                            }
                            // A fresh token for the same identity extends the socket's life.
                            Ok(ClientMessage { kind, token: Some(token) }) if kind == "auth" => {
                                match refresh(app, room, &who, &token) {
                                    Ok((fresh, until)) => {
                                        who = fresh;
                                        expiry.as_mut().reset(until);
                                        json!({ "type": "auth.ok" })
                                    }
                                    Err(message) => json!({ "type": "error", "message": message }),
                                }
                            }
                            Ok(m) => json!({ "type": "error", "message": format!("unknown message type `{}`", m.kind) }),
                            Err(e) => json!({ "type": "error", "message": format!("malformed message: {e}") }),
                        };
                        send(socket, &mut ids, &reply.to_string()).await
                    }
                    _ => Ok(()),
                }
            }
            change = changes.recv() => {
                match change {
                    Ok(Change::Participant(change)) => {
                        let other_lesson = pinned.is_some_and(|p| p.id != change.session);
                        if who.may_read(room, &change.identity) && !other_lesson {
                            let message = change.message_for(&mut shown_session);
                            send(socket, &mut ids, message).await
                        } else {
                            Ok(())
                        }
                    }
                    // Lagged: this client missed messages; a snapshot repairs it.
                    Ok(Change::Room) | Err(RecvError::Lagged(_)) => send_snapshot(app, room, &who, pinned, socket, &mut ids, &mut shown_session).await,
                    Err(RecvError::Closed) => Err(Stop::close(CloseCode::Away, "server shutting down")),
                }
            }
            _ = ping.tick() => {
                if awaiting_pong {
                    tracing::debug!(room = %room, identity = %who.identity, "no pong: dropping dead socket");
                    break Stop::close(CloseCode::Policy, "no pong within 30 s");
                }
                awaiting_pong = true;
                send_message(socket, Message::Ping(Default::default())).await
            }
            _ = &mut expiry => {
                break Stop::close(close_code::TOKEN, "token expired: fetch a fresh token");
            }
        };
        if let Err(stop) = step {
            break stop;
        }
    };
    tracing::debug!(room = %room, identity = %who.identity, ?stop, "live subscriber gone");
    stop
}

/// Pauses before each new try of a snapshot the database could not give
/// (busy with a whole school connecting at once, or briefly away). After
/// the last, the socket closes with 1013 (try again later) and the page
/// reconnects with its back-off: a dashboard is never left without its
/// snapshot.
const SNAPSHOT_RETRIES: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

fn send_snapshot<'a>(
    app: &'a App,
    room: &'a str,
    who: &'a Principal,
    pinned: Option<&'a SessionRow>,
    socket: &'a mut Socket,
    ids: &'a mut u64,
    shown_session: &'a mut u64,
) -> BoxFuture<'a, Result<(), Stop>> {
    Box::pin(async move {
        let mut retries = SNAPSHOT_RETRIES.iter();
        loop {
            match delivery::snapshot(&app.live, room, who, pinned).await {
                Ok((text, session_hash)) => {
                    *shown_session = session_hash;
                    return send(socket, ids, &text).await;
                }
                Err(error) => match retries.next() {
                    Some(pause) => {
                        tracing::debug!(%error, "snapshot failed; trying again");
                        tokio::time::sleep(*pause).await;
                    }
                    None => {
                        tracing::warn!(%error, "snapshot failed");
                        return Err(Stop::close(
                            CloseCode::Again,
                            "the database is unavailable: reconnect shortly",
                        ));
                    }
                },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_control_frame() {
        let long = "é".repeat(100);
        let reason = close_reason(&long);
        assert!(reason.len() <= 123 && long.starts_with(&reason));
        assert_eq!(close_reason("token expired"), "token expired");
    }
}
