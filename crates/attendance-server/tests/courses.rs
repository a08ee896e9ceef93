//! Classes (courses) with recurring lessons: slots in a time zone across a
//! daylight-saving change, cancelled dates, rosters for each lesson,
//! changes that apply to lessons still to come only. On SQLite and
//! PostgreSQL; the `class` command too.

#[macro_use]
mod common;

use chrono::{Duration as Days, Utc};
use common::*;
use serde_json::{json, Value};

on_both_backends!(
    a_recurring_class_makes_its_lessons_in_its_zone_across_dst,
    class_changes_apply_to_future_lessons_only,
);

fn admin() -> String {
    access_token("admin", "", Grant::Admin)
}

async fn json_of(r: reqwest::Response, status: u16) -> Value {
    let code = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(code, status, "{body}");
    body
}

async fn post(server: &TestServer, path: &str, token: &str, body: &Value) -> reqwest::Response {
    server
        .request(reqwest::Method::POST, path, token, Some(body))
        .await
}

fn starts(class: &Value) -> Vec<String> {
    class["lessons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["scheduled_at"].as_str().unwrap().to_string())
        .collect()
}

async fn a_recurring_class_makes_its_lessons_in_its_zone_across_dst(db: Db) {
    let server = TestServer::start(db).await;
    let teacher = access_token("ms-smith", "bio-7b", Grant::Teacher);
    let body = json!({
        "room": "bio-7b", "title": "Biology 7B", "timezone": "Europe/Berlin",
        "starts_on": "2026-03-16", "ends_on": "2026-04-08",
        "slots": [{"days": ["MO", "WE"], "start": "09:00", "duration_minutes": 60}],
        "cancelled": ["2026-03-25"],
        "roster": [{"identity": "ada"}, {"identity": "bo"}], "teachers": ["ms-smith"],
    });
    let class = json_of(post(&server, "/api/classes", &teacher, &body).await, 201).await;
    // 09:00 in Berlin: 08:00Z in winter time, 07:00Z from 29 March on.
    assert_eq!(
        starts(&class),
        vec![
            "2026-03-16T08:00:00Z",
            "2026-03-18T08:00:00Z",
            "2026-03-23T08:00:00Z",
            "2026-03-30T07:00:00Z",
            "2026-04-01T07:00:00Z",
            "2026-04-06T07:00:00Z",
            "2026-04-08T07:00:00Z",
        ]
    );
    assert_eq!(
        class["lessons"][3]["scheduled_at_local"],
        "2026-03-30T09:00:00+02:00"
    );
    // Every lesson is a session of the room, with the class's roster.
    let list = server.get_json("/api/sessions?room=bio-7b", &teacher).await;
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 7);
    assert!(sessions
        .iter()
        .all(|s| s["class_id"] == class["id"] && s["title"] == "Biology 7B"));
    let lesson = &class["lessons"][4]["id"];
    let roster = server
        .get_json(
            &format!("/api/sessions/bio-7b/roster?session={lesson}"),
            &teacher,
        )
        .await;
    let people: Vec<(&str, &str)> = roster["roster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["identity"].as_str().unwrap(), e["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        people,
        vec![
            ("ada", "student"),
            ("bo", "student"),
            ("ms-smith", "teacher")
        ]
    );
    // A lesson of another class in the same room may not overlap.
    let clash = json!({
        "room": "bio-7b", "timezone": "UTC", "starts_on": "2026-03-30", "ends_on": "2026-03-30",
        "slots": [{"rrule": "FREQ=DAILY", "start": "07:30", "duration_minutes": 30}],
    });
    assert_eq!(
        post(&server, "/api/classes", &admin(), &clash)
            .await
            .status(),
        409
    );
    // Another room's teacher may not touch it; bad slots are refused.
    let other = access_token("t", "other", Grant::Teacher);
    assert_eq!(
        server
            .get(&format!("/api/classes/{}", class["id"]), &other)
            .await
            .status(),
        403
    );
    let mut bad = body.clone();
    bad["slots"] = json!([{"days": ["someday"], "start": "09:00", "duration_minutes": 60}]);
    assert_eq!(
        post(&server, "/api/classes", &admin(), &bad).await.status(),
        400
    );
    bad["slots"] = json!([{"rrule": "FREQ=SOMETIMES", "start": "09:00", "duration_minutes": 60}]);
    assert_eq!(
        post(&server, "/api/classes", &admin(), &bad).await.status(),
        400
    );
}

async fn class_changes_apply_to_future_lessons_only(db: Db) {
    let server = TestServer::start(db).await;
    // A room name with a space, a slash, quotes and Arabic, on every class route.
    let room = "كيمياء / \"المختبر\" 2";
    let encoded =
        percent_encoding::utf8_percent_encode(room, percent_encoding::NON_ALPHANUMERIC).to_string();
    let today = Utc::now().date_naive();
    let day = |offset: i64| (today + Days::days(offset)).to_string();
    let body = json!({
        "room": room, "title": "Chemistry", "timezone": "UTC",
        "starts_on": day(-3), "ends_on": day(3),
        "slots": [{"rrule": "FREQ=DAILY", "start": "00:30", "duration_minutes": 20}],
        "grace_minutes": 0, "late_after_minutes": 5, "grade_points": {"present": 3},
    });
    let class = json_of(post(&server, "/api/classes", &admin(), &body).await, 201).await;
    let id = class["id"].clone();
    // Over the school's points: only what the class names changes.
    assert_eq!(
        class["grade_points"],
        json!({"present": 3, "late": 1, "partial": 1, "absent": 0, "excused": 1})
    );
    let mut bad = body.clone();
    bad["room"] = json!("chem-2");
    bad["grade_points"] = json!({"gold": 1});
    assert_eq!(
        post(&server, "/api/classes", &admin(), &bad).await.status(),
        400
    );
    assert_eq!(class["lessons"].as_array().unwrap().len(), 7);
    let past = |c: &Value| -> Vec<Value> {
        let cut = format!("{}T00:00:00Z", day(0));
        c["lessons"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["scheduled_at"].as_str().unwrap() < cut.as_str())
            .cloned()
            .collect()
    };
    let before_past = past(&class);
    assert_eq!(before_past.len(), 3);
    // A teacher moves one future lesson by hand: the class leaves it alone.
    let teacher = access_token("t", room, Grant::Teacher);
    let moved_id = &class["lessons"][5]["id"];
    let moved_at = format!("{}T02:00:00Z", day(2));
    let r = server
        .put_json(
            &format!("/api/sessions/{encoded}?session={moved_id}"),
            &teacher,
            &json!({"scheduled_at": moved_at, "duration_minutes": 20, "title": "Moved"}),
        )
        .await;
    assert_eq!(r.status(), 200);

    // The class changes: a new title, 01:00, and tomorrow cancelled.
    let mut changed = body.clone();
    changed["title"] = json!("Chemistry II");
    changed["slots"][0]["start"] = json!("01:00");
    changed["grade_points"] = json!({"late": 2});
    json_of(
        server
            .put_json(&format!("/api/classes/{id}"), &admin(), &changed)
            .await,
        200,
    )
    .await;
    let class = json_of(
        post(
            &server,
            &format!("/api/classes/{id}/cancellations"),
            &teacher,
            &json!({"date": day(1)}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(past(&class), before_past, "past lessons keep their time");
    let lessons = server
        .get_json(&format!("/api/sessions?room={encoded}"), &teacher)
        .await;
    let rows = lessons["sessions"].as_array().unwrap();
    for row in rows {
        let start = row["scheduled_at"].as_str().unwrap();
        if start < format!("{}T00:00:00Z", day(0)).as_str() {
            assert_eq!(row["title"], "Chemistry", "{row}");
            assert_eq!(row["grade_points"]["present"], 3, "{row}");
        } else if row["id"] == *moved_id {
            assert_eq!(
                (row["title"].as_str(), start),
                (Some("Moved"), moved_at.as_str())
            );
        } else if start > Utc::now().to_rfc3339().as_str() {
            assert_eq!(row["title"], "Chemistry II", "{row}");
            assert!(start.ends_with("T01:00:00Z"), "{row}");
            assert_eq!(
                (
                    &row["grade_points"]["present"],
                    &row["grade_points"]["late"]
                ),
                (&json!(2), &json!(2)),
                "the class's new points: {row}"
            );
        }
    }
    assert!(
        !rows
            .iter()
            .any(|r| r["scheduled_at"].as_str().unwrap().starts_with(&day(1))),
        "cancelled"
    );

    // From the shell, against the running server: list, cancel, show.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_attendance-server"))
            .arg("class")
            .args(args)
            .args(["--server", &server.base])
            .env("LIVEKIT_KEYS", format!("{KEY}: {SECRET}"))
            .env_remove("LIVEKIT_API_KEY")
            .env_remove("LIVEKIT_API_SECRET")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let listed = cli(&["list", "--room", room]);
    assert_eq!(listed["classes"][0]["id"], id);
    let shown = cli(&["cancel", &id.to_string(), &day(3)]);
    assert!(shown["cancelled"]
        .as_array()
        .unwrap()
        .contains(&json!(day(3))));
    let created = cli(&[
        "create",
        "--room",
        "chem-2",
        "--timezone",
        "Africa/Cairo",
        "--from",
        "2026-01-05",
        "--until",
        "2026-01-14",
        "--days",
        "MO,WE",
        "--start",
        "09:00",
        "--minutes",
        "45",
        "--grade-points",
        "present=4, excused=2",
    ]);
    assert_eq!(starts(&created).len(), 4);
    assert_eq!(
        created["grade_points"],
        json!({"present": 4, "late": 1, "partial": 1, "absent": 0, "excused": 2})
    );
    assert_eq!(
        created["lessons"][0]["scheduled_at_local"],
        "2026-01-05T09:00:00+02:00"
    );
    // Deleting the class removes its lessons still to come, not past ones.
    let r = server.delete(&format!("/api/classes/{id}"), &admin()).await;
    assert_eq!(r.status(), 200);
    let left = server
        .get_json(&format!("/api/sessions?room={encoded}"), &teacher)
        .await;
    let kept: Vec<&Value> = left["sessions"].as_array().unwrap().iter().collect();
    assert!(kept.len() >= 3 && kept.len() <= 4, "{left}");
}
