//! Reconciliation with LiveKit's RoomService, against an in-memory fake that
//! speaks Twirp JSON, checks the service's tokens and fails on demand: lost
//! webhooks are repaired, failures change nothing, late webhooks still land.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use attendance_livekit::fake::{self, Call, Failure, FakeRoomService, Format};
use attendance_livekit::Method;
use common::*;
use serde_json::{json, Value};

const ROOM: &str = "math-101";
const INTERVAL: &str = "200ms";

/// A LiveKit fake holding `ROOM`, and a server reconciling with it every
/// `INTERVAL`, with a session in its counting window now.
async fn setup(db: Db) -> (FakeRoomService, TestServer) {
    let livekit = FakeRoomService::start(KEY, SECRET).await.unwrap();
    livekit.add_room(fake::room(ROOM));
    let server = TestServer::start_with(
        db,
        &[
            "--livekit-url",
            &livekit.ws_url(),
            "--reconcile-interval",
            INTERVAL,
        ],
    )
    .await;
    server
        .schedule_live(ROOM, chrono::TimeDelta::minutes(10), 60)
        .await;
    (livekit, server)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The participant's cycles once `done` holds for them (polls the report).
async fn cycles_when(
    server: &TestServer,
    identity: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let report = server.report(ROOM).await;
        let cycles: Vec<Value> = report["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["identity"] == identity)
            .map(|p| p["cycles"].as_array().unwrap().clone())
            .unwrap_or_default();
        if done(&cycles) {
            return cycles;
        }
        assert!(Instant::now() < deadline, "{what}: {report}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ms(value: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

/// Waits for a call LiveKit gets from now on that `matches`.
async fn next_call(livekit: &FakeRoomService, what: &str, matches: impl Fn(&Call) -> bool) {
    let from = livekit.calls().len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !livekit.calls()[from..].iter().any(&matches) {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Her join, by webhook, while LiveKit already lists her: checks fail
/// until it is applied, so none can open her cycle first (`reconciled`) in
/// the moment between the listing and the webhook.
async fn join_by_webhook(
    livekit: &FakeRoomService,
    server: &TestServer,
    sid: &str,
    identity: &str,
    joined_s: i64,
) {
    livekit.fail_until_reset(Failure::Internal);
    // A check that read the listing before the failures began ends before
    // the next call (one check at a time): wait for a failed call.
    next_call(livekit, "no check failed", |c| c.status != 200).await;
    let body = event(
        "participant_joined",
        &format!("EV_j{sid}"),
        joined_s,
        ROOM,
        Some((sid, identity, joined_s)),
    );
    assert_eq!(server.post_webhook(&body).await.status(), 200);
    server.settle().await;
    livekit.reset_failures();
    // And returns once a check has listed her again.
    next_call(livekit, "no check after the join", |c| {
        c.status == 200 && c.method == Some(Method::ListParticipants)
    })
    .await;
}

/// `participant_left` lost: LiveKit stops listing the participant, and the
/// cycle is closed at the last check that listed them.
async fn lost_leave_is_closed_at_the_last_check_that_saw_them(db: Db) {
    let (livekit, server) = setup(db).await;
    livekit.add_room(fake::room("other-room"));
    let joined_s = now_s() - 120;
    livekit.add_participant(ROOM, fake::participant("PA_ada", "ada", joined_s * 1000));
    livekit.add_participant(ROOM, fake::participant("PA_bo", "bo", joined_s * 1000));
    join_by_webhook(&livekit, &server, "PA_ada", "ada", joined_s).await;
    // Checks see her for a while.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before_removal = now_ms();
    livekit.remove_participant(ROOM, "PA_ada");
    let cycles = cycles_when(&server, "ada", "closed by reconciliation", |c| {
        c.len() == 1 && !c[0]["left_at"].is_null()
    })
    .await;
    assert_eq!(cycles[0]["close_reason"], "reconciled", "{cycles:?}");
    assert_eq!(cycles[0]["opened_by"], "webhook");
    let left = ms(&cycles[0]["left_at"]);
    // At the last check that listed her: after she was first seen, no later
    // than her removal, and never credited beyond it.
    assert!(left <= before_removal, "{left} > {before_removal}");
    assert!(left > joined_s * 1000 + 100_000, "closed too early: {left}");
    // Bo is still listed: untouched.
    let bo = cycles_when(&server, "bo", "bo opened", |c| c.len() == 1).await;
    assert!(bo[0]["left_at"].is_null());
    assert_eq!(bo[0]["opened_by"], "reconciled");
}

/// `participant_joined` lost: LiveKit lists a participant we never heard
/// of; a cycle opens from LiveKit's `joined_at_ms`, and a late webhook
/// join changes nothing.
async fn lost_join_is_opened_from_livekits_join_time(db: Db) {
    let (livekit, server) = setup(db).await;
    livekit.set_format(Format::CamelCase);
    let joined_ms = (now_s() - 300) * 1000 + 123;
    livekit.add_participant(ROOM, fake::participant("PA_cy", "cy", joined_ms));
    let cycles = cycles_when(&server, "cy", "opened", |c| c.len() == 1).await;
    assert_eq!(cycles[0]["opened_by"], "reconciled");
    assert_eq!(ms(&cycles[0]["joined_at"]), joined_ms);
    assert!(cycles[0]["left_at"].is_null());
    let attended = |report: &Value| {
        report["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["identity"] == "cy")
            .unwrap()["in_meeting"]
            .clone()
    };
    assert_eq!(attended(&server.report(ROOM).await), true);
    // The lost join arrives after all: still one cycle, same start.
    let late = event_with(
        "participant_joined",
        "EV_late_join",
        joined_ms / 1000,
        ROOM,
        Some(("PA_cy", "cy", joined_ms / 1000)),
        json!({"joinedAtMs": joined_ms.to_string()}),
    );
    assert_eq!(server.post_webhook(&late).await.status(), 200);
    server.settle().await;
    let cycles = cycles_when(&server, "cy", "one cycle", |c| c.len() == 1).await;
    assert_eq!(ms(&cycles[0]["joined_at"]), joined_ms);
    assert!(cycles[0]["left_at"].is_null());
}

/// LiveKit down, refusing the token, failing or answering garbage: no fact
/// changes, failures are counted; once it answers again, the repair lands.
async fn failures_change_nothing(db: Db) {
    let (livekit, server) = setup(db).await;
    let joined_s = now_s() - 60;
    livekit.add_participant(ROOM, fake::participant("PA_di", "di", joined_s * 1000));
    join_by_webhook(&livekit, &server, "PA_di", "di", joined_s).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for failure in [
        Failure::Internal,
        Failure::Unauthorized,
        Failure::Garbage,
        Failure::CloseConnection,
        Failure::Slow(Duration::from_secs(8)),
    ] {
        livekit.fail_until_reset(failure.clone());
        livekit.remove_room(ROOM); // would close her, if believed
        let calls = livekit.calls().len();
        let deadline = Instant::now() + Duration::from_secs(15);
        while livekit.calls().len() < calls + 2 {
            assert!(Instant::now() < deadline, "no retry during {failure:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let cycles = cycles_when(&server, "di", "still open", |c| c.len() == 1).await;
        assert!(
            cycles[0]["left_at"].is_null(),
            "{failure:?} changed a fact: {}",
            cycles[0]
        );
        livekit.add_room(fake::room(ROOM));
        livekit.reset_failures();
        // Answered again: the next check succeeds (and the backoff resets).
        let what = format!("no recovery after {failure:?}");
        next_call(&livekit, &what, |c| c.status == 200).await;
    }
    assert!(
        server
            .metric("attendance_reconcile_failures_total{reason=\"unauthorized\"}")
            .await
            >= 1.0
    );
    // LiveKit answers again, and the room is gone: the cycle closes.
    livekit.remove_room(ROOM);
    let cycles = cycles_when(&server, "di", "closed", |c| !c[0]["left_at"].is_null()).await;
    assert_eq!(cycles[0]["close_reason"], "reconciled");
}

/// The room ended and `room_finished` was lost: its open cycles close.
/// An empty participant list alone (a room LiveKit may not hold) does not.
async fn room_gone_closes_its_cycles(db: Db) {
    let (livekit, server) = setup(db).await;
    let joined_s = now_s() - 60;
    livekit.add_participant(ROOM, fake::participant("PA_ed", "ed", joined_s * 1000));
    join_by_webhook(&livekit, &server, "PA_ed", "ed", joined_s).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Listed with people in it, yet an empty list: a contradiction, no close.
    livekit.set_participants(ROOM, vec![]);
    livekit.set_reported_num_participants(ROOM, Some(3));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let cycles = cycles_when(&server, "ed", "open", |c| c.len() == 1).await;
    assert!(cycles[0]["left_at"].is_null());
    livekit.remove_room(ROOM);
    let cycles = cycles_when(&server, "ed", "closed", |c| !c[0]["left_at"].is_null()).await;
    assert_eq!(cycles[0]["close_reason"], "reconciled");
}

/// A `participant_left` that arrives after reconciliation closed the cycle
/// gives the totals it would have given on time.
async fn late_leave_after_reconciliation_gives_the_same_totals(db: Db) {
    let (livekit, server) = setup(db).await;
    let joined_s = now_s() - 240;
    livekit.add_participant(ROOM, fake::participant("PA_fa", "fa", joined_s * 1000));
    join_by_webhook(&livekit, &server, "PA_fa", "fa", joined_s).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    livekit.remove_participant(ROOM, "PA_fa");
    cycles_when(&server, "fa", "reconciled", |c| {
        c[0]["close_reason"] == "reconciled"
    })
    .await;
    let left_s = now_s();
    let leave = event_with(
        "participant_left",
        "EV_late_leave",
        left_s,
        ROOM,
        Some(("PA_fa", "fa", joined_s)),
        json!({"disconnectReason": "CLIENT_INITIATED"}),
    );
    assert_eq!(server.post_webhook(&leave).await.status(), 200);
    server.settle().await;
    let cycles = cycles_when(&server, "fa", "leave applied", |c| {
        c[0]["close_reason"] == "left"
    })
    .await;
    assert_eq!(ms(&cycles[0]["left_at"]), left_s * 1000);
    assert_eq!(cycles[0]["disconnect_reason"], "CLIENT_INITIATED");
}

on_both_backends!(
    lost_leave_is_closed_at_the_last_check_that_saw_them,
    lost_join_is_opened_from_livekits_join_time,
    failures_change_nothing,
    room_gone_closes_its_cycles,
    late_leave_after_reconciliation_gives_the_same_totals,
);

/// Two instances on one PostgreSQL check each room once per interval
/// between them, and pace their calls.
#[tokio::test]
async fn two_instances_reconcile_each_room_once() {
    let (livekit, first) = setup(Db::Postgres).await;
    let second = first.another_instance(&[
        "--livekit-url",
        &livekit.ws_url(),
        "--reconcile-interval",
        INTERVAL,
    ]);
    let joined_s = now_s() - 60;
    livekit.add_participant(ROOM, fake::participant("PA_gu", "gu", joined_s * 1000));
    tokio::time::sleep(Duration::from_millis(400)).await;
    livekit.reset_calls();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let checks: Vec<Instant> = livekit
        .calls()
        .iter()
        .filter(|c| c.method == Some(Method::ListParticipants) && c.room.as_deref() == Some(ROOM))
        .map(|c| c.at)
        .collect();
    // 3 s at one check per 200 ms between both instances: about 15, not 30.
    assert!((8..=20).contains(&checks.len()), "{} checks", checks.len());
    for pair in checks.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(100),
            "two checks of one room {:?} apart",
            pair[1] - pair[0]
        );
    }
    // Both reported the participant once.
    let cycles = cycles_when(&second, "gu", "one cycle", |c| c.len() == 1).await;
    assert_eq!(cycles[0]["opened_by"], "reconciled");
    drop(second);
}

/// Muting sends no webhook: RoomService's `muted` flags are media facts, so
/// camera time stops when LiveKit lists the camera as muted.
async fn room_service_mute_flags_stop_camera_time(db: Db) {
    let (livekit, server) = setup(db).await;
    let mut p = fake::participant("PA_cam", "cam", (now_s() - 60) * 1000);
    p.tracks.push(attendance_livekit::model::TrackInfo {
        sid: "TR_cam".into(),
        source: attendance_livekit::model::TrackSource::Camera,
        ..Default::default()
    });
    livekit.add_participant(ROOM, p);
    let camera = |report: &Value| {
        report["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["identity"] == "cam")
            .map_or(0, |p| p["camera_seconds"].as_i64().unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while camera(&server.report(ROOM).await) < 2 {
        assert!(Instant::now() < deadline, "no camera time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    livekit.update_participant(ROOM, "PA_cam", |p| p.tracks[0].muted = true);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let muted = camera(&server.report(ROOM).await);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        camera(&server.report(ROOM).await),
        muted,
        "camera time went on while muted"
    );
}

mod media_flags {
    use super::*;
    on_both_backends!(room_service_mute_flags_stop_camera_time);
}
