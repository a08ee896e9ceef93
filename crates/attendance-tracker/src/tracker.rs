//! `AttendanceTracker`: the WebSocket, the heartbeats, the polling fallback
//! and the once-per-second render.
//!
//! Every callback (timers, socket and page events) holds the shared state
//! strongly, like a JS object kept alive by its listeners; `stop()` drops them
//! all and so frees the tracker. Borrows of the state never span a call into
//! page code (`onUpdate`), so that code may call back into the tracker.

use std::cell::RefCell;
use std::rc::Rc;

use attendance_rules::Assessment;
use gloo_timers::callback::{Interval, Timeout};
use js_sys::{Array, Date, Function, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Element, Event, EventTarget, MessageEvent, WebSocket};

use crate::js::{get, Out};
use crate::labels::Labels;
use crate::view::{Link, Shown, View};
use crate::{at_ms, jwt, time, Facts, Session};

const HEARTBEAT: &str = "{\"type\":\"heartbeat\"}";
const MAX_BACKOFF_MS: f64 = 30_000.0;
/// Socket attempts in a row that never opened before polling starts.
const FAILURES_BEFORE_POLLING: u32 = 3;
/// The server's close code for an expired (or invalid) token.
const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// The live socket's subprotocol; the token travels as a second one.
const PROTOCOL: &str = "attendance.v1";

// Fetch stays in JS: the reply comes back through one long-lived callback,
// `done(kind, value, ok)`, so no futures runtime is compiled into the wasm.
#[wasm_bindgen(inline_js = "
export function request(method, url, token, keepalive, kind, done) {
  fetch(url, {
    method,
    headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' },
    keepalive,
    cache: 'no-store',
  }).then((r) => {
    if (r.status === 404) return null;
    if (!r.ok) throw new Error(method + ' ' + url + ': HTTP ' + r.status);
    return r.json();
  }).then((v) => done && done(kind, v, true), (e) => done && done(kind, e, false));
}
")]
extern "C" {
    fn request(
        method: &str,
        url: &str,
        token: &str,
        keepalive: bool,
        kind: u32,
        done: Option<&Function>,
    );
}

// The attached livekit-client room's local tracks: the `media` message
// telling their state (empty before the room has a participant sid), and
// which sources are on. `trackPublications` is a Map (or a plain object).
#[wasm_bindgen(inline_js = "
const SOURCES = ['camera', 'microphone', 'screen_share'];
function publications(room) {
  const pubs = room && room.localParticipant && room.localParticipant.trackPublications;
  if (!pubs) return [];
  const list = pubs instanceof Map ? [...pubs.values()] : Object.values(pubs);
  return list.filter((p) => p && p.trackSid && SOURCES.includes(p.source));
}
export function media_state(room) {
  const sid = room && room.localParticipant && room.localParticipant.sid;
  if (!sid) return '';
  const tracks = publications(room).map((p) => ({ sid: p.trackSid, source: p.source, muted: !!p.isMuted }));
  return JSON.stringify({ type: 'media', participant_sid: sid, tracks });
}
export function media_on(room) {
  return publications(room).reduce((on, p) => (p.isMuted ? on : on | (1 << SOURCES.indexOf(p.source))), 0);
}
")]
extern "C" {
    fn media_state(room: &JsValue) -> String;
    fn media_on(room: &JsValue) -> u32;
}

/// What a reply to [`request`] answers.
const REPLY_HEARTBEAT: u32 = 0;
const REPLY_SESSION: u32 = 1;
const REPLY_PARTICIPANT: u32 = 2;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console)]
    fn warn(message: &str, detail: &JsValue);
}

type Shared = Rc<RefCell<Inner>>;
type ReplyCallback = Closure<dyn FnMut(u32, JsValue, bool)>;
/// Room event handlers ignore the event's arguments (JS allows it).
type RoomCallback = Closure<dyn FnMut()>;

const MEDIA_FIELDS: [&str; 3] = [
    "camera_seconds",
    "microphone_seconds",
    "screen_share_seconds",
];

struct Socket {
    ws: WebSocket,
    opened: bool,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(JsValue)>,
}

impl Socket {
    fn is_open(&self) -> bool {
        self.ws.ready_state() == WebSocket::OPEN
    }

    /// Closes without triggering the reconnect logic.
    fn shut(&self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}

struct Listener {
    target: EventTarget,
    name: &'static str,
    callback: Closure<dyn FnMut(Event)>,
}

struct RoomBinding {
    room: JsValue,
    handlers: Vec<(&'static str, RoomCallback)>,
}

struct Inner {
    base: String,
    room: String,
    token: String,
    identity: Option<String>,
    heartbeat_ms: u32,
    poll_ms: u32,
    view: Option<View>,
    labels: Labels,
    on_update: Option<Function>,

    /// The session the server sent, as the rules see it.
    session: Option<Session>,
    /// This student's participant object as the server sent it (or null).
    participant: JsValue,
    facts: Facts,
    /// Server clock minus browser clock, in milliseconds.
    offset_ms: f64,
    /// Browser time (ms) of the last message or poll reply from the server.
    last_contact_ms: Option<f64>,
    /// Polling runs and its last request failed.
    poll_failed: bool,
    /// Camera, microphone and screen-share seconds as the server last said
    /// them, and the browser time (ms) they arrived; `None`: not reported
    /// (engagement off).
    media: Option<([i64; 3], f64)>,
    /// Which of camera, microphone, screen share (bits 0, 1, 2) the
    /// attached room has published and unmuted.
    media_on: u32,
    /// The `media` message last sent over this socket.
    media_sent: String,

    socket: Option<Socket>,
    /// A message arriving in `attendance.part`s: its id, the next part
    /// expected and the data so far.
    parts: Option<(f64, f64, String)>,
    /// The server said the token expired: no more reconnecting.
    token_expired: bool,
    attempt: u32,
    failures: u32,
    reconnect: Option<Timeout>,
    poll: Option<Interval>,
    tick: Option<Interval>,
    heartbeat: Option<Interval>,
    /// In the LiveKit room, as far as the page knows.
    connected: bool,
    stopped: bool,
    listeners: Vec<Listener>,
    room_binding: Option<RoomBinding>,
    /// Receives fetch replies; holds the state weakly, so it never keeps a
    /// stopped tracker alive.
    reply: Option<ReplyCallback>,
}

impl Inner {
    fn link(&self) -> Link {
        if self.stopped {
            Link::Stopped
        } else if self.token_expired {
            Link::Expired
        } else if self.socket.as_ref().is_some_and(|s| s.opened) {
            Link::Live
        } else if self.poll.is_some() && self.poll_failed {
            Link::Offline
        } else if self.poll.is_some() {
            Link::Polling
        } else if self.attempt == 0 {
            Link::Connecting
        } else {
            Link::Reconnecting
        }
    }

    /// Browser time now or, while the numbers are not current, when they
    /// last were: counters freeze while offline.
    fn browser_now(&self) -> f64 {
        match self.last_contact_ms {
            Some(contact) if self.link().stale() => Date::now().min(contact),
            _ => Date::now(),
        }
    }

    /// Server time of the numbers shown (see [`Inner::browser_now`]).
    fn now_ms(&self) -> f64 {
        self.browser_now() + self.offset_ms
    }

    /// Media seconds as of now, as the rules extrapolate the server's last
    /// figures for the sources the attached room has on.
    fn media_now(&self, a: &Assessment) -> Option<[i64; 3]> {
        let (reported, arrived_ms) = self.media?;
        let session = self.session.as_ref()?;
        let on = |bit: u32| self.media_on & (1 << bit) != 0;
        let m = attendance_rules::media_time_since(
            &session.schedule,
            attendance_rules::MediaTime {
                camera_seconds: reported[0],
                microphone_seconds: reported[1],
                screen_share_seconds: reported[2],
            },
            at_ms(arrived_ms + self.offset_ms),
            attendance_rules::MediaOn {
                camera: on(0),
                microphone: on(1),
                screen_share: on(2),
            },
            a.attendance.in_meeting,
            at_ms(self.now_ms()),
        );
        Some([
            m.camera_seconds,
            m.microphone_seconds,
            m.screen_share_seconds,
        ])
    }

    fn assess(&self) -> Option<Assessment> {
        let session = self.session.as_ref()?;
        Some(self.facts.assess(session, at_ms(self.now_ms())))
    }

    fn state(&self) -> JsValue {
        let Some(a) = self.assess() else {
            return JsValue::NULL;
        };
        let shown = self.facts.shown(&a, &self.participant);
        if let Some(media) = self.media_now(&a) {
            for (field, seconds) in MEDIA_FIELDS.iter().zip(media) {
                Out(&shown).set(field, (seconds as f64).into());
            }
        }
        shown.into()
    }

    fn set_session(&mut self, session: &JsValue) {
        if session.is_null() || session.is_undefined() {
            self.session = None;
            return;
        }
        match Session::from_js(session) {
            Ok(parsed) => self.session = Some(parsed),
            Err(e) => warn("attendance: unreadable session", &e),
        }
    }

    fn set_participant(&mut self, participant: JsValue) {
        match Facts::from_js(&participant) {
            Ok(facts) => {
                let seconds = |field: &str| get(&participant, field).as_f64();
                self.media = match MEDIA_FIELDS.map(seconds) {
                    [Some(c), Some(m), Some(s)] => {
                        Some(([c as i64, m as i64, s as i64], Date::now()))
                    }
                    _ => None,
                };
                self.facts = facts;
                self.participant = participant;
            }
            Err(e) => warn("attendance: unreadable participant", &e),
        }
    }

    fn set_server_time(&mut self, server_time: &JsValue) {
        if let Some(server_ms) = server_time.as_string().and_then(|t| time::parse_ms(&t)) {
            self.offset_ms = server_ms as f64 - Date::now();
        }
    }

    fn is_mine(&self, identity: &JsValue) -> bool {
        match (&self.identity, identity.as_string()) {
            (Some(mine), Some(theirs)) => *mine == theirs,
            _ => true,
        }
    }

    fn url(&self, path: &str) -> String {
        let mut url = String::with_capacity(self.base.len() + path.len() + 32);
        url.push_str(&self.base);
        url.push_str("/api/sessions/");
        url.push_str(&String::from(js_sys::encode_uri_component(&self.room)));
        url.push_str(path);
        url
    }

    /// The socket's URL; the token goes in `Sec-WebSocket-Protocol`.
    fn socket_url(&self) -> String {
        let http = self.url("/live");
        if let Some(rest) = http.strip_prefix("https") {
            String::from("wss") + rest
        } else if let Some(rest) = http.strip_prefix("http") {
            String::from("ws") + rest
        } else {
            http
        }
    }
}

/// Renders and tells the page. Never holds a borrow while calling the page.
fn emit(shared: &Shared) {
    let (state, callback) = {
        let inner = shared.borrow();
        if let Some(view) = &inner.view {
            let now = at_ms(inner.now_ms());
            let state = inner.session.as_ref().map(|session| {
                let facts = &inner.facts;
                let a = facts.assess(session, now);
                (&session.schedule, a, facts.stay_until(session, now))
            });
            let link = inner.link();
            let shown = Shown {
                state: state.as_ref().map(|(s, a, stay)| (*s, a, stay)),
                corrected: inner.facts.person.correction.is_some(),
                link,
                since_ms: inner
                    .last_contact_ms
                    .filter(|_| link.stale())
                    .map(|ms| ms as i64),
                media: state.as_ref().and_then(|(_, a, _)| inner.media_now(a)),
            };
            view.render(&inner.labels, &shown);
        }
        match &inner.on_update {
            Some(cb) => (inner.state(), cb.clone()),
            None => return,
        }
    };
    if let Err(e) = callback.call1(&JsValue::NULL, &state) {
        warn("attendance: onUpdate failed", &e);
    }
}

/// One message off the socket: a whole message, or one of the
/// `attendance.part`s a large one comes in (put back together here).
fn handle_frame(shared: &Shared, text: &str) {
    if !text.starts_with("{\"type\":\"attendance.part\"") {
        handle_message(shared, text);
        return;
    }
    let Ok(part) = JSON::parse(text) else {
        return;
    };
    let number = |key: &str| get(&part, key).as_f64().unwrap_or(f64::NAN);
    let (id, index, count) = (number("id"), number("part"), number("parts"));
    let data = get(&part, "data").as_string().unwrap_or_default();
    let whole = {
        let mut inner = shared.borrow_mut();
        if index == 1.0 {
            inner.parts = Some((id, 1.0, String::new()));
        }
        match inner.parts.as_mut() {
            Some((want_id, want, so_far)) if *want_id == id && *want == index => {
                so_far.push_str(&data);
                *want += 1.0;
                (index == count).then(|| inner.parts.take().map(|p| p.2))
            }
            // A part out of order: drop the message (a resync repairs it).
            _ => {
                inner.parts = None;
                None
            }
        }
    };
    if let Some(Some(text)) = whole {
        handle_message(shared, &text);
    }
}

fn handle_message(shared: &Shared, text: &str) {
    let Ok(message) = JSON::parse(text) else {
        return;
    };
    {
        let mut inner = shared.borrow_mut();
        inner.last_contact_ms = Some(Date::now());
        inner.set_server_time(&get(&message, "server_time"));
        match get(&message, "type").as_string().as_deref() {
            Some("attendance.snapshot") => {
                inner.set_session(&get(&message, "session"));
                // Students are in `participants`; a teacher's own token may
                // find itself among `teachers` (or `excluded`).
                let list = |key: &str| -> Array {
                    get(&message, key)
                        .dyn_into()
                        .unwrap_or_else(|_| Array::new())
                };
                let students = list("participants");
                let mine = students
                    .concat(&list("teachers"))
                    .concat(&list("excluded"))
                    .iter()
                    .find(|p| inner.identity.is_some() && inner.is_mine(&get(p, "identity")))
                    .or_else(|| (students.length() == 1).then(|| students.get(0)))
                    .unwrap_or(JsValue::NULL);
                inner.set_participant(mine);
            }
            Some("attendance.updated") => {
                let session = get(&message, "session");
                if !session.is_undefined() {
                    inner.set_session(&session);
                }
                if inner.is_mine(&get(&message, "identity")) {
                    inner.set_participant(get(&message, "attendance"));
                }
            }
            Some("heartbeat.ack") => {
                let beat = get(&message, "last_heartbeat_at");
                if let Some(at) = beat.as_string().and_then(|t| time::parse(&t)) {
                    inner.facts.person.last_heartbeat_at = Some(at);
                }
            }
            Some("error") => warn("attendance: server error", &get(&message, "message")),
            _ => {}
        }
    }
    emit(shared);
}

fn open_socket(shared: &Shared) {
    let (url, token) = {
        let mut inner = shared.borrow_mut();
        inner.reconnect = None;
        if inner.stopped || inner.token_expired || inner.socket.is_some() {
            return;
        }
        (inner.socket_url(), inner.token.clone())
    };
    let protocols = Array::of2(
        &JsValue::from_str(PROTOCOL),
        &JsValue::from_str(&(String::from("access_token.") + &token)),
    );
    let ws = match WebSocket::new_with_str_sequence(&url, &protocols) {
        Ok(ws) => ws,
        Err(e) => {
            warn("attendance: cannot open the WebSocket", &e);
            socket_failed(shared, false);
            return;
        }
    };
    let s = shared.clone();
    let on_open = Closure::<dyn FnMut()>::new(move || {
        {
            let mut inner = s.borrow_mut();
            if let Some(socket) = inner.socket.as_mut() {
                socket.opened = true;
            }
            inner.attempt = 0;
            inner.failures = 0;
            inner.poll = None;
            inner.poll_failed = false;
            // A new socket is told the room's media state afresh.
            inner.media_sent.clear();
        }
        report_media(&s);
        emit(&s);
    });
    let s = shared.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let Some(text) = event.data().as_string() {
            handle_frame(&s, &text);
        }
    });
    let s = shared.clone();
    let on_close = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let opened = {
            let mut inner = s.borrow_mut();
            inner.parts = None;
            let opened = inner.socket.take().is_some_and(|socket| socket.opened);
            // An open socket kept the numbers current until this moment.
            if opened {
                inner.last_contact_ms = Some(Date::now());
            }
            opened
        };
        if get(&event, "code").as_f64() == Some(f64::from(CLOSE_TOKEN_EXPIRED)) {
            token_expired(&s);
        } else {
            socket_failed(&s, opened);
        }
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    shared.borrow_mut().socket = Some(Socket {
        ws,
        opened: false,
        _on_open: on_open,
        _on_message: on_message,
        _on_close: on_close,
    });
}

/// The server closed the socket for an expired token: reconnecting with it
/// is pointless, so the tracker says so (`tokenExpired`, the `expired` link
/// state) and waits for the page to load a fresh token.
fn token_expired(shared: &Shared) {
    {
        let mut inner = shared.borrow_mut();
        inner.token_expired = true;
        inner.reconnect = None;
        inner.poll = None;
    }
    warn(
        "attendance: token expired",
        &JsValue::from_str("fetch a fresh token"),
    );
    emit(shared);
}

/// The socket closed (after working or not): back off, maybe start polling.
fn socket_failed(shared: &Shared, had_opened: bool) {
    let start_polling = {
        let mut inner = shared.borrow_mut();
        if inner.stopped {
            return;
        }
        if had_opened {
            inner.failures = 0;
        } else {
            inner.failures += 1;
        }
        let base = 1000.0 * f64::from(1u32 << inner.attempt.min(5));
        let delay = (base * (0.8 + 0.4 * js_sys::Math::random())).min(MAX_BACKOFF_MS);
        inner.attempt += 1;
        let s = shared.clone();
        inner.reconnect = Some(Timeout::new(delay as u32, move || open_socket(&s)));
        inner.failures >= FAILURES_BEFORE_POLLING && inner.poll.is_none()
    };
    if start_polling {
        let ms = shared.borrow().poll_ms;
        let s = shared.clone();
        let interval = Interval::new(ms, move || poll_once(&s));
        shared.borrow_mut().poll = Some(interval);
        poll_once(shared);
    }
    emit(shared);
}

/// Reconnects now (page shown again, or woken from the back/forward cache).
fn reconnect_now(shared: &Shared) {
    let idle = {
        let mut inner = shared.borrow_mut();
        let idle = !inner.stopped && inner.socket.is_none();
        if idle {
            inner.reconnect = None;
        }
        idle
    };
    if idle {
        open_socket(shared);
    }
}

fn poll_once(shared: &Shared) {
    let inner = shared.borrow();
    if inner.stopped {
        return;
    }
    let done = inner.reply.as_ref().map(|c| c.as_ref().unchecked_ref());
    request(
        "GET",
        &inner.url(""),
        &inner.token,
        false,
        REPLY_SESSION,
        done,
    );
    if let Some(identity) = &inner.identity {
        let mut path = String::from("/attendance/");
        path.push_str(&String::from(js_sys::encode_uri_component(identity)));
        request(
            "GET",
            &inner.url(&path),
            &inner.token,
            false,
            REPLY_PARTICIPANT,
            done,
        );
    }
}

/// A reply from [`request`] arrived.
fn on_reply(shared: &Shared, kind: u32, value: JsValue, ok: bool) {
    if !ok {
        warn("attendance: request failed", &value);
        let offline = {
            let mut inner = shared.borrow_mut();
            let polling = kind != REPLY_HEARTBEAT && inner.poll.is_some();
            if polling {
                inner.poll_failed = true;
            }
            polling
        };
        if offline {
            emit(shared);
        }
        return;
    }
    {
        let mut inner = shared.borrow_mut();
        if inner.stopped {
            return;
        }
        let live = inner.socket.as_ref().is_some_and(|s| s.opened);
        if kind != REPLY_HEARTBEAT && !live {
            inner.last_contact_ms = Some(Date::now());
            inner.poll_failed = false;
        }
        match kind {
            // The socket is the better source once it works again.
            REPLY_SESSION if !live => inner.set_session(&value),
            REPLY_PARTICIPANT if !live => inner.set_participant(value),
            REPLY_HEARTBEAT if value.is_object() => {
                let attendance = get(&value, "attendance");
                if attendance.is_object() {
                    inner.set_participant(attendance);
                }
                let beat = get(&value, "last_heartbeat_at").as_string();
                if let Some(at) = beat.and_then(|t| time::parse(&t)) {
                    inner.facts.person.last_heartbeat_at = Some(at);
                }
            }
            _ => return,
        }
    }
    emit(shared);
}

fn send_heartbeat(shared: &Shared, keepalive: bool) {
    let inner = shared.borrow();
    if !keepalive {
        if let Some(socket) = inner.socket.as_ref().filter(|s| s.is_open()) {
            if socket.ws.send_with_str(HEARTBEAT).is_ok() {
                return;
            }
        }
    }
    // With keepalive the page is going away: nobody is left to read a reply.
    let done = match keepalive {
        true => None,
        false => inner.reply.as_ref().map(|c| c.as_ref().unchecked_ref()),
    };
    let url = inner.url("/heartbeat");
    request("POST", &url, &inner.token, keepalive, REPLY_HEARTBEAT, done);
}

fn start_heartbeats(shared: &Shared) {
    let ms = {
        let inner = shared.borrow();
        if inner.stopped || !inner.connected || inner.heartbeat.is_some() {
            return;
        }
        inner.heartbeat_ms
    };
    let s = shared.clone();
    let interval = Interval::new(ms, move || send_heartbeat(&s, false));
    shared.borrow_mut().heartbeat = Some(interval);
    send_heartbeat(shared, false);
}

fn connected(shared: &Shared) {
    {
        let mut inner = shared.borrow_mut();
        if inner.stopped {
            return;
        }
        inner.connected = true;
        // A fresh connection gets a fresh heartbeat right away.
        inner.heartbeat = None;
    }
    start_heartbeats(shared);
}

fn disconnected(shared: &Shared) {
    {
        let mut inner = shared.borrow_mut();
        inner.connected = false;
        inner.heartbeat = None;
    }
    emit(shared);
}

fn stop(shared: &Shared) {
    let (listeners, binding, socket) = {
        let mut inner = shared.borrow_mut();
        if inner.stopped {
            return;
        }
        inner.stopped = true;
        inner.connected = false;
        inner.heartbeat = None;
        inner.reconnect = None;
        inner.poll = None;
        inner.tick = None;
        (
            std::mem::take(&mut inner.listeners),
            inner.room_binding.take(),
            inner.socket.take(),
        )
    };
    if let Some(socket) = socket {
        socket.shut();
    }
    for l in &listeners {
        let _ = l
            .target
            .remove_event_listener_with_callback(l.name, l.callback.as_ref().unchecked_ref());
    }
    if let Some(binding) = binding {
        unbind_room(&binding);
    }
    emit(shared);
    // The callbacks may still be running (stop() called from one of them):
    // wasm-bindgen defers freeing a closure until its call returns.
    drop(listeners);
}

fn on_room_connected(shared: &Shared) {
    connected(shared);
    report_media(shared);
}

/// Reads the attached room's local tracks and, over an open live socket,
/// tells the server their state whenever it changed (a new socket hears it
/// afresh).
fn report_media(shared: &Shared) {
    let changed = {
        let mut inner = shared.borrow_mut();
        let Some(binding) = inner.room_binding.as_ref() else {
            return;
        };
        let on = media_on(&binding.room);
        let state = media_state(&binding.room);
        let changed = on != inner.media_on;
        inner.media_on = on;
        let open = inner
            .socket
            .as_ref()
            .is_some_and(|s| s.opened && s.is_open());
        if open && !state.is_empty() && state != inner.media_sent {
            let sent = inner
                .socket
                .as_ref()
                .is_some_and(|s| s.ws.send_with_str(&state).is_ok());
            if sent {
                inner.media_sent = state;
            }
        }
        changed
    };
    if changed {
        emit(shared);
    }
}

fn unbind_room(binding: &RoomBinding) {
    let off = get(&binding.room, "off");
    if let Some(off) = off.dyn_ref::<Function>() {
        for (name, handler) in &binding.handlers {
            let _ = off.call2(&binding.room, &JsValue::from_str(name), handler.as_ref());
        }
    }
}

fn listen(shared: &Shared, target: EventTarget, name: &'static str, f: fn(&Shared, &Event)) {
    let s = shared.clone();
    let callback = Closure::<dyn FnMut(Event)>::new(move |event: Event| f(&s, &event));
    if target
        .add_event_listener_with_callback(name, callback.as_ref().unchecked_ref())
        .is_ok()
    {
        shared.borrow_mut().listeners.push(Listener {
            target,
            name,
            callback,
        });
    }
}

fn on_page_hide(shared: &Shared, _: &Event) {
    let was_connected = {
        let mut inner = shared.borrow_mut();
        inner.heartbeat = None;
        inner.connected && !inner.stopped
    };
    if was_connected {
        send_heartbeat(shared, true);
    }
}

fn on_page_show(shared: &Shared, event: &Event) {
    if get(event, "persisted").as_bool() == Some(true) {
        reconnect_now(shared);
        start_heartbeats(shared);
    }
}

fn on_visibility(shared: &Shared, _: &Event) {
    // Hidden: keep going (LiveKit keeps the call alive in background tabs).
    // Visible again: catch up at once instead of waiting for a timer.
    let visible = web_sys::window()
        .and_then(|w| w.document())
        .is_some_and(|d| get(&d, "visibilityState").as_string().as_deref() == Some("visible"));
    if visible {
        reconnect_now(shared);
        emit(shared);
    }
}

/// Tracks one student's attendance in one room: see the crate docs.
///
/// Like a JS object kept alive by its listeners, a tracker runs until
/// `stop()`, even when the page drops its last reference to it.
#[wasm_bindgen]
pub struct AttendanceTracker {
    inner: Shared,
}

#[wasm_bindgen]
impl AttendanceTracker {
    /// `options`: `{ serverUrl, room, token, element?, onUpdate?,
    /// heartbeatSeconds? (60), pollSeconds? (15), text?, format? }`.
    /// `element` may be an element or a CSS selector; `serverUrl` defaults
    /// to the page's origin. `text` and `format` give the card's words and
    /// number formats (see `labels.rs`): `text(key, vars)` or an object of
    /// templates, `format: { clock(seconds), percent(value), time(ms) }`.
    #[wasm_bindgen(constructor)]
    pub fn new(options: &JsValue) -> Result<AttendanceTracker, JsValue> {
        let window = web_sys::window();
        let text = |key: &str| get(options, key).as_string().filter(|s| !s.is_empty());
        let room = text("room").ok_or_else(|| JsValue::from_str("options.room is required"))?;
        let token = text("token").ok_or_else(|| JsValue::from_str("options.token is required"))?;
        let base = match text("serverUrl") {
            Some(url) => url,
            None => window
                .as_ref()
                .and_then(|w| w.location().origin().ok())
                .ok_or_else(|| JsValue::from_str("options.serverUrl is required"))?,
        };
        let base = base.trim_end_matches('/').to_string();
        let seconds = |key: &str, default: f64| {
            let value = get(options, key).as_f64().unwrap_or(default);
            (value.clamp(0.05, 86_400.0) * 1000.0) as u32
        };
        let element = get(options, "element");
        let host: Option<Element> = if let Some(selector) = element.as_string() {
            window
                .as_ref()
                .and_then(|w| w.document())
                .and_then(|d| d.query_selector(&selector).ok().flatten())
        } else {
            element.dyn_into::<Element>().ok()
        };
        let labels = Labels::from_options(options);
        let view = host
            .as_ref()
            .map(|host| View::new(host, &labels))
            .transpose()?;
        let on_update = get(options, "onUpdate").dyn_into::<Function>().ok();

        let shared: Shared = Rc::new(RefCell::new(Inner {
            identity: jwt::subject(&token),
            base,
            room,
            token,
            heartbeat_ms: seconds("heartbeatSeconds", 60.0),
            poll_ms: seconds("pollSeconds", 15.0),
            view,
            labels,
            on_update,
            session: None,
            participant: JsValue::NULL,
            facts: Facts::default(),
            offset_ms: 0.0,
            last_contact_ms: None,
            poll_failed: false,
            media: None,
            media_on: 0,
            media_sent: String::new(),
            socket: None,
            parts: None,
            token_expired: false,
            attempt: 0,
            failures: 0,
            reconnect: None,
            poll: None,
            tick: None,
            heartbeat: None,
            connected: false,
            stopped: false,
            listeners: Vec::new(),
            room_binding: None,
            reply: None,
        }));
        let weak = Rc::downgrade(&shared);
        let reply = ReplyCallback::new(move |kind, value, ok| {
            if let Some(shared) = weak.upgrade() {
                on_reply(&shared, kind, value, ok);
            }
        });
        shared.borrow_mut().reply = Some(reply);

        let s = shared.clone();
        shared.borrow_mut().tick = Some(Interval::new(1000, move || emit(&s)));
        if let Some(window) = &window {
            listen(&shared, window.clone().into(), "pagehide", on_page_hide);
            listen(&shared, window.clone().into(), "pageshow", on_page_show);
            if let Some(document) = window.document() {
                listen(&shared, document.into(), "visibilitychange", on_visibility);
            }
        }
        open_socket(&shared);
        Ok(AttendanceTracker { inner: shared })
    }

    /// The student joined the LiveKit room: heartbeat now and every interval.
    pub fn connected(&self) {
        connected(&self.inner);
    }

    /// The student left the LiveKit room: heartbeats stop.
    pub fn disconnected(&self) {
        disconnected(&self.inner);
    }

    /// Follows a livekit-client `Room`: its `connected`, `disconnected`,
    /// `reconnecting` and `reconnected` events drive the heartbeats; its
    /// local tracks' mute and unmute (`trackMuted`, `trackUnmuted`,
    /// `localTrackPublished`, `localTrackUnpublished`), and their state now,
    /// are reported to the server over the live socket.
    pub fn attach(&self, room: &JsValue) -> Result<(), JsValue> {
        let on = get(room, "on")
            .dyn_into::<Function>()
            .map_err(|_| JsValue::from_str("attach(room): room.on is not a function"))?;
        if let Some(old) = self.inner.borrow_mut().room_binding.take() {
            unbind_room(&old);
        }
        let mut handlers: Vec<(&'static str, RoomCallback)> = Vec::new();
        for (name, f) in [
            ("connected", on_room_connected as fn(&Shared)),
            ("reconnected", on_room_connected),
            ("disconnected", disconnected),
            // Still in the room while LiveKit reconnects: keep heartbeating.
            ("reconnecting", emit),
            ("trackMuted", report_media),
            ("trackUnmuted", report_media),
            ("localTrackPublished", report_media),
            ("localTrackUnpublished", report_media),
        ] {
            let s = self.inner.clone();
            let handler = RoomCallback::new(move || f(&s));
            on.call2(room, &JsValue::from_str(name), handler.as_ref())?;
            handlers.push((name, handler));
        }
        self.inner.borrow_mut().room_binding = Some(RoomBinding {
            room: room.clone(),
            handlers,
        });
        if get(room, "state").as_string().as_deref() == Some("connected") {
            on_room_connected(&self.inner);
        } else {
            report_media(&self.inner);
        }
        Ok(())
    }

    /// Stops everything: heartbeats, socket, polling, rendering.
    pub fn stop(&self) {
        stop(&self.inner);
    }

    /// The latest state: the server's participant object with the computed
    /// fields (and `phase`) as of now, or null before a session is known.
    pub fn attendance(&self) -> JsValue {
        self.inner.borrow().state()
    }

    /// Whether the server closed the live socket because the token expired
    /// (close code 4001); the page should load a fresh token.
    #[wasm_bindgen(getter, js_name = tokenExpired)]
    pub fn token_expired(&self) -> bool {
        self.inner.borrow().token_expired
    }

    /// The identity (`sub`) read from the token, if any.
    #[wasm_bindgen(getter)]
    pub fn identity(&self) -> Option<String> {
        self.inner.borrow().identity.clone()
    }

    /// Feeds one server message as if it came over the socket (for tests
    /// and for pages that already hold a socket).
    #[wasm_bindgen(js_name = handleMessage)]
    pub fn handle_message(&self, text: &str) {
        handle_frame(&self.inner, text);
    }
}
