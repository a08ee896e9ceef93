//! Demo mode hands out tokens without authentication: it only ever creates
//! and touches rooms named `demo-…`, and refuses a database with real
//! classes unless told explicitly.

#[macro_use]
mod common;

use std::process::{Command, Stdio};

use common::*;
use serde_json::{json, Value};

/// Starts the binary in demo mode on `database_url`; the exit status and
/// stderr if it refused, `None` if it started listening.
fn demo_start(database_url: &str, extra: &[&str]) -> Option<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_attendance-server"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--demo",
            "--database-url",
            database_url,
        ])
        .args(extra)
        .env("LIVEKIT_KEYS", format!("{KEY}: {SECRET}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::{BufRead, BufReader};
    let started = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|line| line.starts_with("listening on "));
    if started {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    Some(String::from_utf8_lossy(&output.stderr).into_owned())
}

async fn demo_mode_stays_in_demo_rooms(db: Db) {
    let server = TestServer::start_with(db, &["--demo"]).await;
    let start = |room: &str| {
        let client = server.client.clone();
        let url = server.url("/demo/start");
        let body = json!({ "room": room });
        async move { client.post(url).json(&body).send().await.unwrap() }
    };
    // A real room's name gets the demo prefix: its tokens are for the demo room.
    let demo: Value = start("math-101").await.json().await.unwrap();
    assert_eq!(demo["room"], "demo-math-101");
    let teacher = demo["teacher_token"].as_str().unwrap();
    let real = server
        .get("/api/sessions/math-101/attendance", teacher)
        .await;
    assert_eq!(real.status(), 403);
    // Fabricated joins only into demo rooms, whatever token is shown.
    let real_teacher = access_token("t", "math-101", Grant::Teacher);
    for room in ["math-101", "demo-math-101"] {
        let r = server
            .client
            .post(server.url(&format!("/demo/rooms/{room}/join")))
            .bearer_auth(&real_teacher)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{room}");
    }
    let own = server
        .client
        .post(server.url("/demo/rooms/demo-math-101/join"))
        .bearer_auth(demo["student_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    // Any name LiveKit allows, percent-encoded in the path.
    let arabic: Value = start("رياضيات 101 / \"أ\"").await.json().await.unwrap();
    assert_eq!(arabic["room"], "demo-رياضيات 101 / \"أ\"");
    let path = percent_encoding::utf8_percent_encode(
        arabic["room"].as_str().unwrap(),
        percent_encoding::NON_ALPHANUMERIC,
    );
    for action in ["join", "leave"] {
        let r = server
            .client
            .post(server.url(&format!("/demo/rooms/{path}/{action}")))
            .bearer_auth(arabic["student_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{action}");
        server.settle().await;
    }
    let mine = server
        .get_json(
            &format!("/api/sessions/{path}/attendance/student-1"),
            arabic["student_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(mine["join_count"], 1, "{mine}");
    assert_eq!(mine["cycles"][0]["close_reason"], "left", "{mine}");
    // Not in demo mode: no /demo routes at all.
    let plain = TestServer::start(db).await;
    let r = plain
        .client
        .post(plain.url("/demo/start"))
        .send()
        .await
        .unwrap();
    assert!(matches!(r.status().as_u16(), 404 | 405), "{}", r.status());
}

async fn demo_mode_refuses_a_database_with_real_classes(db: Db) {
    let server = TestServer::start(db).await;
    assert!(
        demo_start(&server.database_url, &[]).is_none(),
        "an empty database is fine"
    );
    let r = server
        .schedule(
            "math-101",
            json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let refusal = demo_start(&server.database_url, &[]).expect("refused");
    assert!(refusal.contains("refusing --demo"), "{refusal}");
    assert!(demo_start(&server.database_url, &["--demo-with-real-data"]).is_none());
}

on_both_backends!(
    demo_mode_stays_in_demo_rooms,
    demo_mode_refuses_a_database_with_real_classes
);
