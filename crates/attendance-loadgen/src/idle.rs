//! `idle`: N live WebSockets that only hold on (after their snapshot), and
//! the server's resident memory before and after, per connection.

use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;
use serde_json::json;

use crate::common::{self, Statuses, Target};
use crate::sign::{run_prefix, Role, Signer};

#[derive(Args, Clone)]
pub struct IdleArgs {
    #[command(flatten)]
    pub conn: crate::Conn,
    #[arg(long, default_value_t = 20_000)]
    pub connections: usize,
    /// Students per room.
    #[arg(long, default_value_t = 25)]
    pub per_room: usize,
    /// Hold the connections this long after the last one opened.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub hold: Duration,
    /// Handshakes in flight.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Loopback source addresses (127.0.0.1 … 127.0.0.N).
    #[arg(long, default_value_t = 1)]
    pub source_ips: u8,
}

fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

pub async fn run(args: IdleArgs) -> anyhow::Result<()> {
    let target = Target::parse(&args.conn.url)?;
    let pid = args
        .conn
        .server_pid
        .ok_or_else(|| anyhow::anyhow!("idle needs --server-pid to read the server's memory"))?;
    let signer = Signer::new(&args.conn.key, &args.conn.secret);
    let fd = common::raise_fd_limit(args.connections as u64 + 1024);
    // Keep descriptors for reading /proc afterwards: a run that used them
    // all could not measure anything.
    let connections = args
        .connections
        .min((fd as usize).saturating_sub(64).max(1));
    let prefix = run_prefix();
    let per_room = args.per_room.max(1);
    let before = common::rss_kib(pid)?;
    let fds_before = open_fds(pid);
    eprintln!(
        "idle: {connections} connections (of {} asked), server pid {pid} RSS {before} KiB, fd limit {fd}",
        args.connections
    );
    let ips = common::source_ips(args.source_ips);
    let started = Instant::now();
    let results: Vec<anyhow::Result<common::Ws>> = futures_util::stream::iter(0..connections)
        .map(|i| {
            let room = format!("idle-{prefix}-{}", i / per_room);
            let token = signer.access_token(&format!("student-{i}"), &room, Role::Student);
            let (target, ip) = (target.clone(), ips[i % ips.len()]);
            async move {
                let mut ws = tokio::time::timeout(
                    Duration::from_secs(30),
                    common::ws_connect(&target, ip, &room, &token),
                )
                .await
                .map_err(|_| anyhow::anyhow!("connect timeout"))??;
                tokio::time::timeout(Duration::from_secs(30), ws.next())
                    .await
                    .map_err(|_| anyhow::anyhow!("no snapshot"))?;
                Ok(ws)
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let connect_secs = started.elapsed().as_secs_f64();
    let mut errors = Statuses::default();
    // Idle, like a browser tab: nothing sent, but pings answered (reading is
    // what makes tungstenite reply), or the server drops the socket as dead.
    let sockets: Vec<tokio::task::JoinHandle<()>> = results
        .into_iter()
        .filter_map(|r| r.map_err(|e| errors.add(e.to_string())).ok())
        .map(|mut ws| tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} }))
        .collect();
    let n = sockets.len();
    eprintln!(
        "idle: {n} open in {connect_secs:.1}s; holding {:?}",
        args.hold
    );
    tokio::time::sleep(args.hold).await;
    let after = common::rss_kib(pid)?;
    let fds_after = open_fds(pid);
    let own = common::rss_kib(std::process::id()).ok();
    let still_open = sockets.iter().filter(|task| !task.is_finished()).count();
    sockets.iter().for_each(|task| task.abort());
    // Divide by the connections the server really holds at the end.
    let held = match (fds_before, fds_after) {
        (Some(b), Some(a)) => still_open.min(a.saturating_sub(b)),
        _ => still_open,
    };
    let per = if held > 0 {
        (after as f64 - before as f64) / held as f64
    } else {
        0.0
    };
    let result = json!({
        "scenario": "idle",
        "url": target.base,
        "connections": args.connections,
        "attempted": connections,
        "connected": n,
        "held_at_end": held,
        "connect_seconds": (connect_secs * 100.0).round() / 100.0,
        "server_rss_before_kib": before,
        "server_rss_after_kib": after,
        "server_kib_per_connection": (per * 100.0).round() / 100.0,
        "server_fds_before": fds_before,
        "server_fds_after": fds_after,
        "loadgen_rss_kib": own,
        "errors": errors.to_json(),
    });
    eprintln!("idle: server RSS {before} -> {after} KiB over {held} held connections = {per:.2} KiB per connection");
    common::print_result(&result);
    common::require(n > 0, "no connection opened")
}
