//! `attendance-server class …`: classes with recurring lessons, managed
//! through a running server's API (so its live pages and caches follow),
//! with an administrator token signed by the configured LiveKit key.

use std::time::Duration;

use anyhow::Context;
use attendance_rules::GradePointsChange;
use attendance_server::config::KeyArgs;
use attendance_server::livekit::{RoleRequest, TokenRequest};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Args)]
pub struct ClassArgs {
    #[command(subcommand)]
    command: ClassCommand,
    /// The running attendance server.
    #[arg(
        long,
        env = "ATTENDANCE_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    #[command(flatten)]
    keys: KeyArgs,
}

#[derive(Subcommand)]
enum ClassCommand {
    /// Create a class and all its lessons (from --file, or from flags).
    Create(ClassSpec),
    /// Replace a class; its lessons still to come follow.
    Update {
        id: i64,
        #[command(flatten)]
        spec: ClassSpec,
    },
    /// List classes (optionally one room's).
    List {
        #[arg(long)]
        room: Option<String>,
    },
    /// Show a class, its roster and its lessons.
    Show { id: i64 },
    /// Cancel a class's lessons on a date (YYYY-MM-DD).
    Cancel { id: i64, date: String },
    /// Undo a cancellation.
    Restore { id: i64, date: String },
    /// Delete a class and its lessons still to come (past ones stay).
    Delete { id: i64 },
}

#[derive(Args)]
struct ClassSpec {
    /// The class as JSON (the body of `POST /api/classes`); flags below
    /// override its fields.
    #[arg(long)]
    file: Option<std::path::PathBuf>,
    #[arg(long)]
    room: Option<String>,
    #[arg(long)]
    title: Option<String>,
    /// IANA time zone, e.g. Africa/Cairo.
    #[arg(long)]
    timezone: Option<String>,
    /// First day (YYYY-MM-DD, in the class's zone).
    #[arg(long)]
    from: Option<String>,
    /// Last day (YYYY-MM-DD).
    #[arg(long)]
    until: Option<String>,
    /// Weekdays of one slot, e.g. MO,WE.
    #[arg(long)]
    days: Option<String>,
    /// Or an iCalendar RRULE for the slot, e.g. FREQ=WEEKLY;INTERVAL=2;BYDAY=TU.
    #[arg(long)]
    rrule: Option<String>,
    /// The slot's local start, HH:MM.
    #[arg(long)]
    start: Option<String>,
    /// Lesson length in minutes.
    #[arg(long)]
    minutes: Option<u32>,
    /// Dates without lessons (repeatable).
    #[arg(long = "cancel")]
    cancelled: Vec<String>,
    /// Teachers' identities (repeatable).
    #[arg(long = "teacher")]
    teachers: Vec<String>,
    /// What statuses are worth in this class's lessons, over the school's:
    /// e.g. present=3,late=2 (statuses left out keep the school's points).
    #[arg(long, value_parser = GradePointsChange::parse)]
    grade_points: Option<GradePointsChange>,
}

impl ClassSpec {
    fn body(&self) -> anyhow::Result<Value> {
        let mut body = match &self.file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                serde_json::from_str(&text).context("the file is not JSON")?
            }
            None => json!({}),
        };
        let set = |body: &mut Value, key: &str, value: Option<Value>| {
            if let Some(value) = value {
                body[key] = value;
            }
        };
        set(&mut body, "room", self.room.clone().map(Value::from));
        set(&mut body, "title", self.title.clone().map(Value::from));
        set(
            &mut body,
            "timezone",
            self.timezone.clone().map(Value::from),
        );
        set(&mut body, "starts_on", self.from.clone().map(Value::from));
        set(&mut body, "ends_on", self.until.clone().map(Value::from));
        set(&mut body, "duration_minutes", self.minutes.map(Value::from));
        if self.days.is_some() || self.rrule.is_some() {
            let mut slot = json!({ "start": self.start.clone().unwrap_or_else(|| "09:00".into()) });
            if let Some(days) = &self.days {
                slot["days"] = days.split(',').map(str::trim).collect::<Vec<_>>().into();
            }
            if let Some(rule) = &self.rrule {
                slot["rrule"] = rule.clone().into();
            }
            body["slots"] = json!([slot]);
        }
        if !self.cancelled.is_empty() {
            body["cancelled"] = self.cancelled.clone().into();
        }
        if !self.teachers.is_empty() {
            body["teachers"] = self.teachers.clone().into();
        }
        if let Some(points) = &self.grade_points {
            body["grade_points"] = serde_json::to_value(points)?;
        }
        Ok(body)
    }
}

pub async fn run(args: ClassArgs) -> anyhow::Result<()> {
    let token = args
        .keys
        .key_ring()?
        .mint_access_token(&TokenRequest {
            identity: "attendance-cli".into(),
            room: String::new(),
            name: Some("attendance-server class".into()),
            metadata: None,
            role: RoleRequest::Admin,
            ttl: Duration::from_secs(600),
        })
        .map_err(|e| anyhow::anyhow!(e))?;
    let base = args.server.trim_end_matches('/');
    let (method, path, body) = match &args.command {
        ClassCommand::Create(spec) => ("POST", "/api/classes".to_string(), Some(spec.body()?)),
        ClassCommand::Update { id, spec } => {
            ("PUT", format!("/api/classes/{id}"), Some(spec.body()?))
        }
        ClassCommand::List { room } => {
            let filter = room.as_deref().map_or(String::new(), |r| {
                format!(
                    "?room={}",
                    percent_encoding::utf8_percent_encode(r, percent_encoding::NON_ALPHANUMERIC)
                )
            });
            ("GET", format!("/api/classes{filter}"), None)
        }
        ClassCommand::Show { id } => ("GET", format!("/api/classes/{id}"), None),
        ClassCommand::Cancel { id, date } => (
            "POST",
            format!("/api/classes/{id}/cancellations"),
            Some(json!({ "date": date })),
        ),
        ClassCommand::Restore { id, date } => (
            "DELETE",
            format!("/api/classes/{id}/cancellations/{date}"),
            None,
        ),
        ClassCommand::Delete { id } => ("DELETE", format!("/api/classes/{id}"), None),
    };
    let client = reqwest::Client::new();
    let mut request = client
        .request(method.parse()?, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the attendance server at {base}"))?;
    let status = response.status();
    let text = response.text().await?;
    let shown = serde_json::from_str::<Value>(&text)
        .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
        .unwrap_or(text);
    if !status.is_success() {
        anyhow::bail!("{status}: {shown}");
    }
    println!("{shown}");
    Ok(())
}
