//! `heartbeats`: N simulated students sending heartbeats as fast as the
//! server answers (closed loop), over HTTP or over their live WebSocket.
//!
//! The server stores at most one WebSocket heartbeat per connection every
//! 5 s and acknowledges the rest with `"throttled": true`; the WS mode
//! therefore reports acknowledged messages/s and stored heartbeats/s apart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{self, CpuMeter, Samples, Statuses, Target};
use crate::sign::{run_prefix, Role, Signer};

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Mode {
    Http,
    Ws,
}

#[derive(Args, Clone)]
pub struct HeartbeatArgs {
    #[command(flatten)]
    pub conn: crate::Conn,
    /// Simulated students (each with its own access token).
    #[arg(long, default_value_t = 1000)]
    pub students: usize,
    /// Students per room (rooms = students / this).
    #[arg(long, default_value_t = 25)]
    pub per_room: usize,
    #[arg(long, value_enum, default_value_t = Mode::Http)]
    pub mode: Mode,
    /// HTTP: requests in flight (each worker cycles through its students).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Do not schedule the rooms first (heartbeats for unscheduled rooms
    /// skip the attendance computation).
    #[arg(long)]
    pub no_schedule: bool,
    /// WS: one heartbeat per connection per interval, starts spread over
    /// the first interval (0 = closed loop: the next as soon as the ack
    /// arrives). Servers that cap messages per socket (e.g. 30 per 10 s)
    /// close a closed-loop client; `--interval 400ms` stays under that.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Loopback source addresses for WS mode (127.0.0.1 … 127.0.0.N).
    #[arg(long, default_value_t = 1)]
    pub source_ips: u8,
}

/// One socket's (or HTTP worker's) counts, and everyone's together.
#[derive(Default)]
struct Tally {
    latency: Samples,
    statuses: Statuses,
    acked: u64,
    stored: u64,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latency.merge(other.latency);
        self.statuses.merge(other.statuses);
        self.acked += other.acked;
        self.stored += other.stored;
    }
}

pub async fn run(args: HeartbeatArgs) -> anyhow::Result<()> {
    let target = Target::parse(&args.conn.url)?;
    let signer = Signer::new(&args.conn.key, &args.conn.secret);
    let students = args.students.max(1);
    let per_room = args.per_room.max(1);
    let prefix = run_prefix();
    let rooms: Vec<String> = (0..students.div_ceil(per_room))
        .map(|r| format!("hb-{prefix}-{r}"))
        .collect();
    let who: Arc<Vec<(String, String)>> = Arc::new(
        (0..students)
            .map(|i| {
                let room = rooms[i / per_room].clone();
                let token = signer.access_token(&format!("student-{i}"), &room, Role::Student);
                (room, token)
            })
            .collect(),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    if !args.no_schedule {
        common::schedule_all(&client, &target, &signer, &rooms).await?;
    }
    eprintln!(
        "heartbeats: {students} students in {} rooms over {:?}, {:?}",
        rooms.len(),
        args.mode,
        args.duration
    );
    let (tally, secs, cpu, connected) = match args.mode {
        Mode::Http => {
            let (t, s, c) = http(&args, &target, &client, who).await?;
            (t, s, c, None)
        }
        Mode::Ws => {
            common::raise_fd_limit(students as u64 * 2 + 1024);
            let (t, s, c, n) = ws(&args, &target, who).await?;
            (t, s, c, Some(n))
        }
    };
    let latency = &tally.latency.histogram();
    let result = json!({
        "scenario": "heartbeats",
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "url": target.base,
        "students": students, "rooms": rooms.len(),
        "interval_ms": args.interval.as_millis() as u64,
        "connected": connected,
        "seconds": (secs * 100.0).round() / 100.0,
        "acked": tally.acked,
        "acked_per_s": (tally.acked as f64 / secs).round(),
        "stored": tally.stored,
        "stored_per_s": (tally.stored as f64 / secs).round(),
        "latency": common::percentiles(latency),
        "statuses": tally.statuses.to_json(),
        "cpu": cpu,
    });
    eprintln!(
        "heartbeats: {} acked ({:.0}/s), {} stored ({:.0}/s); latency {}",
        tally.acked,
        tally.acked as f64 / secs,
        tally.stored,
        tally.stored as f64 / secs,
        common::percentiles(latency)
    );
    common::print_result(&result);
    common::require(tally.acked > 0, "no heartbeat was acknowledged")
}

async fn http(
    args: &HeartbeatArgs,
    target: &Target,
    client: &reqwest::Client,
    who: Arc<Vec<(String, String)>>,
) -> anyhow::Result<(Tally, f64, Value)> {
    let started = Instant::now();
    let deadline = started + args.duration;
    let cpu = CpuMeter::start(args.conn.server_pid);
    let workers = args.concurrency.clamp(1, who.len());
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, target, who) = (client.clone(), target.clone(), who.clone());
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let mut i = w;
            while Instant::now() < deadline {
                let (room, token) = &who[i];
                i = (i + workers) % who.len();
                let t0 = Instant::now();
                match client
                    .post(target.url(&format!("/api/sessions/{room}/heartbeat")))
                    .bearer_auth(token)
                    .send()
                    .await
                {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        t.latency.record(t0.elapsed());
                        t.statuses.add(status.to_string());
                        if status == 200 {
                            t.acked += 1;
                            t.stored += 1;
                        }
                    }
                    Err(e) => {
                        t.statuses
                            .add(format!("error: {}", crate::ingest::short_error(&e)));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            t
        }));
    }
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await?);
    }
    Ok((tally, started.elapsed().as_secs_f64(), cpu.report()))
}

async fn ws(
    args: &HeartbeatArgs,
    target: &Target,
    who: Arc<Vec<(String, String)>>,
) -> anyhow::Result<(Tally, f64, Value, usize)> {
    // Connect everyone first (64 handshakes at a time), each with its
    // snapshot read, then start the clock: the rate measured is the steady
    // one, not heartbeats queued behind the connect storm's snapshots.
    let ips = common::source_ips(args.source_ips);
    let sockets: Vec<anyhow::Result<common::Ws>> = futures_util::stream::iter(0..who.len())
        .map(|i| {
            let (target, who, ip) = (target.clone(), who.clone(), ips[i % ips.len()]);
            async move {
                let (room, token) = &who[i];
                tokio::time::timeout(Duration::from_secs(30), async {
                    let mut ws = common::ws_connect(&target, ip, room, token).await?;
                    match ws.next().await {
                        Some(Ok(Message::Text(text)))
                            if text.contains("\"attendance.snapshot\"") =>
                        {
                            Ok(ws)
                        }
                        other => Err(anyhow::anyhow!("no snapshot: {other:?}")),
                    }
                })
                .await
                .map_err(|_| anyhow::anyhow!("connect timeout"))?
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut connect_errors = Statuses::default();
    let sockets: Vec<common::Ws> = sockets
        .into_iter()
        .filter_map(|r| {
            r.map_err(|e| connect_errors.add(format!("connect: {e}")))
                .ok()
        })
        .collect();
    let connected = sockets.len();
    eprintln!("heartbeats: {connected} WebSockets open");
    let started = Instant::now();
    let deadline = started + args.duration;
    let cpu = CpuMeter::start(args.conn.server_pid);
    let mut tasks = Vec::new();
    let interval = args.interval;
    let n = sockets.len().max(1) as u32;
    for (i, mut socket) in sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let (mut throttled, mut ended) = (0u64, None);
            let beat = Message::text(r#"{"type":"heartbeat"}"#);
            // One timer for the pace and one for the end, reused: a timer
            // registered per message would cost more than the message.
            let first = started + interval * i as u32 / n;
            let mut pace =
                tokio::time::interval_at(first.into(), interval.max(Duration::from_micros(1)));
            // After a slow ack, skip the missed slots instead of sending them
            // back to back: a burst would exceed the server's per-socket
            // message cap and get the socket closed.
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let end = tokio::time::sleep_until((deadline + Duration::from_secs(5)).into());
            tokio::pin!(end);
            'outer: while Instant::now() < deadline {
                if !interval.is_zero() {
                    pace.tick().await;
                    if Instant::now() >= deadline {
                        break;
                    }
                }
                let t0 = Instant::now();
                if socket.send(beat.clone()).await.is_err() {
                    ended = Some("send failed");
                    break;
                }
                loop {
                    let message = tokio::select! {
                        m = socket.next() => m,
                        _ = &mut end => None,
                    };
                    let Some(Ok(message)) = message else {
                        ended = Some("closed");
                        break 'outer;
                    };
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let text = text.as_str();
                    if text.contains("\"heartbeat.ack\"") {
                        t.latency.record(t0.elapsed());
                        t.acked += 1;
                        if text.contains("\"throttled\":true") {
                            throttled += 1;
                        } else {
                            t.stored += 1;
                        }
                        break;
                    } else if text.contains("\"type\":\"error\"") {
                        // Counted by what the server said.
                        let said = serde_json::from_str::<Value>(text)
                            .ok()
                            .and_then(|v| v["message"].as_str().map(str::to_string))
                            .unwrap_or_default();
                        t.statuses.add(format!("error message: {said}"));
                        break;
                    }
                }
            }
            for (what, count) in [("ack throttled", throttled), ("ack stored", t.stored)] {
                if count > 0 {
                    t.statuses.0.insert(what.to_string(), count);
                }
            }
            if let Some(why) = ended {
                t.statuses.add(why);
            }
            let _ = socket.close(None).await;
            t
        }));
    }
    let mut tally = Tally::default();
    tally.statuses.merge(connect_errors);
    for task in tasks {
        tally.merge(task.await?);
    }
    Ok((
        tally,
        started.elapsed().as_secs_f64(),
        cpu.report(),
        connected,
    ))
}
