//! Hardening: security headers, tokens, limits on slow and silent clients,
//! live messages of any class size.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

on_both_backends!(
    a_class_of_5000_gets_its_whole_snapshot,
    a_student_with_5000_cycles_gets_every_message_whole,
    clients_that_never_read_are_dropped_and_their_places_freed,
    corrections_need_an_identity,
);

/// The largest message the server may send.
const PART_BYTES: usize = 64 * 1024;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next whole message: `attendance.part`s put back together. Every
/// WebSocket message on the way must fit in 64 KiB.
async fn next_whole(socket: &mut Ws, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    let mut data = String::new();
    let mut expected = (None, 1);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = match tokio::time::timeout(left, socket.next()).await {
            Err(_) => panic!("no whole message within {within:?}"),
            Ok(None) => panic!("socket ended"),
            Ok(Some(Err(e))) => panic!("socket failed: {e}"),
            Ok(Some(Ok(message))) => message,
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => panic!("socket closed: {frame:?}"),
            _ => continue,
        };
        assert!(
            text.len() <= PART_BYTES,
            "a message of {} bytes",
            text.len()
        );
        let value: Value = serde_json::from_str(&text).unwrap();
        if value["type"] != "attendance.part" {
            assert_eq!(expected.1, 1, "a message inside another's parts");
            return value;
        }
        let id = value["id"].as_u64().unwrap();
        assert_eq!(*expected.0.get_or_insert(id), id);
        assert_eq!(value["part"], expected.1);
        data.push_str(value["data"].as_str().unwrap());
        if value["part"] == value["parts"] {
            return serde_json::from_str(&data).unwrap();
        }
        expected.1 += 1;
    }
}

async fn next_whole_of_type(socket: &mut Ws, kind: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let message = next_whole(socket, deadline.saturating_duration_since(Instant::now())).await;
        if message["type"] == kind {
            return message;
        }
    }
}

fn roster(students: usize) -> Vec<Value> {
    (0..students)
        .map(|i| json!({"identity": format!("student-{i:05}"), "name": format!("Student Number {i}")}))
        .collect()
}

async fn a_class_of_5000_gets_its_whole_snapshot(db: Db) {
    let server = TestServer::start(db).await;
    let start = chrono::Utc::now() - chrono::TimeDelta::minutes(5);
    let response = server
        .schedule(
            "big",
            json!({"scheduled_at": start.to_rfc3339(), "duration_minutes": 60, "roster": roster(5000)}),
        )
        .await;
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    // tokio-tungstenite's default client settings, like a browser's.
    let mut teacher = ws_connect(&server, "big", &access_token("t", "big", Grant::Teacher)).await;
    let snapshot = next_whole(&mut teacher, Duration::from_secs(30)).await;
    assert_eq!(snapshot["type"], "attendance.snapshot");
    let participants = snapshot["participants"].as_array().unwrap();
    assert_eq!(participants.len(), 5000);
    assert_eq!(participants[4999]["identity"], "student-04999");
    assert!(snapshot.to_string().len() > 1024 * 1024);
    // The socket stays open and live: a join arrives as an update.
    let joined = start.timestamp() + 60;
    server
        .post_webhook(&event(
            "participant_joined",
            "EV_big1",
            joined,
            "big",
            Some(("PA_big1", "student-00042", joined)),
        ))
        .await;
    let update =
        next_whole_of_type(&mut teacher, "attendance.updated", Duration::from_secs(10)).await;
    assert_eq!(update["identity"], "student-00042");
    // A resync asked for over the socket comes whole too.
    teacher
        .send(Message::text(r#"{"type":"resync"}"#))
        .await
        .unwrap();
    let again =
        next_whole_of_type(&mut teacher, "attendance.snapshot", Duration::from_secs(30)).await;
    assert_eq!(again["participants"].as_array().unwrap().len(), 5000);
}

/// `cycles` closed join/leave cycles of `identity` in `room`, written
/// straight into the database (10,000 webhooks would take minutes).
async fn insert_cycles(server: &TestServer, room: &str, identity: &str, from: i64, cycles: i64) {
    use sqlx::Connection;
    let rows: Vec<String> = (0..cycles)
        .map(|i| {
            let joined = (from + i * 2) * 1000;
            format!(
                "('PA_many_{i}', '{room}', '{identity}', {joined}, {}, {joined})",
                joined + 1000
            )
        })
        .collect();
    for chunk in rows.chunks(500) {
        let sql = format!(
            "INSERT INTO cycles (participant_sid, room, identity, joined_at_ms, left_at_ms, updated_at_ms) VALUES {}",
            chunk.join(", ")
        );
        if server.database_url.starts_with("sqlite") {
            let mut db = sqlx::SqliteConnection::connect(&server.database_url)
                .await
                .unwrap();
            sqlx::query(&sql).execute(&mut db).await.unwrap();
        } else {
            let mut db = sqlx::PgConnection::connect(&server.database_url)
                .await
                .unwrap();
            sqlx::query(&sql).execute(&mut db).await.unwrap();
        }
    }
}

async fn a_student_with_5000_cycles_gets_every_message_whole(db: Db) {
    let server = TestServer::start(db).await;
    let start = server
        .schedule_live("many", chrono::TimeDelta::hours(4), 300)
        .await;
    insert_cycles(&server, "many", "flaky", start.timestamp(), 5000).await;
    let mut student = ws_connect(
        &server,
        "many",
        &access_token("flaky", "many", Grant::Student),
    )
    .await;
    let own = next_whole(&mut student, Duration::from_secs(30)).await;
    assert_eq!(own["type"], "attendance.snapshot");
    assert_eq!(own["participants"][0]["identity"], "flaky");
    assert_eq!(
        own["participants"][0]["cycles"].as_array().unwrap().len(),
        5000
    );
    assert_eq!(own["participants"][0]["join_count"], 5000);
    // An update of this participant is as big: it comes in parts too.
    let joined = chrono::Utc::now().timestamp() - 30;
    server
        .post_webhook(&event(
            "participant_joined",
            "EV_many1",
            joined,
            "many",
            Some(("PA_flaky_now", "flaky", joined)),
        ))
        .await;
    let update =
        next_whole_of_type(&mut student, "attendance.updated", Duration::from_secs(10)).await;
    assert_eq!(
        update["attendance"]["cycles"].as_array().unwrap().len(),
        5001
    );
    assert_eq!(update["attendance"]["in_meeting"], true);
    // The teacher's snapshot holds them all as well.
    let mut teacher = ws_connect(&server, "many", &access_token("t", "many", Grant::Teacher)).await;
    let snapshot = next_whole(&mut teacher, Duration::from_secs(30)).await;
    assert_eq!(
        snapshot["participants"][0]["cycles"]
            .as_array()
            .unwrap()
            .len(),
        5001
    );
}

/// A WebSocket that completes its handshake and then never reads.
async fn never_reading_socket(
    server: &TestServer,
    room: &str,
    token: &str,
) -> tokio::net::TcpStream {
    let address = server.base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET /api/sessions/{room}/live?access_token={token} HTTP/1.1\r\nHost: {address}\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    // Read the 101 byte by byte, so not one byte of WebSocket data is taken.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

async fn clients_that_never_read_are_dropped_and_their_places_freed(db: Db) {
    let server = TestServer::start(db).await;
    let start = chrono::Utc::now() - chrono::TimeDelta::minutes(5);
    let schedule = |title: String| json!({"scheduled_at": start.to_rfc3339(), "duration_minutes": 60, "title": title});
    let mut body = schedule("class".into());
    body["roster"] = json!(roster(150));
    server.schedule("slow", body).await;
    let token = access_token("t", "slow", Grant::Teacher);
    // Eight sockets (the most one identity may hold) that never read.
    let mut stuck = Vec::new();
    for _ in 0..8 {
        stuck.push(never_reading_socket(&server, "slow", &token).await);
    }
    let url = server.live_url("slow", &token);
    let refused = |result: Result<(), tokio_tungstenite::tungstenite::Error>| match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status() == 429,
        _ => false,
    };
    assert!(refused(
        tokio_tungstenite::connect_async(url.clone())
            .await
            .map(|_| ())
    ));
    // Every schedule change sends each socket a snapshot until their
    // buffers are full.
    for i in 0..150 {
        let response = server
            .schedule("slow", schedule(format!("class {i}")))
            .await;
        assert!(response.status().is_success());
    }
    let pushed = Instant::now();
    // Within 10 s of a write that cannot complete (plus closing), each of
    // the eight is gone and its place free.
    let mut readers = Vec::new();
    while readers.len() < 8 {
        match tokio_tungstenite::connect_async(url.clone()).await {
            Ok((socket, _)) => readers.push(socket),
            Err(error) => {
                assert!(
                    refused(Err(error)) && pushed.elapsed() < Duration::from_secs(20),
                    "{} of 8 places free {:?} after the last push",
                    readers.len(),
                    pushed.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    eprintln!(
        "8 places free again {:?} after the last push",
        pushed.elapsed()
    );
    for reader in &mut readers {
        let snapshot = next_whole(reader, Duration::from_secs(10)).await;
        assert_eq!(snapshot["type"], "attendance.snapshot");
    }
    drop(stuck);
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let server = TestServer::start(Db::Sqlite).await;
    let teacher = access_token("t", "r", Grant::Teacher);
    let responses = [
        (
            "page",
            server
                .client
                .get(server.url("/dashboard.html"))
                .send()
                .await
                .unwrap(),
        ),
        (
            "api",
            server
                .client
                .get(server.url("/healthz"))
                .send()
                .await
                .unwrap(),
        ),
        (
            "api with a token",
            server.get("/api/sessions/r/roster", &teacher).await,
        ),
        (
            "refused",
            server
                .client
                .get(server.url("/api/sessions/r"))
                .send()
                .await
                .unwrap(),
        ),
        (
            "not found",
            server
                .client
                .get(server.url("/nope.html"))
                .send()
                .await
                .unwrap(),
        ),
        (
            "WebSocket as plain HTTP",
            server.get("/api/sessions/r/live", &teacher).await,
        ),
    ];
    for (what, response) in &responses {
        let csp =
            header(response, "content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP"));
        for directive in [
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{what}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
        assert_eq!(
            header(response, "x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            header(response, "referrer-policy"),
            Some("no-referrer"),
            "{what}"
        );
        assert_eq!(header(response, "x-frame-options"), Some("DENY"), "{what}");
    }
    assert_eq!(responses[3].1.status(), 401);
    assert_eq!(responses[4].1.status(), 404);

    // A school embedding the dashboard in its LMS.
    let embedded = TestServer::start_with(
        Db::Sqlite,
        &[
            "--frame-ancestors",
            "https://lms.example.org https://*.school.edu",
        ],
    )
    .await;
    let page = embedded
        .client
        .get(embedded.url("/dashboard.html"))
        .send()
        .await
        .unwrap();
    let csp = header(&page, "content-security-policy").unwrap();
    assert!(
        csp.contains("frame-ancestors https://lms.example.org https://*.school.edu;"),
        "{csp}"
    );
    assert_eq!(header(&page, "x-frame-options"), None);
    assert_eq!(header(&page, "x-content-type-options"), Some("nosniff"));

    // A source that would break out of the header is refused at start.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_attendance-server"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--frame-ancestors",
            "https://a.org; script-src *",
        ])
        .env("LIVEKIT_KEYS", format!("{KEY}: {SECRET}"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("frame-ancestors"));
}

// ---- tokens ----

/// A teacher's token without `sub`, as some token minters make them.
fn teacher_token_without_identity(room: &str) -> String {
    let now = now_s();
    jwt(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"iss": KEY, "nbf": now, "exp": now + 3600,
                "video": {"room": room, "roomJoin": true, "roomAdmin": true}}),
        SECRET,
    )
}

async fn corrections_need_an_identity(db: Db) {
    let server = TestServer::start(db).await;
    server
        .schedule(
            "r",
            json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60, "roster": [{"identity": "ada"}]}),
        )
        .await;
    let anonymous = teacher_token_without_identity("r");
    // Reading is fine.
    assert_eq!(
        server
            .get("/api/sessions/r/attendance", &anonymous)
            .await
            .status(),
        200
    );
    let path = "/api/sessions/r/attendance/ada/override";
    let body = json!({"status": "excused", "reason": "doctor's note"});
    let refused = server.put_json(path, &anonymous, &body).await;
    assert_eq!(refused.status(), 403);
    let message: Value = refused.json().await.unwrap();
    assert!(
        message["error"].as_str().unwrap().contains("(`sub`)"),
        "{message}"
    );
    let teacher = access_token("ms-smith", "r", Grant::Teacher);
    assert_eq!(server.put_json(path, &teacher, &body).await.status(), 200);
    let removal = format!("{path}?reason=mistake");
    assert_eq!(server.delete(&removal, &anonymous).await.status(), 403);
    assert_eq!(server.delete(&removal, &teacher).await.status(), 200);
    let audit = server.get_json("/api/sessions/r/audit", &teacher).await;
    let authors: Vec<&str> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["author"].as_str().unwrap())
        .collect();
    assert_eq!(authors, ["ms-smith", "ms-smith"]);
}

/// An access token that expires `exp_in` seconds from now.
fn token_expiring(identity: &str, room: &str, exp_in: i64) -> String {
    let now = now_s();
    jwt(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"iss": KEY, "sub": identity, "nbf": now - 3600, "exp": now + exp_in,
                "video": {"room": room, "roomJoin": true}}),
        SECRET,
    )
}

/// Connects with these `Sec-WebSocket-Protocol` values and no other token.
async fn ws_with_protocols(
    server: &TestServer,
    room: &str,
    protocols: &str,
) -> Result<(Ws, Option<String>), tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!(
        "{}/api/sessions/{room}/live",
        server.base.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().unwrap();
    if !protocols.is_empty() {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().unwrap());
    }
    let (socket, response) = tokio_tungstenite::connect_async(request).await?;
    let chosen = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string());
    Ok((socket, chosen))
}

/// The close frame that ends `socket` (code, reason), within `within`.
async fn closed(socket: &mut Ws, within: Duration) -> (u16, String) {
    tokio::time::timeout(within, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string())
                }
                Some(Ok(_)) => {}
                other => panic!("ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time")
}

#[tokio::test]
async fn live_sockets_take_tokens_out_of_the_url_and_end_with_them() {
    let server = TestServer::start(Db::Sqlite).await;
    server
        .schedule_live("r", chrono::TimeDelta::minutes(5), 60)
        .await;
    let token = access_token("ada", "r", Grant::Student);

    // In Sec-WebSocket-Protocol, answered with attendance.v1.
    let (mut socket, chosen) = ws_with_protocols(
        &server,
        "r",
        &format!("attendance.v1, access_token.{token}"),
    )
    .await
    .expect("admitted");
    assert_eq!(chosen.as_deref(), Some("attendance.v1"));
    let snapshot = next_whole(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(snapshot["participants"][0]["identity"], "ada");
    // A refused token is refused before the upgrade, as in the query.
    let other_room = access_token("ada", "elsewhere", Grant::Student);
    match ws_with_protocols(
        &server,
        "r",
        &format!("attendance.v1, access_token.{other_room}"),
    )
    .await
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    // A token without our protocol cannot be answered as browsers require.
    match ws_with_protocols(&server, "r", &format!("access_token.{token}")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 400),
        other => panic!("expected 400, got {:?}", other.map(|_| ())),
    }

    // In a first message.
    let (mut socket, chosen) = ws_with_protocols(&server, "r", "attendance.v1")
        .await
        .unwrap();
    assert_eq!(chosen.as_deref(), Some("attendance.v1"));
    socket
        .send(Message::text(
            json!({"type": "auth", "token": token}).to_string(),
        ))
        .await
        .unwrap();
    let snapshot = next_whole(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(snapshot["participants"][0]["identity"], "ada");
    // ... where refusals are close codes.
    for (token, code, reason) in [
        (other_room.clone(), 4003, "another room"),
        (token_expiring("ada", "r", -3600), 4001, "token expired"),
        ("not-a-token".to_string(), 4001, "malformed"),
    ] {
        let (mut socket, _) = ws_with_protocols(&server, "r", "").await.unwrap();
        socket
            .send(Message::text(
                json!({"type": "auth", "token": token}).to_string(),
            ))
            .await
            .unwrap();
        let (got, why) = closed(&mut socket, Duration::from_secs(5)).await;
        assert_eq!(got, code, "{why}");
        assert!(why.contains(reason), "{why}");
    }
    let (mut silent, _) = ws_with_protocols(&server, "r", "").await.unwrap();
    let (code, why) = closed(&mut silent, Duration::from_secs(15)).await;
    assert_eq!(code, 1008);
    assert!(why.contains("auth"), "{why}");

    // A token that expires while the socket is open closes it with 4001:
    // this one is 55 s past `exp`, inside the 60 s leeway.
    let expiring = token_expiring("ada", "r", -55);
    let mut ending = ws_connect(&server, "r", &expiring).await;
    let mut renewed = ws_connect(&server, "r", &expiring).await;
    next_whole(&mut ending, Duration::from_secs(5)).await;
    next_whole(&mut renewed, Duration::from_secs(5)).await;
    // A fresh token for the same identity, sent over the socket, renews it.
    renewed
        .send(Message::text(
            json!({"type": "auth", "token": token}).to_string(),
        ))
        .await
        .unwrap();
    next_whole_of_type(&mut renewed, "auth.ok", Duration::from_secs(5)).await;
    let started = Instant::now();
    let (code, why) = closed(&mut ending, Duration::from_secs(15)).await;
    assert_eq!(
        (code, why.as_str()),
        (4001, "token expired: fetch a fresh token")
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    renewed
        .send(Message::text(r#"{"type":"heartbeat"}"#))
        .await
        .unwrap();
    next_whole_of_type(&mut renewed, "heartbeat.ack", Duration::from_secs(5)).await;
    // Another identity's token cannot take a socket over.
    let bo = access_token("bo", "r", Grant::Student);
    renewed
        .send(Message::text(
            json!({"type": "auth", "token": bo}).to_string(),
        ))
        .await
        .unwrap();
    let refused = next_whole_of_type(&mut renewed, "error", Duration::from_secs(5)).await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("same identity"),
        "{refused}"
    );
}

/// A live lesson in room `r` and student `ada`'s socket on it, past its
/// snapshot (the server must outlive the socket).
async fn student_on_a_live_socket() -> (TestServer, Ws) {
    let server = TestServer::start(Db::Sqlite).await;
    server
        .schedule_live("r", chrono::TimeDelta::minutes(5), 60)
        .await;
    let token = access_token("ada", "r", Grant::Student);
    let mut socket = ws_connect(&server, "r", &token).await;
    next_whole(&mut socket, Duration::from_secs(5)).await;
    (server, socket)
}

/// The socket reads in small chunks (an idle socket holds little), yet a
/// client message up to the 4 KiB limit arrives whole; a bigger one closes
/// the socket with 1009 and a reason (not a reset connection).
#[tokio::test]
async fn live_messages_up_to_4_kib_are_read_whole_and_bigger_ones_close() {
    let (_server, mut socket) = student_on_a_live_socket().await;
    // A heartbeat padded to 4,000 bytes: unknown fields are ignored.
    let padded = |size: usize| {
        let head = r#"{"type":"heartbeat","padding":""#;
        format!("{head}{}\"}}", "x".repeat(size - head.len() - 2))
    };
    let message = padded(4000);
    assert_eq!(message.len(), 4000);
    socket.send(Message::text(message)).await.unwrap();
    let ack = next_whole_of_type(&mut socket, "heartbeat.ack", Duration::from_secs(5)).await;
    assert!(ack["last_heartbeat_at"].is_string(), "{ack}");
    // 4,097 bytes: over the limit.
    socket.send(Message::text(padded(4097))).await.unwrap();
    let (code, why) = closed(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(code, 1009, "{why}");
    assert!(why.contains("at most 4096 bytes"), "{why}");
}

/// A page that beats faster than every 5 s is answered every time, but
/// only the first beat of the 5 s is stored.
#[tokio::test]
async fn heartbeats_closer_than_5_s_are_acknowledged_not_stored() {
    let (_server, mut socket) = student_on_a_live_socket().await;
    let mut acks = Vec::new();
    for _ in 0..3 {
        socket
            .send(Message::text(r#"{"type":"heartbeat"}"#))
            .await
            .unwrap();
        acks.push(next_whole_of_type(&mut socket, "heartbeat.ack", Duration::from_secs(5)).await);
    }
    let stored = acks[0]["last_heartbeat_at"]
        .as_str()
        .expect("first beat stored");
    for ack in &acks[1..] {
        assert_eq!(ack["throttled"], true, "{ack}");
        assert!(ack.get("last_heartbeat_at").is_none(), "{ack}");
        let at = ack["server_time"].as_str().expect("server_time");
        let at = chrono::DateTime::parse_from_rfc3339(at).expect("an RFC 3339 time");
        assert!(at >= chrono::DateTime::parse_from_rfc3339(stored).unwrap());
    }
}

#[tokio::test]
async fn no_token_is_ever_logged() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_attendance-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}/a.db", dir.path().display()))
        .env("LIVEKIT_KEYS", format!("{KEY}: {SECRET}"))
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(address) = line.strip_prefix("listening on ") {
            break address.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let ws_base = base.replace("http://", "ws://");
    let client = reqwest::Client::new();
    let start = chrono::Utc::now() - chrono::TimeDelta::minutes(5);
    let teacher = access_token("t", "r", Grant::Teacher);
    let put = client
        .put(format!("{base}/api/sessions/r"))
        .bearer_auth(&teacher)
        .header(
            "Referer",
            format!("{base}/dashboard.html?room=r&token={teacher}"),
        )
        .json(&json!({"scheduled_at": start.to_rfc3339(), "duration_minutes": 60}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    // Every way a token reaches the server.
    let in_query = access_token("q", "r", Grant::Student);
    let in_protocol = access_token("p", "r", Grant::Student);
    let in_message = access_token("m", "r", Grant::Student);
    let in_header = access_token("h", "r", Grant::Student);
    let page = client
        .get(format!("{base}/meeting.html?room=r&token={in_query}"))
        .header("Referer", format!("{base}/?token={in_query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let beat = client
        .post(format!("{base}/api/sessions/r/heartbeat"))
        .bearer_auth(&in_header)
        .send()
        .await
        .unwrap();
    assert_eq!(beat.status(), 200);
    let (mut by_query, _) = tokio_tungstenite::connect_async(format!(
        "{ws_base}/api/sessions/r/live?access_token={in_query}"
    ))
    .await
    .unwrap();
    let url = format!("{ws_base}/api/sessions/r/live");
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.clone().into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("attendance.v1, access_token.{in_protocol}")
            .parse()
            .unwrap(),
    );
    let (mut by_protocol, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let (mut by_message, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    by_message
        .send(Message::text(
            json!({"type": "auth", "token": in_message}).to_string(),
        ))
        .await
        .unwrap();
    for socket in [&mut by_query, &mut by_protocol, &mut by_message] {
        assert_eq!(
            next_whole(socket, Duration::from_secs(5)).await["type"],
            "attendance.snapshot"
        );
        socket
            .send(Message::text(r#"{"type":"heartbeat"}"#))
            .await
            .unwrap();
        next_whole(socket, Duration::from_secs(5)).await;
    }
    // A refused one too.
    let expired = token_expiring("x", "r", -3600);
    let _ = tokio_tungstenite::connect_async(format!(
        "{ws_base}/api/sessions/r/live?access_token={expired}"
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() > 50, "trace logging was on: {text}");
    assert!(text.contains("/api/sessions/r/live"), "requests are logged");
    for (what, token) in [
        ("teacher", &teacher),
        ("query", &in_query),
        ("protocol", &in_protocol),
        ("message", &in_message),
        ("header", &in_header),
        ("expired", &expired),
    ] {
        // A JWT's signature alone is enough to tell.
        let signature = token.rsplit('.').next().unwrap();
        assert!(!text.contains(signature), "the {what} token is in the log");
    }
    assert!(
        !text.contains("token="),
        "a query string or Referer is in the log"
    );
}

// ---- connections ----

/// The real binary with its stderr in a file, started through `sh` (for
/// `ulimit`).
struct CapturedServer {
    child: std::process::Child,
    base: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl CapturedServer {
    fn start(shell_prefix: &str, args: &[&str]) -> CapturedServer {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        let mut command = format!(
            "{shell_prefix} exec '{}' serve --listen 127.0.0.1:0 --database-url 'sqlite://{}/a.db'",
            env!("CARGO_BIN_EXE_attendance-server"),
            dir.path().display()
        );
        for arg in args {
            command.push_str(&format!(" '{arg}'"));
        }
        let mut child = std::process::Command::new("sh")
            .args(["-c", &command])
            .env("LIVEKIT_KEYS", format!("{KEY}: {SECRET}"))
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = loop {
            let line = lines.next().expect("server exited").unwrap();
            if let Some(address) = line.strip_prefix("listening on ") {
                break address.to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        CapturedServer {
            child,
            base,
            log,
            _dir: dir,
        }
    }

    fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for CapturedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long until the server closes `tcp` (reading and dropping whatever
/// it sends); `None` if it is still open after `within`.
async fn closed_after(tcp: &mut tokio::net::TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut buffer).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// One request on a kept-alive connection; its response's status line.
async fn request_on(tcp: &mut tokio::net::TcpStream, path: &str) -> String {
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = tcp.read(&mut buffer).await.unwrap();
        assert!(n > 0, "closed before answering");
        response.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if response.len() >= end + 4 + length {
                return text.lines().next().unwrap().to_string();
            }
        }
    }
}

#[tokio::test]
async fn slow_silent_and_idle_connections_are_closed() {
    let server =
        CapturedServer::start("", &["--header-read-timeout", "1s", "--idle-timeout", "3s"]);
    let connect = || tokio::net::TcpStream::connect(server.address());
    // Silent from the start.
    let mut silent = connect().await.unwrap();
    // Half a header.
    let mut half = connect().await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A header sent a byte every 200 ms (it never ends in time).
    let mut dripping = connect().await.unwrap();
    let drip = tokio::spawn(async move {
        let started = Instant::now();
        for byte in b"GET /healthz HTTP/1.1\r\nHost: somewhere.example.org\r\n\r\n" {
            if dripping.write_all(&[*byte]).await.is_err() {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    });
    // A kept-alive connection between requests.
    let mut kept = connect().await.unwrap();
    assert_eq!(request_on(&mut kept, "/healthz").await, "HTTP/1.1 200 OK");

    let silent_for = closed_after(&mut silent, Duration::from_secs(5)).await;
    let half_for = closed_after(&mut half, Duration::from_secs(5)).await;
    for (what, after) in [("silent", silent_for), ("half a header", half_for)] {
        let after = after.unwrap_or_else(|| panic!("{what}: still open"));
        assert!(
            after < Duration::from_secs(3),
            "{what}: closed after {after:?}"
        );
    }
    let dripped = drip
        .await
        .unwrap()
        .expect("the dripping header was cut off");
    assert!(dripped < Duration::from_secs(4), "{dripped:?}");
    // Past the header timeout, a kept-alive connection is still usable...
    assert_eq!(request_on(&mut kept, "/healthz").await, "HTTP/1.1 200 OK");
    // ...until it has been idle for the idle timeout.
    let idle_for = closed_after(&mut kept, Duration::from_secs(6))
        .await
        .expect("idle: still open");
    assert!(
        idle_for > Duration::from_millis(2500) && idle_for < Duration::from_secs(5),
        "{idle_for:?}"
    );
}

#[tokio::test]
async fn healthz_answers_while_silent_and_slow_connections_fill_the_server() {
    // 256 descriptors, as in the report that found it; the connection
    // limit is derived from them.
    let server = CapturedServer::start("ulimit -n 256;", &[]);
    let address = server.address().to_string();
    let mut held = Vec::new();
    for i in 0..300 {
        let mut tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
        if i % 3 == 0 {
            let _ = tcp
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await;
        }
        held.push(tcp);
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    for _ in 0..5 {
        let health = client.get(format!("{}/healthz", server.base)).send().await;
        assert_eq!(health.map(|r| r.status().as_u16()).ok(), Some(200));
        // More silent ones keep coming.
        for _ in 0..20 {
            held.push(tokio::net::TcpStream::connect(&address).await.unwrap());
        }
    }
    let log = server.log();
    assert!(!log.contains("accept failed"), "{log}");
    assert_eq!(log.matches("connection limit reached").count(), 1, "{log}");
    drop(held);
}

#[tokio::test]
async fn sigterm_finishes_requests_and_does_not_wait_for_idle_connections() {
    let mut server = CapturedServer::start("", &[]);
    let address = server.address().to_string();
    let _silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut kept = tokio::net::TcpStream::connect(&address).await.unwrap();
    assert_eq!(request_on(&mut kept, "/healthz").await, "HTTP/1.1 200 OK");
    let (_live, _) = tokio_tungstenite::connect_async(format!(
        "ws://{address}/api/sessions/r/live?access_token={}",
        access_token("t", "r", Grant::Teacher)
    ))
    .await
    .unwrap();
    // A request whose head is in but whose body is still coming.
    let mut busy = tokio::net::TcpStream::connect(&address).await.unwrap();
    let body = json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60}).to_string();
    busy.write_all(
        format!(
            "PUT /api/sessions/r HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            access_token("t", "r", Grant::Teacher),
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The request in progress is answered.
    busy.write_all(body.as_bytes()).await.unwrap();
    let mut response = vec![0u8; 64];
    let n = busy.read(&mut response).await.unwrap();
    assert!(
        String::from_utf8_lossy(&response[..n]).starts_with("HTTP/1.1 201"),
        "{}",
        String::from_utf8_lossy(&response[..n])
    );
    let status = tokio::task::spawn_blocking(move || server.child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
