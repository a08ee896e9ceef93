//! A database made by the previous release (migrations 0001–0004, data
//! written the old way: one session per room) migrates with nothing lost:
//! every session becomes one lesson with its roster, corrections and audit
//! trail; facts and the inbox stay. On SQLite and PostgreSQL.

#[macro_use]
mod common;

use common::*;
use serde_json::{json, Value};
use sqlx::AnyPool;

on_both_backends!(a_database_of_the_previous_release_migrates_with_nothing_lost);

/// The schema as the previous release left it, and its data.
async fn old_database(url: &str, db: Db) {
    sqlx::any::install_default_drivers();
    let url = match db {
        Db::Sqlite => format!("{url}?mode=rwc"),
        Db::Postgres => url.to_string(),
    };
    let pool = AnyPool::connect(&url).await.unwrap();
    let folder = match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    };
    let old = tempfile::tempdir().unwrap();
    let source = format!("{}/../../migrations/{folder}", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < "0005" {
            std::fs::copy(&path, old.path().join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(old.path()).await.unwrap();
    assert_eq!(migrator.iter().count(), 4);
    migrator.run(&pool).await.unwrap();
    let (s, m) = (1_764_061_200_000_i64, 60_000_i64); // 2025-11-25 09:00Z
    for statement in [
        format!("INSERT INTO sessions (room, title, scheduled_at_ms, duration_minutes, grace_minutes, late_after_minutes, present_percent, heartbeat_stale_seconds, created_at_ms, updated_at_ms, timezone, teacher_present_percent, has_roster) VALUES ('weekly-math', 'Algebra', {s}, 60, 30, 10, 80, 300, {s}, {s}, 'Africa/Cairo', 90, 1)"),
        format!("INSERT INTO sessions (room, title, scheduled_at_ms, duration_minutes, grace_minutes, late_after_minutes, present_percent, heartbeat_stale_seconds, created_at_ms, updated_at_ms) VALUES ('art', '', {}, 45, 0, 5, 75, 120, {s}, {s})", s + 120 * m),
        "INSERT INTO roster (room, identity, name, role) VALUES ('weekly-math', 'ada', 'Ada', 'student'), ('weekly-math', 'bo', 'Bo', 'student'), ('weekly-math', 'ms-smith', '', 'teacher')".to_string(),
        format!("INSERT INTO attendance_overrides (room, identity, status, reason, author, created_at_ms) VALUES ('weekly-math', 'bo', 'excused', 'sick', 'ms-smith', {})", s + 90 * m),
        format!("INSERT INTO override_audit (room, identity, action, status, reason, author, at_ms) VALUES ('weekly-math', 'bo', 'set', 'late', 'first try', 'ms-smith', {}), ('weekly-math', 'bo', 'set', 'excused', 'sick', 'ms-smith', {})", s + 80 * m, s + 90 * m),
        format!("INSERT INTO cycles (participant_sid, room, room_sid, identity, name, joined_at_ms, left_at_ms, close_reason, updated_at_ms, disconnect_reason, opened_by) VALUES ('PA_ada', 'weekly-math', 'RM_old', 'ada', 'Ada', {s}, {}, 'left', {s}, 'CLIENT_INITIATED', 'webhook'), ('PA_cy', 'art', 'RM_art', 'cy', 'Cy', {}, {}, 'left', {s}, '', 'webhook')", s + 60 * m, s + 120 * m, s + 165 * m),
        format!("INSERT INTO heartbeats (room, identity, last_heartbeat_at_ms, beats) VALUES ('weekly-math', 'ada', {}, 12)", s + 50 * m),
        format!("INSERT INTO webhook_events (id, event, room, created_at_ms, received_at_ms, api_key, body, status, attempts, next_attempt_at_ms, processed_at_ms) VALUES ('EV_old000000001', 'participant_joined', 'weekly-math', {s}, {s}, 'k', '{{}}', 'processed', 1, {s}, {s})"),
    ] {
        sqlx::query(&statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

async fn a_database_of_the_previous_release_migrates_with_nothing_lost(db: Db) {
    let server = TestServer::start_via(db, &[], |url| {
        let prepared = url.clone();
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(old_database(&prepared, db))
        })
        .join()
        .unwrap();
        url
    })
    .await;
    let admin = access_token("admin", "", Grant::Admin);
    let list = server.get_json("/api/sessions", &admin).await;
    let sessions = list["sessions"].as_array().unwrap();
    let rooms: Vec<(&str, &str)> = sessions
        .iter()
        .map(|s| (s["room"].as_str().unwrap(), s["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(rooms, vec![("weekly-math", "lesson"), ("art", "lesson")]);
    assert!(sessions.iter().all(|s| s["id"].as_i64().is_some()));
    let math = &sessions[0];
    assert_eq!(
        (math["title"].clone(), math["timezone"].clone()),
        (json!("Algebra"), json!("Africa/Cairo"))
    );
    assert_eq!(math["has_roster"], true);
    let art = &sessions[1];
    assert_eq!(
        (
            art["duration_minutes"].clone(),
            art["present_percent"].clone(),
            art["heartbeat_stale_seconds"].clone()
        ),
        (json!(45), json!(75), json!(120))
    );

    let report = server.report("weekly-math").await;
    let find = |list: &Value, who: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["identity"] == who)
            .cloned()
            .unwrap_or_else(|| panic!("{who} in {report}"))
    };
    let ada = find(&report["participants"], "ada");
    assert_eq!(
        (ada["attended_seconds"].clone(), ada["status"].clone()),
        (json!(3600), json!("present"))
    );
    assert_eq!(ada["cycles"][0]["disconnect_reason"], "CLIENT_INITIATED");
    assert_eq!(ada["last_heartbeat_at"], "2025-11-25T09:50:00Z");
    let bo = find(&report["participants"], "bo");
    assert_eq!(
        (
            bo["status"].clone(),
            bo["override"]["reason"].clone(),
            bo["never_joined"].clone()
        ),
        (json!("excused"), json!("sick"), json!(true))
    );
    assert_eq!(find(&report["teachers"], "ms-smith")["role"], "teacher");
    let cy = find(&server.report("art").await["participants"], "cy");
    assert_eq!(cy["attended_seconds"], 2700);

    let teacher = access_token("ms-smith", "weekly-math", Grant::Teacher);
    let audit = server
        .get_json("/api/sessions/weekly-math/audit", &teacher)
        .await;
    let entries = audit["audit"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{audit}");
    assert!(entries.iter().all(|e| e["session_id"] == math["id"]));
    let roster = server
        .get_json("/api/sessions/weekly-math/roster", &teacher)
        .await;
    assert_eq!(roster["roster"].as_array().unwrap().len(), 3);
    let processed = server
        .get_json("/api/admin/webhooks?status=processed", &admin)
        .await;
    assert_eq!(processed["webhooks"][0]["id"], "EV_old000000001");

    // The migrated lesson takes next week's lesson beside it, not over it.
    let next = json!({"scheduled_at": "2025-12-02T09:00:00Z", "duration_minutes": 60});
    let r = server
        .put_json("/api/sessions/weekly-math", &teacher, &next)
        .await;
    assert_eq!(r.status(), 201);
    let old = format!(
        "/api/sessions/weekly-math/attendance?session={}",
        math["id"]
    );
    let kept = server.get_json(&old, &teacher).await;
    assert_eq!(find(&kept["participants"], "bo")["status"], "excused");
}
