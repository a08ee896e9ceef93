//! Sends the outbox: claims due messages (a lease in the database, so each
//! is sent by one instance at a time and an instance's death loses nothing),
//! signs and POSTs each, logs the attempt, and schedules a retry with
//! backoff and jitter — or marks it delivered, or failed once the schedule
//! is exhausted. An endpoint failing for `disable_after` is disabled.

use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::address::literal_is_private;
use super::signing::signature_header;
use super::Outbound;
use crate::domain::outbound::new_id;
use crate::domain::{now, now_ms, Attempt, AttemptOutcome, Endpoint, OutboundMessage};

/// Attempts in flight per instance.
const MAX_IN_FLIGHT: usize = 16;

/// How much of an answer is kept in the attempt log.
const EXCERPT_BYTES: usize = 1024;

/// Delivered messages are forgotten after this long (failed ones are kept).
const KEEP_DELIVERED: Duration = Duration::from_secs(30 * 24 * 3600);

/// Runs until `stop`, then lets the attempts in flight finish.
pub async fn run(outbound: Outbound, mut stop: watch::Receiver<bool>) {
    // The first retry delay bounds how late a due message may be noticed.
    let poll = outbound
        .settings
        .retry_schedule
        .first()
        .copied()
        .unwrap_or(Duration::from_secs(1))
        .clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut in_flight = JoinSet::new();
    let mut purged_at: Option<Instant> = None;
    loop {
        let free = MAX_IN_FLIGHT - in_flight.len();
        if free > 0 {
            match claim(&outbound, free).await {
                Ok((messages, token)) => {
                    for message in messages {
                        in_flight.spawn(attempt(outbound.clone(), message, token.clone()));
                    }
                }
                Err(error) => tracing::warn!(%error, "outbound webhooks wait: store unavailable"),
            }
        }
        if purged_at.is_none_or(|at| at.elapsed() > Duration::from_secs(3600)) {
            purged_at = Some(Instant::now());
            purge(&outbound).await;
        }
        tokio::select! {
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = outbound.wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => break,
        }
    }
    while in_flight.join_next().await.is_some() {}
}

async fn claim(
    outbound: &Outbound,
    limit: usize,
) -> Result<(Vec<OutboundMessage>, String), sqlx::Error> {
    let token = new_id("claim", now_ms());
    // An attempt takes at most the timeout; the lease outlasts it (and the
    // recording of its result) comfortably.
    let lease = outbound.settings.timeout * 2 + Duration::from_secs(1);
    let messages = outbound
        .store
        .claim_outbound(now_ms(), lease.as_millis() as i64, limit as i64, &token)
        .await?;
    Ok((messages, token))
}

async fn purge(outbound: &Outbound) {
    let before = now_ms() - KEEP_DELIVERED.as_millis() as i64;
    match outbound.store.purge_delivered_outbound(before).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(messages = n, "old delivered outbound webhooks forgotten"),
        Err(error) => tracing::warn!(%error, "old outbound webhooks not purged yet"),
    }
}

/// Why an attempt got no HTTP answer, with its metrics class.
struct NoAnswer {
    class: &'static str,
    error: String,
}

/// One attempt at one message, logged with its outcome.
async fn attempt(outbound: Outbound, message: OutboundMessage, token: String) {
    let endpoint = match outbound.store.endpoint(&message.endpoint_id).await {
        Ok(Some(endpoint)) => endpoint,
        // Deleted meanwhile: its messages went with it.
        Ok(None) => return,
        Err(error) => {
            // The lease runs out and the message is tried again.
            tracing::warn!(%error, message_id = %message.id, "outbound webhook not sent: store unavailable");
            return;
        }
    };
    let at = now();
    let started = Instant::now();
    let result = send(&outbound, &endpoint, &message).await;
    let duration_ms = started.elapsed().as_millis() as i64;
    let delivered = matches!(&result, Ok((status, _)) if (200..300).contains(status));
    let class = match &result {
        Ok((status, _)) => ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .get(usize::from(status / 100).saturating_sub(1))
            .copied()
            .unwrap_or("other"),
        Err(no_answer) => no_answer.class,
    };
    outbound.metrics.outbound.attempted(class);
    let outcome = outcome(&outbound, &message, delivered);
    let (status_code, response, error) = match result {
        Ok((status, excerpt)) => (Some(i64::from(status)), excerpt, None),
        Err(no_answer) => (None, String::new(), Some(no_answer.error)),
    };
    let attempt = Attempt {
        message_id: message.id.clone(),
        endpoint_id: endpoint.id.clone(),
        at,
        status_code,
        duration_ms,
        response,
        error,
    };
    record(&outbound, &endpoint, &message, &attempt, &token, outcome).await;
}

/// Delivered, retried after the schedule's next delay (± 20%), or given up.
fn outcome(outbound: &Outbound, message: &OutboundMessage, delivered: bool) -> AttemptOutcome {
    if delivered {
        return AttemptOutcome::Delivered;
    }
    let schedule = &outbound.settings.retry_schedule;
    match usize::try_from(message.step)
        .ok()
        .and_then(|step| schedule.get(step))
    {
        Some(delay) => {
            let jittered = delay.mul_f64(rand::rng().random_range(0.8..1.2));
            AttemptOutcome::RetryAt(now_ms() + jittered.as_millis() as i64)
        }
        None => AttemptOutcome::GaveUp,
    }
}

async fn record(
    outbound: &Outbound,
    endpoint: &Endpoint,
    message: &OutboundMessage,
    attempt: &Attempt,
    token: &str,
    outcome: AttemptOutcome,
) {
    let what = match (attempt.status_code, &attempt.error) {
        (Some(status), _) => format!("HTTP {status}"),
        (None, Some(error)) => error.clone(),
        (None, None) => "no answer".into(),
    };
    let disable_after = outbound.settings.disable_after;
    let reason = format!(
        "disabled automatically: every attempt failed for {} or more (the last: {what})",
        humantime::format_duration(disable_after)
    );
    let metrics = &outbound.metrics.outbound;
    match outcome {
        AttemptOutcome::Delivered => metrics.delivered(
            (attempt.at - message.created_at)
                .to_std()
                .unwrap_or_default(),
        ),
        AttemptOutcome::GaveUp => metrics.gave_up(),
        AttemptOutcome::RetryAt(_) => {}
    }
    let (id, url) = (&message.id, &endpoint.url);
    match outbound
        .store
        .record_attempt(
            attempt,
            token,
            outcome,
            disable_after.as_millis() as i64,
            &reason,
        )
        .await
    {
        Ok(true) => {
            tracing::warn!(endpoint_id = %endpoint.id, %url, %reason, "outbound endpoint disabled")
        }
        Ok(false) => {}
        Err(error) => tracing::warn!(%error, message_id = %id, "outbound attempt not recorded"),
    }
    match outcome {
        AttemptOutcome::Delivered => {
            tracing::debug!(message_id = %id, %url, "outbound webhook delivered")
        }
        AttemptOutcome::RetryAt(at) => {
            tracing::info!(message_id = %id, %url, result = %what, retry_in_ms = at - now_ms(), "outbound webhook failed; retrying")
        }
        AttemptOutcome::GaveUp => {
            tracing::warn!(message_id = %id, %url, result = %what, "outbound webhook failed; retries exhausted")
        }
    }
}

/// Signs and POSTs the message: the status and the answer's first KiB, or
/// why there was no answer.
async fn send(
    outbound: &Outbound,
    endpoint: &Endpoint,
    message: &OutboundMessage,
) -> Result<(u16, String), NoAnswer> {
    let refused = |error: String| NoAnswer {
        class: "refused",
        error,
    };
    let url = reqwest::Url::parse(&endpoint.url).map_err(|e| refused(e.to_string()))?;
    if !outbound.settings.allow_private && literal_is_private(&url) {
        return Err(refused("the endpoint's address is private".into()));
    }
    let at = now();
    let timestamp = at.timestamp();
    let body = message.payload.as_bytes();
    let signature = signature_header(&endpoint.signing_secrets(at), &message.id, timestamp, body);
    let request = outbound
        .client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &message.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(message.payload.clone());
    let exchange = async {
        let mut response = request.send().await?;
        let status = response.status().as_u16();
        Ok::<_, reqwest::Error>((status, excerpt(&mut response).await))
    };
    let timeout = outbound.settings.timeout;
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(error)) if error.is_timeout() => Err(timed_out(timeout)),
        Ok(Err(error)) => Err(NoAnswer {
            class: "network",
            error: error_chain(&error),
        }),
        Err(_) => Err(timed_out(timeout)),
    }
}

fn timed_out(timeout: Duration) -> NoAnswer {
    NoAnswer {
        class: "timeout",
        error: format!("no answer within {}", humantime::format_duration(timeout)),
    }
}

/// The answer's first KiB, as text.
async fn excerpt(response: &mut reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(EXCERPT_BYTES);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
