//! Lessons, not rooms: a room reused every week keeps every week's record;
//! schedule fixes move a lesson; rooms nobody scheduled are still reported
//! and become a lesson when scheduled. On SQLite and PostgreSQL.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

on_both_backends!(
    two_lessons_a_week_apart_keep_their_own_records,
    a_schedule_fix_moves_the_lesson,
    a_room_nobody_scheduled_gets_its_session_and_becomes_a_lesson,
    the_teacher_sees_an_unscheduled_room_live,
    a_live_socket_follows_the_lesson_it_was_opened_for,
);

const ROOM: &str = "weekly-math";
/// 2025-11-17 and 2025-11-24 09:00Z, a week apart.
const WEEK_1: &str = "2025-11-17T09:00:00Z";
const WEEK_2: &str = "2025-11-24T09:00:00Z";

fn teacher(room: &str) -> String {
    access_token("t", room, Grant::Teacher)
}

fn admin() -> String {
    access_token("admin", "", Grant::Admin)
}

/// unix seconds of `day` (2025-11-DD) at hh:mm UTC.
fn on(day: i64, hh: i64, mm: i64) -> i64 {
    at(hh, mm) + (day - 25) * 86_400
}

/// A LiveKit connection in one room instance (`room_sid`), joined and
/// (maybe) left.
async fn connect(
    server: &TestServer,
    room: &str,
    room_sid: &str,
    who: &str,
    joined: i64,
    left: Option<i64>,
) {
    let sid = format!("PA_{room_sid}_{who}_{joined}");
    let p = Some((sid.as_str(), who, joined));
    let instance =
        |body: String| body.replace(&format!("\"RM_{room}\""), &format!("\"{room_sid}\""));
    let join = event(
        "participant_joined",
        &format!("EV_{sid}_j"),
        joined,
        room,
        p,
    );
    assert_eq!(server.post_webhook(&instance(join)).await.status(), 200);
    if let Some(left) = left {
        let leave = event("participant_left", &format!("EV_{sid}_l"), left, room, p);
        assert_eq!(server.post_webhook(&instance(leave)).await.status(), 200);
    }
}

fn person<'a>(report: &'a Value, identity: &str) -> Option<&'a Value> {
    report["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["identity"] == identity)
}

async fn json_of(r: reqwest::Response, status: u16) -> Value {
    let code = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(code, status, "{body}");
    body
}

async fn two_lessons_a_week_apart_keep_their_own_records(db: Db) {
    let server = TestServer::start(db).await;
    let t = teacher(ROOM);
    let week_1 = json_of(
        server
            .schedule(ROOM, json!({"scheduled_at": WEEK_1, "duration_minutes": 60, "roster": [{"identity": "ada"}, {"identity": "bo"}]}))
            .await,
        201,
    )
    .await;
    connect(
        &server,
        ROOM,
        "RM_w1",
        "ada",
        on(17, 9, 0),
        Some(on(17, 10, 0)),
    )
    .await;
    connect(
        &server,
        ROOM,
        "RM_w1",
        "bo",
        on(17, 9, 5),
        Some(on(17, 9, 15)),
    )
    .await;
    server.settle().await;
    let excuse = json!({"status": "excused", "reason": "sick last week"});
    let path = format!("/api/sessions/{ROOM}/attendance/bo/override");
    json_of(server.put_json(&path, &t, &excuse).await, 200).await;

    // This week's lesson in the same room is a new session: last week stays.
    let week_2 = json_of(
        server
            .schedule(ROOM, json!({"scheduled_at": WEEK_2, "duration_minutes": 60, "roster": [{"identity": "ada"}, {"identity": "bo"}]}))
            .await,
        201,
    )
    .await;
    assert_ne!(week_1["id"], week_2["id"]);
    connect(
        &server,
        ROOM,
        "RM_w2",
        "ada",
        on(24, 9, 0),
        Some(on(24, 9, 50)),
    )
    .await;
    server.settle().await;

    let first = format!("/api/sessions/{ROOM}/attendance?session={}", week_1["id"]);
    let last_week = json_of(server.get(&first, &t).await, 200).await;
    let this_week = server.report(ROOM).await;
    assert_eq!(this_week["id"], week_2["id"], "the room's current lesson");
    let (ada_1, bo_1) = (
        person(&last_week, "ada").unwrap(),
        person(&last_week, "bo").unwrap(),
    );
    assert_eq!(
        (
            ada_1["join_count"].clone(),
            ada_1["attended_seconds"].clone()
        ),
        (json!(1), json!(3600))
    );
    assert_eq!(bo_1["status"], "excused");
    assert_eq!(bo_1["override"]["reason"], "sick last week");
    let (ada_2, bo_2) = (
        person(&this_week, "ada").unwrap(),
        person(&this_week, "bo").unwrap(),
    );
    assert_eq!(
        (
            ada_2["join_count"].clone(),
            ada_2["attended_seconds"].clone()
        ),
        (json!(1), json!(3000))
    );
    assert_eq!(
        bo_2["status"], "absent",
        "last week's excuse is last week's"
    );
    assert_eq!(bo_2["never_joined"], true);
    assert!(bo_2["override"].is_null());

    // Audit per lesson; the listing and bo's history: one row per lesson.
    let audit_1 = format!("/api/sessions/{ROOM}/audit?session={}", week_1["id"]);
    assert_eq!(
        server.get_json(&audit_1, &t).await["audit"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let audit_2 = server
        .get_json(&format!("/api/sessions/{ROOM}/audit"), &t)
        .await;
    assert!(audit_2["audit"].as_array().unwrap().is_empty(), "{audit_2}");
    let list = server
        .get_json(&format!("/api/sessions?room={ROOM}"), &t)
        .await;
    let ids: Vec<&Value> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(ids, vec![&week_1["id"], &week_2["id"]]);
    let history = server
        .get_json("/api/attendance?identity=bo", &admin())
        .await;
    let rows: Vec<(Value, Value)> = history["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["session"]["id"].clone(),
                s["attendance"]["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (week_1["id"].clone(), json!("excused")),
            (week_2["id"].clone(), json!("absent"))
        ]
    );

    // CSV: clearly named columns, a BOM on request, room and date in the name.
    let csv = server.get(&format!("{first}&format=csv&bom=1"), &t).await;
    let disposition = csv.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.contains("attendance-weekly-math-2025-11-17.csv"),
        "{disposition}"
    );
    let text = csv.text().await.unwrap();
    let text = text.strip_prefix('\u{feff}').expect("a byte-order mark");
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    let headers = rows.headers().unwrap().clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let ada = rows
        .records()
        .map(Result::unwrap)
        .find(|r| &r[column("identity")] == "ada")
        .unwrap();
    assert_eq!(&ada[column("attended_minutes")], "60");
    assert_eq!(&ada[column("lesson_minutes")], "60");
    assert_eq!(ada[column("session_id")], week_1["id"].to_string());
    assert!(!headers.iter().any(|h| h == "duration_minutes"));
}

async fn a_schedule_fix_moves_the_lesson(db: Db) {
    let server = TestServer::start(db).await;
    let t = teacher(ROOM);
    let lesson = json!({"scheduled_at": WEEK_1, "duration_minutes": 60});
    let first = json_of(server.schedule(ROOM, lesson).await, 201).await;
    connect(
        &server,
        ROOM,
        "RM_w1",
        "ada",
        on(17, 9, 0),
        Some(on(17, 10, 0)),
    )
    .await;
    server.settle().await;
    // Ten minutes later, within the window: the same lesson, moved.
    let fix = json!({"scheduled_at": "2025-11-17T09:10:00Z", "duration_minutes": 60});
    let moved = json_of(server.schedule(ROOM, fix).await, 200).await;
    assert_eq!(moved["id"], first["id"]);
    assert_eq!(moved["scheduled_at"], "2025-11-17T09:10:00Z");
    assert_eq!(
        person(&server.report(ROOM).await, "ada").unwrap()["attended_seconds"],
        3000
    );
    // Another week: a new lesson, which is now the room's current one.
    let next = json!({"scheduled_at": WEEK_2, "duration_minutes": 60});
    let second = json_of(server.schedule(ROOM, next).await, 201).await;
    assert_ne!(second["id"], first["id"]);
    // Over last week's lesson without naming it: refused, nothing changes…
    let over_last = json!({"scheduled_at": "2025-11-17T09:30:00Z", "duration_minutes": 60});
    let r = server.schedule(ROOM, over_last.clone()).await;
    assert_eq!(r.status(), 409);
    // …named by its id, it moves.
    let path = format!("/api/sessions/{ROOM}?session={}", first["id"]);
    let named = json_of(server.put_json(&path, &t, &over_last).await, 200).await;
    assert_eq!(
        (named["id"].clone(), named["scheduled_at"].clone()),
        (first["id"].clone(), json!("2025-11-17T09:30:00Z"))
    );
    let current = server.get_json(&format!("/api/sessions/{ROOM}"), &t).await;
    assert_eq!(current["id"], second["id"]);
    // Ids are checked against the room.
    let elsewhere = format!("/api/sessions/other?session={}", first["id"]);
    assert_eq!(
        server.get(&elsewhere, &teacher("other")).await.status(),
        404
    );
    assert_eq!(
        server
            .get(&format!("/api/sessions/{ROOM}?session=999999"), &t)
            .await
            .status(),
        404
    );
    assert_eq!(
        server
            .get(&format!("/api/sessions/{ROOM}?session=x"), &t)
            .await
            .status(),
        400
    );
}

async fn a_room_nobody_scheduled_gets_its_session_and_becomes_a_lesson(db: Db) {
    let server = TestServer::start(db).await;
    let room = "adhoc";
    let t = teacher(room);
    connect(
        &server,
        room,
        "RM_a1",
        "ada",
        on(25, 10, 0),
        Some(on(25, 10, 30)),
    )
    .await;
    connect(
        &server,
        room,
        "RM_a1",
        "bo",
        on(25, 10, 5),
        Some(on(25, 10, 40)),
    )
    .await;
    let finished = event("room_finished", "EV_a1_done", on(25, 10, 40), room, None)
        .replace("\"RM_adhoc\"", "\"RM_a1\"");
    assert_eq!(server.post_webhook(&finished).await.status(), 200);
    server.settle().await;

    let report = server.report(room).await;
    assert_eq!(report["unscheduled"], true, "{report}");
    assert_eq!(report["kind"], "unscheduled");
    assert_eq!(report["lesson_minutes"], 40, "the instance's length");
    let ada = person(&report, "ada").unwrap();
    assert_eq!(ada["attended_seconds"], 1800);
    assert_eq!(ada["attendance_percentage"], 75.0);
    assert_eq!(
        (ada["status"].clone(), ada["unscheduled"].clone()),
        (json!("partial"), json!(true))
    );
    let bo = person(&report, "bo").unwrap();
    assert_eq!(
        (bo["attendance_percentage"].clone(), bo["status"].clone()),
        (json!(87.5), json!("present"))
    );
    let list = server
        .get_json(&format!("/api/sessions?room={room}"), &t)
        .await;
    assert_eq!(list["sessions"][0]["kind"], "unscheduled");
    assert_eq!(list["sessions"][0]["students"], 2);

    // Scheduled later: the same session becomes the lesson.
    let lesson = json!({"scheduled_at": "2025-11-25T10:00:00Z", "duration_minutes": 60, "title": "Catch-up"});
    let scheduled = json_of(server.schedule(room, lesson).await, 200).await;
    assert_eq!(scheduled["id"], report["id"]);
    assert_eq!(scheduled["kind"], "lesson");
    let report = server.report(room).await;
    assert_eq!(
        (report["unscheduled"].clone(), report["title"].clone()),
        (json!(false), json!("Catch-up"))
    );
    assert_eq!(
        person(&report, "ada").unwrap()["attendance_percentage"],
        50.0
    );
    let list = server
        .get_json(&format!("/api/sessions?room={room}"), &t)
        .await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1, "{list}");
}

async fn the_teacher_sees_an_unscheduled_room_live(db: Db) {
    let server = TestServer::start(db).await;
    let room = "walk-in";
    let mut socket = ws_connect(&server, room, &teacher(room)).await;
    let first = next_of_type(&mut socket, "attendance.snapshot", Duration::from_secs(5)).await;
    assert!(first["session"].is_null());
    let now = now_s();
    connect(&server, room, "RM_live1", "ada", now - 60, None).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let message = next_json(&mut socket, Duration::from_secs(10)).await;
        let ada = match message["type"].as_str() {
            Some("attendance.snapshot") => person(&message, "ada").cloned(),
            Some("attendance.updated") => Some(message["attendance"].clone()),
            _ => None,
        };
        if let Some(ada) = ada.filter(|a| a["in_meeting"] == true) {
            assert_eq!(ada["unscheduled"], true);
            assert!(ada["attended_seconds"].as_i64().unwrap() >= 59, "{ada}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never shown live");
    }
    let session = server
        .get_json(&format!("/api/sessions/{room}"), &teacher(room))
        .await;
    assert_eq!(
        (session["kind"].clone(), session["running"].clone()),
        (json!("unscheduled"), json!(true))
    );
}

async fn a_live_socket_follows_the_lesson_it_was_opened_for(db: Db) {
    let server = TestServer::start(db).await;
    let t = teacher(ROOM);
    let roster = json!([{"identity": "ada"}]);
    let first = json_of(
        server
            .schedule(
                ROOM,
                json!({"scheduled_at": WEEK_1, "duration_minutes": 60, "roster": roster}),
            )
            .await,
        201,
    )
    .await;
    let lesson = json!({"scheduled_at": WEEK_2, "duration_minutes": 60, "roster": roster});
    json_of(server.schedule(ROOM, lesson).await, 201).await;
    let pinned = format!("{}&session={}", t, first["id"]);
    let mut socket = ws_connect(&server, ROOM, &pinned).await;
    let snapshot = next_of_type(&mut socket, "attendance.snapshot", Duration::from_secs(5)).await;
    assert_eq!(snapshot["session"]["id"], first["id"]);
    // A correction in that (past) lesson reaches it.
    let excuse = json!({"status": "excused", "reason": "trip"});
    let path = format!(
        "/api/sessions/{ROOM}/attendance/ada/override?session={}",
        first["id"]
    );
    json_of(server.put_json(&path, &t, &excuse).await, 200).await;
    // Pushes from before the correction (the second lesson's scheduling, relayed
    // through the database on PostgreSQL) may still be on their way: every
    // snapshot is of the pinned lesson, and one of them shows the correction.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let again = next_of_type(&mut socket, "attendance.snapshot", Duration::from_secs(5)).await;
        assert_eq!(again["session"]["id"], first["id"]);
        if person(&again, "ada").unwrap()["status"] == "excused" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "correction never pushed"
        );
    }
    let current = server.report(ROOM).await;
    assert_eq!(person(&current, "ada").unwrap()["status"], "absent");
}
