//! Test harness: the real `attendance-server` binary on an ephemeral port,
//! against a temporary SQLite file or a fresh PostgreSQL database, and
//! webhooks signed in LiveKit's real format.
#![allow(dead_code)]

/// Runs each scenario once per backend.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::Db::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::Db::Postgres).await } )* }
    };
}

pub mod receiver;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use sha2::Digest;
use sqlx::Connection;

pub const KEY: &str = "APIdevkey";
pub const SECRET: &str = "a-long-enough-livekit-api-secret-for-tests";
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    child: Child,
    pub base: String,
    pub database_url: String,
    db: Db,
    pg_database: Option<String>,
    _dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

pub struct Options {
    pub extra_args: Vec<String>,
}

impl TestServer {
    pub async fn start(db: Db) -> TestServer {
        Self::start_with(db, &[]).await
    }

    pub async fn start_with(db: Db, extra: &[&str]) -> TestServer {
        Self::start_via(db, extra, |url| url).await
    }

    /// Like `start_with`, with the database URL the server gets rewritten
    /// (e.g. to go through a proxy the test can cut).
    pub async fn start_via(
        db: Db,
        extra: &[&str],
        rewrite: impl Fn(String) -> String,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg_database) = match db {
            Db::Sqlite => (
                format!("sqlite://{}/attendance.db", dir.path().display()),
                None,
            ),
            Db::Postgres => {
                let name = format!("attendance_test_{}", rand_suffix());
                let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL)
                    .await
                    .expect("PostgreSQL at 127.0.0.1:5432");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                (
                    format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    Some(name),
                )
            }
        };
        let database_url = rewrite(database_url);
        let mut server = Self::spawn(&database_url, extra);
        let base = read_address(&mut server);
        TestServer {
            child: server,
            base,
            database_url,
            db,
            pg_database,
            _dir: dir,
            client: reqwest::Client::new(),
        }
    }

    /// Another instance on the same database (it does not drop it).
    pub fn another_instance(&self, extra: &[&str]) -> TestServer {
        let mut child = Self::spawn(&self.database_url, extra);
        let base = read_address(&mut child);
        TestServer {
            child,
            base,
            database_url: self.database_url.clone(),
            db: self.db,
            pg_database: None,
            _dir: tempfile::tempdir().unwrap(),
            client: reqwest::Client::new(),
        }
    }

    /// A counter or gauge from `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in metrics"))
    }

    fn spawn(database_url: &str, extra: &[&str]) -> Child {
        let www = concat!(env!("CARGO_MANIFEST_DIR"), "/../../www");
        Command::new(env!("CARGO_BIN_EXE_attendance-server"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
                "--www-dir",
                www,
            ])
            .args([
                "--sweep-interval",
                "200ms",
                "--retry-base",
                "20ms",
                "--processing-lease",
                "1s",
            ])
            .args(extra)
            .env(
                "LIVEKIT_KEYS",
                format!("{KEY}: {SECRET}, otherkey: other-secret-other-secret-other"),
            )
            .env_remove("LIVEKIT_API_KEY")
            .env_remove("LIVEKIT_API_SECRET")
            .env(
                "RUST_LOG",
                std::env::var("TEST_SERVER_LOG")
                    .unwrap_or_else(|_| "warn,warp::filters::trace=error".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start attendance-server")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Kills the process hard (no graceful shutdown).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same database.
    pub fn restart(&mut self, extra: &[&str]) {
        self.kill();
        self.child = Self::spawn(&self.database_url, extra);
        self.base = read_address(&mut self.child);
    }

    pub async fn post_webhook(&self, body: &str) -> reqwest::Response {
        self.post_webhook_with(body, &webhook_token(body.as_bytes()))
            .await
    }

    pub async fn post_webhook_with(&self, body: &str, authorization: &str) -> reqwest::Response {
        self.client
            .post(self.url("/webhooks/livekit"))
            .header("Content-Type", "application/webhook+json")
            .header("Authorization", authorization)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    pub async fn schedule(&self, room: &str, body: Value) -> reqwest::Response {
        let teacher = access_token("teacher", room, Grant::Teacher);
        self.put_json(&format!("/api/sessions/{room}"), teacher, &body)
            .await
    }

    /// Schedules `room` as a class that began `ago` before now and lasts
    /// `minutes` (it is live); asserts it was created and returns its start.
    pub async fn schedule_live(
        &self,
        room: &str,
        ago: chrono::TimeDelta,
        minutes: i64,
    ) -> chrono::DateTime<chrono::Utc> {
        let start = chrono::Utc::now() - ago;
        let r = self
            .schedule(
                room,
                json!({"scheduled_at": start.to_rfc3339(), "duration_minutes": minutes}),
            )
            .await;
        assert_eq!(r.status(), 201, "scheduling {room}");
        start
    }

    /// The live socket's URL for `room`, with the token in the query (the
    /// form old clients use).
    pub fn live_url(&self, room: &str, token: &str) -> String {
        format!(
            "{}/api/sessions/{room}/live?access_token={token}",
            self.base.replace("http://", "ws://")
        )
    }

    /// One authenticated request; the helpers below name the method.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: impl std::fmt::Display,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        request.send().await.unwrap()
    }

    pub async fn put_json(
        &self,
        path: &str,
        token: impl std::fmt::Display,
        body: &Value,
    ) -> reqwest::Response {
        self.request(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: impl std::fmt::Display) -> reqwest::Response {
        self.request(reqwest::Method::DELETE, path, token, None)
            .await
    }

    pub async fn post(&self, path: &str, token: impl std::fmt::Display) -> reqwest::Response {
        self.request(reqwest::Method::POST, path, token, None).await
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path, token, None).await
    }

    /// A GET whose JSON body is wanted, whatever the status.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        self.get(path, token).await.json().await.unwrap()
    }

    pub async fn report(&self, room: &str) -> Value {
        let r = self
            .get(
                &format!("/api/sessions/{room}/attendance"),
                &access_token("teacher", room, Grant::Teacher),
            )
            .await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Waits until every stored webhook was processed (or dead-lettered).
    pub async fn settle(&self) {
        let admin = access_token("admin", "any", Grant::Admin);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pending: Value = self
                .get("/api/admin/webhooks?status=pending", &admin)
                .await
                .json()
                .await
                .unwrap();
            if pending["webhooks"].as_array().is_some_and(|a| a.is_empty()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "webhooks still pending: {pending}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(name) = self.pg_database.take() {
            // Best effort: a fresh runtime, since Drop is not async.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(PG_ADMIN_URL).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut admin)
                                .await;
                    }
                });
            })
            .join();
        }
        let _ = self.db;
    }
}

fn read_address(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("attendance-server exited before listening");
        }
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            let addr = addr.to_string();
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in reader.lines() {});
            return addr;
        }
    }
}

pub fn rand_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..12)
        .map(|_| (b'a' + rng.random_range(0..26)) as char)
        .collect()
}

pub fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// HS256 JWT built by hand (not with the server's code), so the tests check
/// the server against the format, not against itself.
pub fn jwt(header: &Value, claims: &Value, secret: &str) -> String {
    use hmac::Mac;
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&mac.finalize().into_bytes()))
}

pub fn body_sha256(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body))
}

/// A webhook token exactly as livekit-server signs one.
pub fn webhook_token(body: &[u8]) -> String {
    let now = now_s();
    jwt(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"iss": KEY, "nbf": now, "exp": now + 300, "sha256": body_sha256(body)}),
        SECRET,
    )
}

#[derive(Debug, Clone, Copy)]
pub enum Grant {
    Student,
    Teacher,
    Admin,
}

/// An access token as LiveKit's server SDKs mint it.
pub fn access_token(identity: &str, room: &str, grant: Grant) -> String {
    let video = match grant {
        Grant::Student => json!({"room": room, "roomJoin": true, "canPublish": true}),
        Grant::Teacher => json!({"room": room, "roomJoin": true, "roomAdmin": true}),
        Grant::Admin => json!({"roomCreate": true, "roomList": true}),
    };
    let now = now_s();
    jwt(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"iss": KEY, "sub": identity, "name": identity, "nbf": now, "exp": now + 3600, "video": video}),
        SECRET,
    )
}

/// A `WebhookEvent` in protojson, spaced like Go's encoder (`", "`).
pub fn event(
    kind: &str,
    id: &str,
    created_at: i64,
    room: &str,
    participant: Option<(&str, &str, i64)>,
) -> String {
    event_with(kind, id, created_at, room, participant, json!({}))
}

/// [`event`] with extra participant fields (`kind`, `metadata`, `attributes`, …).
pub fn event_with(
    kind: &str,
    id: &str,
    created_at: i64,
    room: &str,
    participant: Option<(&str, &str, i64)>,
    extra: Value,
) -> String {
    let mut value = json!({
        "event": kind,
        "room": {"sid": format!("RM_{room}"), "name": room, "emptyTimeout": 300, "creationTime": (created_at - 3600).to_string()},
        "id": id,
        "createdAt": created_at.to_string(),
    });
    if let Some((sid, identity, joined_at)) = participant {
        value["participant"] = json!({
            "sid": sid, "identity": identity, "name": format!("Name of {identity}"), "state": "ACTIVE",
            "joinedAt": joined_at.to_string(), "joinedAtMs": (joined_at * 1000).to_string(), "version": 2,
            "permission": {"canSubscribe": true, "canPublish": true}, "someFutureField": {"x": 1},
        });
        for (key, field) in extra.as_object().into_iter().flatten() {
            value["participant"][key] = field.clone();
        }
    }
    value.to_string().replace(",\"", ", \"")
}

/// unix seconds of `2025-11-25T{hh}:{mm}:00Z`: a past session, so reports are final.
pub fn at(hh: i64, mm: i64) -> i64 {
    1_764_028_800 + hh * 3600 + mm * 60
}

pub const PAST_SESSION: &str = "2025-11-25T11:00:00Z";

pub async fn ws_connect(
    server: &TestServer,
    room: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    tokio_tungstenite::connect_async(server.live_url(room, token))
        .await
        .expect("websocket")
        .0
}

/// Next JSON text message within `within`.
pub async fn next_json<S>(socket: &mut S, within: Duration) -> Value
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, socket.next())
            .await
            .expect("message in time")
            .expect("open")
            .expect("ok");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Next message of `kind`, skipping others (snapshots from resyncs, acks).
pub async fn next_of_type<S>(socket: &mut S, kind: &str, within: Duration) -> Value
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    let deadline = Instant::now() + within;
    loop {
        let message = next_json(socket, deadline.saturating_duration_since(Instant::now())).await;
        if message["type"] == kind {
            return message;
        }
    }
}
