use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use attendance_server::auth::{KeyRing, RoleRequest, TokenRequest};
use attendance_server::store::Store;
use attendance_server::{App, Settings};
use clap::{Args, Parser, Subcommand};

/// Fair, live attendance for online classes on LiveKit.
#[derive(Parser)]
#[command(name = "attendance-server", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve(ServeArgs),
    /// Print a LiveKit access token, as LiveKit's own SDKs mint them.
    Token(TokenArgs),
    /// Put dead-lettered webhooks back in the processing queue.
    Replay(ReplayArgs),
}

#[derive(Args, Clone)]
struct KeyArgs {
    /// LiveKit API key (with --api-secret).
    #[arg(long = "api-key", env = "LIVEKIT_API_KEY", global = true)]
    api_key: Option<String>,
    /// LiveKit API secret.
    #[arg(
        long = "api-secret",
        env = "LIVEKIT_API_SECRET",
        hide_env_values = true,
        global = true
    )]
    api_secret: Option<String>,
    /// Several keys, as livekit-server takes them: "key1: secret1, key2: secret2".
    #[arg(
        long = "keys",
        env = "LIVEKIT_KEYS",
        hide_env_values = true,
        global = true
    )]
    keys: Option<String>,
}

impl KeyArgs {
    fn key_ring(&self) -> anyhow::Result<KeyRing> {
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
struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "ATTENDANCE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// sqlite://file.db (created if missing) or postgres://…
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://attendance.db")]
    database_url: String,
    /// Folder with the web pages served at /.
    #[arg(long, env = "ATTENDANCE_WWW_DIR", default_value = "www")]
    www_dir: PathBuf,
    /// Enable /demo/* (tokens and fabricated LiveKit events for trying it out).
    #[arg(long, env = "ATTENDANCE_DEMO")]
    demo: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "ATTENDANCE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: u64,
    /// Processing attempts before a webhook is dead-lettered.
    #[arg(long, env = "ATTENDANCE_MAX_ATTEMPTS", default_value_t = 8)]
    max_attempts: u32,
    /// First retry delay for failed processing (doubles each attempt), e.g. 1s, 250ms.
    #[arg(long, env = "ATTENDANCE_RETRY_BASE", default_value = "1s", value_parser = humantime::parse_duration)]
    retry_base: Duration,
    /// How often stale heartbeats and ended sessions are swept, e.g. 15s.
    #[arg(long, env = "ATTENDANCE_SWEEP_INTERVAL", default_value = "15s", value_parser = humantime::parse_duration)]
    sweep_interval: Duration,
    /// How long a claimed webhook stays reserved for the instance that
    /// claimed it; after that (the instance died) another one takes it.
    #[arg(long, env = "ATTENDANCE_PROCESSING_LEASE", default_value = "30s", value_parser = humantime::parse_duration)]
    processing_lease: Duration,
    /// LiveKit participant kinds left out of class statistics (kept as facts).
    #[arg(
        long,
        env = "ATTENDANCE_EXCLUDE_KINDS",
        value_delimiter = ',',
        default_value = "INGRESS,EGRESS,SIP,AGENT"
    )]
    exclude_kinds: Vec<String>,
    /// Participant `role`s (metadata or attributes) left out of statistics.
    #[arg(
        long,
        env = "ATTENDANCE_EXCLUDE_ROLES",
        value_delimiter = ',',
        default_value = "observer"
    )]
    exclude_roles: Vec<String>,
    /// Database connections in the pool.
    #[arg(long, env = "ATTENDANCE_DB_CONNECTIONS", default_value_t = 8)]
    db_connections: u32,
    #[command(flatten)]
    keys: KeyArgs,
}

#[derive(Args)]
struct TokenArgs {
    #[arg(long)]
    identity: String,
    #[arg(long)]
    room: String,
    #[arg(long)]
    name: Option<String>,
    /// JSON or text stored as the participant's metadata.
    #[arg(long)]
    metadata: Option<String>,
    #[arg(long, value_enum, default_value_t = RoleRequest::Student)]
    role: RoleRequest,
    /// Lifetime, e.g. 6h, 30m.
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    #[command(flatten)]
    keys: KeyArgs,
}

#[derive(Args)]
struct ReplayArgs {
    /// Event ids to replay.
    ids: Vec<String>,
    /// Replay every dead-lettered event.
    #[arg(long)]
    all_failed: bool,
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://attendance.db")]
    database_url: String,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,warp=warn,warp::filters::trace=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command {
            None => serve(cli.serve).await,
            Some(Command::Serve(args)) => serve(args).await,
            Some(Command::Token(args)) => token(args),
            Some(Command::Replay(args)) => replay(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("attendance-server: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let keys = args.keys.key_ring()?;
    let store = Store::connect(&args.database_url, args.db_connections)
        .await
        .with_context(|| format!("cannot open the database at {}", redact(&args.database_url)))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let settings = Settings {
        max_body_bytes: args.max_body_bytes,
        max_attempts: args.max_attempts.max(1),
        retry_base: args.retry_base,
        sweep_interval: args.sweep_interval.max(Duration::from_millis(50)),
        processing_lease: args.processing_lease.max(Duration::from_millis(100)),
        demo: args.demo,
        www_dir: args.www_dir,
        classifier: attendance_server::report::Classifier {
            excluded_kinds: args
                .exclude_kinds
                .into_iter()
                .map(|k| k.trim().to_ascii_uppercase())
                .filter(|k| !k.is_empty())
                .collect(),
            excluded_roles: args
                .exclude_roles
                .into_iter()
                .map(|r| r.trim().to_ascii_lowercase())
                .filter(|r| !r.is_empty())
                .collect(),
        },
    };
    // Tests and scripts read this line to find an ephemeral port.
    println!("listening on http://{addr}");
    if settings.demo {
        println!("demo mode: open http://{addr}/meeting.html and http://{addr}/dashboard.html");
    }
    let app = App::new(store, keys, settings);
    attendance_server::serve(app, listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

fn token(args: TokenArgs) -> anyhow::Result<()> {
    let keys = args.keys.key_ring()?;
    let token = keys
        .mint_access_token(&TokenRequest {
            identity: args.identity,
            room: args.room,
            name: args.name,
            metadata: args.metadata,
            role: args.role,
            ttl: args.ttl,
        })
        .map_err(|e| anyhow::anyhow!(e))?;
    println!("{token}");
    Ok(())
}

async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let store = Store::connect(&args.database_url, 2).await?;
    let mut ids = args.ids;
    if args.all_failed {
        ids.extend(
            store
                .events_by_status("failed", i64::MAX)
                .await?
                .into_iter()
                .map(|e| e.id),
        );
    }
    if ids.is_empty() {
        anyhow::bail!("name event ids to replay, or pass --all-failed");
    }
    let now = chrono::Utc::now().timestamp_millis();
    for id in ids {
        if store.replay_event(&id, now).await? {
            println!("queued {id}");
        } else {
            anyhow::bail!("no webhook with id {id}");
        }
    }
    Ok(())
}

/// A database URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
        _ => url.to_string(),
    }
}
