//! `attendance-server endpoints …`: outbound webhook endpoints from the
//! shell, straight on the database, answering with the same JSON as
//! `/api/admin/endpoints`. A running server sends what is queued here
//! within a second.

use attendance_server::outbound::admin::{endpoint_view, secret_view, Admin, EndpointFields};
use attendance_server::store::Store;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Args)]
pub struct EndpointsArgs {
    #[command(subcommand)]
    command: EndpointsCommand,
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://attendance.db",
        global = true
    )]
    database_url: String,
    /// Allow endpoints on loopback, link-local and private addresses.
    #[arg(long, env = "ATTENDANCE_ALLOW_PRIVATE_ENDPOINTS", global = true)]
    allow_private_endpoints: bool,
}

#[derive(Subcommand)]
enum EndpointsCommand {
    /// Every endpoint.
    List,
    /// Register an endpoint; prints it with its signing secret.
    Add {
        #[arg(long)]
        url: String,
        /// Event types, comma-separated: session.finalized,attendance.corrected,session.updated
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// One endpoint.
    Show { id: String },
    /// Change an endpoint; --enable turns a disabled one on again.
    Update {
        id: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
    },
    /// Remove an endpoint and its messages.
    Delete { id: String },
    /// A new signing secret (the old one still signs for 24 hours).
    RotateSecret { id: String },
    /// An endpoint's messages with their attempts, newest first.
    Messages {
        id: String,
        /// pending, delivered or failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Send a message again (at the start of the retry schedule).
    Retry { message_id: String },
}

pub async fn run(args: EndpointsArgs) -> anyhow::Result<()> {
    let store = Store::connect(&args.database_url, 2).await?;
    let admin = Admin::new(&store, args.allow_private_endpoints);
    let answer: Value = match args.command {
        EndpointsCommand::List => {
            let endpoints: Vec<_> = store.endpoints().await?.iter().map(endpoint_view).collect();
            json!({ "endpoints": endpoints })
        }
        EndpointsCommand::Add {
            url,
            events,
            description,
        } => {
            let fields = EndpointFields {
                url: Some(url),
                events: Some(events),
                description,
                disabled: None,
            };
            secret_view(&admin.create(fields).await?)
        }
        EndpointsCommand::Show { id } => endpoint_view(&admin.get(&id).await?),
        EndpointsCommand::Update {
            id,
            url,
            events,
            description,
            enable,
            disable,
        } => {
            let disabled = (enable || disable).then_some(disable);
            let fields = EndpointFields {
                url,
                events,
                description,
                disabled,
            };
            endpoint_view(&admin.update(&id, fields).await?)
        }
        EndpointsCommand::Delete { id } => {
            admin.delete(&id).await?;
            json!({ "deleted": id })
        }
        EndpointsCommand::RotateSecret { id } => secret_view(&admin.rotate_secret(&id).await?),
        EndpointsCommand::Messages { id, status, limit } => {
            admin.messages(&id, status.as_deref(), limit).await?
        }
        EndpointsCommand::Retry { message_id } => {
            admin.retry(&message_id).await?;
            json!({ "status": "queued", "id": message_id })
        }
    };
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}
