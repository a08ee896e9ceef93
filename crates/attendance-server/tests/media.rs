//! Camera, microphone and screen-share time from LiveKit's track webhooks,
//! computed by the rules; nothing about tracks kept with engagement off.

#[macro_use]
mod common;

use common::*;
use serde_json::{json, Value};

fn track_event(kind: &str, id: &str, at: i64, track: Value) -> String {
    json!({"event": kind, "id": id, "createdAt": at.to_string(),
           "room": {"sid": "RM_r", "name": "r"},
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

use sqlx::Connection;

on_both_backends!(
    media_time_comes_from_track_webhooks,
    engagement_off_keeps_and_shows_nothing
);
