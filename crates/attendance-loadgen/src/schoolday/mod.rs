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
use tokio_tungstenite::tungstenite::Message;

use crate::common::{self, CpuMeter, Samples, Statuses, Target, Ws};
use crate::sign::{livekit_id, participant_event, run_prefix, Participant, Role, Signer};

mod backlog;
mod room;
mod student;

use backlog::{pending_max, Backlog};
use room::{open_room, Watched};
use student::Tally;

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

/// When and how one student spends the lesson.
struct Plan {
    room: usize,
    seat: usize,
    join_at: Instant,
    leave_at: Instant,
    reconnect_at: Option<Instant>,
    first_beat: Duration,
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
    let mut push = Samples::default();
    let (mut updates, mut snapshots) = (0u64, 0u64);
    for t in teachers {
        let w = t.await?;
        push.merge(w.push);
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

    let push = push.histogram();
    let acks = tally.acks.histogram();
    let webhook = tally.webhook.histogram();
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
}
