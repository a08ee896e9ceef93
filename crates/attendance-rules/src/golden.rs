//! Runs the golden vectors (`tests/vectors/*.json`) through the rules.
//!
//! Shared by the native test suite and the WebAssembly tests that run in
//! Chromium, so both builds are held to the very same expectations.
//!
//! - `golden.json`: [`compute`] — seconds, percentage, status, phase.
//! - `shown.json`: [`assess`], [`overview`] and [`timeline`] — the threshold
//!   of a role, a teacher's correction, the window's times and the cycles
//!   clipped for drawing.
//! - `stay_until.json`: [`stay_until`] — the best status still reachable and
//!   when, with the threshold of the person's role.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{
    assess, compute, compute_with_threshold, overview, stay_until, timeline, Cycle, Person,
    Schedule, Thresholds,
};

/// The vectors files, compiled in so the wasm tests need no file access.
pub const GOLDEN_VECTORS: &str = include_str!("../tests/vectors/golden.json");
pub const SHOWN_VECTORS: &str = include_str!("../tests/vectors/shown.json");
pub const STAY_UNTIL_VECTORS: &str = include_str!("../tests/vectors/stay_until.json");
pub const MEDIA_VECTORS: &str = include_str!("../tests/vectors/media.json");

#[derive(Deserialize)]
struct VectorFile<V> {
    vectors: Vec<V>,
}

#[derive(Deserialize)]
struct Check {
    now: DateTime<Utc>,
    expect: Map<String, Value>,
}

/// A vector of `golden.json`.
#[derive(Deserialize)]
struct Vector {
    name: String,
    schedule: Schedule,
    cycles: Vec<Cycle>,
    last_heartbeat_at: Option<DateTime<Utc>>,
    checks: Vec<Check>,
}

/// A vector of `shown.json` or `stay_until.json`.
#[derive(Deserialize)]
struct ShownVector {
    name: String,
    schedule: Schedule,
    #[serde(default)]
    teacher_present_percent: Option<u32>,
    person: Person,
    checks: Vec<Check>,
}

/// Checks every vector of `golden.json`; returns the number of checks made
/// and one line per mismatch (empty = all pass).
pub fn run(vectors_json: &str) -> Result<(usize, Vec<String>), String> {
    run_with(vectors_json, |v: &Vector| {
        let checks = v.checks.iter().map(|check| {
            let got = compute(&v.schedule, &v.cycles, v.last_heartbeat_at, check.now);
            (check, serde_json::to_value(&got))
        });
        (v.name.clone(), checks.collect())
    })
}

/// Checks every vector of `shown.json`: `expect` holds fields of the
/// assessment (`status`, `present_percent`, `attendance`), and of the
/// `overview` and `timeline`.
pub fn run_shown(vectors_json: &str) -> Result<(usize, Vec<String>), String> {
    run_with(vectors_json, |v: &ShownVector| {
        let thresholds = Thresholds::new(&v.schedule, v.teacher_present_percent);
        let checks = v.checks.iter().map(|check| {
            let got = serde_json::to_value(assess(&v.schedule, thresholds, &v.person, check.now))
                .and_then(|mut got| {
                    got["overview"] =
                        serde_json::to_value(overview(&v.schedule, thresholds, check.now))?;
                    got["timeline"] =
                        serde_json::to_value(timeline(&v.schedule, &v.person.cycles, check.now))?;
                    Ok(got)
                });
            (check, got)
        });
        (v.name.clone(), checks.collect())
    })
}

/// Checks every vector of `stay_until.json`: `expect` holds fields of
/// [`stay_until`]'s answer, and `status`, the status computed at that instant.
pub fn run_stay_until(vectors_json: &str) -> Result<(usize, Vec<String>), String> {
    run_with(vectors_json, |v: &ShownVector| {
        let thresholds = Thresholds::new(&v.schedule, v.teacher_present_percent);
        let threshold = thresholds.resolve(v.person.role, v.person.present_percent);
        let p = &v.person;
        let checks = v.checks.iter().map(|check| {
            let stay = stay_until(
                &v.schedule,
                &p.cycles,
                p.last_heartbeat_at,
                check.now,
                threshold,
            );
            let now = compute_with_threshold(
                &v.schedule,
                &p.cycles,
                p.last_heartbeat_at,
                check.now,
                threshold,
            );
            let got = serde_json::to_value(stay).and_then(|mut got| {
                got["status"] = serde_json::to_value(now.status)?;
                Ok(got)
            });
            (check, got)
        });
        (v.name.clone(), checks.collect())
    })
}

/// A vector of `media.json`: connections, media facts, checks of
/// [`media_time`]'s answer.
#[derive(Deserialize)]
struct MediaVector {
    name: String,
    schedule: Schedule,
    connections: Vec<crate::Connection>,
    #[serde(default)]
    last_heartbeat_at: Option<DateTime<Utc>>,
    events: Vec<crate::MediaEvent>,
    checks: Vec<MediaCheck>,
}

/// A check of `media.json`: media time at `now` or, with `shown_live`, as a
/// page shows it at `now` from the figures reported at `shown_live.as_of`
/// ([`crate::media_time_since`]).
#[derive(Deserialize)]
struct MediaCheck {
    #[serde(flatten)]
    check: Check,
    #[serde(default)]
    shown_live: Option<ShownLive>,
}

#[derive(Deserialize)]
struct ShownLive {
    as_of: DateTime<Utc>,
    on: crate::MediaOn,
    in_meeting: bool,
}

/// Checks every vector of `media.json`.
pub fn run_media(vectors_json: &str) -> Result<(usize, Vec<String>), String> {
    run_with(vectors_json, |v: &MediaVector| {
        let media_at = |at| {
            crate::media_time(
                &v.schedule,
                &v.connections,
                v.last_heartbeat_at,
                &v.events,
                at,
            )
        };
        let checks = v.checks.iter().map(|MediaCheck { check, shown_live }| {
            let got = match shown_live {
                None => media_at(check.now),
                Some(live) => crate::media_time_since(
                    &v.schedule,
                    media_at(live.as_of),
                    live.as_of,
                    live.on,
                    live.in_meeting,
                    check.now,
                ),
            };
            (check, serde_json::to_value(got))
        });
        (v.name.clone(), checks.collect())
    })
}

/// Panics unless a runner's answer holds: the file parsed, at least
/// `at_least` checks ran, and none mismatched. One assertion for the native
/// and the browser tests.
pub fn assert_hold(what: &str, answer: Result<(usize, Vec<String>), String>, at_least: usize) {
    let (checks, failures) = answer.unwrap_or_else(|e| panic!("{what} vectors: {e}"));
    assert!(
        checks >= at_least,
        "expected at least {at_least} {what} checks, found {checks}"
    );
    assert!(
        failures.is_empty(),
        "{what} mismatches:\n{}",
        failures.join("\n")
    );
}

type Outcome<'a> = (&'a Check, serde_json::Result<Value>);

fn run_with<V: DeserializeOwned>(
    vectors_json: &str,
    outcomes: impl for<'a> Fn(&'a V) -> (String, Vec<Outcome<'a>>),
) -> Result<(usize, Vec<String>), String> {
    let file: VectorFile<V> =
        serde_json::from_str(vectors_json).map_err(|e| format!("bad vectors file: {e}"))?;
    let mut failures = Vec::new();
    let mut checks = 0;
    for vector in &file.vectors {
        let (name, results) = outcomes(vector);
        for (check, got) in results {
            checks += 1;
            let got = got.map_err(|e| e.to_string())?;
            let context = format!("{name} (now {})", check.now);
            for (field, want) in &check.expect {
                compare(&context, field, &got[field.as_str()], want, &mut failures);
            }
        }
    }
    Ok((checks, failures))
}

/// Compares what a check lists: objects field by field (fields not listed
/// are not checked), arrays element by element and of the same length.
fn compare(context: &str, path: &str, actual: &Value, want: &Value, failures: &mut Vec<String>) {
    match (actual, want) {
        (Value::Object(a), Value::Object(w)) => {
            for (field, want) in w {
                let actual = a.get(field).unwrap_or(&Value::Null);
                compare(context, &format!("{path}.{field}"), actual, want, failures);
            }
        }
        (Value::Array(a), Value::Array(w)) if a.len() == w.len() => {
            for (i, (actual, want)) in a.iter().zip(w).enumerate() {
                compare(context, &format!("{path}[{i}]"), actual, want, failures);
            }
        }
        _ if same(actual, want) => {}
        _ => failures.push(format!("{context}: {path} = {actual}, expected {want}")),
    }
}

/// Equality that reads timestamps as instants and numbers as numbers (to
/// within 1e-6, so fractions can be written with six decimals).
fn same(actual: &Value, want: &Value) -> bool {
    match (actual, want) {
        (Value::String(a), Value::String(w)) => {
            match (a.parse::<DateTime<Utc>>(), w.parse::<DateTime<Utc>>()) {
                (Ok(a), Ok(w)) => a == w,
                _ => a == w,
            }
        }
        (Value::Number(a), Value::Number(w)) => match (a.as_f64(), w.as_f64()) {
            (Some(a), Some(w)) => (a - w).abs() <= 1e-6,
            _ => false,
        },
        _ => actual == want,
    }
}
