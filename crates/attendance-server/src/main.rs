//! The `attendance-server` command line: `serve` (the default), `token`,
//! `replay`, `endpoints`, `class`. Settings live in `config`.

mod class_cli;
mod endpoints_cli;

use std::time::Duration;

use anyhow::Context;
use attendance_server::config::{init_logging, KeyArgs, LogFormat, ServeArgs};
use attendance_server::http::demo::DEMO_PREFIX;
use attendance_server::livekit::{RoleRequest, TokenRequest};
use attendance_server::store::Store;
use attendance_server::App;
use clap::{Args, Parser, Subcommand};

/// Fair, live attendance for online classes on LiveKit.
#[derive(Parser)]
#[command(name = "attendance-server", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
    /// Log lines as text (coloured only on a terminal) or as JSON.
    #[arg(long, env = "ATTENDANCE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve(Box<ServeArgs>),
    /// Print a LiveKit access token, as LiveKit's own SDKs mint them.
    Token(TokenArgs),
    /// Put dead-lettered webhooks back in the processing queue.
    Replay(ReplayArgs),
    /// Outbound webhook endpoints: list, add, show, update, delete,
    /// rotate-secret, messages, retry.
    Endpoints(endpoints_cli::EndpointsArgs),
    /// Classes with recurring lessons, through a running server's API.
    Class(Box<class_cli::ClassArgs>),
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
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command {
            None => serve(cli.serve).await,
            Some(Command::Serve(args)) => serve(*args).await,
            Some(Command::Token(args)) => token(args),
            Some(Command::Replay(args)) => replay(args).await,
            Some(Command::Endpoints(args)) => endpoints_cli::run(args).await,
            Some(Command::Class(args)) => class_cli::run(*args).await,
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
    if args.demo {
        refuse_demo_on_real_data(&store, args.demo_with_real_data).await?;
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let settings = args.settings();
    let limits = args.limits();
    // Tests and scripts read this line to find an ephemeral port.
    println!("listening on http://{addr}");
    if settings.demo {
        println!("demo mode: open http://{addr}/meeting.html and http://{addr}/dashboard.html");
        tracing::warn!(
            "DEMO MODE: /demo/* hands out tokens without authentication (rooms named {DEMO_PREFIX}… only); \
             never run it where real classes are"
        );
    }
    let app = App::new(store, keys, settings);
    attendance_server::serve(app, listener, limits, shutdown_signal()).await
}

/// Demo mode hands out tokens to anyone: on a database with real classes
/// that is a door left open, so it takes an explicit flag.
async fn refuse_demo_on_real_data(store: &Store, allowed: bool) -> anyhow::Result<()> {
    let real = store.sessions_outside(DEMO_PREFIX).await?;
    if real > 0 && !allowed {
        anyhow::bail!(
            "refusing --demo: this database holds {real} session(s) outside demo rooms \
             ({DEMO_PREFIX}…); use a separate database for the demo, or pass \
             --demo-with-real-data if you really mean it"
        );
    }
    if real > 0 {
        tracing::warn!(
            sessions = real,
            "demo mode on a database with real sessions (--demo-with-real-data)"
        );
    }
    Ok(())
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
