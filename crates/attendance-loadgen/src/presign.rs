//! `presign`: unique LiveKit-signed webhooks written to a file ahead of a
//! run, so an outside load tool (wrk, with `bench/wrk/webhooks.lua`) sends
//! them without signing anything itself and no request is a duplicate.
//! One request per line: `Authorization` value, a tab, the JSON body.
//! `drain`: after such a burst, how long the server takes to empty its inbox.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use crate::common::{self, Target};
use crate::sign::{livekit_id, participant_event, run_prefix, Participant, Signer};

#[derive(Args, Clone)]
pub struct PresignArgs {
    /// LiveKit API key the server trusts.
    #[arg(long, env = "LIVEKIT_API_KEY")]
    pub key: String,
    /// LiveKit API secret.
    #[arg(long, env = "LIVEKIT_API_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Rooms (classes) the students are spread over.
    #[arg(long, default_value_t = 200)]
    pub rooms: u64,
    /// Students per room.
    #[arg(long, default_value_t = 25)]
    pub students: u64,
    /// Webhooks to write (joins and leaves in pairs, each pair in order).
    #[arg(long, default_value_t = 400_000)]
    pub count: u64,
    /// Events per second of LiveKit time: `createdAt` is when an event
    /// happened, so a burst's webhooks are dated as if this many happened
    /// each second, the last one now (a burst of the same second would be
    /// 400,000 classes' worth of joins at once).
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// The file to write.
    #[arg(long)]
    pub out: std::path::PathBuf,
}

pub fn presign(args: PresignArgs) -> anyhow::Result<()> {
    let signer = Signer::new(&args.key, &args.secret);
    let prefix = run_prefix();
    let per_round = (args.rooms * args.students).max(1);
    let students = args.students.max(1);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args.out)?);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let total = args.count.div_ceil(2) * 2;
    let happened_ms = |event: u64| now_ms - ((total - 1 - event) * 1000 / args.rate.max(1)) as i64;
    for n in 0..args.count.div_ceil(2) {
        let (round, pair) = (n / per_round, n % per_round);
        let room_idx = pair / students;
        let room = format!("load-{prefix}-{room_idx}");
        let room_sid = livekit_id("RM", &prefix, round * 1_000_000 + room_idx);
        let sid = livekit_id("PA", &prefix, n);
        let identity = format!("student-{}", pair % students);
        let who = Participant {
            room: &room,
            room_sid: &room_sid,
            sid: &sid,
            identity: &identity,
            joined_at_ms: happened_ms(n * 2),
        };
        for (i, kind) in ["participant_joined", "participant_left"]
            .into_iter()
            .enumerate()
        {
            let event = n * 2 + i as u64;
            let id = livekit_id("EV", &prefix, event);
            let body = participant_event(kind, &id, happened_ms(event) / 1000, &who);
            let token = signer.webhook_token(body.as_bytes());
            writeln!(out, "{token}\t{body}")?;
        }
    }
    out.flush()?;
    eprintln!(
        "presign: {} webhooks in {} (valid 5 minutes, as LiveKit signs them)",
        total,
        args.out.display()
    );
    Ok(())
}

#[derive(Args, Clone)]
pub struct DrainArgs {
    /// Base URL of the server.
    #[arg(long)]
    pub url: String,
    /// Give up after this long.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub within: Duration,
}

/// Waits for `attendance_webhooks_pending 0` and prints how long it took.
pub async fn drain(args: DrainArgs) -> anyhow::Result<()> {
    let target = Target::parse(&args.url)?;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let pending_at_start = crate::ingest::pending(&client, &target).await;
    let drained = crate::ingest::wait_drained(&client, &target, args.within).await;
    let result = json!({
        "scenario": "drain",
        "url": target.base,
        "pending_at_start": pending_at_start,
        "drained_after_s": drained.map(|at| (at - started).as_secs_f64()),
    });
    common::print_result(&result);
    common::require(drained.is_some(), "the inbox did not drain in time")
}
