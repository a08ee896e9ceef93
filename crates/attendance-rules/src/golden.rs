//! Runs the golden vectors (`tests/vectors/golden.json`) through [`compute`].
//!
//! Shared by the native test suite and the WebAssembly tests that run in
//! Chromium, so both builds are held to the very same expectations.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::{compute, Cycle, Schedule};

/// The vectors file, compiled in so the wasm tests need no file access.
pub const GOLDEN_VECTORS: &str = include_str!("../tests/vectors/golden.json");

#[derive(Deserialize)]
struct VectorFile {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    schedule: Schedule,
    cycles: Vec<Cycle>,
    last_heartbeat_at: Option<DateTime<Utc>>,
    checks: Vec<Check>,
}

#[derive(Deserialize)]
struct Check {
    now: DateTime<Utc>,
    expect: serde_json::Map<String, Value>,
}

/// Checks every vector; returns one line per mismatch (empty = all pass),
/// and the number of checks made.
pub fn run(vectors_json: &str) -> Result<(usize, Vec<String>), String> {
    let file: VectorFile =
        serde_json::from_str(vectors_json).map_err(|e| format!("bad vectors file: {e}"))?;
    let mut failures = Vec::new();
    let mut checks = 0;
    for vector in &file.vectors {
        for check in &vector.checks {
            checks += 1;
            let got = compute(
                &vector.schedule,
                &vector.cycles,
                vector.last_heartbeat_at,
                check.now,
            );
            let got = serde_json::to_value(&got).map_err(|e| e.to_string())?;
            for (field, want) in &check.expect {
                let actual = got.get(field).unwrap_or(&Value::Null);
                if !same(actual, want) {
                    failures.push(format!(
                        "{} (now {}): {field} = {actual}, expected {want}",
                        vector.name, check.now
                    ));
                }
            }
        }
    }
    Ok((checks, failures))
}

/// Equality that reads timestamps as instants and numbers as numbers.
fn same(actual: &Value, want: &Value) -> bool {
    match (actual, want) {
        (Value::String(a), Value::String(w)) => {
            match (a.parse::<DateTime<Utc>>(), w.parse::<DateTime<Utc>>()) {
                (Ok(a), Ok(w)) => a == w,
                _ => a == w,
            }
        }
        (Value::Number(a), Value::Number(w)) => a.as_f64() == w.as_f64(),
        _ => actual == want,
    }
}
