//! "Stay until": during the class the report, the participant's own
//! endpoint and live pushes say what is still reachable and when, from the
//! same rules the student's page runs.

#[macro_use]
mod common;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use serde_json::{json, Value};

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

async fn stay_until_is_reported_during_the_class(db: Db) {
    let server = TestServer::start(db).await;
    let start = (Utc::now() - TimeDelta::minutes(10))
        .with_timezone(&Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let start: DateTime<Utc> = start.parse().unwrap();
    let r = server
        .schedule(
            "r",
            json!({"scheduled_at": start.to_rfc3339(), "duration_minutes": 60, "grace_minutes": 0}),
        )
        .await;
    assert_eq!(r.status(), 201);
    // Joined 5 minutes after the start and still there: present after 48
    // minutes (80 % of 60) in the meeting.
    let joined = start + TimeDelta::minutes(5);
    let join = event(
        "participant_joined",
        "EV_stay_join",
        joined.timestamp(),
        "r",
        Some(("PA_stay", "ada", joined.timestamp())),
    );
    assert_eq!(server.post_webhook(&join).await.status(), 200);
    server.settle().await;
    let student = access_token("ada", "r", Grant::Student);
    let mine = server
        .get_json("/api/sessions/r/attendance/ada", &student)
        .await;
    assert_eq!(mine["reachable_status"], "present", "{mine}");
    // Within a second: the rules judge the percentage to one decimal.
    let present_at = time(&mine["present_at"]);
    let expected = joined + TimeDelta::minutes(48);
    assert!(
        (present_at - expected).num_seconds().abs() <= 1,
        "{present_at} vs {expected}"
    );
    assert!(mine["rejoin_by"].is_null());

    // She leaves: the latest rejoin that still reaches present is reported.
    let mut socket = ws_connect(&server, "r", &student).await;
    next_of_type(&mut socket, "attendance.snapshot", Duration::from_secs(5)).await;
    let left = Utc::now();
    let leave = event(
        "participant_left",
        "EV_stay_left",
        left.timestamp(),
        "r",
        Some(("PA_stay", "ada", joined.timestamp())),
    );
    assert_eq!(server.post_webhook(&leave).await.status(), 200);
    // The join's own push may still be on its way (on PostgreSQL it goes
    // through NOTIFY after the join was stored): the leave's is the one
    // that says she is out.
    let attendance = &loop {
        let pushed = next_of_type(&mut socket, "attendance.updated", Duration::from_secs(5)).await;
        if pushed["attendance"]["in_meeting"] == false {
            break pushed["attendance"].clone();
        }
    };
    assert_eq!(attendance["reachable_status"], "present", "{attendance}");
    let rejoin_by = time(&attendance["rejoin_by"]);
    // Already attended (left - joined); needs 48 minutes in all, and the
    // window ends at start + 60.
    let attended = (DateTime::from_timestamp(left.timestamp(), 0).unwrap() - joined).num_seconds();
    let expected = start + TimeDelta::minutes(60) - TimeDelta::seconds(48 * 60 - attended);
    assert!(
        (rejoin_by - expected).num_seconds().abs() <= 2,
        "{rejoin_by} vs {expected}"
    );

    // The teacher's report carries the same.
    let report = server.report("r").await;
    assert_eq!(report["participants"][0]["reachable_status"], "present");
}

on_both_backends!(stay_until_is_reported_during_the_class);
