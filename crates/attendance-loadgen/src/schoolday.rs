//! `schoolday`: a school's morning as one run. `--rooms` classes of
//! `--students` start in `--waves` (a wave every `--wave-gap`): each wave's
//! rooms are scheduled as lessons starting then, each room's teacher opens
//! the dashboard (one live socket per room), and the students join over
//! `--join-spread`: a LiveKit-signed `participant_joined` webhook, then the
//! student's own live socket, which sends a heartbeat every
//! `--heartbeat-interval` (the first at a random offset). `--reconnect-share`
//! of the students drop out once mid-lesson (`participant_left`, a pause,
//! `participant_joined` with a new participant sid, a new socket). Every
//! lesson lasts as long, so all classes are in session together for
//! `--hold` after the last wave's last join; then each wave leaves over
//! `--leave-spread` (`participant_left`, socket closed).
//!
//! Measured: heartbeat acknowledgement latency on the students' sockets;
//! push latency on the teachers' sockets, from posting a join or leave
//! webhook to the first `attendance.updated` (or snapshot) that shows it;
//! the server's webhook inbox (`attendance_webhooks_pending`) sampled
//! through the run; CPU of the server(s) and of this generator.
//!
//! `pass` is true when push p99 and heartbeat ack p99 are under their
//! bounds (200 ms), the inbox is not growing (see [`Backlog`]) and nothing
//! failed (every webhook 2xx, every socket connected and kept, every
//! heartbeat acknowledged, every join and leave pushed to its teacher).
//!
//! Several `--url`s are instances of one deployment (one database): room i
//! posts its webhooks and opens its students' sockets on instance i mod n,
//! and its teacher watches from instance i+1 mod n, so every push crosses
//! between instances.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{self, CpuMeter, Statuses, Target, Ws};
use crate::sign::{livekit_id, participant_event, run_prefix, Participant, Role, Signer};

#[derive(Args, Clone)]
pub struct SchooldayArgs {
    /// Base URL of an instance (http://127.0.0.1:PORT); repeat for several
    /// instances on one database: rooms are shared out between them.
    #[arg(long = "url", required = true)]
    pub urls: Vec<String>,
    /// LiveKit API key the server trusts.
    #[arg(long, env = "LIVEKIT_API_KEY")]
    pub key: String,
    /// LiveKit API secret.
    #[arg(long, env = "LIVEKIT_API_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The instances' pids (repeat, any order): their CPU use from /proc.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// Classes (rooms).
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Students per class.
    #[arg(long, default_value_t = 30)]
    pub students: usize,
    /// The classes start in this many waves (consecutive rooms together).
    #[arg(long, default_value_t = 3)]
    pub waves: usize,
    /// Time between two waves' lesson starts.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub wave_gap: Duration,
    /// A wave's students join uniformly over this long from its start.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub join_spread: Duration,
    /// A heartbeat on each student socket this often (the first at a
    /// random offset within one interval).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,
    /// Every class in session together this long after the last join.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub hold: Duration,
    /// A wave's students leave uniformly over this long.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub leave_spread: Duration,
    /// Share of the students who drop out once mid-lesson and come back.
    #[arg(long, default_value_t = 0.02)]
    pub reconnect_share: f64,
    /// How long a reconnecting student is away (left → joined again).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub reconnect_pause: Duration,
    /// Read the inbox's pending count this often.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub backlog_every: Duration,
    /// Pending webhooks allowed at the end of the hold and after the run.
    #[arg(long, default_value_t = 50.0)]
    pub backlog_bound: f64,
    /// After the last leave, wait at most this long for the inbox to drain.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub drain_wait: Duration,
    /// After the last leave, wait at most this long for the teachers' pushes.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Push p99 must stay under this (ms).
    #[arg(long, default_value_t = 200.0)]
    pub push_p99_ms: f64,
    /// Heartbeat acknowledgement p99 must stay under this (ms).
    #[arg(long, default_value_t = 200.0)]
    pub ack_p99_ms: f64,
    /// Loopback source addresses (127.0.0.1 … 127.0.0.N) for the sockets.
    #[arg(long, default_value_t = 4)]
    pub source_ips: u8,
}

/// A join or leave webhook posted for a room, not yet seen by its teacher.
struct Expect {
    sid: String,
    joined: bool,
    posted: Instant,
}

/// What the whole run shares.
struct Shared {
    signer: Signer,
    prefix: String,
    client: reqwest::Client,
    targets: Vec<Target>,
    ips: Vec<IpAddr>,
    rooms: Vec<String>,
    /// Per room: identity → the change its teacher has yet to see.
    expect: Vec<Mutex<HashMap<String, Expect>>>,
    events: AtomicU64,
    in_class: AtomicI64,
    peak: AtomicI64,
    /// Changes a teacher never saw (replaced by a newer one first).
    push_lost: AtomicU64,
    interval: Duration,
    pause: Duration,
}

impl Shared {
    /// Room i: webhooks and its students' sockets here.
    fn home(&self, room: usize) -> &Target {
        &self.targets[room % self.targets.len()]
    }

    /// Room i's teacher dashboard: the next instance, if there is one.
    fn teacher_home(&self, room: usize) -> &Target {
        &self.targets[(room + 1) % self.targets.len()]
    }

    fn ip(&self, n: usize) -> IpAddr {
        self.ips[n % self.ips.len()]
    }
}

/// One student's (or the run's) counts. Latencies stay plain lists until
/// the end: a histogram apiece would cost every student ~170 KiB.
struct Tally {
    acks: Vec<Duration>,
    webhook: Vec<Duration>,
    webhooks_sent: u64,
    webhooks_failed: u64,
    acks_missing: u64,
    socket_errors: u64,
    reconnects: u64,
    statuses: Statuses,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            acks: Vec::new(),
            webhook: Vec::new(),
            webhooks_sent: 0,
            webhooks_failed: 0,
            acks_missing: 0,
            socket_errors: 0,
            reconnects: 0,
            statuses: Statuses::default(),
        }
    }

    fn merge(&mut self, other: Tally) {
        self.acks.extend(other.acks);
        self.webhook.extend(other.webhook);
        self.webhooks_sent += other.webhooks_sent;
        self.webhooks_failed += other.webhooks_failed;
        self.acks_missing += other.acks_missing;
        self.socket_errors += other.socket_errors;
        self.reconnects += other.reconnects;
        self.statuses.merge(other.statuses);
    }
}

/// A teacher dashboard's counts.
struct Watched {
    push: Vec<Duration>,
    updates: u64,
    snapshots: u64,
    socket_errors: u64,
    statuses: Statuses,
}

/// When and how one student spends the lesson.
struct Plan {
    room: usize,
    seat: usize,
    join_at: Instant,
    leave_at: Instant,
    reconnect_at: Option<Instant>,
    first_beat: Duration,
}

/// Small socket buffers: tens of thousands of sockets that each carry a
/// heartbeat a minute (or a room's updates) would otherwise hold 128 KiB
/// read and write buffers apiece in this one process.
fn small_buffers() -> Option<WebSocketConfig> {
    Some(
        WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .write_buffer_size(0),
    )
}

/// A uniform number in [0, 1) from (`n`, `salt`): the same run plan every
/// time for the same arguments (splitmix64).
fn unit(n: u64, salt: u64) -> f64 {
    let mut z = n
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The webhook inbox through the run: samples of the largest pending count
/// over the instances (on one PostgreSQL database they share the inbox).
///
/// The backlog is *growing* when, at the end of the hold (every class in
/// session, joins over), more than `--backlog-bound` webhooks still wait and
/// the count rose over the hold (least-squares slope > 0); it must also be
/// at most `--backlog-bound` once the run is over (after `--drain-wait`).
struct Backlog {
    samples: Vec<(f64, Option<f64>)>,
}

impl Backlog {
    fn in_window(&self, from: f64, to: f64) -> Vec<(f64, f64)> {
        self.samples
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .filter_map(|(t, v)| v.map(|v| (*t, v)))
            .collect()
    }

    /// Pending webhooks per minute, least squares over `points`.
    fn slope_per_min(points: &[(f64, f64)]) -> Option<f64> {
        if points.len() < 2 {
            return None;
        }
        let n = points.len() as f64;
        let mt = points.iter().map(|p| p.0).sum::<f64>() / n;
        let mv = points.iter().map(|p| p.1).sum::<f64>() / n;
        let var = points.iter().map(|p| (p.0 - mt).powi(2)).sum::<f64>();
        if var == 0.0 {
            return None;
        }
        let cov = points.iter().map(|p| (p.0 - mt) * (p.1 - mv)).sum::<f64>();
        Some(cov / var * 60.0)
    }
}

async fn pending_max(client: &reqwest::Client, targets: &[Target]) -> Option<f64> {
    let mut max: Option<f64> = None;
    for target in targets {
        if let Some(v) = crate::ingest::pending(client, target).await {
            max = Some(max.map_or(v, |m: f64| m.max(v)));
        }
    }
    max
}

pub async fn run(args: SchooldayArgs) -> anyhow::Result<()> {
    let targets = args
        .urls
        .iter()
        .map(|u| Target::parse(u))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rooms_n = args.rooms.max(1);
    let per_room = args.students.max(1);
    let waves = args.waves.clamp(1, rooms_n);
    let students_n = rooms_n * per_room;
    let fd = common::raise_fd_limit((students_n + rooms_n) as u64 * 2 + 1024);
    // One descriptor per socket, plus the webhook connections and /proc.
    let fd_needed = (students_n + rooms_n + 256) as u64;
    if fd < fd_needed {
        eprintln!(
            "schoolday: {fd_needed} descriptors needed, the limit is {fd}: sockets will fail \
             (the load generator's limit, not the server's)"
        );
    }
    let prefix = run_prefix();
    let rooms: Vec<String> = (0..rooms_n).map(|r| format!("day-{prefix}-{r}")).collect();
    let shared = Arc::new(Shared {
        signer: Signer::new(&args.key, &args.secret),
        prefix: prefix.clone(),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()?,
        targets: targets.clone(),
        ips: common::source_ips(args.source_ips),
        expect: rooms.iter().map(|_| Mutex::default()).collect(),
        rooms,
        events: AtomicU64::new(0),
        in_class: AtomicI64::new(0),
        peak: AtomicI64::new(0),
        push_lost: AtomicU64::new(0),
        interval: args.heartbeat_interval.max(Duration::from_millis(100)),
        pause: args.reconnect_pause,
    });

    // The day's timeline; every lesson lasts `lesson`.
    let t0 = Instant::now() + Duration::from_secs(1);
    let last_wave = args.wave_gap * (waves as u32 - 1);
    let lesson = last_wave + args.join_spread + args.hold;
    let wave_start = |w: usize| t0 + args.wave_gap * w as u32;
    let wave_of = |r: usize| r * waves / rooms_n;
    let joins_over = last_wave + args.join_spread;
    let end = last_wave + lesson + args.leave_spread;
    eprintln!(
        "schoolday: {rooms_n} rooms x {per_room} students on {} instance(s), {waves} waves {:?} apart, \
         joins over {:?}, heartbeats every {:?}, {:?} all in session; about {:.0}s (run {prefix}, fd limit {fd})",
        targets.len(),
        args.wave_gap,
        args.join_spread,
        shared.interval,
        args.hold,
        (end + Duration::from_secs(1)).as_secs_f64(),
    );

    let mut plans: Vec<Vec<Plan>> = (0..waves).map(|_| Vec::new()).collect();
    for room in 0..rooms_n {
        let start = wave_start(wave_of(room));
        let leave_start = start + lesson;
        for seat in 0..per_room {
            let n = (room * per_room + seat) as u64;
            let join_at = start + args.join_spread.mul_f64(unit(n, 1));
            let reconnect_at = (unit(n, 3) < args.reconnect_share)
                .then(|| {
                    // Away after a while in class, back well before it ends.
                    let margin = (args.hold / 4).min(Duration::from_secs(5));
                    let from = join_at + margin;
                    let to = leave_start.checked_sub(args.reconnect_pause + margin)?;
                    (to > from).then(|| from + (to - from).mul_f64(unit(n, 4)))
                })
                .flatten();
            plans[wave_of(room)].push(Plan {
                room,
                seat,
                join_at,
                leave_at: leave_start + args.leave_spread.mul_f64(unit(n, 2)),
                reconnect_at,
                first_beat: shared.interval.mul_f64(unit(n, 5)),
            });
        }
    }
    let reconnects_planned: usize = plans
        .iter()
        .flatten()
        .filter(|p| p.reconnect_at.is_some())
        .count();

    let cpu_self = CpuMeter::start(None);
    let cpu_servers: Vec<CpuMeter> = args
        .server_pids
        .iter()
        .map(|pid| CpuMeter::start(Some(*pid)))
        .collect();
    let (stop_tx, stop_rx) = watch::channel(false);

    // The inbox, every `--backlog-every`.
    let sampler = {
        let (shared, mut stop, every) = (shared.clone(), stop_rx.clone(), args.backlog_every);
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(200)));
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tick.tick() => {
                        let at = Instant::now().saturating_duration_since(t0).as_secs_f64();
                        let v = pending_max(&shared.client, &shared.targets).await;
                        samples.push(((at * 10.0).round() / 10.0, v));
                    }
                }
            }
            samples
        })
    };

    // Each wave: schedule its lessons, open its teachers' dashboards, then
    // let its students in.
    let mut wave_tasks = Vec::new();
    for (w, wave) in plans.into_iter().enumerate() {
        let (shared, stop) = (shared.clone(), stop_rx.clone());
        let start = wave_start(w);
        wave_tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let mut by_room: Vec<(usize, Vec<Plan>)> = Vec::new();
            for plan in wave {
                match by_room.last_mut() {
                    Some((room, plans)) if *room == plan.room => plans.push(plan),
                    _ => by_room.push((plan.room, vec![plan])),
                }
            }
            let opened: Vec<(Vec<JoinHandle<Tally>>, JoinHandle<Watched>, Statuses)> =
                futures_util::stream::iter(by_room)
                    .map(|(room, plans)| open_room(shared.clone(), room, plans, stop.clone()))
                    .buffer_unordered(16)
                    .collect()
                    .await;
            opened
        }));
    }

    let mut students = Vec::new();
    let mut teachers = Vec::new();
    let mut setup = Statuses::default();
    for task in wave_tasks {
        for (s, t, statuses) in task.await? {
            students.extend(s);
            teachers.push(t);
            setup.merge(statuses);
        }
    }
    eprintln!(
        "schoolday: every class started; {} students in session now",
        shared.in_class.load(Ordering::Relaxed)
    );
    let mut tally = Tally::new();
    for s in students {
        tally.merge(s.await?);
    }
    let leaves_done = Instant::now();
    // The last pushes, then the inbox.
    let settle_until = leaves_done + args.settle;
    while Instant::now() < settle_until
        && shared
            .expect
            .iter()
            .any(|e| !e.lock().expect("lock").is_empty())
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu_self = cpu_self.report();
    let cpu_servers: Vec<Value> = cpu_servers.iter().map(CpuMeter::report).collect();
    let _ = stop_tx.send(true);
    let mut push = common::histogram();
    let (mut updates, mut snapshots) = (0u64, 0u64);
    for t in teachers {
        let w = t.await?;
        w.push.iter().for_each(|d| common::record(&mut push, *d));
        updates += w.updates;
        snapshots += w.snapshots;
        tally.socket_errors += w.socket_errors;
        tally.statuses.merge(w.statuses);
    }
    tally.statuses.merge(setup);
    let push_missing = shared.push_lost.load(Ordering::Relaxed)
        + shared
            .expect
            .iter()
            .map(|e| e.lock().expect("lock").len() as u64)
            .sum::<u64>();
    let backlog = Backlog {
        samples: sampler.await?,
    };
    let drain_started = Instant::now();
    let mut drained_after = None;
    let final_pending = loop {
        let v = pending_max(&shared.client, &shared.targets).await;
        if v.is_none_or(|v| v <= 0.0) {
            drained_after = v.map(|_| drain_started.elapsed().as_secs_f64());
            break v;
        }
        if drain_started.elapsed() >= args.drain_wait {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Hold: from 10 s after the last join to the first wave's leaves.
    let hold_from = (joins_over + Duration::from_secs(10)).as_secs_f64();
    let hold_to = lesson.as_secs_f64();
    let hold = backlog.in_window(hold_from.min(hold_to), hold_to);
    let hold_last = hold.last().map(|p| p.1);
    let slope = Backlog::slope_per_min(&hold);
    let series_max = backlog
        .samples
        .iter()
        .filter_map(|s| s.1)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let growing =
        hold_last.is_some_and(|v| v > args.backlog_bound) && slope.is_none_or(|s| s > 0.0);
    let backlog_ok = !growing && final_pending.is_some_and(|v| v <= args.backlog_bound);

    let histogram = |ds: &[Duration]| {
        let mut h = common::histogram();
        ds.iter().for_each(|d| common::record(&mut h, *d));
        h
    };
    let acks = histogram(&tally.acks);
    let webhook = histogram(&tally.webhook);
    let p99 = |h: &Histogram<u64>| (!h.is_empty()).then(|| common::ms(h.value_at_quantile(0.99)));
    let push_ok = p99(&push).is_some_and(|v| v < args.push_p99_ms);
    let ack_ok = p99(&acks).is_some_and(|v| v < args.ack_p99_ms);
    let errors = tally.webhooks_failed + tally.socket_errors + tally.acks_missing + push_missing;
    let pass = push_ok && ack_ok && backlog_ok && errors == 0;
    let server_cores: Option<f64> = (!cpu_servers.is_empty())
        .then(|| {
            cpu_servers
                .iter()
                .map(|c| c["server_cores"].as_f64())
                .sum::<Option<f64>>()
        })
        .flatten()
        .map(|c| (c * 100.0).round() / 100.0);
    let peak = shared.peak.load(Ordering::Relaxed);
    let result = json!({
        "scenario": "schoolday",
        "urls": targets.iter().map(|t| t.base.clone()).collect::<Vec<_>>(),
        "instances": targets.len(),
        "rooms": rooms_n,
        "students_per_room": per_room,
        "students": students_n,
        "concurrent_peak": peak,
        "waves": waves,
        "wave_gap_s": args.wave_gap.as_secs_f64(),
        "join_spread_s": args.join_spread.as_secs_f64(),
        "heartbeat_interval_s": shared.interval.as_secs_f64(),
        "hold_s": args.hold.as_secs_f64(),
        "seconds": ((leaves_done - t0).as_secs_f64() * 10.0).round() / 10.0,
        "push_latency": common::percentiles(&push),
        "heartbeat_ack_latency": common::percentiles(&acks),
        "webhook_latency": common::percentiles(&webhook),
        "webhooks_sent": tally.webhooks_sent,
        "webhooks_failed": tally.webhooks_failed,
        "teacher_updates": updates,
        "teacher_snapshots": snapshots,
        "push_missing": push_missing,
        "acks_missing": tally.acks_missing,
        "socket_errors": tally.socket_errors,
        "reconnects": tally.reconnects,
        "reconnects_planned": reconnects_planned,
        "errors": tally.statuses.to_json(),
        "backlog": {
            "bound": args.backlog_bound,
            "max": series_max,
            "hold_last": hold_last,
            "hold_slope_per_min": slope.map(|s| (s * 10.0).round() / 10.0),
            "final": final_pending,
            "drained_after_s": drained_after.map(|s| (s * 100.0).round() / 100.0),
            "growing": growing,
            "samples": backlog.samples.iter().map(|(t, v)| json!([t, v])).collect::<Vec<_>>(),
        },
        "cpu": {
            "server_cores": server_cores,
            "per_instance": cpu_servers.iter().map(|c| c["server_cores"].clone()).collect::<Vec<_>>(),
            "loadgen_cores": cpu_self["loadgen_cores"],
        },
        "loadgen_rss_kib": common::rss_kib(std::process::id()).ok(),
        "fd_limit": fd,
        "fd_needed": fd_needed,
        "checks": {
            "push_p99": push_ok, "heartbeat_ack_p99": ack_ok, "backlog": backlog_ok, "no_errors": errors == 0,
        },
        "pass": pass,
    });
    eprintln!(
        "schoolday: {peak} students at once; push {}; heartbeat ack {}; backlog max {series_max:?} final {final_pending:?}; {errors} errors; pass {pass}",
        common::percentiles(&push),
        common::percentiles(&acks),
    );
    common::print_result(&result);
    common::require(peak > 0, "no student joined")
}

/// Schedules one room's lesson (starting now), opens its teacher's
/// dashboard and sends its students in.
async fn open_room(
    shared: Arc<Shared>,
    room: usize,
    plans: Vec<Plan>,
    stop: watch::Receiver<bool>,
) -> (Vec<JoinHandle<Tally>>, JoinHandle<Watched>, Statuses) {
    let mut statuses = Statuses::default();
    let name = &shared.rooms[room];
    if let Err(e) =
        common::schedule(&shared.client, shared.home(room), &shared.signer, name, 0).await
    {
        eprintln!("schoolday: {e:#}");
        statuses.add("schedule failed");
    }
    let mut watched = Watched {
        push: Vec::new(),
        updates: 0,
        snapshots: 0,
        socket_errors: 0,
        statuses: Statuses::default(),
    };
    let ws = teacher_connect(&shared, room, &mut watched).await;
    let teacher = tokio::spawn(watch_room(shared.clone(), room, ws, watched, stop));
    let students = plans
        .into_iter()
        .map(|plan| tokio::spawn(student(shared.clone(), plan)))
        .collect();
    (students, teacher, statuses)
}

async fn teacher_connect(shared: &Shared, room: usize, w: &mut Watched) -> Option<Ws> {
    let name = &shared.rooms[room];
    let token = shared
        .signer
        .access_token(&format!("teacher-{name}"), name, Role::Teacher);
    for _ in 0..3 {
        let attempt = tokio::time::timeout(Duration::from_secs(30), async {
            let mut ws = common::ws_connect_with(
                shared.teacher_home(room),
                shared.ip(room),
                name,
                &token,
                small_buffers(),
            )
            .await?;
            // The snapshot comes first.
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    note(shared, room, text.as_str(), w);
                    Ok(ws)
                }
                _ => Err(anyhow::anyhow!("no snapshot")),
            }
        })
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("timeout")));
        match attempt {
            Ok(ws) => return Some(ws),
            Err(e) => {
                w.socket_errors += 1;
                w.statuses.add(format!("teacher connect: {e}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    None
}

/// A teacher's dashboard until the run ends: every message that shows a
/// posted change ends that change's push latency.
async fn watch_room(
    shared: Arc<Shared>,
    room: usize,
    mut ws: Option<Ws>,
    mut w: Watched,
    mut stop: watch::Receiver<bool>,
) -> Watched {
    loop {
        let Some(socket) = ws.as_mut() else {
            let _ = stop.changed().await;
            break;
        };
        tokio::select! {
            _ = stop.changed() => break,
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => note(&shared, room, text.as_str(), &mut w),
                Some(Ok(_)) => {}
                _ => {
                    w.socket_errors += 1;
                    w.statuses.add("teacher socket closed");
                    ws = teacher_connect(&shared, room, &mut w).await;
                }
            },
        }
    }
    if let Some(mut socket) = ws {
        let _ = socket.close(None).await;
    }
    w
}

/// Matches one dashboard message against the room's posted changes: a join
/// is shown when the participant's cycle with that sid is open, a leave
/// when it is closed.
fn note(shared: &Shared, room: usize, text: &str, w: &mut Watched) {
    let snapshot = text.contains("\"attendance.snapshot\"");
    if !snapshot && !text.contains("\"attendance.updated\"") {
        return;
    }
    let arrived = Instant::now();
    if snapshot {
        w.snapshots += 1;
    } else {
        w.updates += 1;
    }
    // Most updates are heartbeats: only parse while a change is awaited.
    if shared.expect[room].lock().expect("lock").is_empty() {
        return;
    }
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let participants: Vec<&Value> = if snapshot {
        v["participants"].as_array().into_iter().flatten().collect()
    } else {
        vec![&v["attendance"]]
    };
    let mut expect = shared.expect[room].lock().expect("lock");
    for p in participants {
        let Some(identity) = p["identity"].as_str() else {
            continue;
        };
        let Some(e) = expect.get(identity) else {
            continue;
        };
        let shown = p["cycles"].as_array().into_iter().flatten().any(|c| {
            c["participant_sid"].as_str() == Some(e.sid.as_str())
                && c["left_at"].is_null() == e.joined
        });
        if shown {
            w.push.push(arrived - e.posted);
            expect.remove(identity);
        }
    }
}

/// Posts one participant webhook as livekit-server does.
async fn post(
    shared: &Shared,
    t: &mut Tally,
    room: usize,
    identity: &str,
    sid: &str,
    joined_at_ms: i64,
    joined: bool,
) {
    let kind = if joined {
        "participant_joined"
    } else {
        "participant_left"
    };
    let name = &shared.rooms[room];
    let body = participant_event(
        kind,
        &livekit_id(
            "EV",
            &shared.prefix,
            shared.events.fetch_add(1, Ordering::Relaxed),
        ),
        chrono::Utc::now().timestamp(),
        &Participant {
            room: name,
            room_sid: &livekit_id("RM", &shared.prefix, room as u64),
            sid,
            identity,
            joined_at_ms,
        },
    );
    let token = shared.signer.webhook_token(body.as_bytes());
    let posted = Instant::now();
    let replaced = shared.expect[room].lock().expect("lock").insert(
        identity.to_string(),
        Expect {
            sid: sid.to_string(),
            joined,
            posted,
        },
    );
    if replaced.is_some() {
        shared.push_lost.fetch_add(1, Ordering::Relaxed);
    }
    let failed = match shared
        .client
        .post(shared.home(room).url("/webhooks/livekit"))
        .header("Content-Type", "application/webhook+json")
        .header("Authorization", token)
        .body(body)
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status();
            let _ = response.bytes().await;
            t.webhook.push(posted.elapsed());
            (!status.is_success()).then(|| format!("webhook {}", status.as_u16()))
        }
        Err(e) => Some(format!("webhook error: {}", crate::ingest::short_error(&e))),
    };
    t.webhooks_sent += 1;
    if let Some(what) = failed {
        t.webhooks_failed += 1;
        t.statuses.add(what);
        shared.expect[room].lock().expect("lock").remove(identity);
    }
}

/// A student's socket, tried three times.
async fn student_connect(shared: &Shared, t: &mut Tally, plan: &Plan, token: &str) -> Option<Ws> {
    let n = plan.room * 1000 + plan.seat;
    for _ in 0..3 {
        let attempt = tokio::time::timeout(
            Duration::from_secs(30),
            common::ws_connect_with(
                shared.home(plan.room),
                shared.ip(n),
                &shared.rooms[plan.room],
                token,
                small_buffers(),
            ),
        )
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("timeout")));
        match attempt {
            Ok(ws) => return Some(ws),
            Err(e) => {
                t.socket_errors += 1;
                t.statuses.add(format!("student connect: {e}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    None
}

/// One student's lesson: join, heartbeats, maybe a reconnect, leave.
async fn student(shared: Arc<Shared>, plan: Plan) -> Tally {
    let mut t = Tally::new();
    let n = (plan.room * 1_000_000 + plan.seat) as u64;
    let identity = format!("student-{}", plan.seat);
    let token = shared
        .signer
        .access_token(&identity, &shared.rooms[plan.room], Role::Student);
    let beat = Message::text(r#"{"type":"heartbeat"}"#);
    let mut cycle = 0u64;
    let sid = |cycle: u64| livekit_id("PA", &shared.prefix, n * 4 + cycle);

    tokio::time::sleep_until(plan.join_at.into()).await;
    let mut joined_ms = chrono::Utc::now().timestamp_millis();
    post(
        &shared,
        &mut t,
        plan.room,
        &identity,
        &sid(cycle),
        joined_ms,
        true,
    )
    .await;
    let mut ws = student_connect(&shared, &mut t, &plan, &token).await;
    let now_in = shared.in_class.fetch_add(1, Ordering::Relaxed) + 1;
    shared.peak.fetch_max(now_in, Ordering::Relaxed);
    let mut next_beat = Instant::now() + plan.first_beat;
    let mut sent_at: Option<Instant> = None;
    let mut reconnect_at = plan.reconnect_at;
    let far = plan.leave_at + Duration::from_secs(3600);

    loop {
        let wake = next_beat
            .min(plan.leave_at)
            .min(reconnect_at.unwrap_or(far));
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                if now >= plan.leave_at {
                    break;
                }
                if reconnect_at.is_some_and(|at| now >= at) {
                    // Gone from LiveKit and the page for a few seconds.
                    reconnect_at = None;
                    t.reconnects += 1;
                    if sent_at.take().is_some_and(|s| s.elapsed() > Duration::from_secs(1)) {
                        t.acks_missing += 1;
                    }
                    if let Some(mut socket) = ws.take() {
                        let _ = socket.close(None).await;
                    }
                    shared.in_class.fetch_sub(1, Ordering::Relaxed);
                    post(&shared, &mut t, plan.room, &identity, &sid(cycle), joined_ms, false).await;
                    tokio::time::sleep(shared.pause).await;
                    cycle += 1;
                    joined_ms = chrono::Utc::now().timestamp_millis();
                    post(&shared, &mut t, plan.room, &identity, &sid(cycle), joined_ms, true).await;
                    ws = student_connect(&shared, &mut t, &plan, &token).await;
                    let now_in = shared.in_class.fetch_add(1, Ordering::Relaxed) + 1;
                    shared.peak.fetch_max(now_in, Ordering::Relaxed);
                    next_beat = Instant::now() + plan.first_beat;
                    continue;
                }
                if now >= next_beat {
                    next_beat += shared.interval;
                    let Some(socket) = ws.as_mut() else { continue };
                    if sent_at.is_some() {
                        t.acks_missing += 1;
                    }
                    sent_at = Some(Instant::now());
                    if socket.send(beat.clone()).await.is_err() {
                        sent_at = None;
                        t.socket_errors += 1;
                        t.statuses.add("student send failed");
                        ws = student_connect(&shared, &mut t, &plan, &token).await;
                    }
                }
            }
            message = async {
                match ws.as_mut() {
                    Some(socket) => socket.next().await,
                    None => std::future::pending().await,
                }
            } => match message {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str();
                    if text.contains("\"heartbeat.ack\"") {
                        if let Some(sent) = sent_at.take() {
                            t.acks.push(sent.elapsed());
                        }
                    } else if text.contains("\"type\":\"error\"") {
                        t.statuses.add("student error message");
                        t.socket_errors += 1;
                    }
                }
                Some(Ok(_)) => {}
                _ => {
                    // Closed under the student: the page reconnects.
                    if sent_at.take().is_some() {
                        t.acks_missing += 1;
                    }
                    t.socket_errors += 1;
                    t.statuses.add("student socket closed");
                    ws = student_connect(&shared, &mut t, &plan, &token).await;
                }
            },
        }
    }
    if sent_at.is_some_and(|s| s.elapsed() > Duration::from_secs(1)) {
        t.acks_missing += 1;
    }
    post(
        &shared,
        &mut t,
        plan.room,
        &identity,
        &sid(cycle),
        joined_ms,
        false,
    )
    .await;
    if let Some(mut socket) = ws {
        let _ = socket.close(None).await;
    }
    shared.in_class.fetch_sub(1, Ordering::Relaxed);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_is_uniform_enough() {
        let xs: Vec<f64> = (0..10_000).map(|n| unit(n, 7)).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        let share = xs.iter().filter(|x| **x < 0.02).count();
        assert!((150..250).contains(&share), "{share}");
        assert_ne!(unit(1, 1), unit(1, 2));
    }

    #[test]
    fn backlog_slope() {
        let rising = [(0.0, 0.0), (30.0, 50.0), (60.0, 100.0)];
        assert_eq!(Backlog::slope_per_min(&rising), Some(100.0));
        assert_eq!(Backlog::slope_per_min(&[(1.0, 5.0)]), None);
        let flat = [(0.0, 3.0), (60.0, 3.0)];
        assert_eq!(Backlog::slope_per_min(&flat), Some(0.0));
    }
}
