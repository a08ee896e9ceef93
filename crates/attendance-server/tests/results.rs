//! Results flow out to teachers and students: a teacher's list of the
//! lessons they may see (their room's, and those whose roster or class
//! names them as a teacher) with per-status counts, each opened by id; a
//! student's own history with totals; grades from attendance, with the
//! school's points and a lesson's own. On SQLite and PostgreSQL.

#[macro_use]
mod common;

use common::*;
use serde_json::{json, Value};

on_both_backends!(
    a_teacher_lists_the_lessons_they_teach_and_opens_them,
    a_student_reads_their_own_history_with_totals_and_grade,
    the_schools_points_and_a_lessons_own_points_make_the_grade,
    a_student_named_in_any_script_reads_their_history,
    a_history_gathers_every_room_the_student_joined,
);

/// 2025-11-17 and 2025-11-24 09:00Z: past lessons, so results are final.
const WEEK_1: &str = "2025-11-17T09:00:00Z";
const WEEK_2: &str = "2025-11-24T09:00:00Z";

/// unix seconds of 2025-11-DD at hh:mm UTC.
fn on(day: i64, hh: i64, mm: i64) -> i64 {
    at(hh, mm) + (day - 25) * 86_400
}

fn admin() -> String {
    access_token("admin", "", Grant::Admin)
}

async fn json_of(r: reqwest::Response, status: u16) -> Value {
    let code = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(code, status, "{body}");
    body
}

/// Schedules a lesson as an administrator; returns it.
async fn lesson(server: &TestServer, room: &str, body: Value) -> Value {
    let path = format!("/api/sessions/{}", urlencoding(room));
    json_of(server.put_json(&path, admin(), &body).await, 201).await
}

fn urlencoding(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// One LiveKit connection from `joined` to `left` (unix seconds).
async fn attend(server: &TestServer, room: &str, who: &str, joined: i64, left: i64) {
    let sid = format!("PA_{who}_{joined}");
    let p = Some((sid.as_str(), who, joined));
    for (kind, at) in [("participant_joined", joined), ("participant_left", left)] {
        let body = event(kind, &format!("EV_{sid}_{kind}"), at, room, p);
        assert_eq!(server.post_webhook(&body).await.status(), 200);
    }
}

fn ids(list: &Value) -> Vec<i64> {
    list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect()
}

async fn a_teacher_lists_the_lessons_they_teach_and_opens_them(db: Db) {
    let server = TestServer::start(db).await;
    // Her own room; another room whose roster names her as a teacher; a
    // room she has nothing to do with; a class that names her as teacher.
    let math = lesson(
        &server,
        "math-7",
        json!({"scheduled_at": WEEK_1, "duration_minutes": 60, "grace_minutes": 0,
               "roster": [{"identity": "ada"}, {"identity": "bo"}]}),
    )
    .await;
    let art_room = "فنون / \"الصف\" 7";
    let art = lesson(
        &server,
        art_room,
        json!({"scheduled_at": WEEK_2, "duration_minutes": 45, "grace_minutes": 0,
               "roster": [{"identity": "cy"}, {"identity": "ms-lee", "role": "teacher"}]}),
    )
    .await;
    let chem = lesson(
        &server,
        "chem",
        json!({"scheduled_at": "2025-11-24T11:00:00Z", "duration_minutes": 45, "roster": [{"identity": "ms-lee"}]}),
    )
    .await;
    let class = json_of(
        server
            .request(
                reqwest::Method::POST,
                "/api/classes",
                admin(),
                Some(&json!({
                    "room": "bio", "title": "Biology", "timezone": "UTC",
                    "starts_on": "2025-11-18", "ends_on": "2025-11-18",
                    "slots": [{"days": ["TU"], "start": "13:00", "duration_minutes": 50}],
                    "roster": [{"identity": "ada"}], "teachers": ["ms-lee"],
                })),
            )
            .await,
        201,
    )
    .await;
    let bio = class["lessons"][0]["id"].as_i64().unwrap();
    attend(&server, "math-7", "ada", on(17, 9, 0), on(17, 10, 0)).await;
    attend(&server, "math-7", "bo", on(17, 9, 20), on(17, 9, 30)).await;
    server.settle().await;

    let lee = access_token("ms-lee", "math-7", Grant::Teacher);
    let range = "/api/sessions?from=2025-11-01&to=2025-12-01";
    let list = json_of(server.get(range, &lee).await, 200).await;
    let (math_id, art_id, chem_id) = (
        math["id"].as_i64().unwrap(),
        art["id"].as_i64().unwrap(),
        chem["id"].as_i64().unwrap(),
    );
    assert_eq!(ids(&list), vec![math_id, bio, art_id], "hers, by start");
    let first = &list["sessions"][0];
    assert_eq!(first["phase"], "ended");
    assert_eq!(
        first["counts"],
        json!({"present": 1, "late": 0, "partial": 1, "absent": 0, "excused": 0})
    );
    assert_eq!(first["students"], 2);
    assert_eq!(list["sessions"][2]["room"], art_room);
    assert_eq!(list["sessions"][2]["counts"]["absent"], 1);

    // Another room's teacher sees only their room; an administrator all.
    let other = access_token("mr-x", "chem", Grant::Teacher);
    assert_eq!(
        ids(&json_of(server.get(range, &other).await, 200).await),
        vec![chem_id]
    );
    let all = json_of(server.get(range, &admin()).await, 200).await;
    assert_eq!(ids(&all), vec![math_id, bio, art_id, chem_id]);
    // A student lists nothing: refused.
    let student = access_token("ada", "math-7", Grant::Student);
    let refused = json_of(server.get(range, &student).await, 403).await;
    assert!(refused.to_string().contains("teachers"), "{refused}");

    // She opens the lessons she teaches elsewhere by id, not the rooms.
    let art_path = format!("/api/sessions/{}/attendance", urlencoding(art_room));
    let report = json_of(
        server
            .get(&format!("{art_path}?session={art_id}"), &lee)
            .await,
        200,
    )
    .await;
    assert_eq!(report["id"], art_id);
    let csv = server
        .get(&format!("{art_path}?session={art_id}&format=csv"), &lee)
        .await;
    assert_eq!(csv.status(), 200);
    let bio_report = format!("/api/sessions/bio/attendance?session={bio}");
    assert_eq!(server.get(&bio_report, &lee).await.status(), 200);
    assert_eq!(
        server.get(&art_path, &lee).await.status(),
        403,
        "not the room"
    );
    let chem_report = format!("/api/sessions/chem/attendance?session={chem_id}");
    assert_eq!(
        server.get(&chem_report, &lee).await.status(),
        403,
        "a student there, not a teacher"
    );
    assert_eq!(
        server
            .get(&format!("{art_path}?session={art_id}"), &other)
            .await
            .status(),
        403
    );
    // A lesson id of another room does not open this one.
    let wrong = format!("/api/sessions/chem/attendance?session={art_id}");
    assert_eq!(server.get(&wrong, &lee).await.status(), 403);
    // Its live socket too, pinned to that lesson.
    let url = format!(
        "{}/api/sessions/{}/live?session={art_id}&access_token={lee}",
        server.base.replace("http://", "ws://"),
        urlencoding(art_room)
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let snapshot = next_of_type(
        &mut socket,
        "attendance.snapshot",
        std::time::Duration::from_secs(5),
    )
    .await;
    assert_eq!(snapshot["session"]["id"], art_id);
    assert_eq!(
        snapshot["participants"][0]["identity"], "cy",
        "the whole class"
    );
    let unpinned = server.live_url(&urlencoding(art_room), &lee);
    assert!(tokio_tungstenite::connect_async(unpinned).await.is_err());
}

async fn a_student_reads_their_own_history_with_totals_and_grade(db: Db) {
    let server = TestServer::start(db).await;
    let room = "تاريخ / \"أ\"";
    let roster = json!([{"identity": "ada"}, {"identity": "bo"}]);
    let first = lesson(
        &server,
        room,
        json!({"scheduled_at": WEEK_1, "duration_minutes": 60, "grace_minutes": 0, "roster": roster}),
    )
    .await;
    let second = lesson(
        &server,
        room,
        json!({"scheduled_at": WEEK_2, "duration_minutes": 60, "grace_minutes": 0, "roster": roster,
               "grade_points": {"present": 4, "late": 2}}),
    )
    .await;
    assert_eq!(first["grade_points"], Value::Null, "the school's");
    assert_eq!(
        second["grade_points"],
        json!({"present": 4, "late": 2, "partial": 1, "absent": 0, "excused": 1})
    );
    // Present in the first; late (joined at 9:11) in the second.
    attend(&server, room, "ada", on(17, 9, 0), on(17, 10, 0)).await;
    attend(&server, room, "ada", on(24, 9, 11), on(24, 10, 0)).await;
    server.settle().await;
    // A lesson going on now: in the history, not graded yet.
    let now = chrono::Utc::now() - chrono::TimeDelta::minutes(5);
    lesson(
        &server,
        room,
        json!({"scheduled_at": now.to_rfc3339(), "duration_minutes": 60, "roster": roster}),
    )
    .await;

    let ada = access_token("ada", room, Grant::Student);
    let own = json_of(server.get("/api/attendance", &ada).await, 200).await;
    assert_eq!(own["identity"], "ada");
    assert_eq!(
        own["totals"],
        json!({"sessions": 3, "present": 1, "late": 1, "partial": 0, "absent": 1, "excused": 0,
               "attended_seconds": 3600 + 49 * 60})
    );
    // 2 of 2, then 2 of 4 (this lesson's own points); the live one waits.
    assert_eq!(
        own["grade"],
        json!({"points": 4, "max_points": 6, "percent": 66.7})
    );
    assert_eq!(own["sessions"][0]["grade"]["points"], 2);
    assert_eq!(own["sessions"][1]["grade"]["max_points"], 4);
    assert_eq!(own["sessions"][2]["grade"], Value::Null);
    assert_eq!(own["grade_points"]["present"], 2);
    // A range narrows it: only the second week.
    let week = json_of(
        server
            .get("/api/attendance?from=2025-11-20&to=2025-11-30", &ada)
            .await,
        200,
    )
    .await;
    assert_eq!(week["totals"]["sessions"], 1);
    assert_eq!(week["grade"]["percent"], 50.0);
    // Their own by name too; nobody else's; an administrator anyone's.
    let named = server.get("/api/attendance?identity=ada", &ada).await;
    assert_eq!(named.status(), 200);
    let refused = json_of(server.get("/api/attendance?identity=bo", &ada).await, 403).await;
    assert!(refused.to_string().contains("own"), "{refused}");
    let teacher = access_token("ms-lee", room, Grant::Teacher);
    assert_eq!(
        server
            .get("/api/attendance?identity=ada", &teacher)
            .await
            .status(),
        403
    );
    let bo = json_of(
        server.get("/api/attendance?identity=bo", &admin()).await,
        200,
    )
    .await;
    assert_eq!(bo["totals"]["absent"], 3);
    assert_eq!(
        bo["grade"],
        json!({"points": 0, "max_points": 6, "percent": 0.0})
    );
    assert_eq!(
        server.get("/api/attendance", &admin()).await.status(),
        400,
        "an administrator names the student"
    );
    assert_eq!(
        server
            .get("/api/attendance?from=last-week", &ada)
            .await
            .status(),
        400
    );

    // The CSV: a byte-order mark on request, points per lesson, the total.
    let csv = server.get("/api/attendance?format=csv&bom=1", &ada).await;
    assert_eq!(csv.status(), 200);
    let text = csv.text().await.unwrap();
    let text = text.strip_prefix('\u{feff}').expect("a byte-order mark");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4, "three lessons and the total");
    assert_eq!(&rows[0][col("room")], room);
    assert_eq!(&rows[0][col("status")], "present");
    assert_eq!(
        (&rows[0][col("points")], &rows[0][col("max_points")]),
        ("2", "2")
    );
    assert_eq!(
        (&rows[1][col("points")], &rows[1][col("max_points")]),
        ("2", "4")
    );
    assert_eq!(&rows[2][col("points")], "", "not graded yet");
    let total = &rows[3];
    assert_eq!(&total[col("title")], "total");
    assert_eq!(&total[col("identity")], "ada");
    assert_eq!(
        (
            &total[col("points")],
            &total[col("max_points")],
            &total[col("grade_percent")]
        ),
        ("4", "6", "66.7")
    );
    assert!(!server
        .get("/api/attendance?format=csv", &ada)
        .await
        .text()
        .await
        .unwrap()
        .starts_with('\u{feff}'));
}

async fn the_schools_points_and_a_lessons_own_points_make_the_grade(db: Db) {
    let server = TestServer::start_with(db, &["--grade-points", "present=3,late=1"]).await;
    let roster = json!([{"identity": "ada"}]);
    lesson(
        &server,
        "art",
        json!({"scheduled_at": WEEK_1, "duration_minutes": 60, "grace_minutes": 0, "roster": roster}),
    )
    .await;
    // Its own points go over the school's: late 2, the rest the school's.
    let own = lesson(
        &server,
        "art",
        json!({"scheduled_at": WEEK_2, "duration_minutes": 60, "grace_minutes": 0, "roster": roster,
               "grade_points": {"late": 2}}),
    )
    .await;
    assert_eq!(own["grade_points"]["present"], 3);
    attend(&server, "art", "ada", on(17, 9, 0), on(17, 10, 0)).await;
    attend(&server, "art", "ada", on(24, 9, 11), on(24, 10, 0)).await;
    server.settle().await;
    let history = json_of(
        server.get("/api/attendance?identity=ada", &admin()).await,
        200,
    )
    .await;
    // 3 of 3, then 2 of 3.
    assert_eq!(
        history["grade"],
        json!({"points": 5, "max_points": 6, "percent": 83.3})
    );
    assert_eq!(history["grade_points"]["present"], 3);
    // A teacher's correction changes the grade: excused is worth 1.
    let fix = json!({"status": "excused", "reason": "doctor's note"});
    let path = format!(
        "/api/sessions/art/attendance/ada/override?session={}",
        own["id"]
    );
    json_of(server.put_json(&path, admin(), &fix).await, 200).await;
    let history = server
        .get_json("/api/attendance?identity=ada", &admin())
        .await;
    assert_eq!(history["grade"]["points"], 4);

    // Points must be whole numbers from 0 to 1000, for known statuses.
    for bad in [
        json!({"present": -1}),
        json!({"present": 1001}),
        json!({"tardy": 1}),
        json!({"present": "two"}),
    ] {
        let body = json!({"scheduled_at": "2025-12-01T09:00:00Z", "duration_minutes": 60, "grade_points": bad});
        let r = server.put_json("/api/sessions/art", admin(), &body).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
}

/// A room and a student named with spaces, a slash, quotes and Arabic: the
/// student's own history, by token and by name, in JSON and in CSV.
async fn a_student_named_in_any_script_reads_their_history(db: Db) {
    let server = TestServer::start(db).await;
    let room = "فنون / \"الصف\" 7";
    let who = "ليلى / \"ب\" 2";
    lesson(
        &server,
        room,
        json!({"scheduled_at": WEEK_1, "duration_minutes": 60}),
    )
    .await;
    attend(&server, room, who, on(17, 9, 0), on(17, 10, 0)).await;
    server.settle().await;
    let token = access_token(who, room, Grant::Student);
    let own = json_of(server.get("/api/attendance", &token).await, 200).await;
    assert_eq!(own["totals"]["sessions"], 1, "{own}");
    assert_eq!(own["totals"]["present"], 1, "{own}");
    assert_eq!(own["sessions"][0]["session"]["room"], room);
    let path = format!("/api/attendance?identity={}", urlencoding(who));
    let named = json_of(server.get(&path, &token).await, 200).await;
    assert_eq!(named["totals"], own["totals"]);
    let csv = server
        .get("/api/attendance?format=csv", &token)
        .await
        .text()
        .await
        .unwrap();
    // The csv crate doubles quotes inside a quoted field.
    assert!(csv.contains("\"فنون / \"\"الصف\"\" 7\""), "{csv}");
    assert!(csv.contains("\"ليلى / \"\"ب\"\" 2\""), "{csv}");
}

/// A student on no roster: their history is every room their connections
/// were in, whatever the names, and no room they never joined.
async fn a_history_gathers_every_room_the_student_joined(db: Db) {
    let server = TestServer::start(db).await;
    let joined = ["art", "art 2", "فنون / \"الصف\" 7", "z/\"last\""];
    let not_joined = ["art 1", "music", "zz"];
    for room in joined.iter().chain(&not_joined) {
        lesson(
            &server,
            room,
            json!({"scheduled_at": WEEK_1, "duration_minutes": 60}),
        )
        .await;
    }
    // A connection's sid names its join minute: one minute per room.
    for (minute, room) in (0..).zip(joined) {
        attend(&server, room, "ada", on(17, 9, minute), on(17, 10, 0)).await;
    }
    // Someone else was everywhere.
    for (minute, room) in (0..).zip(joined.iter().chain(&not_joined)) {
        attend(&server, room, "bo", on(17, 9, minute), on(17, 9, 30)).await;
    }
    server.settle().await;
    let token = access_token("ada", "", Grant::Student);
    let own = json_of(server.get("/api/attendance", &token).await, 200).await;
    let mut rooms: Vec<&str> = own["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session"]["room"].as_str().unwrap())
        .collect();
    rooms.sort_unstable();
    let mut expected = joined.to_vec();
    expected.sort_unstable();
    assert_eq!(rooms, expected, "{own}");
    assert_eq!(own["totals"]["present"], 4, "{own}");
}
