//! Database outages and misbehaving clients: refuse clearly, recover alone.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy to PostgreSQL that the test can cut and restore.
struct CuttableProxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl CuttableProxy {
    async fn start() -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = watch::channel(0u64);
        let accepting = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !accepting.load(Ordering::SeqCst) {
                    drop(client); // refuse while "down"
                    continue;
                }
                let mut cuts = cuts.clone();
                cuts.borrow_and_update(); // only cuts after this connection count
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect("127.0.0.1:5432").await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {} // cut: drop both ends
                    }
                });
            }
        });
        CuttableProxy { port, up, cut }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

// Multi-threaded: the proxy must keep serving while the harness blocks
// reading the server's first line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_gives_503_and_recovers_without_restart() {
    let proxy = CuttableProxy::start().await;
    let port = proxy.port;
    let server = TestServer::start_via(Db::Postgres, &[], |url| {
        url.replace(":5432/", &format!(":{port}/"))
    })
    .await;
    let start = chrono::Utc::now() - chrono::TimeDelta::minutes(5);
    server
        .schedule(
            "r",
            json!({"scheduled_at": start.to_rfc3339(), "duration_minutes": 60}),
        )
        .await;
    let joined = start.timestamp();
    let join = event(
        "participant_joined",
        "EV_outage_1",
        joined,
        "r",
        Some(("PA_1", "s", joined)),
    );

    proxy.down();
    let r = server.post_webhook(&join).await;
    assert_eq!(r.status(), 503, "LiveKit must retry");
    assert!(r.headers().contains_key("retry-after"));
    let r = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let r = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let ready: Value = r.json().await.unwrap();
    assert_eq!(ready["database"], "unavailable", "{ready}");
    let student = access_token("s", "r", Grant::Student);
    let r = server.post("/api/sessions/r/heartbeat", &student).await;
    assert_eq!(r.status(), 503);
    let message: Value = r.json().await.unwrap();
    assert!(
        message["error"]
            .as_str()
            .unwrap()
            .contains("database is unavailable"),
        "{message}"
    );

    // A dashboard opened during the outage gets its snapshot once the
    // database is back (the server tries again), not an error and nothing.
    let mut early = ws_connect(&server, "r", &access_token("t", "r", Grant::Teacher)).await;
    // Back while the server still tries (its tries span 3.25 s; a refused
    // connection fails each at once).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    proxy.restore();
    // No restart: the pool reconnects by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = server
            .client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Ready again once the LISTEN connection is back too.
    loop {
        let r = server
            .client
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap();
        let ok = r.status() == 200;
        let ready: Value = r.json().await.unwrap();
        if ok {
            assert_eq!(ready["live_updates"], "connected", "{ready}");
            assert_eq!(ready["migrations"], "current", "{ready}");
            break;
        }
        assert!(Instant::now() < deadline, "not ready again: {ready}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = next_json(&mut early, Duration::from_secs(15)).await;
    assert_eq!(first["type"], "attendance.snapshot", "{first}");
    // LiveKit's retry now lands, is processed, and reaches live subscribers.
    let mut teacher = ws_connect(&server, "r", &access_token("t", "r", Grant::Teacher)).await;
    next_of_type(&mut teacher, "attendance.snapshot", Duration::from_secs(15)).await;
    assert_eq!(server.post_webhook(&join).await.status(), 200);
    // Either the update itself or, if it fell into the listener's outage,
    // the resync snapshot that follows a reconnect, shows the join.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = next_json(
            &mut teacher,
            deadline.saturating_duration_since(Instant::now()),
        )
        .await;
        let seen = match m["type"].as_str() {
            Some("attendance.updated") => m["identity"] == "s",
            Some("attendance.snapshot") => m["participants"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["identity"] == "s"),
            _ => false,
        };
        if seen {
            break;
        }
    }
    server.settle().await;
    assert_eq!(server.report("r").await["participants"][0]["join_count"], 1);
}

#[tokio::test]
async fn a_misbehaving_browser_is_cut_off() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start(Db::Sqlite).await;
    let token = access_token("s", "r", Grant::Student);
    // A cap on live connections per identity.
    let mut sockets = Vec::new();
    for _ in 0..8 {
        sockets.push(ws_connect(&server, "r", &token).await);
    }
    let url = server.live_url("r", &token);
    match tokio_tungstenite::connect_async(url.clone()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("expected 429, got {other:?}"),
    }
    sockets.pop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut socket = tokio_tungstenite::connect_async(url)
        .await
        .expect("a freed slot is reusable")
        .0;
    // A flood of messages ends the connection; a huge one too.
    for _ in 0..40 {
        if socket
            .send(Message::text(r#"{"type":"heartbeat"}"#))
            .await
            .is_err()
        {
            break;
        }
    }
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .expect("closed in time");
    assert_eq!(closed, Some(1008));
    let mut big = sockets.pop().unwrap();
    let _ = big.send(Message::text("x".repeat(64 * 1024))).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match big.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert_eq!(ended, Ok(true));
    // The server is fine for everyone else.
    assert_eq!(
        server
            .client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
