//! An in-memory LiveKit RoomService for tests (cargo feature `fake`).
//!
//! [`FakeRoomService::start`] serves Twirp JSON on `127.0.0.1:<ephemeral>`
//! over real HTTP, so whatever talks to LiveKit — [`RoomServiceClient`] or a
//! whole server process configured with [`FakeRoomService::ws_url`] — is
//! tested through the same code it runs in production. It behaves as a
//! default self-hosted LiveKit does where that matters:
//!
//! - tokens are verified: HS256 with the configured secret, `iss` = the key,
//!   `exp`/`nbf` with 60 s leeway; a bad or expired token gets 401 with a
//!   **plain-text** body (which, like LiveKit's, quotes the token); a valid
//!   token without the grant — `video.roomList` for `ListRooms`,
//!   `video.roomAdmin` and `video.room` = the requested room for
//!   `ListParticipants` — gets 401 `{"code":"unauthenticated","msg":"permissions denied"}`;
//! - `ListParticipants` for a room it does not have answers **200 with an
//!   empty list** (or Twirp `not_found`, see
//!   [`FakeRoomService::set_unknown_room_not_found`]);
//! - answers are **snake_case** with every field present, int64 as strings
//!   and enums as names, or lowerCamelCase protojson on demand ([`Format`]).
//!
//! Tests set the rooms and participants, make it fail on demand
//! ([`Failure`]), and read back every call it received ([`Call`]).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use attendance_livekit::fake::{self, FakeRoomService};
//! use attendance_livekit::Method;
//!
//! let lk = FakeRoomService::start("devkey", "secret").await?;
//! lk.add_room(fake::room("math-101"));
//! lk.add_participant("math-101", fake::participant("PA_1", "ada", 1_767_000_000_123));
//! // Point the code under test at lk.ws_url() with key "devkey" / secret "secret".
//! let client = lk.client();
//! assert_eq!(client.list_participants("math-101").await.unwrap().len(), 1);
//! assert_eq!(lk.call_count(Method::ListParticipants), 1);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::model::{ParticipantInfo, ParticipantKind, ParticipantState, Room, TrackInfo};
use crate::token::{Claims, LEEWAY_SECONDS};
use crate::{Method, RoomServiceClient};

/// How the fake spells its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// A self-hosted server's: snake_case, every field present, int64 as
    /// strings, enums as names.
    #[default]
    SnakeCase,
    /// protojson: lowerCamelCase, zero values omitted, int64 as strings.
    CamelCase,
    /// protojson as some encoders write it: int64 as JSON numbers.
    CamelCaseNumbers,
}

/// A way to fail, for [`FakeRoomService::fail_next`] and
/// [`FakeRoomService::fail_until_reset`]. A failure is applied before the
/// token is looked at, as a broken server or proxy would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 500 `{"code":"internal","msg":"injected failure"}`.
    Internal,
    /// Any Twirp error: this status, code and message.
    Twirp {
        status: u16,
        code: String,
        msg: String,
    },
    /// HTTP 401 with a plain-text body, as for a bad token.
    Unauthorized,
    /// HTTP 200 with a body that is not JSON.
    Garbage,
    /// Wait this long, then answer as usual (with the answer as of the
    /// request's arrival).
    Slow(Duration),
    /// Close the connection without answering.
    CloseConnection,
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `None` for a path that is not one of [`Method`]'s.
    pub method: Option<Method>,
    /// `ListParticipants`' `room`.
    pub room: Option<String>,
    /// `ListRooms`' `names` filter.
    pub names: Vec<String>,
    /// When it arrived.
    pub at: Instant,
    /// The HTTP status answered (or about to be, after a [`Failure::Slow`]
    /// delay); 0 when the connection was closed without an answer.
    pub status: u16,
}

/// The in-memory RoomService. Stops serving when dropped (or
/// [`FakeRoomService::shutdown`]). Must be started inside a tokio runtime.
pub struct FakeRoomService {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl fmt::Debug for FakeRoomService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeRoomService")
            .field("addr", &self.addr)
            .field("api_key", &self.shared.api_key)
            .finish_non_exhaustive()
    }
}

struct Shared {
    api_key: String,
    api_secret: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    rooms: Vec<RoomEntry>,
    format: Format,
    unknown_room_not_found: bool,
    next_failures: VecDeque<Failure>,
    sticky_failure: Option<Failure>,
    calls: Vec<Call>,
}

struct RoomEntry {
    room: Room,
    reported_num_participants: Option<u32>,
    participants: Vec<ParticipantInfo>,
}

impl RoomEntry {
    fn as_listed(&self) -> Room {
        let mut room = self.room.clone();
        room.num_participants = self.reported_num_participants.unwrap_or_else(|| {
            self.participants
                .iter()
                .filter(|p| p.is_connected())
                .count() as u32
        });
        room
    }
}

impl FakeRoomService {
    /// Starts serving on `127.0.0.1` (an ephemeral port) and accepts tokens
    /// signed with this key and secret.
    pub async fn start(api_key: &str, api_secret: &str) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            api_key: api_key.to_string(),
            api_secret: api_secret.to_string(),
            state: Mutex::new(State::default()),
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            // Connections live in the set: aborting this task drops the set,
            // which aborts them too, so a stopped fake answers nothing.
            let mut connections = JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of file descriptors, say: try again shortly.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let shared = serving.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| handle(shared.clone(), request));
                    // A connection error (the client went away, or a
                    // CloseConnection failure) just ends the connection.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(FakeRoomService { shared, addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:<port>`: what a LiveKit URL is configured as.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    pub fn api_secret(&self) -> &str {
        &self.shared.api_secret
    }

    /// A client for this fake, with its key and secret.
    pub fn client(&self) -> RoomServiceClient {
        RoomServiceClient::new(&self.ws_url(), self.api_key(), self.api_secret())
            .expect("the fake's own URL and credentials are valid")
    }

    /// Stops serving and waits until the port is closed.
    pub async fn shutdown(self) {
        self.task.abort();
        // Wait until the accept task (and with it every connection) is gone.
        while !self.task.is_finished() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    // ---- rooms and participants ----

    /// Adds a room, or replaces the one with the same name. A replacement with
    /// another sid is a new instance of the room: its participants are gone.
    /// `num_participants` is not taken from `room`: `ListRooms` reports the
    /// number of connected participants (see
    /// [`FakeRoomService::set_reported_num_participants`]).
    pub fn add_room(&self, room: Room) {
        let mut state = self.state();
        match state.rooms.iter_mut().find(|e| e.room.name == room.name) {
            Some(entry) => {
                if entry.room.sid != room.sid {
                    entry.participants.clear();
                    entry.reported_num_participants = None;
                }
                entry.room = room;
            }
            None => state.rooms.push(RoomEntry {
                room,
                reported_num_participants: None,
                participants: Vec::new(),
            }),
        }
    }

    /// Removes a room and its participants (the room ended).
    pub fn remove_room(&self, name: &str) -> Option<Room> {
        let mut state = self.state();
        let index = state.rooms.iter().position(|e| e.room.name == name)?;
        Some(state.rooms.remove(index).room)
    }

    /// Adds a participant to a room (created with [`room`] if missing), or
    /// replaces the one with the same sid.
    pub fn add_participant(&self, room: &str, participant: ParticipantInfo) {
        let mut state = self.state();
        let entry = entry_or_new(&mut state, room);
        match entry
            .participants
            .iter_mut()
            .find(|p| p.sid == participant.sid)
        {
            Some(existing) => *existing = participant,
            None => entry.participants.push(participant),
        }
    }

    /// Removes a participant (it left).
    pub fn remove_participant(&self, room: &str, sid: &str) -> Option<ParticipantInfo> {
        let mut state = self.state();
        let entry = state.rooms.iter_mut().find(|e| e.room.name == room)?;
        let index = entry.participants.iter().position(|p| p.sid == sid)?;
        Some(entry.participants.remove(index))
    }

    /// Changes a participant in place (mute a track, set its state…);
    /// `false` if there is no such participant.
    pub fn update_participant(
        &self,
        room: &str,
        sid: &str,
        change: impl FnOnce(&mut ParticipantInfo),
    ) -> bool {
        let mut state = self.state();
        let Some(p) = state
            .rooms
            .iter_mut()
            .find(|e| e.room.name == room)
            .and_then(|e| e.participants.iter_mut().find(|p| p.sid == sid))
        else {
            return false;
        };
        change(p);
        true
    }

    /// Replaces a room's participants (creating the room if missing).
    pub fn set_participants(&self, room: &str, participants: Vec<ParticipantInfo>) {
        let mut state = self.state();
        entry_or_new(&mut state, room).participants = participants;
    }

    /// Makes `ListRooms` report this `num_participants` for the room instead
    /// of the number of connected participants (`None` goes back to that).
    /// For contradictory answers; `false` if there is no such room.
    pub fn set_reported_num_participants(&self, room: &str, reported: Option<u32>) -> bool {
        let mut state = self.state();
        match state.rooms.iter_mut().find(|e| e.room.name == room) {
            Some(entry) => {
                entry.reported_num_participants = reported;
                true
            }
            None => false,
        }
    }

    /// The rooms, as `ListRooms` would list them.
    pub fn rooms(&self) -> Vec<Room> {
        self.state()
            .rooms
            .iter()
            .map(RoomEntry::as_listed)
            .collect()
    }

    /// A room's participants, as `ListParticipants` would list them.
    pub fn participants(&self, room: &str) -> Vec<ParticipantInfo> {
        self.state()
            .rooms
            .iter()
            .find(|e| e.room.name == room)
            .map(|e| e.participants.clone())
            .unwrap_or_default()
    }

    /// Removes every room.
    pub fn clear(&self) {
        self.state().rooms.clear();
    }

    // ---- behaviour ----

    pub fn set_format(&self, format: Format) {
        self.state().format = format;
    }

    /// `true`: `ListParticipants` for an unknown room answers 404
    /// `{"code":"not_found"}` as some deployments do; `false` (the default):
    /// 200 with an empty list, as a default self-hosted LiveKit does.
    pub fn set_unknown_room_not_found(&self, not_found: bool) {
        self.state().unknown_room_not_found = not_found;
    }

    /// The next `n` requests fail this way (after any already queued).
    pub fn fail_next(&self, n: usize, failure: Failure) {
        let mut state = self.state();
        state.next_failures.extend(std::iter::repeat_n(failure, n));
    }

    /// Every request fails this way (after the queued ones) until
    /// [`FakeRoomService::reset_failures`].
    pub fn fail_until_reset(&self, failure: Failure) {
        self.state().sticky_failure = Some(failure);
    }

    /// Answers normally again.
    pub fn reset_failures(&self) {
        let mut state = self.state();
        state.next_failures.clear();
        state.sticky_failure = None;
    }

    // ---- what it received ----

    /// Every request received, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// How many requests for `method` arrived (whatever was answered).
    pub fn call_count(&self, method: Method) -> usize {
        self.state()
            .calls
            .iter()
            .filter(|c| c.method == Some(method))
            .count()
    }

    /// How many `ListParticipants` requests for `room` arrived.
    pub fn room_calls(&self, room: &str) -> usize {
        self.state()
            .calls
            .iter()
            .filter(|c| {
                c.method == Some(Method::ListParticipants) && c.room.as_deref() == Some(room)
            })
            .count()
    }

    /// `ListParticipants` requests per room.
    pub fn room_call_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for call in self.state().calls.iter() {
            if let (Some(Method::ListParticipants), Some(room)) = (call.method, &call.room) {
                *counts.entry(room.clone()).or_default() += 1;
            }
        }
        counts
    }

    /// The most requests (of any kind) that arrived within any `window`: for
    /// asserting a rate limit.
    pub fn max_calls_within(&self, window: Duration) -> usize {
        let times: Vec<Instant> = self.state().calls.iter().map(|c| c.at).collect();
        let mut best = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end].duration_since(times[start]) >= window {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    /// Forgets the calls received so far.
    pub fn reset_calls(&self) {
        self.state().calls.clear();
    }
}

impl Drop for FakeRoomService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A test that panicked while holding the lock must not hide its own
    // failure behind a poisoned mutex.
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

fn entry_or_new<'a>(state: &'a mut State, name: &str) -> &'a mut RoomEntry {
    match state.rooms.iter().position(|e| e.room.name == name) {
        Some(index) => &mut state.rooms[index],
        None => {
            state.rooms.push(RoomEntry {
                room: room(name),
                reported_num_participants: None,
                participants: Vec::new(),
            });
            state.rooms.last_mut().expect("just pushed")
        }
    }
}

/// A room named `name`, with sid `RM_<name>` and created now.
pub fn room(name: &str) -> Room {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Room {
        sid: format!("RM_{name}"),
        name: name.to_string(),
        creation_time: now_ms / 1000,
        creation_time_ms: now_ms,
        num_participants: 0,
        metadata: String::new(),
    }
}

/// An `ACTIVE`, `STANDARD` participant who joined at `joined_at_ms`, named
/// after its identity, with no tracks.
pub fn participant(sid: &str, identity: &str, joined_at_ms: i64) -> ParticipantInfo {
    ParticipantInfo {
        sid: sid.to_string(),
        identity: identity.to_string(),
        name: identity.to_string(),
        state: ParticipantState::Active,
        joined_at: joined_at_ms.div_euclid(1000),
        joined_at_ms,
        kind: ParticipantKind::Standard,
        ..ParticipantInfo::default()
    }
}

// ---- serving ----

/// Returned by the service to make hyper drop the connection unanswered.
#[derive(Debug)]
struct CloseConnection;

impl fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection closed on purpose")
    }
}

impl std::error::Error for CloseConnection {}

type Answer = Response<Full<Bytes>>;

/// What to do with one request, decided under the lock.
enum Plan {
    Answer(Answer),
    Close,
    /// Wait, then answer.
    Delay(Duration, Answer),
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Answer, CloseConnection> {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(CloseConnection),
    };
    let method = Method::from_path(parts.uri.path());
    let request_json: Option<Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Some(json!({}))
    } else {
        serde_json::from_slice(&body).ok()
    };
    let room = request_json
        .as_ref()
        .and_then(|v| v.get("room"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let names: Vec<String> = request_json
        .as_ref()
        .and_then(|v| v.get("names"))
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();

    let plan = {
        let mut state = lock(&shared);
        let failure = state
            .next_failures
            .pop_front()
            .or_else(|| state.sticky_failure.clone());
        let plan = match failure {
            Some(Failure::CloseConnection) => Plan::Close,
            Some(Failure::Internal) => {
                Plan::Answer(twirp_error(500, "internal", "injected failure"))
            }
            Some(Failure::Twirp { status, code, msg }) => {
                Plan::Answer(twirp_error(status, &code, &msg))
            }
            Some(Failure::Unauthorized) => Plan::Answer(plain_text(
                StatusCode::UNAUTHORIZED,
                "invalid token: injected failure",
            )),
            Some(Failure::Garbage) => Plan::Answer(json_bytes(
                StatusCode::OK,
                Bytes::from_static(b"{\"rooms\":[{\"sid\":\"RM_"),
            )),
            Some(Failure::Slow(delay)) => Plan::Delay(
                delay,
                answer(&shared, &state, &parts, method, request_json.as_ref()),
            ),
            None => Plan::Answer(answer(
                &shared,
                &state,
                &parts,
                method,
                request_json.as_ref(),
            )),
        };
        let status = match &plan {
            Plan::Answer(a) | Plan::Delay(_, a) => a.status().as_u16(),
            Plan::Close => 0,
        };
        state.calls.push(Call {
            method,
            room,
            names,
            at,
            status,
        });
        plan
    };
    match plan {
        Plan::Answer(a) => Ok(a),
        Plan::Close => Err(CloseConnection),
        Plan::Delay(delay, a) => {
            tokio::time::sleep(delay).await;
            Ok(a)
        }
    }
}

/// The answer of a working RoomService.
fn answer(
    shared: &Shared,
    state: &State,
    parts: &hyper::http::request::Parts,
    method: Option<Method>,
    request: Option<&Value>,
) -> Answer {
    // Twirp routes first: POST, a known method, JSON.
    let Some(method) = method.filter(|_| parts.method == hyper::Method::POST) else {
        return twirp_error(
            404,
            "bad_route",
            &format!("no handler for path {:?}", parts.uri.path()),
        );
    };
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return twirp_error(
            404,
            "bad_route",
            &format!("unexpected Content-Type: {content_type:?}"),
        );
    }
    // LiveKit's auth middleware: a token that is there must be valid.
    let claims = match parts.headers.get(AUTHORIZATION).map(|v| v.to_str()) {
        None => None,
        Some(Ok(header)) => match header.strip_prefix("Bearer ") {
            None => {
                return plain_text(
                    StatusCode::UNAUTHORIZED,
                    "invalid authorization header. Must start with Bearer ",
                )
            }
            Some(token) => match verify(shared, token) {
                Ok(claims) => Some(claims),
                Err(message) => return plain_text(StatusCode::UNAUTHORIZED, &message),
            },
        },
        Some(Err(_)) => return plain_text(StatusCode::UNAUTHORIZED, "invalid authorization token"),
    };
    let Some(request) = request else {
        return twirp_error(400, "malformed", "the json request could not be decoded");
    };
    let grant = claims.and_then(|c| c.video).unwrap_or_default();
    let format = state.format;
    match method {
        Method::ListRooms => {
            if !grant.room_list {
                return permissions_denied();
            }
            let names: Vec<&str> = request
                .get("names")
                .and_then(Value::as_array)
                .map(|n| n.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let rooms: Vec<Value> = state
                .rooms
                .iter()
                .filter(|e| names.is_empty() || names.contains(&e.room.name.as_str()))
                .map(|e| room_json(&e.as_listed(), format))
                .collect();
            json_answer(list_message("rooms", rooms, format))
        }
        Method::ListParticipants => {
            let room = request
                .get("room")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !grant.room_admin || grant.room.as_deref() != Some(room) {
                return permissions_denied();
            }
            match state.rooms.iter().find(|e| e.room.name == room) {
                Some(entry) => {
                    let list: Vec<Value> = entry
                        .participants
                        .iter()
                        .map(|p| participant_json(p, format))
                        .collect();
                    json_answer(list_message("participants", list, format))
                }
                None if state.unknown_room_not_found => {
                    twirp_error(404, "not_found", "requested room does not exist")
                }
                None => json_answer(list_message("participants", Vec::new(), format)),
            }
        }
    }
}

/// Verifies a token as LiveKit does; the error is LiveKit's plain-text body.
fn verify(shared: &Shared, token: &str) -> Result<Claims, String> {
    let issuer = jsonwebtoken::dangerous::insecure_decode::<Claims>(token)
        .map(|data| data.claims.iss)
        .map_err(|_| "invalid authorization token".to_string())?;
    if issuer != shared.api_key {
        return Err(format!("invalid API key: {issuer}"));
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss"]);
    validation.set_issuer(&[shared.api_key.as_str()]);
    jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(shared.api_secret.as_bytes()),
        &validation,
    )
    .map(|data| data.claims)
    .map_err(|e| {
        // LiveKit quotes the token in this message; so does the fake, so that
        // tests show the client never repeats it.
        let why = match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                "go-jose/go-jose/jwt: validation failed, token is expired (exp)"
            }
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                "go-jose/go-jose/jwt: validation failed, token not valid yet (nbf)"
            }
            _ => "go-jose/go-jose: error in cryptographic primitive",
        };
        format!("invalid token: {token}, error: {why}")
    })
}

/// `{"<field>": [...]}`; protojson (camelCase) omits an empty list.
fn list_message(field: &str, items: Vec<Value>, format: Format) -> Value {
    let mut map = Map::new();
    if format == Format::SnakeCase || !items.is_empty() {
        map.insert(field.to_string(), Value::Array(items));
    }
    Value::Object(map)
}

fn permissions_denied() -> Answer {
    twirp_error(401, "unauthenticated", "permissions denied")
}

fn twirp_error(status: u16, code: &str, msg: &str) -> Answer {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_bytes(
        status,
        Bytes::from(json!({ "code": code, "msg": msg }).to_string()),
    )
}

fn json_answer(value: Value) -> Answer {
    json_bytes(StatusCode::OK, Bytes::from(value.to_string()))
}

fn json_bytes(status: StatusCode, body: Bytes) -> Answer {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        "application/json".parse().expect("valid header"),
    );
    response
}

fn plain_text(status: StatusCode, text: &str) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("valid header"),
    );
    response
}

// ---- the two spellings ----

/// Builds one message: snake_case with every field, or camelCase without the
/// zero ones.
struct Message {
    format: Format,
    map: Map<String, Value>,
}

impl Message {
    fn new(format: Format) -> Self {
        Message {
            format,
            map: Map::new(),
        }
    }

    fn snake(&self) -> bool {
        self.format == Format::SnakeCase
    }

    fn put(&mut self, snake: &str, camel: &str, value: Value, is_zero: bool) -> &mut Self {
        if self.snake() {
            self.map.insert(snake.to_string(), value);
        } else if !is_zero {
            self.map.insert(camel.to_string(), value);
        }
        self
    }

    fn string(&mut self, snake: &str, camel: &str, value: &str) -> &mut Self {
        self.put(snake, camel, json!(value), value.is_empty())
    }

    fn int64(&mut self, snake: &str, camel: &str, value: i64) -> &mut Self {
        let v = match self.format {
            Format::CamelCaseNumbers => json!(value),
            _ => json!(value.to_string()),
        };
        self.put(snake, camel, v, value == 0)
    }

    fn number(&mut self, snake: &str, camel: &str, value: u32) -> &mut Self {
        self.put(snake, camel, json!(value), value == 0)
    }

    fn boolean(&mut self, snake: &str, camel: &str, value: bool) -> &mut Self {
        self.put(snake, camel, json!(value), !value)
    }

    /// An enum by name; `zero` is its zero value's name.
    fn enumeration(&mut self, snake: &str, camel: &str, name: &str, zero: &str) -> &mut Self {
        self.put(snake, camel, json!(name), name == zero)
    }

    fn value(&mut self, snake: &str, camel: &str, value: Value, is_zero: bool) -> &mut Self {
        self.put(snake, camel, value, is_zero)
    }

    fn done(&mut self) -> Value {
        Value::Object(std::mem::take(&mut self.map))
    }
}

fn room_json(room: &Room, format: Format) -> Value {
    Message::new(format)
        .string("sid", "sid", &room.sid)
        .string("name", "name", &room.name)
        .number("empty_timeout", "emptyTimeout", 300)
        .number("departure_timeout", "departureTimeout", 20)
        .number("max_participants", "maxParticipants", 0)
        .int64("creation_time", "creationTime", room.creation_time)
        .int64("creation_time_ms", "creationTimeMs", room.creation_time_ms)
        .string("turn_password", "turnPassword", "")
        .value("enabled_codecs", "enabledCodecs", json!([]), true)
        .string("metadata", "metadata", &room.metadata)
        .number("num_participants", "numParticipants", room.num_participants)
        .number("num_publishers", "numPublishers", 0)
        .boolean("active_recording", "activeRecording", false)
        .value("version", "version", Value::Null, true)
        .done()
}

fn participant_json(p: &ParticipantInfo, format: Format) -> Value {
    let tracks: Vec<Value> = p.tracks.iter().map(|t| track_json(t, format)).collect();
    let reason = p.disconnect_reason.as_deref().unwrap_or("UNKNOWN_REASON");
    Message::new(format)
        .string("sid", "sid", &p.sid)
        .string("identity", "identity", &p.identity)
        .enumeration("state", "state", p.state.as_str(), "JOINING")
        .value("tracks", "tracks", json!(tracks), tracks.is_empty())
        .string("metadata", "metadata", &p.metadata)
        .int64("joined_at", "joinedAt", p.joined_at)
        .int64("joined_at_ms", "joinedAtMs", p.joined_at_ms)
        .string("name", "name", &p.name)
        .number("version", "version", 1)
        .value(
            "permission",
            "permission",
            json!({"can_subscribe": true, "can_publish": true, "can_publish_data": true}),
            format != Format::SnakeCase,
        )
        .string("region", "region", "")
        .boolean("is_publisher", "isPublisher", p.is_publisher)
        .enumeration("kind", "kind", p.kind.as_str(), "STANDARD")
        .value(
            "attributes",
            "attributes",
            json!(p.attributes),
            p.attributes.is_empty(),
        )
        .enumeration(
            "disconnect_reason",
            "disconnectReason",
            reason,
            "UNKNOWN_REASON",
        )
        .value("kind_details", "kindDetails", json!([]), true)
        .done()
}

fn track_json(t: &TrackInfo, format: Format) -> Value {
    Message::new(format)
        .string("sid", "sid", &t.sid)
        .enumeration("type", "type", t.kind.as_str(), "AUDIO")
        .string("name", "name", &t.name)
        .boolean("muted", "muted", t.muted)
        .number("width", "width", 0)
        .number("height", "height", 0)
        .boolean("simulcast", "simulcast", false)
        .enumeration("source", "source", t.source.as_str(), "UNKNOWN")
        .string("mime_type", "mimeType", "")
        .value("layers", "layers", json!([]), true)
        .enumeration("encryption", "encryption", "NONE", "NONE")
        .done()
}
