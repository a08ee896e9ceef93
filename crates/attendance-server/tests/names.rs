//! Every name LiveKit allows: room names and identities with spaces,
//! slashes, quotes, commas, Arabic, emoji and more than 255 bytes, on every
//! route, carried unchanged in JSON, CSV, live messages and the audit trail.
//! And every event LiveKit sends is acknowledged, whatever its type.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};

/// A path segment for `name`, as browsers' `encodeURIComponent` makes it
/// (every non-alphanumeric escaped, `/` included).
fn seg(name: &str) -> String {
    utf8_percent_encode(name, NON_ALPHANUMERIC).to_string()
}

const ROOMS: [&str; 3] = [
    "رياضيات 101",
    "Math 101 / \"Algebra\", it's — 🙂",
    // Past 255 bytes.
    "صف طويل جدا — a very long room name that keeps going; ",
];
const STUDENT: &str = "طالب / o'brien, \"q\" 🙂";

fn long(room: &str) -> String {
    if room.ends_with("; ") {
        room.repeat(5)
    } else {
        room.to_string()
    }
}

async fn every_route_takes_any_name(db: Db) {
    let server = TestServer::start(db).await;
    for room in ROOMS.map(long) {
        assert!(!room.is_empty());
        one_room(&server, &room).await;
    }
}

async fn one_room(server: &TestServer, room: &str) {
    let path = |rest: &str| format!("/api/sessions/{}{rest}", seg(room));
    let teacher = access_token("ms-smith", room, Grant::Teacher);
    let student = access_token(STUDENT, room, Grant::Student);
    let admin = access_token("admin", "any", Grant::Admin);

    let r = server
        .put_json(
            &path(""),
            &teacher,
            &json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60,
                    "roster": [{"identity": STUDENT, "name": "طالب"}]}),
        )
        .await;
    assert_eq!(r.status(), 201, "{room}: {}", r.text().await.unwrap());
    let session = server.get_json(&path(""), &student).await;
    assert_eq!(session["room"], room);
    let roster = server.get_json(&path("/roster"), &teacher).await;
    assert_eq!(roster["roster"][0]["identity"], STUDENT);
    let r = server
        .put_json(
            &path("/roster"),
            &teacher,
            &json!({"roster": [{"identity": STUDENT}, {"identity": "ms-smith", "role": "teacher"}]}),
        )
        .await;
    assert_eq!(r.status(), 200);

    let sid = format!("PA_{}", rand_suffix());
    let join = event(
        "participant_joined",
        &format!("EV_n{}", rand_suffix()),
        at(11, 0),
        room,
        Some((&sid, STUDENT, at(11, 0))),
    );
    assert_eq!(server.post_webhook(&join).await.status(), 200);
    server.settle().await;

    let report = server.get_json(&path("/attendance"), &teacher).await;
    assert_eq!(report["room"], room);
    let me = &report["participants"][0];
    assert_eq!(me["identity"], STUDENT);
    assert_eq!(me["join_count"], 1, "{report}");

    let csv = server.get(&path("/attendance?format=csv"), &teacher).await;
    let disposition = csv.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    let encoded = disposition.split("filename*=UTF-8''").nth(1).unwrap();
    let filename = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .unwrap();
    assert_eq!(
        filename,
        format!("attendance-{room}-2025-11-25.csv"),
        "{disposition}"
    );
    let text = csv.text().await.unwrap();
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    let identity = rows.headers().unwrap().iter().position(|h| h == "identity");
    let record = rows.records().next().unwrap().unwrap();
    assert_eq!(&record[0], room);
    assert_eq!(&record[identity.unwrap()], STUDENT);

    let one_path = path(&format!("/attendance/{}", seg(STUDENT)));
    let mine = server.get_json(&one_path, &student).await;
    assert_eq!(mine["identity"], STUDENT);
    assert_eq!(
        server.post(&path("/heartbeat"), &student).await.status(),
        200
    );

    let set = server
        .put_json(
            &format!("{one_path}/override"),
            &teacher,
            &json!({"status": "excused", "reason": "سبب / reason"}),
        )
        .await;
    assert_eq!(set.status(), 200, "{}", set.text().await.unwrap());
    let removed = server
        .delete(
            &format!("{one_path}/override?reason={}", seg("لا شيء")),
            &teacher,
        )
        .await;
    assert_eq!(removed.status(), 200);
    let audit = server.get_json(&path("/audit"), &teacher).await;
    let entries = audit["audit"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{audit}");
    assert!(entries
        .iter()
        .all(|e| e["room"] == room && e["identity"] == STUDENT));
    assert!(entries.iter().any(|e| e["reason"] == "سبب / reason"));

    let history = server
        .get_json(
            &format!("/api/attendance?identity={}", seg(STUDENT)),
            &admin,
        )
        .await;
    assert!(history["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["session"]["room"] == room));

    let mut socket = ws_connect(server, &seg(room), &student).await;
    let snapshot: Value =
        next_of_type(&mut socket, "attendance.snapshot", Duration::from_secs(5)).await;
    assert_eq!(snapshot["room"], room);
    assert_eq!(snapshot["participants"][0]["identity"], STUDENT);
}

/// Every event type LiveKit sends, including ones that do not exist yet, is
/// acknowledged with 200 and kept; none is dead-lettered.
async fn every_event_livekit_sends_is_acknowledged(db: Db) {
    let server = TestServer::start(db).await;
    let kinds = [
        "room_started",
        "track_published",
        "track_unpublished",
        "egress_started",
        "egress_updated",
        "egress_ended",
        "ingress_started",
        "ingress_ended",
        "agent_job_started",
        "a_type_from_a_future_livekit",
    ];
    for (i, kind) in kinds.iter().enumerate() {
        let body =
            json!({"event": kind, "id": format!("EV_kind{i}"), "createdAt": now_s().to_string(),
                          "room": {"sid": "RM_x", "name": "r"}, "egressInfo": {"egressId": "EG_1"},
                          "participant": {"sid": "PA_x", "identity": "x"},
                          "track": {"sid": "TR_1", "source": "CAMERA"}})
            .to_string();
        let r = server.post_webhook(&body).await;
        assert_eq!(r.status(), 200, "{kind}");
    }
    server.settle().await;
    let admin = access_token("admin", "any", Grant::Admin);
    let failed = server
        .get_json("/api/admin/webhooks?status=failed", &admin)
        .await;
    assert_eq!(failed["webhooks"], json!([]));
    let processed = server
        .get_json("/api/admin/webhooks?status=processed", &admin)
        .await;
    assert_eq!(processed["webhooks"].as_array().unwrap().len(), kinds.len());
}

on_both_backends!(
    every_route_takes_any_name,
    every_event_livekit_sends_is_acknowledged
);
