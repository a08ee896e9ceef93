//! What every scenario shares: latency histograms, the report format, the
//! loopback guard, WebSocket connections from several loopback source
//! addresses, the fd limit, RSS and CPU readings, and scheduling sessions.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

use crate::sign::{Role, Signer};

pub type Ws = WebSocketStream<TcpStream>;

/// Latencies in microseconds, 1 µs to 10 min, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, 600_000_000);
    h.record(us).expect("in bounds");
}

/// One task's latencies (a socket's, a student's), kept as microseconds,
/// merged, and made a [`histogram`] once at the end of a run. A histogram
/// per task would be 172 KiB of counters each (3.3 GB at 19,000 sockets),
/// and the kernel zero-filling their pages as values land was a fifth of
/// the load generator's CPU; a task records a few dozen values.
#[derive(Default)]
pub struct Samples(Vec<u32>);

impl Samples {
    pub fn record(&mut self, d: Duration) {
        self.0.push(d.as_micros().min(u128::from(u32::MAX)) as u32);
    }

    pub fn merge(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn histogram(&self) -> Histogram<u64> {
        let mut h = histogram();
        for &us in &self.0 {
            record(&mut h, Duration::from_micros(us.into()));
        }
        h
    }
}

pub fn ms(us: u64) -> f64 {
    (us as f64 / 1000.0 * 100.0).round() / 100.0
}

/// `{"count", "p50_ms", "p95_ms", "p99_ms", "max_ms"}`.
pub fn percentiles(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0});
    }
    json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p95_ms": ms(h.value_at_quantile(0.95)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "max_ms": ms(h.max()),
    })
}

/// The server under test: only loopback addresses are ever a target.
#[derive(Clone)]
pub struct Target {
    pub base: String,
    pub addr: SocketAddr,
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let rest = url
            .strip_prefix("http://")
            .context("--url must start with http://")?;
        let host_port = rest.split('/').next().unwrap_or_default();
        let addr: SocketAddr = host_port
            .replace("localhost", "127.0.0.1")
            .parse()
            .with_context(|| format!("--url needs an IP:PORT, got `{host_port}`"))?;
        if !addr.ip().is_loopback() {
            bail!("refusing to load {addr}: the load generator only targets loopback addresses");
        }
        Ok(Target {
            base: format!("http://{addr}"),
            addr,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }
}

/// Source addresses 127.0.0.1 … 127.0.0.N: each gives its own ~28k
/// ephemeral ports towards the one server port.
pub fn source_ips(n: u8) -> Vec<IpAddr> {
    (1..=n.max(1))
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
        .collect()
}

/// Opens `GET /api/sessions/{room}/live` from `source`.
///
/// With small buffers: tungstenite's defaults (128 KiB to read and to
/// write, per socket) would cost 2.5 GB at 20,000 sockets, and the pages
/// the kernel faults in for them would be the load generator's CPU, not
/// the server's. Pushes are ~1 KiB; a bigger one still arrives whole.
pub async fn ws_connect(
    target: &Target,
    source: IpAddr,
    room: &str,
    token: &str,
) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let url = target.ws_url(&format!("/api/sessions/{room}/live?access_token={token}"));
    let config = WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    Ok(ws)
}

/// Raises this process's open-file limit to its hard limit (and the hard
/// limit to `want` when allowed, i.e. as root). Returns the soft limit now.
pub fn raise_fd_limit(want: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_max < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: want,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return want;
            }
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

/// `VmRSS` of a process in KiB, from /proc/PID/status.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("no process {pid}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

/// User + system CPU seconds of a process (from /proc/PID/stat).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

/// CPU use of the server (if its pid is known) and of this load generator
/// over a run, in cores (1.0 = one core busy the whole time).
pub struct CpuMeter {
    server: Option<u32>,
    start_server: Option<f64>,
    start_self: Option<f64>,
    started: std::time::Instant,
}

impl CpuMeter {
    pub fn start(server: Option<u32>) -> CpuMeter {
        CpuMeter {
            server,
            start_server: server.and_then(cpu_seconds),
            start_self: cpu_seconds(std::process::id()),
            started: std::time::Instant::now(),
        }
    }

    pub fn report(&self) -> Value {
        let secs = self.started.elapsed().as_secs_f64();
        let cores = |start: Option<f64>, pid: Option<u32>| match (start, pid.and_then(cpu_seconds))
        {
            (Some(a), Some(b)) => json!(((b - a) / secs * 100.0).round() / 100.0),
            _ => Value::Null,
        };
        json!({
            "server_cores": cores(self.start_server, self.server),
            "loadgen_cores": cores(self.start_self, Some(std::process::id())),
        })
    }
}

/// Counts per HTTP status (or `"error: …"` for transport failures).
#[derive(Default)]
pub struct Statuses(pub BTreeMap<String, u64>);

impl Statuses {
    pub fn add(&mut self, key: impl Into<String>) {
        *self.0.entry(key.into()).or_default() += 1;
    }
    pub fn merge(&mut self, other: Statuses) {
        for (k, v) in other.0 {
            *self.0.entry(k).or_default() += v;
        }
    }
    pub fn to_json(&self) -> Value {
        json!(self.0)
    }
}

/// Schedules `room` for 60 minutes that started `started_minutes_ago`, with
/// that room's teacher token.
pub async fn schedule(
    client: &reqwest::Client,
    target: &Target,
    signer: &Signer,
    room: &str,
    started_minutes_ago: i64,
) -> anyhow::Result<()> {
    let at = chrono::Utc::now() - chrono::Duration::minutes(started_minutes_ago);
    let response = client
        .put(target.url(&format!("/api/sessions/{room}")))
        .bearer_auth(signer.access_token(&format!("teacher-{room}"), room, Role::Teacher))
        .json(
            &json!({"scheduled_at": at.to_rfc3339(), "duration_minutes": 60, "title": "load test"}),
        )
        .send()
        .await
        .with_context(|| format!("scheduling {room}"))?;
    if !response.status().is_success() {
        bail!(
            "scheduling {room}: {} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

/// Schedules many rooms, 16 at a time.
pub async fn schedule_all(
    client: &reqwest::Client,
    target: &Target,
    signer: &Signer,
    rooms: &[String],
) -> anyhow::Result<()> {
    use futures_util::StreamExt;
    let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(rooms)
        .map(|room| schedule(client, target, signer, room, 5))
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}

/// The final line every scenario prints: one JSON object, so results can
/// be collected by scripts (`grep '^RESULT '`).
pub fn print_result(value: &Value) {
    println!("RESULT {value}");
}

/// A `RESULT` of 0 of something is a failed run: exit non-zero.
pub fn require(ok: bool, what: &str) -> anyhow::Result<()> {
    if ok {
        Ok(())
    } else {
        bail!("{what}")
    }
}
