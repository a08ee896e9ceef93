//! The service's settings, from flags and environment variables, validated
//! once (`attendance-server serve --help` lists them).

use std::path::PathBuf;
use std::time::Duration;

use attendance_rules::GradePoints;
use clap::{Args, ValueEnum};

use crate::connections::{effective_max_connections, Limits};
use crate::http::Settings;
use crate::ingest::reconciler::ReconcileSettings;
use crate::ingest::IngestSettings;
use crate::livekit::KeyRing;
use crate::outbound::{parse_schedule, OutboundSettings, DEFAULT_RETRY_SCHEDULE};
use crate::report::Classifier;

#[derive(Args, Clone)]
pub struct KeyArgs {
    /// LiveKit API key (with --api-secret).
    #[arg(long = "api-key", env = "LIVEKIT_API_KEY", global = true)]
    pub api_key: Option<String>,
    /// LiveKit API secret.
    #[arg(
        long = "api-secret",
        env = "LIVEKIT_API_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub api_secret: Option<String>,
    /// Several keys, as livekit-server takes them: "key1: secret1, key2: secret2".
    #[arg(
        long = "keys",
        env = "LIVEKIT_KEYS",
        hide_env_values = true,
        global = true
    )]
    pub keys: Option<String>,
}

impl KeyArgs {
    pub fn key_ring(&self) -> anyhow::Result<KeyRing> {
        let mut ring = match &self.keys {
            Some(text) => {
                KeyRing::parse_keys(text).map_err(|e| anyhow::anyhow!("LIVEKIT_KEYS: {e}"))?
            }
            None => KeyRing::new([]),
        };
        match (&self.api_key, &self.api_secret) {
            (Some(k), Some(s)) if !k.is_empty() && !s.is_empty() => {
                ring.insert(k.clone(), s.clone())
            }
            (Some(_), None) | (None, Some(_)) => {
                anyhow::bail!("LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set together")
            }
            _ => {}
        }
        if ring.is_empty() {
            anyhow::bail!(
                "no LiveKit API key configured: set LIVEKIT_API_KEY and LIVEKIT_API_SECRET \
                 (the same key and secret as your LiveKit server), or LIVEKIT_KEYS=\"key: secret, …\""
            );
        }
        Ok(ring)
    }
}

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "ATTENDANCE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// sqlite://file.db (created if missing) or postgres://…
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://attendance.db")]
    pub database_url: String,
    /// Serve the web pages from this folder instead of the ones built into
    /// the binary (for editing pages without rebuilding).
    #[arg(long, env = "ATTENDANCE_WWW_DIR")]
    pub www_dir: Option<PathBuf>,
    /// Enable /demo/* (tokens and fabricated LiveKit events for trying it out,
    /// in rooms named demo-… only).
    #[arg(long, env = "ATTENDANCE_DEMO")]
    pub demo: bool,
    /// Allow --demo on a database that holds real (non-demo) sessions.
    #[arg(long, env = "ATTENDANCE_DEMO_WITH_REAL_DATA")]
    pub demo_with_real_data: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "ATTENDANCE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: u64,
    /// Processing attempts before a webhook is dead-lettered.
    #[arg(long, env = "ATTENDANCE_MAX_ATTEMPTS", default_value_t = 8)]
    pub max_attempts: u32,
    /// First retry delay for failed processing (doubles each attempt), e.g. 1s, 250ms.
    #[arg(long, env = "ATTENDANCE_RETRY_BASE", default_value = "1s", value_parser = humantime::parse_duration)]
    pub retry_base: Duration,
    /// How often stale heartbeats and ended sessions are swept, e.g. 15s.
    #[arg(long, env = "ATTENDANCE_SWEEP_INTERVAL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub sweep_interval: Duration,
    /// How long a claimed webhook stays reserved for the instance that
    /// claimed it; after that (the instance died) another one takes it.
    #[arg(long, env = "ATTENDANCE_PROCESSING_LEASE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub processing_lease: Duration,
    /// LiveKit participant kinds left out of class statistics (kept as facts).
    #[arg(
        long,
        env = "ATTENDANCE_EXCLUDE_KINDS",
        value_delimiter = ',',
        default_value = "INGRESS,EGRESS,SIP,AGENT"
    )]
    pub exclude_kinds: Vec<String>,
    /// Participant `role`s (metadata or attributes) left out of statistics.
    #[arg(
        long,
        env = "ATTENDANCE_EXCLUDE_ROLES",
        value_delimiter = ',',
        default_value = "observer"
    )]
    pub exclude_roles: Vec<String>,
    /// LiveKit's URL, as clients use it (wss://… or https://…): turns on
    /// reconciliation with its RoomService.
    #[arg(long, env = "LIVEKIT_URL")]
    pub livekit_url: Option<String>,
    /// How often each live room is checked against LiveKit, e.g. 30s.
    #[arg(long, env = "ATTENDANCE_RECONCILE_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub reconcile_interval: Duration,
    /// Most RoomService calls per second from one instance.
    #[arg(long, env = "ATTENDANCE_RECONCILE_RATE", default_value_t = 20.0)]
    pub reconcile_rate: f64,
    /// Camera, microphone and screen-share time: `off` stores and shows
    /// nothing about tracks or mutes.
    #[arg(long, env = "ATTENDANCE_ENGAGEMENT", value_enum, default_value_t = Toggle::On)]
    pub engagement: Toggle,
    /// Sites allowed to frame the pages (an LMS embedding the dashboard),
    /// as Content-Security-Policy sources separated by spaces or commas:
    /// "https://lms.example.org https://*.school.edu". Unset: no framing.
    #[arg(long, env = "ATTENDANCE_FRAME_ANCESTORS", value_parser = parse_frame_ancestors)]
    pub frame_ancestors: Option<FrameAncestors>,
    /// Longest a client may take to send a request's head (from connecting,
    /// or from the request's first byte), e.g. 10s.
    #[arg(long, env = "ATTENDANCE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// Longest a kept-alive connection may wait for its next request (and a
    /// request in progress may go without a byte moving), e.g. 60s.
    #[arg(long, env = "ATTENDANCE_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Open connections at most, live sockets included; lowered to fit the
    /// file descriptor limit. At the limit the longest-idle connection makes
    /// room for a new one.
    #[arg(long, env = "ATTENDANCE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Database connections in the pool.
    #[arg(long, env = "ATTENDANCE_DB_CONNECTIONS", default_value_t = 8)]
    pub db_connections: u32,
    /// What each status is worth in grades from attendance, unless a lesson
    /// says otherwise: "present=2,late=1,partial=1,absent=0,excused=1"
    /// (statuses left out keep these default points).
    #[arg(long, env = "ATTENDANCE_GRADE_POINTS", default_value = "present=2,late=1,partial=1,absent=0,excused=1",
          value_parser = |text: &str| GradePoints::default().parse_over(text))]
    pub grade_points: GradePoints,
    #[command(flatten)]
    pub outbound: OutboundArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
}

impl ServeArgs {
    /// The settings every layer runs with.
    pub fn settings(&self) -> Settings {
        let list = |items: &[String], normalise: fn(&str) -> String| -> Vec<String> {
            items
                .iter()
                .map(|item| normalise(item.trim()))
                .filter(|item| !item.is_empty())
                .collect()
        };
        Settings {
            max_body_bytes: self.max_body_bytes,
            demo: self.demo,
            www_dir: self.www_dir.clone(),
            classifier: Classifier {
                excluded_kinds: list(&self.exclude_kinds, str::to_ascii_uppercase),
                excluded_roles: list(&self.exclude_roles, str::to_ascii_lowercase),
                engagement: self.engagement == Toggle::On,
            },
            frame_ancestors: self
                .frame_ancestors
                .as_ref()
                .map(|f| f.0.clone())
                .unwrap_or_default(),
            ingest: IngestSettings {
                max_attempts: self.max_attempts.max(1),
                retry_base: self.retry_base,
                sweep_interval: self.sweep_interval.max(Duration::from_millis(50)),
                processing_lease: self.processing_lease.max(Duration::from_millis(100)),
                reconcile: self.reconcile_settings(),
                engagement: self.engagement == Toggle::On,
            },
            outbound: self.outbound.settings(self.sweep_interval),
            grade_points: self.grade_points,
        }
    }
}

/// Outbound webhooks' settings.
#[derive(Args, Clone)]
pub struct OutboundArgs {
    /// Allow outbound webhook endpoints on loopback, link-local and private
    /// addresses (refused otherwise).
    #[arg(long, env = "ATTENDANCE_ALLOW_PRIVATE_ENDPOINTS")]
    pub allow_private_endpoints: bool,
    /// How long one outbound webhook attempt may take, answer included.
    #[arg(long, env = "ATTENDANCE_OUTBOUND_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub outbound_timeout: Duration,
    /// Delays before each retry of an outbound webhook (for tests).
    #[arg(long, env = "ATTENDANCE_OUTBOUND_RETRY_SCHEDULE", default_value = DEFAULT_RETRY_SCHEDULE,
          value_parser = |text: &str| parse_schedule(text).map(RetrySchedule), hide = true)]
    pub outbound_retry_schedule: RetrySchedule,
    /// An endpoint whose every attempt failed for this long is disabled (for tests).
    #[arg(long, env = "ATTENDANCE_OUTBOUND_DISABLE_AFTER", default_value = "5days",
          value_parser = humantime::parse_duration, hide = true)]
    pub outbound_disable_after: Duration,
}

/// The retry delays, as one flag value (`5s,5m,30m`).
#[derive(Debug, Clone)]
pub struct RetrySchedule(pub Vec<Duration>);

impl OutboundArgs {
    fn settings(&self, finalize_interval: Duration) -> OutboundSettings {
        OutboundSettings {
            allow_private: self.allow_private_endpoints,
            timeout: self.outbound_timeout.max(Duration::from_millis(100)),
            retry_schedule: self.outbound_retry_schedule.0.clone(),
            disable_after: self.outbound_disable_after,
            finalize_interval: finalize_interval.max(Duration::from_millis(50)),
        }
    }
}

/// `--frame-ancestors`, checked.
#[derive(Debug, Clone)]
pub struct FrameAncestors(pub Vec<String>);

fn parse_frame_ancestors(text: &str) -> Result<FrameAncestors, String> {
    let sources: Vec<String> = text
        .split([',', ' ', '\t'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    for source in &sources {
        crate::http::security::valid_frame_ancestor(source)?;
    }
    Ok(FrameAncestors(sources))
}

impl ServeArgs {
    /// The limits connections are held to; the connection limit lowered to
    /// fit the file descriptor limit (raised first where allowed).
    pub fn limits(&self) -> Limits {
        let max_connections = effective_max_connections(self.max_connections, self.db_connections);
        if max_connections < self.max_connections {
            tracing::warn!(
                wanted = self.max_connections,
                max_connections,
                "the open-files limit (ulimit -n) leaves room for fewer connections than \
                 --max-connections asks for"
            );
        }
        Limits {
            header_read_timeout: self.header_read_timeout.max(Duration::from_millis(100)),
            idle_timeout: self.idle_timeout.max(Duration::from_millis(100)),
            max_connections,
        }
    }
}

impl ServeArgs {
    /// Reconciliation with LiveKit, when its URL is set. Calls are signed with
    /// `--api-key`/`--api-secret`, else with the first of `--keys`.
    fn reconcile_settings(&self) -> Option<ReconcileSettings> {
        let url = self.livekit_url.as_ref().filter(|u| !u.trim().is_empty())?;
        let (api_key, api_secret) = match (&self.keys.api_key, &self.keys.api_secret) {
            (Some(key), Some(secret)) if !key.is_empty() && !secret.is_empty() => {
                (key.clone(), secret.clone())
            }
            _ => {
                let ring = self.keys.key_ring().ok()?;
                let (key, secret) = ring.first()?;
                (key.to_string(), secret.to_string())
            }
        };
        Some(ReconcileSettings {
            livekit_url: url.trim().to_string(),
            api_key,
            api_secret,
            interval: self.reconcile_interval.max(Duration::from_millis(100)),
            rate: self.reconcile_rate.max(0.1),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Toggle {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured only on a terminal).
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Logs go to stderr; `RUST_LOG` filters them.
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,warp=warn,warp::filters::trace=error".into());
    // Whatever RUST_LOG says: tungstenite logs whole messages at trace
    // level, and a live socket's first message may carry a token.
    for quiet in ["tungstenite=info", "tokio_tungstenite=info"] {
        filter = filter.add_directive(quiet.parse().expect("valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
