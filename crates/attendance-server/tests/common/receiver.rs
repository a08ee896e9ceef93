//! A webhook receiver in Node.js (`tests/outbound-receiver.mjs`) that
//! verifies every delivery with the official `standardwebhooks` npm
//! library, not with this project's code.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

pub struct Receiver {
    child: Child,
    base: String,
    client: reqwest::Client,
}

/// One delivery as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `webhook-id`.
    pub id: String,
    /// The answer: 204 (verified), 500 (told to fail), 401 (not verified).
    pub status: u16,
    /// Whether `standardwebhooks` accepted the signature.
    pub verified: bool,
    pub error: Option<String>,
    pub body: String,
    /// The body, parsed: `{"type", "timestamp", "data"}`.
    pub event: Value,
}

impl Receiver {
    pub fn start() -> Receiver {
        let library = format!("{ROOT}/node_modules/standardwebhooks");
        assert!(
            std::path::Path::new(&library).exists(),
            "{library} is missing: run `npm ci` (scripts/setup.sh --browser does)"
        );
        let mut child = Command::new("node")
            .arg(format!("{ROOT}/tests/outbound-receiver.mjs"))
            .current_dir(ROOT)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node (Node.js) on PATH");
        let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        reader.read_line(&mut line).expect("receiver output");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("receiver did not start: `{line}`"))
            .to_string();
        std::thread::spawn(move || for _ in reader.lines() {});
        Receiver {
            child,
            base,
            client: reqwest::Client::new(),
        }
    }

    /// Where the service should send: register this URL.
    pub fn hook_url(&self) -> String {
        format!("{}/hook", self.base)
    }

    /// The secret to verify with (the endpoint's `whsec_…`).
    pub async fn set_secret(&self, secret: &str) {
        self.control(json!({ "secret": secret })).await;
    }

    /// Answer every delivery with 500 (`true`), or verify and accept them.
    pub async fn set_failing(&self, fail: bool) {
        self.control(json!({ "fail": fail })).await;
    }

    async fn control(&self, body: Value) {
        let r = self
            .client
            .post(format!("{}/control", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    pub async fn deliveries(&self) -> Vec<Delivery> {
        let answer: Value = self
            .client
            .get(format!("{}/deliveries", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let body = d["body"].as_str().unwrap_or_default().to_string();
                Delivery {
                    id: d["id"].as_str().unwrap_or_default().to_string(),
                    status: d["status"].as_u64().unwrap_or_default() as u16,
                    verified: d["verified"].as_bool().unwrap_or(false),
                    error: d["error"].as_str().map(str::to_string),
                    event: serde_json::from_str(&body).unwrap_or(Value::Null),
                    body,
                }
            })
            .collect()
    }

    /// Waits until `done` holds for the deliveries so far, and returns them.
    pub async fn wait_for(
        &self,
        within: Duration,
        what: &str,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        let deadline = Instant::now() + within;
        loop {
            let deliveries = self.deliveries().await;
            if done(&deliveries) {
                return deliveries;
            }
            assert!(
                Instant::now() < deadline,
                "receiver never got {what}; it got: {deliveries:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deliveries of `kind` (`session.finalized`, …) the library verified and
/// the receiver accepted.
pub fn accepted<'a>(deliveries: &'a [Delivery], kind: &str) -> Vec<&'a Delivery> {
    deliveries
        .iter()
        .filter(|d| d.status == 204 && d.verified && d.event["type"] == kind)
        .collect()
}
