//! `ingest`: a whole school's classes starting at once. Every (room, student)
//! pair is one task: `participant_joined`, then `participant_left`, signed
//! as livekit-server signs them; `--concurrency` tasks in flight, rounds
//! repeated (fresh room and participant sids, fresh `EV_` ids) until
//! `--duration` or `--max-events`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use crate::common::{self, CpuMeter, Statuses, Target};
use crate::sign::{livekit_id, participant_event, run_prefix, Participant, Role, Signer};

#[derive(Args, Clone)]
pub struct IngestArgs {
    #[command(flatten)]
    pub conn: crate::Conn,
    /// Rooms (classes) starting at once.
    #[arg(long, default_value_t = 200)]
    pub rooms: u64,
    /// Students per room.
    #[arg(long, default_value_t = 25)]
    pub students: u64,
    /// Webhook requests in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How long to send (stops by itself).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Stop after this many webhooks even if time is left.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_events: u64,
    /// After sending, wait up to this long for the server's processor to
    /// drain its inbox (reads `attendance_webhooks_pending` from /metrics;
    /// 0s skips; the reference server has no such metric).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
}

struct Worker {
    latency: hdrhistogram::Histogram<u64>,
    statuses: Statuses,
    accepted: u64,
}

pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    let target = Target::parse(&args.conn.url)?;
    let signer = Signer::new(&args.conn.key, &args.conn.secret);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    let per_round = (args.rooms * args.students).max(1);
    let prefix = run_prefix();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + args.duration;
    let cpu = CpuMeter::start(args.conn.server_pid);
    eprintln!(
        "ingest: {} rooms x {} students, {} in flight, {:?} (run {prefix})",
        args.rooms, args.students, args.concurrency, args.duration
    );

    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, target, signer, next, prefix) = (
            client.clone(),
            target.clone(),
            signer.clone(),
            next.clone(),
            prefix.clone(),
        );
        let students = args.students.max(1);
        let max_pairs = args.max_events / 2;
        tasks.push(tokio::spawn(async move {
            let mut w = Worker {
                latency: common::histogram(),
                statuses: Statuses::default(),
                accepted: 0,
            };
            let url = target.url("/webhooks/livekit");
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= max_pairs || Instant::now() >= deadline {
                    break;
                }
                let round = n / per_round;
                let pair = n % per_round;
                let room_idx = pair / students;
                let room = format!("load-{prefix}-{room_idx}");
                let room_sid = livekit_id("RM", &prefix, round * 1_000_000 + room_idx);
                let sid = livekit_id("PA", &prefix, n);
                let identity = format!("student-{}", pair % students);
                let joined_ms = chrono::Utc::now().timestamp_millis();
                for (i, kind) in ["participant_joined", "participant_left"]
                    .into_iter()
                    .enumerate()
                {
                    let body = participant_event(
                        kind,
                        &livekit_id("EV", &prefix, n * 2 + i as u64),
                        chrono::Utc::now().timestamp(),
                        &Participant {
                            room: &room,
                            room_sid: &room_sid,
                            sid: &sid,
                            identity: &identity,
                            joined_at_ms: joined_ms,
                        },
                    );
                    let token = signer.webhook_token(body.as_bytes());
                    let t0 = Instant::now();
                    let result = client
                        .post(&url)
                        .header("Content-Type", "application/webhook+json")
                        .header("Authorization", token)
                        .body(body)
                        .send()
                        .await;
                    match result {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let text = response.text().await.unwrap_or_default();
                            common::record(&mut w.latency, t0.elapsed());
                            if status == 200 && text.contains("\"accepted\"") {
                                w.accepted += 1;
                                w.statuses.add("200 accepted");
                            } else if status == 200 && text.contains("\"duplicate\"") {
                                w.statuses.add("200 duplicate");
                            } else if status == 200 {
                                w.statuses.add("200 other");
                            } else {
                                w.statuses.add(status.to_string());
                            }
                        }
                        Err(e) => {
                            w.statuses.add(format!("error: {}", short_error(&e)));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            }
            w
        }));
    }
    let mut latency = common::histogram();
    let mut statuses = Statuses::default();
    let mut accepted = 0;
    for task in tasks {
        let w = task.await?;
        latency.add(&w.latency).expect("same bounds");
        statuses.merge(w.statuses);
        accepted += w.accepted;
    }
    let send_secs = started.elapsed().as_secs_f64();
    let cpu_send = cpu.report();
    let drained = if args.drain_timeout.is_zero() {
        None
    } else {
        wait_drained(&client, &target, args.drain_timeout).await
    };
    let drain = drained.map(|at| {
        let secs = (at - started).as_secs_f64();
        json!({"drained_after_s": round2(secs), "processed_per_s": (accepted as f64 / secs).round()})
    });
    let dead_letters = dead_letters(&client, &target, &signer).await;
    let result = json!({
        "scenario": "ingest",
        "url": target.base,
        "rooms": args.rooms, "students": args.students, "concurrency": args.concurrency,
        "seconds": round2(send_secs),
        "sent": latency.len(),
        "accepted": accepted,
        "accepted_per_s": (accepted as f64 / send_secs).round(),
        "latency": common::percentiles(&latency),
        "statuses": statuses.to_json(),
        "cpu": cpu_send,
        "processing": drain,
        "dead_letters": dead_letters,
    });
    eprintln!(
        "ingest: {accepted} accepted in {send_secs:.2}s = {:.0}/s; latency {}",
        accepted as f64 / send_secs,
        common::percentiles(&latency)
    );
    common::print_result(&result);
    common::require(accepted > 0, "no webhook was accepted")
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn short_error(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    }
}

/// The server's `attendance_webhooks_pending`, from /metrics.
pub async fn pending(client: &reqwest::Client, target: &Target) -> Option<f64> {
    let text = client
        .get(target.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("attendance_webhooks_pending "))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

/// When the server's inbox is empty (`attendance_webhooks_pending 0`).
pub async fn wait_drained(
    client: &reqwest::Client,
    target: &Target,
    within: Duration,
) -> Option<Instant> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if pending(client, target).await? == 0.0 {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("ingest: inbox not drained within {within:?}");
    None
}

/// Dead-lettered webhooks, from the admin API (an admin token as LiveKit
/// mints one: `roomCreate` + `roomList`); `null` where the route is missing.
async fn dead_letters(client: &reqwest::Client, target: &Target, signer: &Signer) -> Option<usize> {
    let response = client
        .get(target.url("/api/admin/webhooks?status=failed&limit=1000"))
        .bearer_auth(signer.access_token("loadgen-admin", "", Role::Admin))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: serde_json::Value = response.json().await.ok()?;
    body["webhooks"].as_array().map(Vec::len)
}
