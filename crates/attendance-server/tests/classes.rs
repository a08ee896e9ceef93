//! Rosters, roles, non-human participants, teacher corrections and time
//! zones, on SQLite and PostgreSQL.

#[macro_use]
mod common;

use common::*;
use serde_json::{json, Value};

on_both_backends!(
    roster_lists_who_is_missing_and_marks_guests,
    teachers_are_reported_apart_with_their_own_threshold,
    recorders_agents_and_observers_change_no_statistic,
    overrides_survive_webhooks_and_schedule_changes,
    csv_in_local_time_across_a_dst_change,
    session_lists_and_student_history,
);

fn find<'a>(list: &'a Value, identity: &str) -> Option<&'a Value> {
    list.as_array()
        .unwrap()
        .iter()
        .find(|p| p["identity"] == identity)
}

fn teacher_token(room: &str) -> String {
    access_token("t", room, Grant::Teacher)
}

async fn join_leave(
    server: &TestServer,
    room: &str,
    identity: &str,
    from: (i64, i64),
    to: (i64, i64),
    extra: Value,
) {
    let (joined, left) = (at(from.0, from.1), at(to.0, to.1));
    let sid = format!("PA_{room}_{identity}");
    let p = Some((sid.as_str(), identity, joined));
    let j = event_with(
        "participant_joined",
        &format!("EV_{room}_{identity}_j"),
        joined,
        room,
        p,
        extra.clone(),
    );
    let l = event_with(
        "participant_left",
        &format!("EV_{room}_{identity}_l"),
        left,
        room,
        p,
        extra,
    );
    assert_eq!(server.post_webhook(&j).await.status(), 200);
    assert_eq!(server.post_webhook(&l).await.status(), 200);
}

async fn roster_lists_who_is_missing_and_marks_guests(db: Db) {
    let server = TestServer::start(db).await;
    let body = json!({
        "scheduled_at": PAST_SESSION, "duration_minutes": 60,
        "roster": [{"identity": "ada", "name": "Ada"}, {"identity": "bo", "name": "Bo", "role": "student"}],
    });
    assert_eq!(server.schedule("r", body).await.status(), 201);
    join_leave(&server, "r", "ada", (11, 0), (12, 0), json!({})).await;
    join_leave(&server, "r", "guest", (11, 0), (11, 30), json!({})).await;
    server.settle().await;
    let report = server.report("r").await;
    assert_eq!(report["has_roster"], true);
    let bo =
        find(&report["participants"], "bo").expect("a rostered student who never joined is listed");
    assert_eq!(bo["status"], "absent");
    assert_eq!(bo["never_joined"], true);
    assert_eq!(bo["rostered"], true);
    assert_eq!(bo["name"], "Bo");
    assert_eq!(bo["attended_seconds"], 0);
    let ada = find(&report["participants"], "ada").unwrap();
    assert_eq!(
        (ada["rostered"].clone(), ada["status"].clone()),
        (json!(true), json!("present"))
    );
    let guest = find(&report["participants"], "guest").expect("guests are still reported");
    assert_eq!(guest["rostered"], false);
    assert_eq!(
        report["counts"],
        json!({"present": 1, "late": 0, "partial": 1, "absent": 1, "excused": 0})
    );

    // Replacing the roster alone.
    let r = server
        .put_json(
            "/api/sessions/r/roster",
            teacher_token("r"),
            &json!({"roster": [{"identity": "ada"}, {"identity": "cy", "role": "student"}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let report = server.report("r").await;
    assert!(
        find(&report["participants"], "bo").is_none(),
        "bo left the roster and never joined"
    );
    assert_eq!(
        find(&report["participants"], "cy").unwrap()["never_joined"],
        true
    );
    // Bad rosters are refused with a reason; a student cannot set one.
    for bad in [
        json!({"roster": [{"identity": "x"}, {"identity": "x"}]}),
        json!({"roster": [{"identity": "x", "role": "dean"}]}),
        json!({"roster": "x"}),
    ] {
        let r = server
            .put_json("/api/sessions/r/roster", teacher_token("r"), &bad)
            .await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = server
        .put_json(
            "/api/sessions/r/roster",
            access_token("ada", "r", Grant::Student),
            &json!([]),
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = server
        .put_json(
            "/api/sessions/none/roster",
            teacher_token("none"),
            &json!([]),
        )
        .await;
    assert_eq!(r.status(), 404);
}

async fn teachers_are_reported_apart_with_their_own_threshold(db: Db) {
    let server = TestServer::start(db).await;
    let body = json!({
        "scheduled_at": PAST_SESSION, "duration_minutes": 60, "teacher_present_percent": 90,
        "roster": [{"identity": "ms-smith", "role": "teacher"}, {"identity": "ada"}],
    });
    server.schedule("r", body).await;
    // Both attend 51 of 60 minutes (85 %).
    join_leave(&server, "r", "ms-smith", (11, 0), (11, 51), json!({})).await;
    join_leave(&server, "r", "ada", (11, 0), (11, 51), json!({})).await;
    server.settle().await;
    let report = server.report("r").await;
    let teacher = find(&report["teachers"], "ms-smith").expect("teacher listed apart");
    assert!(find(&report["participants"], "ms-smith").is_none());
    assert_eq!(
        teacher["status"], "partial",
        "85 % is below the teachers' 90 %"
    );
    assert_eq!(teacher["present_percent"], 90);
    assert_eq!(
        find(&report["participants"], "ada").unwrap()["status"],
        "present"
    );
    assert_eq!(report["counts"]["present"], 1);

    // Without a roster, LiveKit metadata or attributes can say `role: teacher`.
    server
        .schedule(
            "open",
            json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60}),
        )
        .await;
    join_leave(
        &server,
        "open",
        "sub",
        (11, 0),
        (12, 0),
        json!({"metadata": "{\"role\":\"teacher\"}"}),
    )
    .await;
    join_leave(
        &server,
        "open",
        "aide",
        (11, 0),
        (12, 0),
        json!({"attributes": {"role": "teacher"}}),
    )
    .await;
    server.settle().await;
    let report = server.report("open").await;
    assert!(find(&report["teachers"], "sub").is_some(), "{report}");
    assert!(find(&report["teachers"], "aide").is_some(), "{report}");
    assert_eq!(report["participants"].as_array().unwrap().len(), 0);
}

async fn recorders_agents_and_observers_change_no_statistic(db: Db) {
    let server = TestServer::start(db).await;
    server
        .schedule(
            "r",
            json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60}),
        )
        .await;
    join_leave(&server, "r", "ada", (11, 0), (11, 30), json!({})).await;
    server.settle().await;
    let before = server.report("r").await;
    join_leave(
        &server,
        "r",
        "EG_recorder",
        (10, 55),
        (12, 30),
        json!({"kind": "EGRESS"}),
    )
    .await;
    join_leave(
        &server,
        "r",
        "agent-1",
        (11, 0),
        (12, 0),
        json!({"kind": 4}),
    )
    .await;
    join_leave(
        &server,
        "r",
        "inspector",
        (11, 0),
        (12, 0),
        json!({"attributes": {"role": "observer"}}),
    )
    .await;
    server.settle().await;
    let after = server.report("r").await;
    assert_eq!(after["participants"], before["participants"]);
    assert_eq!(after["counts"], before["counts"]);
    assert_eq!(after["teachers"], json!([]));
    let excluded = after["excluded"].as_array().unwrap();
    assert_eq!(excluded.len(), 3, "kept as facts: {after}");
    assert_eq!(
        find(&after["excluded"], "EG_recorder").unwrap()["kind"],
        "EGRESS"
    );
    assert_eq!(
        find(&after["excluded"], "agent-1").unwrap()["kind"],
        "AGENT"
    );
    assert_eq!(
        find(&after["excluded"], "EG_recorder").unwrap()["join_count"],
        1
    );
    // The CSV counts people only.
    let csv_text = server
        .client
        .get(server.url("/api/sessions/r/attendance?format=csv"))
        .bearer_auth(teacher_token("r"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv_text.lines().count(), 2, "{csv_text}");
}

async fn overrides_survive_webhooks_and_schedule_changes(db: Db) {
    let server = TestServer::start(db).await;
    server
        .schedule(
            "r",
            json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60}),
        )
        .await;
    join_leave(&server, "r", "ada", (11, 0), (11, 20), json!({})).await;
    server.settle().await;
    let teacher = teacher_token("r");
    let url = server.url("/api/sessions/r/attendance/ada/override");
    let r = server
        .client
        .put(&url)
        .bearer_auth(&teacher)
        .json(&json!({"status": "excused", "reason": "doctor's note"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["status"], "excused");
    assert_eq!(p["computed_status"], "partial");
    assert_eq!(p["override"]["reason"], "doctor's note");
    assert_eq!(p["override"]["author"], "t");
    // A later webhook and a schedule change do not touch it.
    let sid = Some(("PA_again", "ada", at(11, 30)));
    server
        .post_webhook(&event(
            "participant_joined",
            "EV_again_j",
            at(11, 30),
            "r",
            sid,
        ))
        .await;
    server.settle().await;
    server
        .schedule(
            "r",
            json!({"scheduled_at": PAST_SESSION, "duration_minutes": 45}),
        )
        .await;
    let report = server.report("r").await;
    let ada = find(&report["participants"], "ada").unwrap();
    assert_eq!(ada["status"], "excused");
    assert_eq!(ada["join_count"], 2);
    assert_eq!(report["counts"]["excused"], 1);
    // The student sees it too.
    let own: Value = server
        .get_json(
            "/api/sessions/r/attendance/ada",
            &access_token("ada", "r", Grant::Student),
        )
        .await;
    assert_eq!(own["status"], "excused");
    // Only teachers of the room and admins; only known statuses; a reason is required.
    for (token, body, status) in [
        (
            access_token("ada", "r", Grant::Student),
            json!({"status": "present", "reason": "me"}),
            403,
        ),
        (
            access_token("t2", "other", Grant::Teacher),
            json!({"status": "present", "reason": "x"}),
            403,
        ),
        (
            teacher.clone(),
            json!({"status": "awesome", "reason": "x"}),
            400,
        ),
        (
            teacher.clone(),
            json!({"status": "present", "reason": " "}),
            400,
        ),
        (teacher.clone(), json!({"status": "present"}), 400),
    ] {
        let r = server
            .client
            .put(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{body}");
    }
    // An absent rostered student can be excused too; an unknown identity cannot.
    let r = server
        .put_json(
            "/api/sessions/r/attendance/nobody/override",
            &teacher,
            &json!({"status": "excused", "reason": "typo"}),
        )
        .await;
    assert_eq!(r.status(), 404);
    let r = server
        .put_json(
            "/api/sessions/r/roster",
            &teacher,
            &json!({"roster": [{"identity": "ada"}, {"identity": "bo"}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let roster: Value = server.get_json("/api/sessions/r/roster", &teacher).await;
    assert_eq!(roster["roster"][1]["identity"], "bo");
    let r = server
        .put_json(
            "/api/sessions/r/attendance/bo/override",
            &teacher,
            &json!({"status": "excused", "reason": "sick"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    // Removing restores the computed status; the audit trail keeps all three changes.
    let r = server
        .client
        .delete(format!("{url}?reason=entered%20by%20mistake"))
        .bearer_auth(&teacher)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["status"], p["computed_status"]);
    assert!(p["override"].is_null());
    let r = server
        .client
        .delete(&url)
        .bearer_auth(&teacher)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "removing needs a reason");
    let r = server
        .client
        .delete(format!("{url}?reason=again"))
        .bearer_auth(&teacher)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "nothing left to remove");
    let admin = access_token("admin", "", Grant::Admin);
    let audit: Value = server.get_json("/api/admin/audit?room=r", &admin).await;
    let actions: Vec<_> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["identity"].as_str().unwrap(),
                a["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![("ada", "remove"), ("bo", "set"), ("ada", "set")]
    );
    assert_eq!(audit["audit"][0]["reason"], "entered by mistake");
    assert_eq!(server.get("/api/admin/audit", &teacher).await.status(), 403);
    let own: Value = server.get_json("/api/sessions/r/audit", &teacher).await;
    assert_eq!(
        own["audit"].as_array().unwrap().len(),
        3,
        "a teacher reads their room's trail"
    );
    let other = access_token("t2", "other", Grant::Teacher);
    assert_eq!(
        server.get("/api/sessions/r/audit", &other).await.status(),
        403
    );
}

async fn csv_in_local_time_across_a_dst_change(db: Db) {
    let server = TestServer::start(db).await;
    // Berlin moves from +01:00 to +02:00 at 2026-03-29 01:00 UTC.
    let body = json!({"scheduled_at": "2026-03-29T00:30:00Z", "duration_minutes": 60, "timezone": "Europe/Berlin"});
    assert_eq!(server.schedule("dst", body).await.status(), 201);
    let joined = 1_774_744_200; // 2026-03-29T00:30:00Z
    let p = Some(("PA_dst", "ada", joined + 15 * 60));
    server
        .post_webhook(&event(
            "participant_joined",
            "EV_dst_j",
            joined + 15 * 60,
            "dst",
            p,
        ))
        .await;
    server
        .post_webhook(&event(
            "participant_left",
            "EV_dst_l",
            joined + 45 * 60,
            "dst",
            p,
        ))
        .await;
    server.settle().await;
    let teacher = teacher_token("dst");
    let report: Value = server
        .get_json("/api/sessions/dst/attendance", &teacher)
        .await;
    assert_eq!(report["timezone"], "Europe/Berlin");
    assert_eq!(report["scheduled_at_local"], "2026-03-29T01:30:00+01:00");
    let ada = find(&report["participants"], "ada").unwrap();
    assert_eq!(
        ada["attended_seconds"], 1800,
        "30 real minutes, not the 90 the wall clock suggests"
    );
    assert_eq!(ada["first_join_at_local"], "2026-03-29T01:45:00+01:00");
    assert_eq!(ada["last_leave_at_local"], "2026-03-29T03:15:00+02:00");
    assert_eq!(
        ada["cycles"][0]["left_at_local"],
        "2026-03-29T03:15:00+02:00"
    );
    assert_eq!(
        ada["last_leave_at"], "2026-03-29T01:15:00Z",
        "storage and UTC fields stay UTC"
    );

    let csv_of = |query: &'static str| {
        let (client, url, teacher) = (
            server.client.clone(),
            server.url(&format!("/api/sessions/dst/attendance?format=csv{query}")),
            teacher.clone(),
        );
        async move {
            client
                .get(url)
                .bearer_auth(teacher)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let column = |text: &str, name: &str| -> String {
        let mut rows = csv::Reader::from_reader(text.as_bytes());
        let index = rows
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == name)
            .unwrap();
        rows.records().next().unwrap().unwrap()[index].to_string()
    };
    let local = csv_of("").await;
    assert_eq!(column(&local, "scheduled_at"), "2026-03-29T01:30:00+01:00");
    assert_eq!(column(&local, "first_join_at"), "2026-03-29T01:45:00+01:00");
    assert_eq!(column(&local, "last_leave_at"), "2026-03-29T03:15:00+02:00");
    assert_eq!(column(&local, "timezone"), "Europe/Berlin");
    // ?tz= overrides the session's zone.
    let cairo = csv_of("&tz=Africa/Cairo").await;
    assert_eq!(column(&cairo, "first_join_at"), "2026-03-29T02:45:00+02:00");
    assert_eq!(column(&cairo, "timezone"), "Africa/Cairo");
    let r = server
        .get("/api/sessions/dst/attendance?tz=Mars/Olympus", &teacher)
        .await;
    assert_eq!(r.status(), 400);
    let r = server
        .schedule(
            "bad",
            json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60, "timezone": "Cairo"}),
        )
        .await;
    assert_eq!(r.status(), 400);
}

async fn session_lists_and_student_history(db: Db) {
    let server = TestServer::start(db).await;
    server
        .schedule(
            "math",
            json!({"scheduled_at": "2025-11-24T09:00:00Z", "duration_minutes": 60}),
        )
        .await;
    server.schedule("art", json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60, "roster": [{"identity": "ada"}, {"identity": "bo"}]})).await;
    server
        .schedule(
            "later",
            json!({"scheduled_at": "2025-12-01T09:00:00Z", "duration_minutes": 60}),
        )
        .await;
    let (j, l) = (1_764_061_200 - 86_400, 1_764_061_200 - 86_400 + 3600); // 2025-11-24 09:00–10:00Z
    let p = Some(("PA_m", "ada", j));
    server
        .post_webhook(&event("participant_joined", "EV_m_j", j, "math", p))
        .await;
    server
        .post_webhook(&event("participant_left", "EV_m_l", l, "math", p))
        .await;
    join_leave(&server, "art", "ada", (11, 20), (12, 30), json!({})).await;
    server.settle().await;

    let admin = access_token("admin", "", Grant::Admin);
    let all: Value = server
        .get_json("/api/sessions?from=2025-11-24&to=2025-11-26", &admin)
        .await;
    let rooms: Vec<_> = all["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["room"].as_str().unwrap())
        .collect();
    assert_eq!(rooms, vec!["math", "art"]);
    assert_eq!(
        all["sessions"][1]["counts"],
        json!({"present": 0, "late": 1, "partial": 0, "absent": 1, "excused": 0})
    );
    let mine: Value = server
        .get_json("/api/sessions", &teacher_token("art"))
        .await;
    let rooms: Vec<_> = mine["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["room"].as_str().unwrap())
        .collect();
    assert_eq!(rooms, vec!["art"], "a teacher sees their own room");
    assert_eq!(
        server
            .get("/api/sessions?from=yesterday", &admin)
            .await
            .status(),
        400
    );

    let history: Value = server
        .get_json(
            "/api/attendance?identity=ada&from=2025-11-01&to=2025-11-30",
            &admin,
        )
        .await;
    let statuses: Vec<_> = history["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["session"]["room"].as_str().unwrap(),
                s["attendance"]["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses, vec![("math", "present"), ("art", "late")]);
    assert_eq!(history["attended_seconds"], 3600 + 4200);
    assert_eq!(history["counts"]["late"], 1);
    let csv_text = server
        .client
        .get(server.url("/api/attendance?identity=ada&format=csv"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Header, one row per lesson, then the total with the grade: present
    // (2 of 2) and late (1 of 2).
    assert_eq!(csv_text.lines().count(), 4, "{csv_text}");
    assert!(csv_text.contains("art") && csv_text.contains("math"));
    assert!(
        csv_text.lines().last().unwrap().ends_with(",3,4,75.0"),
        "{csv_text}"
    );
    assert_eq!(
        server
            .get("/api/attendance?identity=ada", &teacher_token("art"))
            .await
            .status(),
        403
    );
    assert_eq!(server.get("/api/attendance", &admin).await.status(), 400);
}
