//! Camera, microphone and screen-share time from LiveKit's track webhooks
//! and the page's own mute reports over the live socket, computed by the
//! rules; nothing about tracks kept with engagement off, for the service or
//! for one lesson.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn track_event(kind: &str, id: &str, at: i64, track: Value) -> String {
    track_event_in("r", kind, id, at, track)
}

fn track_event_in(room: &str, kind: &str, id: &str, at: i64, track: Value) -> String {
    json!({"event": kind, "id": id, "createdAt": at.to_string(),
           "room": {"sid": format!("RM_{room}"), "name": room},
           "participant": {"sid": "PA_ada", "identity": "ada"},
           "track": track})
    .to_string()
    .replace(",\"", ", \"")
}

async fn post_class(server: &TestServer) {
    let r = server
        .schedule(
            "r",
            json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let events = [
        event(
            "participant_joined",
            "EV_j",
            at(11, 0),
            "r",
            Some(("PA_ada", "ada", at(11, 0))),
        ),
        track_event(
            "track_published",
            "EV_cam_on",
            at(11, 5),
            json!({"sid": "TR_cam", "type": "VIDEO", "source": "CAMERA", "width": 640}),
        ),
        track_event(
            "track_unpublished",
            "EV_cam_off",
            at(11, 25),
            json!({"sid": "TR_cam", "type": "VIDEO", "source": "CAMERA"}),
        ),
        // Published muted and never unmuted: no microphone time.
        track_event(
            "track_published",
            "EV_mic",
            at(11, 1),
            json!({"sid": "TR_mic", "source": "MICROPHONE", "muted": true}),
        ),
        track_event(
            "track_published",
            "EV_screen",
            at(11, 30),
            json!({"sid": "TR_scr", "type": "VIDEO", "source": "SCREEN_SHARE"}),
        ),
        event(
            "participant_left",
            "EV_l",
            at(11, 40),
            "r",
            Some(("PA_ada", "ada", at(11, 0))),
        ),
    ];
    for body in events {
        assert_eq!(server.post_webhook(&body).await.status(), 200, "{body}");
    }
    server.settle().await;
}

async fn media_time_comes_from_track_webhooks(db: Db) {
    let server = TestServer::start(db).await;
    post_class(&server).await;
    let report = server.report("r").await;
    let ada = &report["participants"][0];
    assert_eq!(ada["identity"], "ada");
    assert_eq!(ada["camera_seconds"], 1200, "{ada}");
    assert_eq!(ada["microphone_seconds"], 0, "{ada}");
    // The screen share ends with the connection: 11:30 to 11:40.
    assert_eq!(ada["screen_share_seconds"], 600, "{ada}");
}

async fn engagement_off_keeps_and_shows_nothing(db: Db) {
    let server = TestServer::start_with(db, &["--engagement", "off"]).await;
    post_class(&server).await;
    let report = server.report("r").await;
    let ada = &report["participants"][0];
    assert_eq!(ada["attended_seconds"], 2400);
    for field in [
        "camera_seconds",
        "microphone_seconds",
        "screen_share_seconds",
    ] {
        assert!(ada.get(field).is_none(), "{field} shown: {ada}");
    }
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&server.database_url)
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM media_facts")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

async fn media_rows(server: &TestServer, origin: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&server.database_url)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM media_facts WHERE origin = $1")
        .bind(origin)
        .fetch_one(&mut db)
        .await
        .unwrap()
}

/// A live class in `room` that Ada joined ten minutes ago, with her camera
/// published then and her microphone published muted, as LiveKit signs it.
async fn live_class_with_tracks(server: &TestServer, room: &str, body: Value) -> i64 {
    let start = chrono::Utc::now() - chrono::TimeDelta::minutes(10);
    let mut schedule = json!({"scheduled_at": start.to_rfc3339(), "duration_minutes": 60});
    for (k, v) in body.as_object().unwrap() {
        schedule[k] = v.clone();
    }
    let r = server.schedule(room, schedule).await;
    assert_eq!(r.status(), 201);
    // A second into the window (the start has milliseconds).
    let joined = start.timestamp() + 1;
    let events = [
        event(
            "participant_joined",
            &format!("EV_{room}_j"),
            joined,
            room,
            Some(("PA_ada", "ada", joined)),
        ),
        track_event_in(
            room,
            "track_published",
            &format!("EV_{room}_cam"),
            joined,
            json!({"sid": "TR_cam", "type": "VIDEO", "source": "CAMERA"}),
        ),
        track_event_in(
            room,
            "track_published",
            &format!("EV_{room}_mic"),
            joined,
            json!({"sid": "TR_mic", "source": "MICROPHONE", "muted": true}),
        ),
    ];
    for body in events {
        assert_eq!(server.post_webhook(&body).await.status(), 200, "{body}");
    }
    server.settle().await;
    joined
}

fn media_message(tracks: Value) -> Message {
    Message::text(
        json!({"type": "media", "participant_sid": "PA_ada", "tracks": tracks}).to_string(),
    )
}

async fn page_mutes_reduce_camera_time_and_never_add_any(db: Db) {
    let server = TestServer::start(db).await;
    let joined = live_class_with_tracks(&server, "r", json!({})).await;
    let ada = access_token("ada", "r", Grant::Student);
    let mut socket = ws_connect(&server, "r", &ada).await;
    next_of_type(&mut socket, "attendance.snapshot", Duration::from_secs(5)).await;
    // The page, when attached, says the camera is on and the microphone
    // muted, and tells of a screen share LiveKit never published.
    socket
        .send(media_message(json!([
            {"sid": "TR_cam", "source": "camera", "muted": false},
            {"sid": "TR_mic", "source": "microphone", "muted": true},
            {"sid": "TR_ghost", "source": "screen_share", "muted": false},
            {"sid": "TR_x", "source": "screen_share_audio", "muted": false}
        ])))
        .await
        .unwrap();
    let ack = next_of_type(&mut socket, "media.ack", Duration::from_secs(5)).await;
    assert_eq!(ack["kept"], 3, "{ack}");
    // The student turns the camera off for three seconds.
    socket
        .send(media_message(
            json!([{"sid": "TR_cam", "source": "camera", "muted": true}]),
        ))
        .await
        .unwrap();
    next_of_type(&mut socket, "media.ack", Duration::from_secs(5)).await;
    // Live subscribers hear of it.
    let pushed = next_of_type(&mut socket, "attendance.updated", Duration::from_secs(5)).await;
    assert_eq!(pushed["identity"], "ada");
    tokio::time::sleep(Duration::from_secs(3)).await;
    socket
        .send(media_message(
            json!([{"sid": "TR_cam", "source": "camera", "muted": false}]),
        ))
        .await
        .unwrap();
    next_of_type(&mut socket, "media.ack", Duration::from_secs(5)).await;
    let report = server.report("r").await;
    let p = &report["participants"][0];
    let elapsed = chrono::Utc::now().timestamp() - joined;
    let camera = p["camera_seconds"].as_i64().unwrap();
    let attended = p["attended_seconds"].as_i64().unwrap();
    assert!(
        (elapsed - 3 - camera).abs() <= 2 && camera <= attended - 2,
        "camera {camera} s, attended {attended} s, {elapsed} s since the join: {p}"
    );
    // Published muted, never unmuted: the page's mute changes nothing.
    assert_eq!(p["microphone_seconds"], 0, "{p}");
    // A page's word never publishes a track.
    assert_eq!(p["screen_share_seconds"], 0, "{p}");
    assert_eq!(media_rows(&server, "tracker").await, 5);
    assert_eq!(media_rows(&server, "webhook").await, 3);

    // The page unmutes the microphone: it counts from then on.
    socket
        .send(media_message(
            json!([{"sid": "TR_mic", "source": "microphone", "muted": false}]),
        ))
        .await
        .unwrap();
    next_of_type(&mut socket, "media.ack", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = server.report("r").await;
    let mic = report["participants"][0]["microphone_seconds"]
        .as_i64()
        .unwrap();
    assert!((1..=4).contains(&mic), "microphone {mic} s");

    // A page may only speak for its own identity and room.
    let other = access_token("bo", "other-room", Grant::Student);
    let mut elsewhere = ws_connect(&server, "other-room", &other).await;
    next_of_type(
        &mut elsewhere,
        "attendance.snapshot",
        Duration::from_secs(5),
    )
    .await;
    elsewhere
        .send(media_message(
            json!([{"sid": "TR_cam", "source": "camera", "muted": true}]),
        ))
        .await
        .unwrap();
    next_of_type(&mut elsewhere, "media.ack", Duration::from_secs(5)).await;
    let report = server.report("r").await;
    assert_eq!(report["participants"].as_array().unwrap().len(), 1);
    // Malformed reports are refused.
    socket
        .send(Message::text(r#"{"type":"media","tracks":[]}"#))
        .await
        .unwrap();
    let error = next_of_type(&mut socket, "error", Duration::from_secs(5)).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("participant_sid"),
        "{error}"
    );
}

async fn a_lesson_with_engagement_off_keeps_and_shows_nothing(db: Db) {
    let server = TestServer::start(db).await;
    live_class_with_tracks(&server, "quiet", json!({"engagement": false})).await;
    let teacher = access_token("teacher", "quiet", Grant::Teacher);
    let session = server.get_json("/api/sessions/quiet", &teacher).await;
    assert_eq!(session["engagement"], false, "{session}");
    let ada = access_token("ada", "quiet", Grant::Student);
    let mut socket = ws_connect(&server, "quiet", &ada).await;
    next_of_type(&mut socket, "attendance.snapshot", Duration::from_secs(5)).await;
    socket
        .send(media_message(
            json!([{"sid": "TR_cam", "source": "camera", "muted": true}]),
        ))
        .await
        .unwrap();
    let ack = next_of_type(&mut socket, "media.ack", Duration::from_secs(5)).await;
    assert_eq!(ack["kept"], 0, "{ack}");
    assert_eq!(media_rows(&server, "webhook").await, 0);
    assert_eq!(media_rows(&server, "tracker").await, 0);
    let report = server.report("quiet").await;
    let p = &report["participants"][0];
    assert!(p["attended_seconds"].as_i64().unwrap() > 500, "{p}");
    for field in [
        "camera_seconds",
        "microphone_seconds",
        "screen_share_seconds",
    ] {
        assert!(p.get(field).is_none(), "{field} shown: {p}");
    }
    let csv = server
        .get("/api/sessions/quiet/attendance?format=csv", &teacher)
        .await
        .text()
        .await
        .unwrap();
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .ends_with(",timezone,camera_seconds,microphone_seconds,screen_share_seconds"));
    assert!(lines.next().unwrap().ends_with(",UTC,,,"), "{csv}");

    // Another lesson of the service keeps them; turning this one back on
    // keeps what comes from then on (nothing from before).
    let r = server
        .schedule(
            "quiet",
            json!({"scheduled_at": session["scheduled_at"], "duration_minutes": 60, "engagement": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["engagement"], true);
    let report = server.report("quiet").await;
    assert_eq!(report["participants"][0]["camera_seconds"], 0);
}

async fn the_csv_has_media_columns(db: Db) {
    let server = TestServer::start(db).await;
    post_class(&server).await;
    let teacher = access_token("teacher", "r", Grant::Teacher);
    let csv = server
        .get("/api/sessions/r/attendance?format=csv", &teacher)
        .await
        .text()
        .await
        .unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(column("camera_seconds"), "1200");
    assert_eq!(column("microphone_seconds"), "0");
    assert_eq!(column("screen_share_seconds"), "600");
}

use sqlx::Connection;

on_both_backends!(
    media_time_comes_from_track_webhooks,
    engagement_off_keeps_and_shows_nothing,
    page_mutes_reduce_camera_time_and_never_add_any,
    a_lesson_with_engagement_off_keeps_and_shows_nothing,
    the_csv_has_media_columns
);
