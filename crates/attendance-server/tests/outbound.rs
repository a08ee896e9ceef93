//! Outbound webhooks, end to end: the real server sends to a Node.js
//! receiver that verifies every delivery with the official `standardwebhooks`
//! library. Sessions that end, corrections, failures, `kill -9`, disabling,
//! the admin API and command line, and the refusal of private addresses.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::receiver::{accepted, Delivery, Receiver};
use common::*;
use serde_json::{json, Value};

/// Retries 100 ms apart, so tests see several attempts quickly.
const FAST: &[&str] = &[
    "--allow-private-endpoints",
    "--outbound-retry-schedule",
    "100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms",
    "--outbound-timeout",
    "2s",
];

fn admin() -> String {
    access_token("admin", "any", Grant::Admin)
}

/// Registers the receiver for `events`; returns the endpoint's id, after
/// telling the receiver its secret.
async fn register(server: &TestServer, receiver: &Receiver, events: &[&str]) -> String {
    let body = json!({ "url": receiver.hook_url(), "events": events, "description": "the LMS" });
    let r = post_endpoint(server, &body).await;
    assert_eq!(r.status(), 201);
    let endpoint: Value = r.json().await.unwrap();
    let secret = endpoint["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{endpoint}");
    receiver.set_secret(secret).await;
    endpoint["id"].as_str().unwrap().to_string()
}

async fn post_endpoint(server: &TestServer, body: &Value) -> reqwest::Response {
    server
        .request(
            reqwest::Method::POST,
            "/api/admin/endpoints",
            admin(),
            Some(body),
        )
        .await
}

async fn messages(server: &TestServer, endpoint: &str, status: &str) -> Vec<Value> {
    let path = format!("/api/admin/endpoints/{endpoint}/messages?status={status}&limit=1000");
    let list = server.get_json(&path, &admin()).await;
    list["messages"].as_array().cloned().unwrap_or_default()
}

/// `GET path` as an administrator until `done` holds for the answer (5 s at most).
async fn poll(server: &TestServer, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..250 {
        let answer = server.get_json(path, &admin()).await;
        if done(&answer) {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{path} never as expected: {}",
        server.get_json(path, &admin()).await
    );
}

async fn past_session(server: &TestServer, room: &str, roster: Value) {
    let body = json!({"scheduled_at": PAST_SESSION, "duration_minutes": 60, "roster": roster});
    assert!(server.schedule(room, body).await.status().is_success());
}

async fn join_and_leave(server: &TestServer, room: &str, who: &str, from: i64, to: i64) {
    let p = Some((format!("PA_{room}_{who}"), who.to_string(), from));
    let p = p
        .as_ref()
        .map(|(sid, who, at)| (sid.as_str(), who.as_str(), *at));
    let joined = event(
        "participant_joined",
        &format!("EV_{room}_{who}_j"),
        from,
        room,
        p,
    );
    let left = event(
        "participant_left",
        &format!("EV_{room}_{who}_l"),
        to,
        room,
        p,
    );
    for body in [joined, left] {
        assert_eq!(server.post_webhook(&body).await.status(), 200);
    }
}

async fn a_session_that_ends_reaches_a_verified_endpoint(db: Db) {
    let receiver = Receiver::start();
    let server = TestServer::start_with(db, FAST).await;
    let endpoint = register(
        &server,
        &receiver,
        &[
            "session.finalized",
            "session.updated",
            "attendance.corrected",
        ],
    )
    .await;
    // A one-minute class whose window ends two seconds from now.
    let start = Utc::now() - TimeDelta::seconds(58);
    let body = json!({"scheduled_at": start.to_rfc3339(), "duration_minutes": 1,
                      "grace_minutes": 0, "late_after_minutes": 1, "title": "Algebra"});
    assert_eq!(server.schedule("algebra", body).await.status(), 201);
    let p = Some(("PA_ada", "ada", start.timestamp() + 10));
    let join = event(
        "participant_joined",
        "EV_ada_j",
        start.timestamp() + 10,
        "algebra",
        p,
    );
    assert_eq!(server.post_webhook(&join).await.status(), 200);

    let got = receiver
        .wait_for(Duration::from_secs(20), "session.finalized", |d| {
            !accepted(d, "session.finalized").is_empty()
        })
        .await;
    assert!(got.iter().all(|d| d.verified), "{got:#?}");
    let updated = accepted(&got, "session.updated");
    assert_eq!(updated.len(), 1, "{got:#?}");
    assert_eq!(updated[0].event["data"]["changes"], json!(["created"]));
    assert_eq!(updated[0].event["data"]["session"]["title"], "Algebra");

    let finalized = &accepted(&got, "session.finalized")[0].event;
    assert!(finalized["timestamp"].as_str().unwrap().ends_with('Z'));
    let data = &finalized["data"];
    assert_eq!(data["room"], "algebra");
    assert_eq!(data["phase"], "ended");
    let ada = &data["participants"][0];
    assert_eq!(ada["identity"], "ada");
    assert_eq!(ada["final"], true);
    assert!(ada["attended_seconds"].as_i64().unwrap() >= 45, "{ada}");
    // The same JSON as the report the API gives.
    let report = server.report("algebra").await;
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(data), keys(&report));
    assert_eq!(keys(ada), keys(&report["participants"][0]));
    assert_eq!(
        ada["attended_seconds"],
        report["participants"][0]["attended_seconds"]
    );
    assert_eq!(data["counts"], report["counts"]);

    two_delivered_and_counted(&server, &endpoint).await;
    // Nothing more: the result does not change, it is not announced again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let again = receiver.deliveries().await;
    assert_eq!(accepted(&again, "session.finalized").len(), 1, "{again:#?}");
}

/// Two messages delivered at the first attempt, in the log and the metrics.
async fn two_delivered_and_counted(server: &TestServer, endpoint: &str) {
    let path = format!("/api/admin/endpoints/{endpoint}/messages?status=delivered");
    let delivered = poll(server, &path, |l| l["messages"][1].is_object()).await;
    let delivered = delivered["messages"].as_array().unwrap();
    assert_eq!(delivered.len(), 2, "{delivered:#?}");
    for message in delivered {
        assert_eq!(message["attempt_log"][0]["status_code"], 204, "{message}");
        assert!(message["attempt_log"][0]["duration_ms"].as_i64().is_some());
    }
    for (metric, least) in [
        ("attendance_outbound_delivered_total", 2.0),
        ("attendance_outbound_attempts_total{class=\"2xx\"}", 2.0),
        ("attendance_outbound_delivery_latency_seconds_count", 2.0),
        ("attendance_outbound_messages_delivered", 2.0),
    ] {
        assert!(server.metric(metric).await >= least, "{metric}");
    }
    assert_eq!(
        server.metric("attendance_outbound_messages_pending").await,
        0.0
    );
}

/// Every delivery of one body carried one `webhook-id`, every id one body,
/// and each id was finally accepted: the receiver can deduplicate on it.
fn one_id_per_message(deliveries: &[Delivery]) -> BTreeMap<String, usize> {
    let mut ids_by_body: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut bodies_by_id: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut attempts: BTreeMap<String, usize> = BTreeMap::new();
    for d in deliveries {
        assert!(d.verified, "not verified by standardwebhooks: {d:#?}");
        ids_by_body.entry(&d.body).or_default().insert(&d.id);
        bodies_by_id.entry(&d.id).or_default().insert(&d.body);
        *attempts.entry(d.id.clone()).or_default() += 1;
    }
    assert!(
        ids_by_body.values().all(|ids| ids.len() == 1),
        "{ids_by_body:#?}"
    );
    assert!(bodies_by_id.values().all(|b| b.len() == 1));
    attempts
}

async fn failures_and_kill_9_still_end_in_delivery(db: Db) {
    let receiver = Receiver::start();
    receiver.set_failing(true).await;
    let mut server = TestServer::start_with(db, FAST).await;
    let endpoint = register(
        &server,
        &receiver,
        &["session.finalized", "session.updated"],
    )
    .await;
    for room in ["hist-a", "hist-b"] {
        past_session(&server, room, json!([{"identity": "ada"}])).await;
    }
    // Two session.updated and two session.finalized, each refused at least once.
    receiver
        .wait_for(Duration::from_secs(20), "4 messages, each failed", |d| {
            d.iter().map(|d| &d.id).collect::<BTreeSet<_>>().len() == 4
        })
        .await;
    assert_eq!(messages(&server, &endpoint, "delivered").await.len(), 0);
    server.kill(); // kill -9: nothing delivered yet
    receiver.set_failing(false).await;
    server.restart(FAST);

    let got = receiver
        .wait_for(Duration::from_secs(30), "every message accepted", |d| {
            let ids: BTreeSet<_> = d.iter().map(|d| &d.id).collect();
            let ok: BTreeSet<_> = d
                .iter()
                .filter(|d| d.status == 204)
                .map(|d| &d.id)
                .collect();
            ids.len() == 4 && ok.len() == 4
        })
        .await;
    let attempts = one_id_per_message(&got);
    assert!(attempts.values().all(|n| *n >= 2), "{attempts:?}");
    for id in attempts.keys() {
        let accepted = got.iter().filter(|d| &d.id == id && d.status == 204);
        assert_eq!(accepted.count(), 1, "{id} accepted twice");
    }
    let delivered = format!("/api/admin/endpoints/{endpoint}/messages?status=delivered");
    let delivered = poll(&server, &delivered, |l| l["messages"][3].is_object()).await;
    let delivered: BTreeSet<String> = delivered["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(delivered, attempts.keys().cloned().collect());
    assert_eq!(accepted(&got, "session.finalized").len(), 2);
    assert_eq!(accepted(&got, "session.updated").len(), 2);
}

async fn corrections_send_attendance_corrected(db: Db) {
    let receiver = Receiver::start();
    let server = TestServer::start_with(db, FAST).await;
    register(&server, &receiver, &["attendance.corrected"]).await;
    past_session(&server, "bio", json!([{"identity": "ada", "name": "Ada"}])).await;
    let teacher = access_token("ms-smith", "bio", Grant::Teacher);
    let path = "/api/sessions/bio/attendance/ada/override";
    let set = json!({"status": "excused", "reason": "doctor's note"});
    assert_eq!(server.put_json(path, &teacher, &set).await.status(), 200);
    let got = receiver
        .wait_for(Duration::from_secs(10), "attendance.corrected", |d| {
            !accepted(d, "attendance.corrected").is_empty()
        })
        .await;
    let data = &accepted(&got, "attendance.corrected")[0].event["data"];
    assert_eq!(data["room"], "bio");
    assert_eq!(data["identity"], "ada");
    assert_eq!(data["audit"]["action"], "set");
    assert_eq!(data["audit"]["status"], "excused");
    assert_eq!(data["audit"]["reason"], "doctor's note");
    assert_eq!(data["audit"]["author"], "ms-smith");
    assert_eq!(data["attendance"]["status"], "excused");
    assert_eq!(data["attendance"]["computed_status"], "absent");
    assert_eq!(data["attendance"]["override"]["reason"], "doctor's note");

    let remove = format!("{path}?reason=entered%20by%20mistake");
    assert_eq!(server.delete(&remove, &teacher).await.status(), 200);
    let got = receiver
        .wait_for(
            Duration::from_secs(10),
            "a second attendance.corrected",
            |d| accepted(d, "attendance.corrected").len() == 2,
        )
        .await;
    let data = &accepted(&got, "attendance.corrected")[1].event["data"];
    assert_eq!(data["audit"]["action"], "remove");
    assert_eq!(data["audit"]["status"], Value::Null);
    assert_eq!(data["attendance"]["status"], "absent");
    assert_eq!(data["attendance"]["override"], Value::Null);
    // Subscribed to corrections only: no session.updated, no session.finalized.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let all = receiver.deliveries().await;
    assert!(
        all.iter()
            .all(|d| d.event["type"] == "attendance.corrected"),
        "{all:#?}"
    );
}

/// The `attended_seconds` of `who` in each accepted `session.finalized`.
fn finals_of(deliveries: &[Delivery], who: &str) -> Vec<Value> {
    accepted(deliveries, "session.finalized")
        .iter()
        .map(|d| {
            let people = d.event["data"]["participants"].as_array().unwrap();
            let person = people.iter().find(|p| p["identity"] == who).unwrap();
            person["attended_seconds"].clone()
        })
        .collect()
}

async fn a_late_fact_finalizes_again_an_unchanged_result_does_not(db: Db) {
    let receiver = Receiver::start();
    let server = TestServer::start_with(db, FAST).await;
    register(&server, &receiver, &["session.finalized"]).await;
    let roster = json!([{"identity": "ada"}, {"identity": "bo"}]);
    past_session(&server, "chem", roster.clone()).await;
    join_and_leave(&server, "chem", "ada", at(11, 0), at(12, 0)).await;
    let got = receiver
        .wait_for(Duration::from_secs(10), "ada's hour, final", |d| {
            finals_of(d, "ada").last() == Some(&json!(3600))
        })
        .await;
    let announced = accepted(&got, "session.finalized").len();
    // Its window long over, a late webhook changes bo's result: announced again.
    join_and_leave(&server, "chem", "bo", at(11, 0), at(11, 30)).await;
    let got = receiver
        .wait_for(Duration::from_secs(10), "bo's half hour, final", |d| {
            finals_of(d, "bo").last() == Some(&json!(1800))
        })
        .await;
    let ids: BTreeSet<_> = accepted(&got, "session.finalized")
        .iter()
        .map(|d| &d.id)
        .collect();
    assert!(
        ids.len() > announced,
        "each announcement is a new message: {got:#?}"
    );
    // (A join and its leave may be applied apart: each result in between is
    // announced too.) Once all is applied, the same schedule again, or ada
    // back after the window, leave the result as it is: nothing is announced.
    server.settle().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let announced = accepted(&receiver.deliveries().await, "session.finalized").len();
    past_session(&server, "chem", roster).await;
    let p = Some(("PA_chem_ada_again", "ada", at(13, 0)));
    let late = event("participant_joined", "EV_late", at(13, 0), "chem", p);
    assert_eq!(server.post_webhook(&late).await.status(), 200);
    server.settle().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let now = receiver.deliveries().await;
    assert_eq!(
        accepted(&now, "session.finalized").len(),
        announced,
        "{now:#?}"
    );
}

async fn a_failing_endpoint_is_disabled_and_its_messages_kept(db: Db) {
    let receiver = Receiver::start();
    receiver.set_failing(true).await;
    let extra = [
        "--allow-private-endpoints",
        "--outbound-retry-schedule",
        "50ms,50ms",
        "--outbound-disable-after",
        "300ms",
    ];
    let server = TestServer::start_with(db, &extra).await;
    let endpoint = register(&server, &receiver, &["session.updated"]).await;
    past_session(&server, "art", json!([])).await;
    let failed = format!("/api/admin/endpoints/{endpoint}/messages?status=failed");
    let failed = poll(&server, &failed, |list| list["messages"][0].is_object()).await;
    let failed = &failed["messages"][0];
    let message = &failed["attempt_log"];
    assert_eq!(message.as_array().unwrap().len(), 3, "{message}");
    assert_eq!(message[0]["status_code"], 500);
    assert!(message[0]["response"]
        .as_str()
        .unwrap()
        .contains("failing on purpose"));
    // Another message while failing: past the limit, the endpoint is disabled.
    tokio::time::sleep(Duration::from_millis(400)).await;
    past_session(&server, "art", json!([{"identity": "ada"}])).await;
    let path = format!("/api/admin/endpoints/{endpoint}");
    let shown = poll(&server, &path, |e| e["disabled"] == true).await;
    let reason = shown["disabled_reason"].as_str().unwrap();
    assert!(reason.starts_with("disabled automatically"), "{reason}");
    assert!(reason.contains("HTTP 500"), "{reason}");
    // While disabled, new messages wait; enabled again, they go, and a
    // failed one goes when retried.
    past_session(&server, "art", json!([{"identity": "bo"}])).await;
    receiver.set_failing(false).await;
    let enable = json!({"disabled": false});
    let r = server
        .request(reqwest::Method::PATCH, &path, admin(), Some(&enable))
        .await;
    assert_eq!(r.status(), 200);
    let first_failed = failed["id"].as_str().unwrap().to_string();
    let retry = format!("/api/admin/messages/{first_failed}/retry");
    assert_eq!(server.post(&retry, admin()).await.status(), 202);
    let got = receiver
        .wait_for(
            Duration::from_secs(10),
            "the retried and waiting messages",
            |d| {
                d.iter().any(|d| d.id == first_failed && d.status == 204)
                    && accepted(d, "session.updated").len() >= 2
            },
        )
        .await;
    one_id_per_message(&got);
    // The receiver answered; the server records it just after.
    let one = format!("/api/admin/messages/{first_failed}");
    let one = poll(&server, &one, |m| m["status"] == "delivered").await;
    assert_eq!(one["payload"]["type"], "session.updated");
    assert_eq!(server.get_json(&path, &admin()).await["disabled"], false);
}

async fn private_endpoints_are_refused_without_the_flag(db: Db) {
    let server = TestServer::start(db).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ] {
        let body = json!({"url": url, "events": ["session.finalized"]});
        let r = post_endpoint(&server, &body).await;
        assert_eq!(r.status(), 400, "{url}");
        let error: Value = r.json().await.unwrap();
        let error = error["error"].as_str().unwrap();
        assert!(
            error.contains("--allow-private-endpoints"),
            "{url}: {error}"
        );
    }
    let public = json!({"url": "https://93.184.215.14/hook", "events": ["session.finalized"]});
    let r = post_endpoint(&server, &public).await;
    assert_eq!(r.status(), 201);
    let endpoint: Value = r.json().await.unwrap();
    // Changing it to a private address is refused the same way.
    let path = format!("/api/admin/endpoints/{}", endpoint["id"].as_str().unwrap());
    let private = json!({"url": "http://127.0.0.1/x"});
    let r = server
        .request(reqwest::Method::PATCH, &path, admin(), Some(&private))
        .await;
    assert_eq!(r.status(), 400);
}

async fn endpoints_through_the_api(db: Db) {
    let server = TestServer::start_with(db, &["--allow-private-endpoints"]).await;
    let teacher = access_token("ms-smith", "bio", Grant::Teacher);
    assert_eq!(
        server.get("/api/admin/endpoints", &teacher).await.status(),
        403
    );
    for bad in [
        json!({"url": "http://127.0.0.1:9/x"}),
        json!({"url": "http://127.0.0.1:9/x", "events": []}),
        json!({"url": "http://127.0.0.1:9/x", "events": ["session.exploded"]}),
        json!({"url": "ftp://127.0.0.1/x", "events": ["session.updated"]}),
        json!({"url": "http://127.0.0.1:9/x", "events": ["session.updated"], "secret": "mine"}),
    ] {
        assert_eq!(post_endpoint(&server, &bad).await.status(), 400, "{bad}");
    }
    let body = json!({"url": "http://127.0.0.1:9/x", "events": ["session.updated"]});
    let created: Value = post_endpoint(&server, &body).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/admin/endpoints/{id}");
    let shown = server.get_json(&path, &admin()).await;
    assert_eq!(shown["url"], "http://127.0.0.1:9/x");
    assert_eq!(shown["events"], json!(["session.updated"]));
    assert_eq!(shown["disabled"], false);
    assert!(
        shown.get("secret").is_none(),
        "the secret is shown at creation only"
    );
    let change =
        json!({"events": ["session.finalized", "attendance.corrected"], "description": "Moodle"});
    let changed: Value = server
        .request(reqwest::Method::PATCH, &path, admin(), Some(&change))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        changed["events"],
        json!(["attendance.corrected", "session.finalized"])
    );
    assert_eq!(changed["description"], "Moodle");
    let rotated: Value = server
        .post(&format!("{path}/rotate-secret"), admin())
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(rotated["secret"], created["secret"]);
    assert!(rotated["secret"].as_str().unwrap().starts_with("whsec_"));
    assert!(
        rotated["previous_secret_valid_until"].is_string(),
        "{rotated}"
    );
    let bad_status = format!("{path}/messages?status=lost");
    assert_eq!(server.get(&bad_status, &admin()).await.status(), 400);
    assert_eq!(
        server
            .get(&format!("{path}/messages"), &admin())
            .await
            .status(),
        200
    );
    let missing = "/api/admin/messages/msg_nope/retry";
    assert_eq!(server.post(missing, admin()).await.status(), 404);
    assert_eq!(server.delete(&path, admin()).await.status(), 204);
    assert_eq!(server.get(&path, &admin()).await.status(), 404);
}

async fn endpoints_from_the_command_line(db: Db) {
    let server = TestServer::start(db).await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_attendance-server"))
            .arg("endpoints")
            .args(args)
            .args(["--database-url", &server.database_url])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let added = cli(&[
        "add",
        "--url",
        "http://127.0.0.1:9/cli",
        "--events",
        "session.updated,session.finalized",
        "--allow-private-endpoints",
    ]);
    assert!(added["secret"].as_str().unwrap().starts_with("whsec_"));
    let listed = server.get_json("/api/admin/endpoints", &admin()).await;
    assert_eq!(listed["endpoints"][0]["id"], added["id"]);
    let cli_id = added["id"].as_str().unwrap();
    assert_eq!(cli(&["update", cli_id, "--disable"])["disabled"], true);
    assert_eq!(cli(&["list"])["endpoints"][0]["disabled"], true);
    assert_eq!(
        cli(&["messages", cli_id, "--status", "failed"])["messages"],
        json!([])
    );
    cli(&["delete", cli_id]);
    assert_eq!(cli(&["list"])["endpoints"], json!([]));
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_attendance-server"))
        .args([
            "endpoints",
            "add",
            "--url",
            "http://127.0.0.1:9/x",
            "--events",
            "session.updated",
        ])
        .args(["--database-url", &server.database_url])
        .env_remove("ATTENDANCE_ALLOW_PRIVATE_ENDPOINTS")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("--allow-private-endpoints"), "{error}");
}

on_both_backends!(
    a_session_that_ends_reaches_a_verified_endpoint,
    failures_and_kill_9_still_end_in_delivery,
    corrections_send_attendance_corrected,
    a_late_fact_finalizes_again_an_unchanged_result_does_not,
    a_failing_endpoint_is_disabled_and_its_messages_kept,
    private_endpoints_are_refused_without_the_flag,
    endpoints_through_the_api,
    endpoints_from_the_command_line,
);

/// Two instances on one PostgreSQL: every message is sent by one of them,
/// once, and each session is announced final once.
#[tokio::test]
async fn two_instances_send_each_message_once() {
    let receiver = Receiver::start();
    let first = TestServer::start_with(Db::Postgres, FAST).await;
    let second = first.another_instance(FAST);
    register(&first, &receiver, &["session.finalized", "session.updated"]).await;
    for n in 0..8 {
        let server = if n % 2 == 0 { &first } else { &second };
        past_session(server, &format!("room-{n}"), json!([{"identity": "ada"}])).await;
    }
    receiver
        .wait_for(Duration::from_secs(20), "16 messages", |d| d.len() >= 16)
        .await;
    // Time for any second sending to show.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let got = receiver.deliveries().await;
    assert_eq!(got.len(), 16, "{got:#?}");
    let attempts = one_id_per_message(&got);
    assert!(attempts.values().all(|n| *n == 1), "{attempts:?}");
    assert_eq!(accepted(&got, "session.finalized").len(), 8);
}
