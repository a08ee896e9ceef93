//! Crashes and several instances: nothing acknowledged is lost, nothing is
//! processed twice, and a change seen by one instance reaches subscribers of
//! every instance.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

async fn past_class(server: &TestServer, room: &str) {
    let r = server
        .schedule(
            room,
            json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60}),
        )
        .await;
    assert!(r.status().is_success());
}

/// A class of `students`, each in for 11:00–11:30 (1800 s counted).
fn class_events(room: &str, students: usize) -> Vec<(String, String)> {
    let mut events = Vec::new();
    for n in 0..students {
        let (sid, who) = (format!("PA_{room}_{n}"), format!("s{n}"));
        let id = format!("EV_{room}_{n}_j");
        events.push((
            id.clone(),
            event(
                "participant_joined",
                &id,
                at(11, 0),
                room,
                Some((&sid, &who, at(11, 0))),
            ),
        ));
        let id = format!("EV_{room}_{n}_l");
        events.push((
            id.clone(),
            event(
                "participant_left",
                &id,
                at(11, 30),
                room,
                Some((&sid, &who, at(11, 0))),
            ),
        ));
    }
    events
}

async fn processed_ids(server: &TestServer) -> HashSet<String> {
    let admin = access_token("admin", "", Grant::Admin);
    let list: Value = server
        .get_json("/api/admin/webhooks?status=processed&limit=1000", &admin)
        .await;
    list["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_string())
        .collect()
}

async fn assert_class_totals(server: &TestServer, room: &str, students: usize) {
    let report = server.report(room).await;
    let participants = report["participants"].as_array().unwrap();
    assert_eq!(participants.len(), students, "{report}");
    for p in participants {
        assert_eq!(p["attended_seconds"], 1800, "{p}");
        assert_eq!(p["join_count"], 1, "{p}");
    }
}

/// Posts every event concurrently; returns the ids that got a 2xx.
async fn burst(
    base: &str,
    events: &[(String, String)],
    stop_after: Option<usize>,
) -> HashSet<String> {
    let client = reqwest::Client::new();
    let acked = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let mut tasks = Vec::new();
    for (id, body) in events.iter().cloned() {
        let (client, acked, url) = (
            client.clone(),
            acked.clone(),
            format!("{base}/webhooks/livekit"),
        );
        tasks.push(tokio::spawn(async move {
            let token = webhook_token(body.as_bytes());
            if let Ok(r) = client
                .post(url)
                .header("Authorization", token)
                .body(body)
                .send()
                .await
            {
                if r.status().is_success() {
                    acked.lock().unwrap().insert(id);
                }
            }
        }));
    }
    if let Some(n) = stop_after {
        // Let some requests through, then the caller kills the server.
        let deadline = Instant::now() + Duration::from_secs(10);
        while acked.lock().unwrap().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        return acked.lock().unwrap().clone();
    }
    for t in tasks {
        t.await.unwrap();
    }
    let result = acked.lock().unwrap().clone();
    result
}

async fn crash_mid_burst_loses_nothing(db: Db) {
    let mut server = TestServer::start(db).await;
    past_class(&server, "crash").await;
    let events = class_events("crash", 150);
    let acked_before_kill = burst(&server.base, &events, Some(60)).await;
    server.kill(); // kill -9: no graceful shutdown
                   // Whatever else got a 200 before the process died also counts.
    server.restart(&[]);
    server.settle().await;
    let processed = processed_ids(&server).await;
    let lost: Vec<_> = acked_before_kill.difference(&processed).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    // LiveKit re-sends what it did not get a 200 for (here: everything again).
    let acked = burst(&server.base, &events, None).await;
    assert_eq!(acked.len(), events.len());
    server.settle().await;
    assert_eq!(processed_ids(&server).await.len(), events.len());
    assert_class_totals(&server, "crash", 150).await;
}

#[tokio::test]
async fn crash_mid_burst_loses_nothing_sqlite() {
    crash_mid_burst_loses_nothing(Db::Sqlite).await;
}

#[tokio::test]
async fn crash_mid_burst_loses_nothing_postgres() {
    crash_mid_burst_loses_nothing(Db::Postgres).await;
}

#[tokio::test]
async fn two_instances_act_as_one() {
    let a = TestServer::start(Db::Postgres).await;
    let b = a.another_instance(&[]);
    let start = chrono::Utc::now() - chrono::TimeDelta::minutes(10);
    a.schedule(
        "shared",
        json!({"scheduled_at": start.to_rfc3339(), "duration_minutes": 60}),
    )
    .await;

    // A teacher watching through B sees a webhook that reached A.
    let mut on_b = ws_connect(&b, "shared", &access_token("t", "shared", Grant::Teacher)).await;
    assert_eq!(
        next_json(&mut on_b, Duration::from_secs(5)).await["type"],
        "attendance.snapshot"
    );
    let joined = start.timestamp() + 60;
    let join = event(
        "participant_joined",
        "EV_shared_1",
        joined,
        "shared",
        Some(("PA_x", "x", joined)),
    );
    assert_eq!(a.post_webhook(&join).await.status(), 200);
    let update = next_of_type(&mut on_b, "attendance.updated", Duration::from_secs(5)).await;
    assert_eq!(update["identity"], "x");

    // A heartbeat sent to B reaches a teacher watching through A.
    let mut on_a = ws_connect(&a, "shared", &access_token("t", "shared", Grant::Teacher)).await;
    next_json(&mut on_a, Duration::from_secs(5)).await;
    let beat = b
        .post(
            "/api/sessions/shared/heartbeat",
            access_token("x", "shared", Grant::Student),
        )
        .await;
    assert_eq!(beat.status(), 200);
    let update = next_of_type(&mut on_a, "attendance.updated", Duration::from_secs(5)).await;
    assert_eq!(update["identity"], "x");
    assert!(update["attendance"]["last_heartbeat_at"].is_string());
    let beat: Value = beat.json().await.unwrap();
    assert_eq!(beat["attendance"]["in_meeting"], true);

    // B answers heartbeats from facts it keeps: a leave that reached A
    // must show in B's next reply.
    let leave = event(
        "participant_left",
        "EV_shared_2",
        joined + 120,
        "shared",
        Some(("PA_x", "x", joined)),
    );
    assert_eq!(a.post_webhook(&leave).await.status(), 200);
    // (Updates from the heartbeat above may come first.)
    while next_of_type(&mut on_b, "attendance.updated", Duration::from_secs(5)).await["attendance"]
        ["in_meeting"]
        != false
    {}
    let beat: Value = b
        .post(
            "/api/sessions/shared/heartbeat",
            access_token("x", "shared", Grant::Student),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(beat["attendance"]["in_meeting"], false, "{beat}");
    assert_eq!(beat["attendance"]["attended_seconds"], 120, "{beat}");

    // The same webhooks delivered to both instances are processed once.
    let events = class_events("both", 40);
    let (to_a, to_b) = tokio::join!(burst(&a.base, &events, None), burst(&b.base, &events, None));
    assert_eq!(to_a.len(), events.len());
    assert_eq!(to_b.len(), events.len());
    a.settle().await;
    b.settle().await;
    a.schedule(
        "both",
        json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60}),
    )
    .await;
    // Counters move just after each commit: give them a moment, then a
    // double processing would show as more than one count per event.
    // Expected: the class, plus the join and the leave of `x` above.
    let expected_events = events.len() + 2;
    let expected = expected_events as f64;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut processed = 0.0;
    while Instant::now() < deadline {
        processed = a.metric("attendance_events_processed_total").await
            + b.metric("attendance_events_processed_total").await;
        if processed >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    processed = processed.max(
        a.metric("attendance_events_processed_total").await
            + b.metric("attendance_events_processed_total").await,
    );
    assert_eq!(
        processed as usize, expected_events,
        "each event exactly once"
    );
    assert_class_totals(&a, "both", 40).await;
}

#[tokio::test]
async fn killing_one_instance_loses_nothing() {
    let mut a = TestServer::start_with(Db::Postgres, &[]).await;
    let b = a.another_instance(&[]);
    past_class(&a, "kill").await;
    let events = class_events("kill", 100);
    let acked_by_a = burst(&a.base, &events, Some(50)).await;
    a.kill();
    // B takes over A's unfinished work once A's claims expire.
    b.settle().await;
    let processed = processed_ids(&b).await;
    let lost: Vec<_> = acked_by_a.difference(&processed).collect();
    assert!(lost.is_empty(), "acknowledged by A but lost: {lost:?}");
    // LiveKit retries the rest against the surviving instance.
    assert_eq!(burst(&b.base, &events, None).await.len(), events.len());
    b.settle().await;
    assert_class_totals(&b, "kill", 100).await;
}
