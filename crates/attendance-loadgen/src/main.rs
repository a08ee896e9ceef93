//! `attendance-loadgen`: bounded load against a running attendance-server
//! (or the Node reference in bench/reference-node) over loopback only.
//! Every scenario stops by itself and prints one `RESULT {json}` line.

use clap::{Args, Parser, Subcommand};

mod common;
mod fanout;
mod heartbeats;
mod idle;
mod ingest;
mod presign;
mod schoolday;
mod sign;

#[derive(Parser)]
#[command(name = "attendance-loadgen", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// LiveKit-signed webhook bursts: join + leave for every student of every room.
    Ingest(ingest::IngestArgs),
    /// Heartbeats from simulated students, over HTTP or WebSocket.
    Heartbeats(heartbeats::HeartbeatArgs),
    /// Live subscribers per room, then webhooks: push latency.
    Fanout(fanout::FanoutArgs),
    /// Idle WebSockets and the server's memory per connection.
    Idle(idle::IdleArgs),
    /// Unique signed webhooks written to a file, for wrk (bench/wrk/webhooks.lua).
    Presign(presign::PresignArgs),
    /// Waits until the server's webhook inbox is empty.
    Drain(presign::DrainArgs),
    /// A school day: classes starting in waves, students joining, sending
    /// heartbeats, reconnecting and leaving, one teacher dashboard per room;
    /// push and heartbeat latency, the webhook backlog, and pass/fail.
    Schoolday(schoolday::SchooldayArgs),
    /// A few seconds of each scenario at a small size (a quick check that a
    /// server and this tool agree).
    Smoke(Conn),
}

/// The server under test and the LiveKit key it trusts.
#[derive(Args, Clone)]
pub struct Conn {
    /// Base URL: http://127.0.0.1:PORT (loopback only).
    #[arg(long)]
    pub url: String,
    /// LiveKit API key the server trusts.
    #[arg(long, env = "LIVEKIT_API_KEY")]
    pub key: String,
    /// LiveKit API secret.
    #[arg(long, env = "LIVEKIT_API_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The server's pid: CPU use (and memory for `idle`) from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Ingest(a) => ingest::run(a).await,
            Command::Heartbeats(a) => heartbeats::run(a).await,
            Command::Fanout(a) => fanout::run(a).await,
            Command::Idle(a) => idle::run(a).await,
            Command::Presign(a) => presign::presign(a),
            Command::Drain(a) => presign::drain(a).await,
            Command::Schoolday(a) => schoolday::run(a).await,
            Command::Smoke(conn) => smoke(conn).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attendance-loadgen: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn smoke(conn: Conn) -> anyhow::Result<()> {
    use std::time::Duration;
    let s = Duration::from_secs(2);
    ingest::run(ingest::IngestArgs {
        conn: conn.clone(),
        rooms: 4,
        students: 5,
        concurrency: 4,
        duration: s,
        max_events: 200,
        drain_timeout: Duration::from_secs(10),
    })
    .await?;
    for mode in [heartbeats::Mode::Http, heartbeats::Mode::Ws] {
        heartbeats::run(heartbeats::HeartbeatArgs {
            conn: conn.clone(),
            students: 20,
            per_room: 10,
            mode,
            concurrency: 4,
            duration: s,
            no_schedule: false,
            interval: Duration::ZERO,
            source_ips: 1,
        })
        .await?;
    }
    fanout::run(fanout::FanoutArgs {
        conn: conn.clone(),
        rooms: 2,
        per_room: 10,
        teachers: 1,
        events: None,
        rate: 50,
        concurrency: 4,
        settle: Duration::from_secs(5),
        source_ips: 1,
        webhooks_url: None,
    })
    .await?;
    schoolday::run(schoolday::SchooldayArgs {
        urls: vec![conn.url.clone()],
        key: conn.key.clone(),
        secret: conn.secret.clone(),
        server_pids: conn.server_pid.into_iter().collect(),
        rooms: 2,
        students: 5,
        waves: 2,
        wave_gap: Duration::from_secs(1),
        join_spread: s,
        heartbeat_interval: Duration::from_millis(1500),
        hold: Duration::from_secs(3),
        leave_spread: Duration::from_secs(1),
        reconnect_share: 0.2,
        reconnect_pause: Duration::from_millis(500),
        backlog_every: Duration::from_secs(1),
        backlog_bound: 50.0,
        drain_wait: Duration::from_secs(10),
        settle: Duration::from_secs(5),
        push_p99_ms: 200.0,
        ack_p99_ms: 200.0,
        source_ips: 1,
    })
    .await?;
    if conn.server_pid.is_some() {
        idle::run(idle::IdleArgs {
            conn,
            connections: 100,
            per_room: 25,
            hold: Duration::from_secs(1),
            concurrency: 32,
            source_ips: 1,
        })
        .await?;
    }
    eprintln!("smoke: every scenario ran");
    Ok(())
}
