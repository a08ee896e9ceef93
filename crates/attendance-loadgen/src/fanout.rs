//! `fanout`: `--rooms` × `--per-room` live subscribers (`--teachers` per
//! room see everyone; the others are students who see themselves), then
//! `participant_joined` webhooks for those students. Measures the push
//! latency from each `attendance.updated` message's `server_time` to its
//! receipt, and end to end from posting the webhook to receipt.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{self, CpuMeter, Samples, Statuses, Target};
use crate::sign::{livekit_id, participant_event, run_prefix, Participant, Role, Signer};

#[derive(Args, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub conn: crate::Conn,
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Subscribers per room, teachers included.
    #[arg(long, default_value_t = 500)]
    pub per_room: usize,
    /// Subscribers per room with a teacher token (they get every update).
    #[arg(long, default_value_t = 1)]
    pub teachers: usize,
    /// Webhooks to post (one `participant_joined` per student, rooms taken
    /// in turn); default: every subscribed student, at most 2,000 (200 when
    /// every subscriber is a teacher).
    #[arg(long)]
    pub events: Option<usize>,
    /// Webhooks per second (0 = as fast as the server accepts them).
    #[arg(long, default_value_t = 200)]
    pub rate: u64,
    /// Webhook requests in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// After the last webhook, wait at most this long for the pushes.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Loopback source addresses (127.0.0.1 … 127.0.0.N).
    #[arg(long, default_value_t = 1)]
    pub source_ips: u8,
    /// Post the webhooks to this instance (another server on the same
    /// database) while the sockets listen on `--url`: the cross-instance
    /// push latency, end to end.
    #[arg(long)]
    pub webhooks_url: Option<String>,
}

/// What a reader needs of an `attendance.updated` push (borrowed: no
/// allocation per message).
#[derive(serde::Deserialize)]
struct Push<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    identity: Cow<'a, str>,
    #[serde(default, borrow)]
    server_time: Cow<'a, str>,
}

struct Sub {
    room: String,
    identity: String,
    token: String,
}

#[derive(Default)]
struct Received {
    push: Samples,
    end_to_end: Samples,
    updates: u64,
    resyncs: u64,
    closed: bool,
}

pub async fn run(args: FanoutArgs) -> anyhow::Result<()> {
    let target = Target::parse(&args.conn.url)?;
    let signer = Signer::new(&args.conn.key, &args.conn.secret);
    let prefix = run_prefix();
    let per_room = args.per_room.max(1);
    let teachers = args.teachers.min(per_room);
    let rooms: Vec<String> = (0..args.rooms.max(1))
        .map(|r| format!("fan-{prefix}-{r}"))
        .collect();
    let fd = common::raise_fd_limit((rooms.len() * per_room) as u64 * 2 + 1024);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    common::schedule_all(&client, &target, &signer, &rooms).await?;

    let mut subs = Vec::new();
    for room in &rooms {
        for i in 0..per_room {
            let (identity, role) = if i < teachers {
                (format!("teacher-{i}"), Role::Teacher)
            } else {
                (format!("student-{i}"), Role::Student)
            };
            let token = signer.access_token(&identity, room, role);
            subs.push(Sub {
                room: room.clone(),
                identity,
                token,
            });
        }
    }
    eprintln!(
        "fanout: {} rooms x {per_room} subscribers ({teachers} teacher(s) each); fd limit {fd}",
        rooms.len()
    );

    // Connect everyone (64 handshakes at a time) before any webhook.
    let ips = common::source_ips(args.source_ips);
    let connect_started = Instant::now();
    let results: Vec<anyhow::Result<common::Ws>> =
        futures_util::stream::iter(subs.iter().enumerate())
            .map(|(i, s)| {
                let (target, ip) = (target.clone(), ips[i % ips.len()]);
                async move {
                    let mut ws = tokio::time::timeout(
                        Duration::from_secs(30),
                        common::ws_connect(&target, ip, &s.room, &s.token),
                    )
                    .await
                    .map_err(|_| anyhow::anyhow!("connect timeout"))??;
                    // The snapshot comes first.
                    tokio::time::timeout(Duration::from_secs(30), ws.next())
                        .await
                        .map_err(|_| anyhow::anyhow!("no snapshot"))?;
                    Ok(ws)
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
    let mut errors = Statuses::default();
    let mut sockets = Vec::new();
    for (r, s) in results.into_iter().zip(&subs) {
        match r {
            Ok(ws) => sockets.push((ws, s)),
            Err(e) => errors.add(format!("connect: {e}")),
        }
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    eprintln!(
        "fanout: {} of {} subscribers connected in {connect_secs:.1}s",
        sockets.len(),
        subs.len()
    );

    // Which subscriber hears about whom: teachers everyone, students themselves.
    let connected_students: HashMap<(String, String), u64> =
        sockets.iter().fold(HashMap::new(), |mut m, (_, s)| {
            if !s.identity.starts_with("teacher-") {
                *m.entry((s.room.clone(), s.identity.clone())).or_default() += 1;
            }
            m
        });
    let teachers_in: HashMap<String, u64> = sockets.iter().fold(HashMap::new(), |mut m, (_, s)| {
        if s.identity.starts_with("teacher-") {
            *m.entry(s.room.clone()).or_default() += 1;
        }
        m
    });

    // The webhooks: one join per student, rooms in turn, paced.
    // Students beyond the subscribers (e.g. `--teachers` = `--per-room`)
    // still join: only the teachers hear about them.
    let students_per_room = per_room - teachers;
    let total = args.events.unwrap_or(if students_per_room == 0 {
        200
    } else {
        (rooms.len() * students_per_room).min(2000)
    });
    let plan: Vec<(String, String)> = (0..total)
        .map(|n| {
            let room = rooms[n % rooms.len()].clone();
            (room, format!("student-{}", teachers + n / rooms.len()))
        })
        .collect();
    // When each planned webhook was posted (ns after `base`, 0: not yet),
    // found from a push by its room and identity without a lock or an
    // allocation: the readers must cost far less than the server they time.
    let base = Instant::now();
    let posted_at: Arc<Vec<AtomicU64>> = Arc::new(plan.iter().map(|_| AtomicU64::new(0)).collect());
    let mut plan_index: HashMap<&str, HashMap<String, usize>> = HashMap::new();
    for (n, (room, identity)) in plan.iter().enumerate() {
        plan_index
            .entry(room)
            .or_default()
            .insert(identity.clone(), n);
    }
    let plan_index: HashMap<&str, Arc<HashMap<String, usize>>> = plan_index
        .into_iter()
        .map(|(room, m)| (room, Arc::new(m)))
        .collect();
    let received = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut readers = Vec::new();
    for (mut ws, s) in sockets {
        let (posted_at, received, mut stop) =
            (posted_at.clone(), received.clone(), stop_rx.clone());
        let index = plan_index.get(s.room.as_str()).cloned().unwrap_or_default();
        readers.push(tokio::spawn(async move {
            let mut r = Received::default();
            // One stop future for the socket's life: a new one per message
            // would lock the channel's waiter list twice per message.
            let stopped = stop.changed();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    biased;
                    message = ws.next() => {
                        let Some(Ok(message)) = message else { r.closed = true; break };
                        let Message::Text(text) = message else { continue };
                        let now = chrono::Utc::now();
                        let arrived = Instant::now();
                        let text = text.as_str();
                        if text.contains("\"attendance.snapshot\"") {
                            r.resyncs += 1;
                            continue;
                        }
                        let Ok(push) = serde_json::from_str::<Push>(text) else { continue };
                        if push.kind != "attendance.updated" { continue }
                        r.updates += 1;
                        received.fetch_add(1, Ordering::Relaxed);
                        if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&push.server_time) {
                            let d = (now - at.to_utc()).to_std().unwrap_or_default();
                            r.push.record(d);
                        }
                        let posted = index.get(push.identity.as_ref()).map(|&n| posted_at[n].load(Ordering::Relaxed));
                        if let Some(posted @ 1..) = posted {
                            let posted = base + Duration::from_nanos(posted);
                            r.end_to_end.record(arrived - posted);
                        }
                    }
                    _ = &mut stopped => break,
                }
            }
            let _ = ws.close(None).await;
            r
        }));
    }

    let expected: u64 = plan
        .iter()
        .map(|(room, identity)| {
            teachers_in.get(room).copied().unwrap_or(0)
                + connected_students
                    .get(&(room.clone(), identity.clone()))
                    .copied()
                    .unwrap_or(0)
        })
        .sum();
    let cpu = CpuMeter::start(args.conn.server_pid);
    let post_started = Instant::now();
    let interval = (args.rate > 0).then(|| Duration::from_secs_f64(1.0 / args.rate as f64));
    let statuses = Arc::new(Mutex::new(Statuses::default()));
    let webhook_url = match &args.webhooks_url {
        Some(url) => Target::parse(url)?.url("/webhooks/livekit"),
        None => target.url("/webhooks/livekit"),
    };
    futures_util::stream::iter(plan.iter().enumerate())
        .map(|(n, (room, identity))| {
            let (client, signer, posted_at, statuses, url, prefix) = (
                client.clone(),
                signer.clone(),
                posted_at.clone(),
                statuses.clone(),
                webhook_url.clone(),
                prefix.clone(),
            );
            async move {
                if let Some(every) = interval {
                    tokio::time::sleep_until((post_started + every * n as u32).into()).await;
                }
                let now = chrono::Utc::now();
                let body = participant_event(
                    "participant_joined",
                    &livekit_id("EV", &prefix, n as u64),
                    now.timestamp(),
                    &Participant {
                        room,
                        room_sid: &livekit_id("RM", &prefix, 0),
                        sid: &livekit_id("PA", &prefix, n as u64),
                        identity,
                        joined_at_ms: now.timestamp_millis(),
                    },
                );
                let token = signer.webhook_token(body.as_bytes());
                let since_base = (Instant::now() - base).as_nanos().max(1) as u64;
                posted_at[n].store(since_base, Ordering::Relaxed);
                let status = match client
                    .post(&url)
                    .header("Content-Type", "application/webhook+json")
                    .header("Authorization", token)
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let text = r.text().await.unwrap_or_default();
                        if text.contains("\"duplicate\"") {
                            format!("{status} duplicate")
                        } else {
                            status.to_string()
                        }
                    }
                    Err(e) => format!("error: {}", crate::ingest::short_error(&e)),
                };
                statuses
                    .lock()
                    .expect("lock")
                    .add(format!("webhook {status}"));
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect::<Vec<()>>()
        .await;
    let post_secs = post_started.elapsed().as_secs_f64();
    let settle_deadline = Instant::now() + args.settle;
    while received.load(Ordering::Relaxed) < expected && Instant::now() < settle_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = cpu.report();
    let _ = stop_tx.send(true);
    let mut push = Samples::default();
    let mut end_to_end = Samples::default();
    let (mut updates, mut resyncs, mut closed) = (0, 0, 0);
    for reader in readers {
        let r = reader.await?;
        push.merge(r.push);
        end_to_end.merge(r.end_to_end);
        updates += r.updates;
        resyncs += r.resyncs;
        closed += u64::from(r.closed);
    }
    let (push, end_to_end) = (push.histogram(), end_to_end.histogram());
    let mut statuses = std::mem::take(&mut *statuses.lock().expect("lock"));
    statuses.merge(errors);
    let result = json!({
        "scenario": "fanout",
        "url": target.base,
        "webhooks_url": args.webhooks_url,
        "rooms": rooms.len(), "per_room": per_room, "teachers_per_room": teachers,
        "subscribers": subs.len(),
        "connected": subs.len() as u64 - statuses.0.iter().filter(|(k, _)| k.starts_with("connect")).map(|(_, v)| v).sum::<u64>(),
        "connect_seconds": (connect_secs * 100.0).round() / 100.0,
        "webhooks": plan.len(),
        "webhook_seconds": (post_secs * 100.0).round() / 100.0,
        "expected_updates": expected,
        "updates": updates,
        "resyncs": resyncs,
        "closed_by_server": closed,
        "push_latency": common::percentiles(&push),
        "end_to_end_latency": common::percentiles(&end_to_end),
        "statuses": statuses.to_json(),
        "cpu": cpu,
    });
    eprintln!(
        "fanout: {updates}/{expected} updates; push {}; webhook→receipt {}",
        common::percentiles(&push),
        common::percentiles(&end_to_end)
    );
    common::print_result(&result);
    common::require(updates > 0, "no attendance.updated message arrived")
}
