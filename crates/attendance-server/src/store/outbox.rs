//! The outbox of outbound webhooks: messages written in the same
//! transaction as the facts that caused them ([`enqueue`]), claimed for
//! delivery with a lease (one instance sends a message at a time), and every
//! attempt logged.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Backend, Store, StoreResult};
use crate::domain::outbound::new_id;
use crate::domain::{ms_to_time, Attempt, AttemptOutcome, OutboundEvent, OutboundMessage};

const MESSAGE_COLUMNS: &str = "id, endpoint_id, event_type, payload, status, attempts, step, \
     next_attempt_at_ms, created_at_ms, last_attempt_at_ms, last_status, last_error, delivered_at_ms";

fn message_from_row(row: &AnyRow) -> StoreResult<OutboundMessage> {
    let time = |column: &str| -> StoreResult<_> {
        Ok(row.try_get::<Option<i64>, _>(column)?.map(ms_to_time))
    };
    Ok(OutboundMessage {
        id: row.try_get("id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        event_type: row.try_get("event_type")?,
        payload: row.try_get("payload")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        step: row.try_get("step")?,
        next_attempt_at: ms_to_time(row.try_get("next_attempt_at_ms")?),
        created_at: ms_to_time(row.try_get("created_at_ms")?),
        last_attempt_at: time("last_attempt_at_ms")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        delivered_at: time("delivered_at_ms")?,
    })
}

/// Puts events in the outbox, inside the caller's transaction: one message
/// per event and subscribed endpoint (disabled ones too: their messages wait
/// until they are enabled again). Returns how many messages were written.
pub(super) async fn enqueue(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    events: &[OutboundEvent],
) -> StoreResult<usize> {
    if events.is_empty() {
        return Ok(0);
    }
    let endpoints: Vec<(String, String)> = sqlx::query("SELECT id, events FROM outbound_endpoints")
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("events")?)))
        .collect::<StoreResult<_>>()?;
    let mut written = 0;
    for event in events {
        for (endpoint_id, types) in &endpoints {
            let types: Vec<String> = serde_json::from_str(types).unwrap_or_default();
            if !types.contains(&event.event_type) {
                continue;
            }
            sqlx::query(
                "INSERT INTO outbound_messages (id, endpoint_id, event_type, payload, status, \
                 next_attempt_at_ms, created_at_ms) VALUES ($1, $2, $3, $4, 'pending', $5, $5)",
            )
            .bind(new_id("msg", event.created_at_ms))
            .bind(endpoint_id)
            .bind(&event.event_type)
            .bind(&event.payload)
            .bind(event.created_at_ms)
            .execute(&mut **tx)
            .await?;
            written += 1;
        }
    }
    Ok(written)
}

impl Store {
    /// Puts events in the outbox on their own (no other fact to write).
    pub async fn enqueue_outbound(&self, events: &[OutboundEvent]) -> StoreResult<usize> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let written = enqueue(&mut tx, events).await?;
        tx.commit().await?;
        Ok(written)
    }

    /// Claims up to `limit` due messages of enabled endpoints, oldest due
    /// first, until `now_ms + lease_ms`: other instances skip them until
    /// then, so a message is sent by one instance at a time, and the work
    /// of one that died is taken over once its lease runs out. An attempt
    /// records its result only while it holds `token`.
    pub async fn claim_outbound(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
        token: &str,
    ) -> StoreResult<Vec<OutboundMessage>> {
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE OF m SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let _turn = self.write_turn().await;
        let rows = sqlx::query(&format!(
            "UPDATE outbound_messages SET next_attempt_at_ms = $2, lease_token = $3 WHERE id IN (\
             SELECT m.id FROM outbound_messages m JOIN outbound_endpoints e ON e.id = m.endpoint_id \
             WHERE m.status = 'pending' AND m.next_attempt_at_ms <= $1 AND e.disabled_at_ms IS NULL \
             ORDER BY m.next_attempt_at_ms LIMIT $4 {lock}) RETURNING {MESSAGE_COLUMNS}"
        ))
        .bind(now_ms)
        .bind(now_ms + lease_ms)
        .bind(token)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// Logs an attempt and applies its outcome, in one transaction: the
    /// message (only while the claim `token` still holds it) and the
    /// endpoint's health. A failure that leaves the endpoint failing since
    /// `disable_after_ms` or longer disables it with `disable_reason`;
    /// returns whether this attempt did.
    pub async fn record_attempt(
        &self,
        attempt: &Attempt,
        token: &str,
        outcome: AttemptOutcome,
        disable_after_ms: i64,
        disable_reason: &str,
    ) -> StoreResult<bool> {
        let at_ms = attempt.at.timestamp_millis();
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        // Not for a message deleted meanwhile (with its endpoint).
        sqlx::query(
            "INSERT INTO outbound_attempts (message_id, endpoint_id, at_ms, status_code, duration_ms, \
             response, error) SELECT $1, $2, $3, $4, $5, $6, $7 \
             WHERE EXISTS (SELECT 1 FROM outbound_messages WHERE id = $1)",
        )
        .bind(&attempt.message_id)
        .bind(&attempt.endpoint_id)
        .bind(at_ms)
        .bind(attempt.status_code)
        .bind(attempt.duration_ms)
        .bind(&attempt.response)
        .bind(&attempt.error)
        .execute(&mut *tx)
        .await?;
        let (status, next_ms) = match outcome {
            AttemptOutcome::Delivered => ("delivered", at_ms),
            AttemptOutcome::RetryAt(next_ms) => ("pending", next_ms),
            AttemptOutcome::GaveUp => ("failed", at_ms),
        };
        sqlx::query(
            "UPDATE outbound_messages SET status = $3, next_attempt_at_ms = $4, lease_token = NULL, \
             attempts = attempts + 1, step = step + 1, last_attempt_at_ms = $5, last_status = $6, \
             last_error = $7, delivered_at_ms = CASE WHEN $3 = 'delivered' THEN $5 ELSE delivered_at_ms END \
             WHERE id = $1 AND lease_token = $2",
        )
        .bind(&attempt.message_id)
        .bind(token)
        .bind(status)
        .bind(next_ms)
        .bind(at_ms)
        .bind(attempt.status_code)
        .bind(&attempt.error)
        .execute(&mut *tx)
        .await?;
        let disabled = endpoint_health(
            &mut tx,
            &attempt.endpoint_id,
            outcome == AttemptOutcome::Delivered,
            at_ms,
            disable_after_ms,
            disable_reason,
        )
        .await?;
        tx.commit().await?;
        Ok(disabled)
    }

    /// An endpoint's messages, newest first, optionally of one status.
    pub async fn outbound_messages(
        &self,
        endpoint_id: &str,
        status: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<OutboundMessage>> {
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM outbound_messages WHERE endpoint_id = $1 \
             AND ($2 = '' OR status = $2) ORDER BY created_at_ms DESC, id DESC LIMIT $3"
        ))
        .bind(endpoint_id)
        .bind(status.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    pub async fn outbound_message(&self, id: &str) -> StoreResult<Option<OutboundMessage>> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM outbound_messages WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| message_from_row(&r)).transpose()
    }

    /// A message's attempts, oldest first.
    pub async fn outbound_attempts(&self, message_id: &str) -> StoreResult<Vec<Attempt>> {
        let rows = sqlx::query(
            "SELECT message_id, endpoint_id, at_ms, status_code, duration_ms, response, error \
             FROM outbound_attempts WHERE message_id = $1 ORDER BY id",
        )
        .bind(message_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Attempt {
                    message_id: r.try_get("message_id")?,
                    endpoint_id: r.try_get("endpoint_id")?,
                    at: ms_to_time(r.try_get("at_ms")?),
                    status_code: r.try_get("status_code")?,
                    duration_ms: r.try_get("duration_ms")?,
                    response: r.try_get("response")?,
                    error: r.try_get("error")?,
                })
            })
            .collect()
    }

    /// Queues a message again now, at the start of the retry schedule
    /// (whatever its status); `false` if unknown.
    pub async fn retry_outbound(&self, id: &str, now_ms: i64) -> StoreResult<bool> {
        let _turn = self.write_turn().await;
        let result = sqlx::query(
            "UPDATE outbound_messages SET status = 'pending', step = 0, next_attempt_at_ms = $2, \
             lease_token = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Messages per status, and endpoints disabled, for `/metrics`.
    pub async fn outbound_counts(&self) -> StoreResult<HashMap<String, i64>> {
        let mut counts: HashMap<String, i64> =
            sqlx::query("SELECT status, COUNT(*) AS n FROM outbound_messages GROUP BY status")
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
                .collect::<StoreResult<_>>()?;
        let disabled: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM outbound_endpoints WHERE disabled_at_ms IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        counts.insert("endpoints_disabled".into(), disabled);
        Ok(counts)
    }

    /// Forgets delivered messages (and their attempts) older than `before_ms`.
    pub async fn purge_delivered_outbound(&self, before_ms: i64) -> StoreResult<u64> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM outbound_attempts WHERE message_id IN (SELECT id FROM outbound_messages \
             WHERE status = 'delivered' AND delivered_at_ms < $1)",
        )
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        let purged = sqlx::query(
            "DELETE FROM outbound_messages WHERE status = 'delivered' AND delivered_at_ms < $1",
        )
        .bind(before_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(purged)
    }
}

/// Notes an attempt's result on its endpoint: a success clears
/// `failing_since`, a failure starts it (if not yet) and disables an
/// endpoint failing for `disable_after_ms` or longer. Returns whether it
/// was disabled now.
async fn endpoint_health(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    endpoint_id: &str,
    delivered: bool,
    at_ms: i64,
    disable_after_ms: i64,
    reason: &str,
) -> StoreResult<bool> {
    if delivered {
        sqlx::query("UPDATE outbound_endpoints SET failing_since_ms = NULL WHERE id = $1")
            .bind(endpoint_id)
            .execute(&mut **tx)
            .await?;
        return Ok(false);
    }
    sqlx::query(
        "UPDATE outbound_endpoints SET failing_since_ms = COALESCE(failing_since_ms, $2) WHERE id = $1",
    )
    .bind(endpoint_id)
    .bind(at_ms)
    .execute(&mut **tx)
    .await?;
    let disabled = sqlx::query(
        "UPDATE outbound_endpoints SET disabled_at_ms = $2, disabled_reason = $3, updated_at_ms = $2 \
         WHERE id = $1 AND disabled_at_ms IS NULL AND failing_since_ms <= $4 RETURNING id",
    )
    .bind(endpoint_id)
    .bind(at_ms)
    .bind(reason)
    .bind(at_ms - disable_after_ms)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(disabled.is_some())
}
