//! End to end: the real binary, LiveKit-signed webhooks in, reports out, on
//! SQLite and on PostgreSQL.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

on_both_backends!(
    golden_scenarios_end_to_end,
    duplicates_are_processed_once,
    reordered_events_give_in_order_totals,
    room_finished_closes_open_cycles,
    connections_ending_in_their_first_second_count,
    events_before_the_schedule_count_once_it_arrives,
    schedule_change_recomputes_the_report,
    stale_heartbeat_closes_the_cycle,
    heartbeat_never_opens_a_cycle,
    heartbeat_replies_follow_every_change,
    csv_report,
    forged_webhooks_are_refused,
    access_rules,
    bad_input_is_refused_clearly,
    failed_processing_is_dead_lettered_and_replayable,
    live_updates_over_websocket,
);

#[tokio::test]
async fn oversized_bodies_get_413() {
    let server = TestServer::start_with(Db::Sqlite, &["--max-body-bytes", "2048"]).await;
    let body = event(
        "participant_joined",
        "EV_big",
        now_s(),
        "r",
        Some(("PA_b", "s", now_s())),
    );
    let padded = format!("{}{}", body, " ".repeat(4096));
    let r = server.post_webhook(&padded).await;
    assert_eq!(r.status(), 413);
    let teacher = access_token("t", "r", Grant::Teacher);
    let r = server
        .client
        .put(server.url("/api/sessions/r"))
        .bearer_auth(&teacher)
        .body("x".repeat(3000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Just under the limit is fine.
    assert_eq!(server.post_webhook(&body).await.status(), 200);
}

fn participant<'a>(report: &'a Value, identity: &str) -> &'a Value {
    report["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["identity"] == identity)
        .unwrap_or_else(|| panic!("{identity} not in {report}"))
}

async fn past_class(server: &TestServer, room: &str) {
    let r = server
        .schedule(
            room,
            json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60, "title": "Math"}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// (hour, minute) on the past session's day.
type Clock = (i64, i64);

/// Join/leave pairs as LiveKit would send them, one connection each.
async fn attend(server: &TestServer, room: &str, identity: &str, spans: &[(Clock, Option<Clock>)]) {
    for (n, (join, leave)) in spans.iter().enumerate() {
        let sid = format!("PA_{identity}_{n}");
        let joined = at(join.0, join.1);
        let body = event(
            "participant_joined",
            &format!("EV_{identity}_{n}_j"),
            joined,
            room,
            Some((&sid, identity, joined)),
        );
        assert_eq!(server.post_webhook(&body).await.status(), 200);
        if let Some(leave) = leave {
            let body = event(
                "participant_left",
                &format!("EV_{identity}_{n}_l"),
                at(leave.0, leave.1),
                room,
                Some((&sid, identity, joined)),
            );
            assert_eq!(server.post_webhook(&body).await.status(), 200);
        }
    }
}

async fn golden_scenarios_end_to_end(db: Db) {
    let server = TestServer::start(db).await;
    let room = "math-101";
    past_class(&server, room).await;
    attend(&server, room, "early", &[((10, 45), Some((11, 15)))]).await;
    attend(
        &server,
        room,
        "two-devices",
        &[((11, 0), Some((11, 40))), ((11, 20), Some((12, 0)))],
    )
    .await;
    attend(
        &server,
        room,
        "gap",
        &[((11, 0), Some((11, 20))), ((11, 30), Some((12, 0)))],
    )
    .await;
    attend(&server, room, "late", &[((11, 15), Some((12, 30)))]).await;
    attend(&server, room, "half", &[((11, 0), Some((11, 30)))]).await;
    attend(&server, room, "after-end", &[((12, 40), Some((12, 50)))]).await;
    attend(&server, room, "never-left", &[((11, 0), None)]).await;
    server.settle().await;
    let report = server.report(room).await;
    assert_eq!(report["phase"], "ended");
    assert_eq!(report["window_end"], "2025-11-25T12:30:00Z");
    let expect = [
        ("early", 900, 25.0, "partial", 1),
        ("two-devices", 3600, 100.0, "present", 2),
        ("gap", 3000, 83.3, "present", 2),
        ("late", 4500, 100.0, "late", 1),
        ("half", 1800, 50.0, "partial", 1),
        ("never-left", 5400, 100.0, "present", 1),
    ];
    // A join after the window belongs to no lesson: not in this one.
    let listed = |who: &str| {
        report["participants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["identity"] == who)
    };
    assert!(!listed("after-end"));
    for (identity, seconds, percent, status, joins) in expect {
        let p = participant(&report, identity);
        assert_eq!(p["attended_seconds"], seconds, "{identity}: {p}");
        assert_eq!(p["duration_minutes"], seconds / 60, "{identity}");
        assert_eq!(
            p["attendance_percentage"].as_f64(),
            Some(percent),
            "{identity}"
        );
        assert_eq!(p["status"], status, "{identity}");
        assert_eq!(p["join_count"], joins, "{identity}");
        assert_eq!(p["final"], true, "{identity}");
        assert_eq!(p["in_meeting"], false, "{identity}");
    }
    let early = participant(&report, "early");
    assert_eq!(early["first_join_at"], "2025-11-25T10:45:00Z");
    assert_eq!(early["last_leave_at"], "2025-11-25T11:15:00Z");
    assert_eq!(early["name"], "Name of early");
    assert_eq!(early["cycles"][0]["participant_sid"], "PA_early_0");
    assert_eq!(early["cycles"][0]["close_reason"], "left");
    // The sweeper closes what was left open once the window is over.
    let never_left = participant(&report, "never-left");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut closed = never_left["cycles"][0].clone();
    while closed["close_reason"].is_null() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        closed = participant(&server.report(room).await, "never-left")["cycles"][0].clone();
    }
    assert_eq!(closed["close_reason"], "session_ended");
    assert_eq!(closed["left_at"], "2025-11-25T12:30:00Z");
}

async fn duplicates_are_processed_once(db: Db) {
    let server = TestServer::start(db).await;
    past_class(&server, "r").await;
    let join = event(
        "participant_joined",
        "EV_dup00000001",
        at(11, 0),
        "r",
        Some(("PA_1", "s", at(11, 0))),
    );
    let first: Value = server.post_webhook(&join).await.json().await.unwrap();
    let second: Value = server.post_webhook(&join).await.json().await.unwrap();
    assert_eq!(first["status"], "accepted");
    assert_eq!(second["status"], "duplicate");
    let leave = event(
        "participant_left",
        "EV_dup00000002",
        at(11, 30),
        "r",
        Some(("PA_1", "s", at(11, 0))),
    );
    // Sent at once, the copies likely share one group commit: one is stored.
    let answers = futures_util::future::join_all((0..8).map(|_| async {
        let r = server.post_webhook(&leave).await;
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["status"].clone()
    }))
    .await;
    let accepted = answers.iter().filter(|s| *s == "accepted").count();
    assert_eq!(accepted, 1, "{answers:?}");
    server.settle().await;
    let p = participant(&server.report("r").await, "s").clone();
    assert_eq!(p["join_count"], 1);
    assert_eq!(p["attended_seconds"], 1800);
}

async fn reordered_events_give_in_order_totals(db: Db) {
    let server = TestServer::start(db).await;
    past_class(&server, "r").await;
    // The leave arrives before its join; a second connection's events are interleaved.
    let events = [
        event(
            "participant_left",
            "EV_o1",
            at(11, 40),
            "r",
            Some(("PA_a", "s", at(11, 0))),
        ),
        event(
            "participant_left",
            "EV_o2",
            at(12, 0),
            "r",
            Some(("PA_b", "s", at(11, 20))),
        ),
        event(
            "participant_joined",
            "EV_o3",
            at(11, 20),
            "r",
            Some(("PA_b", "s", at(11, 20))),
        ),
        event(
            "participant_joined",
            "EV_o4",
            at(11, 0),
            "r",
            Some(("PA_a", "s", at(11, 0))),
        ),
    ];
    for body in &events {
        assert_eq!(server.post_webhook(body).await.status(), 200);
    }
    server.settle().await;
    let p = participant(&server.report("r").await, "s").clone();
    assert_eq!(p["attended_seconds"], 3600);
    assert_eq!(p["join_count"], 2);
    assert_eq!(p["in_meeting"], false);
}

async fn room_finished_closes_open_cycles(db: Db) {
    let server = TestServer::start(db).await;
    past_class(&server, "r").await;
    attend(&server, "r", "a", &[((11, 0), None)]).await;
    server
        .post_webhook(&event("room_finished", "EV_fin", at(11, 45), "r", None))
        .await;
    // A join processed after room_finished (reordered) is closed too.
    server
        .post_webhook(&event(
            "participant_joined",
            "EV_lateb",
            at(11, 10),
            "r",
            Some(("PA_b", "b", at(11, 10))),
        ))
        .await;
    server.settle().await;
    let report = server.report("r").await;
    for (identity, seconds) in [("a", 2700), ("b", 2100)] {
        let p = participant(&report, identity);
        assert_eq!(p["attended_seconds"], seconds, "{identity}");
        assert_eq!(
            p["cycles"][0]["close_reason"], "room_finished",
            "{identity}"
        );
    }
}

/// A LiveKit event in `room` at `second` (unix s) for connection `sid`
/// that began `joined_ms` (unix ms) into that second; `None`: the
/// participant carries no join time.
fn within_second(kind: &str, id: &str, second: i64, sid: &str, joined_ms: Option<i64>) -> String {
    let mut value: Value =
        serde_json::from_str(&event(kind, id, second, "r", Some((sid, sid, second)))).unwrap();
    let participant = value["participant"].as_object_mut().unwrap();
    if let Some(ms) = joined_ms {
        participant.insert("joinedAtMs".into(), json!(ms.to_string()));
    } else {
        participant.remove("joinedAt");
        participant.remove("joinedAtMs");
    }
    value.to_string()
}

/// LiveKit dates a join in milliseconds but a leave or a room's end in
/// whole seconds: a connection that ends in the second it began, on the
/// lesson's first second, is still a join into that lesson.
async fn connections_ending_in_their_first_second_count(db: Db) {
    let server = TestServer::start(db).await;
    past_class(&server, "r").await;
    let start = at(11, 0);
    let ms = |offset: i64| start * 1000 + offset;
    let batches = [
        // Joined at .873, left "at :00" with its join time on the leave.
        vec![
            within_second("participant_joined", "EV_a1", start, "PA_a", Some(ms(873))),
            within_second("participant_left", "EV_a2", start, "PA_a", Some(ms(873))),
        ],
        // The leave first, without a join time; the join later.
        vec![within_second(
            "participant_left",
            "EV_b1",
            start,
            "PA_b",
            None,
        )],
        vec![within_second(
            "participant_joined",
            "EV_b2",
            start,
            "PA_b",
            Some(ms(500)),
        )],
        // Joined at .250 and at .600; the room finished "at :00", processed
        // between the two.
        vec![within_second(
            "participant_joined",
            "EV_c1",
            start,
            "PA_c",
            Some(ms(250)),
        )],
        vec![event("room_finished", "EV_fin", start, "r", None)],
        vec![within_second(
            "participant_joined",
            "EV_d1",
            start,
            "PA_d",
            Some(ms(600)),
        )],
    ];
    for batch in &batches {
        for body in batch {
            assert_eq!(server.post_webhook(body).await.status(), 200, "{body}");
        }
        server.settle().await;
    }
    let report = server.report("r").await;
    for (identity, joined) in [("PA_a", 873), ("PA_b", 500), ("PA_c", 250), ("PA_d", 600)] {
        let p = participant(&report, identity);
        assert_eq!(p["join_count"], 1, "{identity}: {p}");
        assert_eq!(p["attended_seconds"], 0, "{identity}: {p}");
        let cycle = &p["cycles"][0];
        assert_eq!(cycle["joined_at"], cycle["left_at"], "{identity}: {p}");
        let joined_at: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(cycle["joined_at"].clone()).unwrap();
        assert_eq!(joined_at.timestamp_millis(), ms(joined), "{identity}: {p}");
    }
}

async fn events_before_the_schedule_count_once_it_arrives(db: Db) {
    let server = TestServer::start(db).await;
    attend(&server, "r", "s", &[((10, 50), Some((11, 30)))]).await;
    server.settle().await;
    // Nobody scheduled the room: its instance got an unscheduled session…
    let unscheduled = server.report("r").await;
    assert_eq!(unscheduled["unscheduled"], true);
    assert_eq!(participant(&unscheduled, "s")["attended_seconds"], 2400);
    // …which the lesson scheduled over it becomes (200: not a new session).
    let r = server
        .schedule(
            "r",
            json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60, "title": "Math"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let lesson = server.report("r").await;
    assert_eq!(lesson["id"], unscheduled["id"]);
    assert_eq!(lesson["unscheduled"], false);
    assert_eq!(
        participant(&server.report("r").await, "s")["attended_seconds"],
        1800
    );
}

async fn schedule_change_recomputes_the_report(db: Db) {
    let server = TestServer::start(db).await;
    past_class(&server, "r").await;
    attend(&server, "r", "s", &[((11, 0), Some((11, 45)))]).await;
    server.settle().await;
    assert_eq!(
        participant(&server.report("r").await, "s")["status"],
        "partial"
    );
    let r = server
        .schedule(
            "r",
            json!({"scheduled_at": "2025-11-25T11:00:00Z", "duration_minutes": 45}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let p = participant(&server.report("r").await, "s").clone();
    assert_eq!(p["attendance_percentage"].as_f64(), Some(100.0));
    assert_eq!(p["status"], "present");
}

async fn stale_heartbeat_closes_the_cycle(db: Db) {
    let server = TestServer::start(db).await;
    let start = chrono::Utc::now() - chrono::TimeDelta::minutes(5);
    let r = server
        .schedule("live", json!({"scheduled_at": start.to_rfc3339(), "duration_minutes": 60, "heartbeat_stale_seconds": 1}))
        .await;
    assert_eq!(r.status(), 201);
    let joined = start.timestamp();
    server
        .post_webhook(&event(
            "participant_joined",
            "EV_s1",
            joined,
            "live",
            Some(("PA_s", "s", joined)),
        ))
        .await;
    server.settle().await;
    let student = access_token("s", "live", Grant::Student);
    let beat = server.post("/api/sessions/live/heartbeat", &student).await;
    assert_eq!(beat.status(), 200);
    let beat: Value = beat.json().await.unwrap();
    assert_eq!(beat["attendance"]["in_meeting"], true);
    let beat_at: chrono::DateTime<chrono::Utc> =
        beat["last_heartbeat_at"].as_str().unwrap().parse().unwrap();
    // No more heartbeats: after 1 s the sweeper closes at the last heartbeat.
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    loop {
        let p: Value = server
            .get_json("/api/sessions/live/attendance/s", &student)
            .await;
        if p["cycles"][0]["close_reason"] == "stale_heartbeat" {
            let left: chrono::DateTime<chrono::Utc> =
                p["cycles"][0]["left_at"].as_str().unwrap().parse().unwrap();
            assert_eq!(left, beat_at);
            assert_eq!(p["in_meeting"], false);
            assert_eq!(
                p["attended_seconds"],
                // The window opens at the (sub-second) scheduled start, after the join.
                (beat_at.timestamp_millis() - start.timestamp_millis()) / 1000
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not closed: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn heartbeat_never_opens_a_cycle(db: Db) {
    let server = TestServer::start(db).await;
    server
        .schedule_live("r", chrono::TimeDelta::minutes(5), 60)
        .await;
    let student = access_token("s", "r", Grant::Student);
    let beat: Value = server
        .post("/api/sessions/r/heartbeat", &student)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(beat["attendance"]["attended_seconds"], 0);
    assert_eq!(beat["attendance"]["in_meeting"], false);
    assert_eq!(beat["attendance"]["join_count"], 0);
    assert!(beat["attendance"]["last_heartbeat_at"].is_string());
}

/// Heartbeat replies are served from kept facts; every kind of write must
/// show in the next reply.
async fn heartbeat_replies_follow_every_change(db: Db) {
    let server = TestServer::start(db).await;
    let start = chrono::Utc::now() - chrono::TimeDelta::minutes(10);
    let schedule =
        |minutes: i64| json!({"scheduled_at": start.to_rfc3339(), "duration_minutes": minutes});
    assert_eq!(server.schedule("r", schedule(60)).await.status(), 201);
    let student = access_token("s", "r", Grant::Student);
    let beat = || async {
        let r = server.post("/api/sessions/r/heartbeat", &student).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        body["attendance"].clone()
    };
    assert_eq!(beat().await["join_count"], 0);
    assert_eq!(beat().await["join_count"], 0);

    let joined = start.timestamp() + 60;
    let left = joined + 300;
    let server = &server;
    let webhook = |kind, id, at| async move {
        let body = event(kind, id, at, "r", Some(("PA_hb", "s", joined)));
        server.post_webhook(&body).await;
        server.settle().await;
    };
    webhook("participant_joined", "EV_hb_j", joined).await;
    let now = beat().await;
    assert_eq!(now["join_count"], 1, "{now}");
    assert_eq!(now["in_meeting"], true, "{now}");

    webhook("participant_left", "EV_hb_l", left).await;
    let now = beat().await;
    assert_eq!(now["in_meeting"], false, "{now}");
    assert_eq!(now["attended_seconds"], 300, "{now}");
    assert_eq!(now["attendance_percentage"], 8.3, "{now}");

    assert_eq!(server.schedule("r", schedule(120)).await.status(), 200);
    assert_eq!(beat().await["attendance_percentage"], 4.2);

    let teacher = access_token("t", "r", Grant::Teacher);
    let url = "/api/sessions/r/attendance/s/override";
    let r = server
        .put_json(
            url,
            &teacher,
            &json!({"status": "excused", "reason": "ill"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(beat().await["status"], "excused");
    let r = server.delete(&format!("{url}?reason=back"), &teacher).await;
    assert_eq!(r.status(), 200);
    assert_ne!(beat().await["status"], "excused");
}

async fn csv_report(db: Db) {
    let server = TestServer::start(db).await;
    past_class(&server, "r").await;
    attend(&server, "r", "early", &[((10, 45), Some((11, 15)))]).await;
    attend(&server, "r", "=cmd", &[((11, 0), Some((12, 0)))]).await;
    server.settle().await;
    let teacher = access_token("t", "r", Grant::Teacher);
    for request in [
        server
            .client
            .get(server.url("/api/sessions/r/attendance?format=csv"))
            .bearer_auth(&teacher),
        server
            .client
            .get(server.url("/api/sessions/r/attendance"))
            .header("Accept", "text/csv")
            .bearer_auth(&teacher),
    ] {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
        assert!(r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attendance-r-2025-11-25.csv"));
        let text = r.text().await.unwrap();
        let mut rows = csv::Reader::from_reader(text.as_bytes());
        let headers = rows.headers().unwrap().clone();
        let records: Vec<_> = rows.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 2);
        let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
        let early = records
            .iter()
            .find(|r| &r[column("identity")] == "early")
            .unwrap();
        assert_eq!(&early[column("attended_seconds")], "900");
        assert_eq!(&early[column("attendance_percentage")], "25.0");
        assert_eq!(&early[column("status")], "partial");
        assert_eq!(&early[column("first_join_at")], "2025-11-25T10:45:00Z");
        // A formula-looking name cannot run in a spreadsheet.
        assert!(records.iter().any(|r| &r[column("identity")] == "'=cmd"));
    }
}

async fn forged_webhooks_are_refused(db: Db) {
    let server = TestServer::start(db).await;
    let body = event(
        "participant_joined",
        "EV_forged0001",
        now_s(),
        "r",
        Some(("PA_f", "s", now_s())),
    );
    let now = now_s();
    let sign =
        |claims: Value, secret: &str| jwt(&json!({"alg": "HS256", "typ": "JWT"}), &claims, secret);
    let hash = body_sha256(body.as_bytes());
    let hex_digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(body.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let refused = [
        (
            "tampered body",
            webhook_token(body.replace("\"s\"", "\"t\"").as_bytes()),
        ),
        (
            "hex digest",
            sign(
                json!({"iss": KEY, "nbf": now, "exp": now + 300, "sha256": hex_digest}),
                SECRET,
            ),
        ),
        (
            "expired",
            sign(
                json!({"iss": KEY, "nbf": now - 600, "exp": now - 300, "sha256": hash}),
                SECRET,
            ),
        ),
        (
            "unknown key",
            sign(
                json!({"iss": "nobody", "nbf": now, "exp": now + 300, "sha256": hash}),
                SECRET,
            ),
        ),
        (
            "wrong secret",
            sign(
                json!({"iss": KEY, "nbf": now, "exp": now + 300, "sha256": hash}),
                "not-the-secret",
            ),
        ),
        (
            "issuer of another key",
            sign(
                json!({"iss": "otherkey", "nbf": now, "exp": now + 300, "sha256": hash}),
                SECRET,
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                base64_url(&json!({"alg": "none", "typ": "JWT"})),
                base64_url(&json!({"iss": KEY, "exp": now + 300, "sha256": hash}))
            ),
        ),
        ("user token", access_token("s", "r", Grant::Admin)),
        (
            "no sha256",
            sign(json!({"iss": KEY, "nbf": now, "exp": now + 300}), SECRET),
        ),
        ("garbage", "not-a-jwt".to_string()),
        ("empty", String::new()),
    ];
    for (case, token) in refused {
        let r = server.post_webhook_with(&body, &token).await;
        assert_eq!(r.status(), 401, "{case}");
        let reason: Value = r.json().await.unwrap();
        assert!(reason["error"].is_string(), "{case}: {reason}");
    }
    // Accepted: nbf 30 s ahead (clock skew), a Bearer prefix, an iat claim.
    let skewed = sign(
        json!({"iss": KEY, "nbf": now + 30, "iat": now + 30, "exp": now + 330, "sha256": hash}),
        SECRET,
    );
    assert_eq!(server.post_webhook_with(&body, &skewed).await.status(), 200);
    let body2 = event(
        "participant_left",
        "EV_forged0002",
        now_s(),
        "r",
        Some(("PA_f", "s", now_s())),
    );
    let bearer = format!("Bearer {}", webhook_token(body2.as_bytes()));
    assert_eq!(
        server.post_webhook_with(&body2, &bearer).await.status(),
        200
    );
    // The refused ones stored nothing; the two accepted ones are there.
    server.settle().await;
    let admin = access_token("admin", "any", Grant::Admin);
    let processed: Value = server
        .get_json("/api/admin/webhooks?status=processed", &admin)
        .await;
    assert_eq!(
        processed["webhooks"].as_array().unwrap().len(),
        2,
        "{processed}"
    );
    // Operators see why webhooks were refused, and how fast the rest went.
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "attendance_webhooks_rejected_total{reason=\"body_hash_mismatch\"} 2",
        "attendance_webhooks_rejected_total{reason=\"expired\"} 1",
        "attendance_webhooks_rejected_total{reason=\"unknown_key\"} 1",
        "attendance_webhooks_rejected_total{reason=\"not_a_webhook_token\"} 2",
        "attendance_webhooks_accepted_total 2",
        "attendance_events_processed_total 2",
        "attendance_processing_lag_seconds_count 2",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
}

fn base64_url(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn access_rules(db: Db) {
    let server = TestServer::start(db).await;
    past_class(&server, "r").await;
    past_class(&server, "other").await;
    attend(&server, "r", "s1", &[((11, 0), Some((11, 30)))]).await;
    attend(&server, "r", "s2", &[((11, 0), Some((11, 30)))]).await;
    server.settle().await;
    let s1 = access_token("s1", "r", Grant::Student);
    let teacher = access_token("t", "r", Grant::Teacher);
    let other_teacher = access_token("t2", "other", Grant::Teacher);
    let admin = access_token("a", "", Grant::Admin);
    let webhook_as_user = webhook_token(b"{}");
    let cases: Vec<(&str, String, &str, u16)> = vec![
        (
            "student reads self",
            s1.clone(),
            "/api/sessions/r/attendance/s1",
            200,
        ),
        (
            "student reads classmate",
            s1.clone(),
            "/api/sessions/r/attendance/s2",
            403,
        ),
        (
            "student reads class",
            s1.clone(),
            "/api/sessions/r/attendance",
            403,
        ),
        ("student reads session", s1.clone(), "/api/sessions/r", 200),
        (
            "student reads other room",
            s1.clone(),
            "/api/sessions/other",
            403,
        ),
        (
            "teacher reads class",
            teacher.clone(),
            "/api/sessions/r/attendance",
            200,
        ),
        (
            "teacher reads student",
            teacher.clone(),
            "/api/sessions/r/attendance/s2",
            200,
        ),
        (
            "teacher of another room",
            other_teacher.clone(),
            "/api/sessions/r/attendance",
            403,
        ),
        (
            "admin reads any class",
            admin.clone(),
            "/api/sessions/r/attendance",
            200,
        ),
        (
            "admin lists dead letters",
            admin.clone(),
            "/api/admin/webhooks?status=failed",
            200,
        ),
        (
            "teacher lists dead letters",
            teacher.clone(),
            "/api/admin/webhooks?status=failed",
            403,
        ),
        (
            "webhook token as user token",
            webhook_as_user,
            "/api/sessions/r/attendance",
            401,
        ),
        (
            "garbage token",
            "x.y.z".into(),
            "/api/sessions/r/attendance",
            401,
        ),
    ];
    for (case, token, path, status) in cases {
        assert_eq!(server.get(path, &token).await.status(), status, "{case}");
    }
    let anonymous = server
        .client
        .get(server.url("/api/sessions/r/attendance"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // Scheduling is for the room's teacher or an admin.
    let body = json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60});
    for (token, status) in [
        (&s1, 403),
        (&other_teacher, 403),
        (&teacher, 200),
        (&admin, 200),
    ] {
        let r = server.put_json("/api/sessions/r", token, &body).await;
        assert_eq!(r.status(), status);
    }
    // A student's heartbeat can only be for themselves in their own room.
    let r = server.post("/api/sessions/other/heartbeat", &s1).await;
    assert_eq!(r.status(), 403);
}

async fn bad_input_is_refused_clearly(db: Db) {
    let server = TestServer::start(db).await;
    let teacher = access_token("t", "r", Grant::Teacher);
    let put = |body: String| {
        server
            .client
            .put(server.url("/api/sessions/r"))
            .bearer_auth(&teacher)
            .body(body)
            .send()
    };
    for (body, needle) in [
        ("{not json".to_string(), "invalid session"),
        (
            json!({"scheduled_at": PAST_SESSION, "duration_minutes": 0}).to_string(),
            "duration_minutes",
        ),
        (
            json!({"scheduled_at": PAST_SESSION, "duration_minutes": -5}).to_string(),
            "duration_minutes",
        ),
        (
            json!({"scheduled_at": PAST_SESSION, "duration_minutes": 600_000}).to_string(),
            "duration_minutes",
        ),
        (
            json!({"scheduled_at": "tomorrow", "duration_minutes": 60}).to_string(),
            "invalid session",
        ),
        (
            json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60, "present_percent": 120})
                .to_string(),
            "present_percent",
        ),
        (
            json!({"scheduled_at": PAST_SESSION, "duraton_minutes": 60}).to_string(),
            "unknown field",
        ),
    ] {
        let r = put(body.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let error: Value = r.json().await.unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(needle),
            "{body}: {error}"
        );
    }
    // Malformed webhook JSON, correctly signed: 400 with a reason.
    let broken = "{\"event\": \"participant_joined\", \"id\": ";
    let r = server.post_webhook(broken).await;
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("malformed"));
    // Oversized bodies: 413 before anything is verified (see also
    // `oversized_bodies_get_413` for a configured limit).
    let just_over = "x".repeat(1024 * 1024 + 1);
    // A client of its own: the server closes this connection after the 413.
    let r = reqwest::Client::new()
        .post(server.url("/webhooks/livekit"))
        .header("Authorization", "irrelevant")
        .body(just_over)
        .send()
        .await;
    // The server may close before the client finished writing 1 MiB;
    // then the client sees the connection end instead of the status.
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    // Unknown room: 404.
    assert_eq!(server.get("/api/sessions/r", &teacher).await.status(), 404);
    assert_eq!(
        server
            .get("/api/sessions/r/attendance", &teacher)
            .await
            .status(),
        404
    );
    assert_eq!(
        server.get("/api/no/such/path", &teacher).await.status(),
        404
    );
    let r = server.get("/healthz", "").await;
    assert_eq!(r.status(), 200);
}

async fn failed_processing_is_dead_lettered_and_replayable(db: Db) {
    let server = TestServer::start_with(db, &["--max-attempts", "3"]).await;
    // Signed and well-formed JSON, but a join without a participant cannot be applied.
    let body = r#"{"event":"participant_joined", "room":{"sid":"RM_x", "name":"r"}, "id":"EV_broken00001", "createdAt":"1764068400"}"#;
    assert_eq!(server.post_webhook(body).await.status(), 200);
    let admin = access_token("admin", "", Grant::Admin);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let failed: Value = server
            .get_json("/api/admin/webhooks?status=failed", &admin)
            .await;
        if !failed["webhooks"].as_array().unwrap().is_empty() {
            break failed;
        }
        assert!(std::time::Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let entry = &failed["webhooks"][0];
    assert_eq!(entry["id"], "EV_broken00001");
    assert_eq!(entry["attempts"], 3);
    assert!(entry["last_error"]
        .as_str()
        .unwrap()
        .contains("participant"));
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("attendance_webhooks_dead_letters 1"),
        "{metrics}"
    );
    let replay = server
        .post("/api/admin/webhooks/EV_broken00001/replay", &admin)
        .await;
    assert_eq!(replay.status(), 202);
    let missing = server
        .post("/api/admin/webhooks/EV_nope/replay", &admin)
        .await;
    assert_eq!(missing.status(), 404);

    // From the shell too: once it failed again, `attendance-server replay`
    // puts every dead letter back in the queue.
    let failed_again = |server: &TestServer| {
        let (client, url, admin) = (
            server.client.clone(),
            server.url("/api/admin/webhooks?status=failed"),
            admin.clone(),
        );
        async move {
            let list: Value = client
                .get(url)
                .bearer_auth(admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            list["webhooks"].as_array().unwrap().len()
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while failed_again(&server).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "never dead-lettered again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_attendance-server"))
        .args([
            "replay",
            "--all-failed",
            "--database-url",
            &server.database_url,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "queued EV_broken00001"
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_attendance-server"))
        .args([
            "replay",
            "EV_unknown",
            "--database-url",
            &server.database_url,
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
}

async fn live_updates_over_websocket(db: Db) {
    let server = TestServer::start(db).await;
    let start = chrono::Utc::now() - chrono::TimeDelta::minutes(10);
    server
        .schedule(
            "live",
            json!({"scheduled_at": start.to_rfc3339(), "duration_minutes": 60}),
        )
        .await;
    let mut teacher = ws_connect(&server, "live", &access_token("t", "live", Grant::Teacher)).await;
    let mut student =
        ws_connect(&server, "live", &access_token("s1", "live", Grant::Student)).await;
    let snapshot = next_json(&mut teacher, Duration::from_secs(5)).await;
    assert_eq!(snapshot["type"], "attendance.snapshot");
    assert_eq!(snapshot["session"]["duration_minutes"], 60);
    let own = next_json(&mut student, Duration::from_secs(5)).await;
    assert_eq!(own["participants"][0]["identity"], "s1");
    assert_eq!(own["participants"][0]["attended_seconds"], 0);

    // A classmate joins: the teacher hears it, the student does not.
    let joined = start.timestamp() + 60;
    server
        .post_webhook(&event(
            "participant_joined",
            "EV_ws1",
            joined,
            "live",
            Some(("PA_s2", "s2", joined)),
        ))
        .await;
    let update = next_of_type(&mut teacher, "attendance.updated", Duration::from_secs(5)).await;
    assert_eq!(update["type"], "attendance.updated");
    assert_eq!(update["identity"], "s2");
    assert_eq!(update["attendance"]["in_meeting"], true);
    assert_eq!(update["attendance"]["is_currently_in_meeting"], true);
    assert!(update["attendance"]["attended_seconds"].as_i64().unwrap() >= 9 * 60 - 5);
    // The teacher has the session from the snapshot: an update carries
    // the participant only, until the session itself changes.
    assert!(update.get("session").is_none(), "{update}");
    assert!(update["server_time"].is_string());

    // The student's own join reaches the student; the classmate's never did.
    server
        .post_webhook(&event(
            "participant_joined",
            "EV_ws2",
            joined,
            "live",
            Some(("PA_s1", "s1", joined)),
        ))
        .await;
    let mine = next_of_type(&mut student, "attendance.updated", Duration::from_secs(5)).await;
    assert_eq!(mine["type"], "attendance.updated");
    assert_eq!(mine["identity"], "s1");
    let second = next_of_type(&mut teacher, "attendance.updated", Duration::from_secs(5)).await;
    assert_eq!(second["identity"], "s1");
    assert!(second.get("session").is_none(), "{second}");

    // A heartbeat over the socket is acknowledged and recorded.
    use futures_util::SinkExt;
    student
        .send(tokio_tungstenite::tungstenite::Message::text(
            r#"{"type":"heartbeat"}"#,
        ))
        .await
        .unwrap();
    let mut saw_ack = false;
    for _ in 0..3 {
        let m = next_json(&mut student, Duration::from_secs(5)).await;
        assert_ne!(m["identity"], "s2", "a student must never see a classmate");
        if m["type"] == "heartbeat.ack" {
            saw_ack = true;
            break;
        }
    }
    assert!(saw_ack);
    let p: Value = server
        .get_json(
            "/api/sessions/live/attendance/s1",
            &access_token("s1", "live", Grant::Student),
        )
        .await;
    assert!(p["last_heartbeat_at"].is_string());

    // A token for another room cannot subscribe.
    let url = format!(
        "{}/api/sessions/live/live?access_token={}",
        server.base.replace("http://", "ws://"),
        access_token("x", "other", Grant::Student)
    );
    assert!(tokio_tungstenite::connect_async(url).await.is_err());

    // A plain HTTP request to the socket's address is told what it is.
    let plain = server
        .get(
            "/api/sessions/live/live",
            &access_token("t", "live", Grant::Teacher),
        )
        .await;
    assert_eq!(plain.status(), 426);
    let body: Value = plain.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("WebSocket"),
        "{body}"
    );
}
