//! Outbound webhook endpoints, as administrators register them.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreResult};
use crate::domain::{ms_to_time, Endpoint};

const ENDPOINT_SELECT: &str = "SELECT id, url, description, events, secret, previous_secret, \
     previous_secret_until_ms, failing_since_ms, disabled_at_ms, disabled_reason, created_at_ms, \
     updated_at_ms FROM outbound_endpoints";

fn endpoint_from_row(row: &AnyRow) -> StoreResult<Endpoint> {
    let time = |column: &str| -> StoreResult<_> {
        Ok(row.try_get::<Option<i64>, _>(column)?.map(ms_to_time))
    };
    let events: String = row.try_get("events")?;
    Ok(Endpoint {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        events: serde_json::from_str(&events).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        secret: row.try_get("secret")?,
        previous_secret: row.try_get("previous_secret")?,
        previous_secret_until: time("previous_secret_until_ms")?,
        failing_since: time("failing_since_ms")?,
        disabled_at: time("disabled_at_ms")?,
        disabled_reason: row.try_get("disabled_reason")?,
        created_at: ms_to_time(row.try_get("created_at_ms")?),
        updated_at: ms_to_time(row.try_get("updated_at_ms")?),
    })
}

fn ms(at: Option<chrono::DateTime<chrono::Utc>>) -> Option<i64> {
    at.map(|t| t.timestamp_millis())
}

impl Store {
    pub async fn endpoints(&self) -> StoreResult<Vec<Endpoint>> {
        let rows = sqlx::query(&format!("{ENDPOINT_SELECT} ORDER BY created_at_ms, id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    pub async fn endpoint(&self, id: &str) -> StoreResult<Option<Endpoint>> {
        let row = sqlx::query(&format!("{ENDPOINT_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| endpoint_from_row(&r)).transpose()
    }

    /// Writes an endpoint whole: inserted when new, replaced otherwise.
    pub async fn save_endpoint(&self, e: &Endpoint) -> StoreResult<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO outbound_endpoints (id, url, description, events, secret, previous_secret, \
             previous_secret_until_ms, failing_since_ms, disabled_at_ms, disabled_reason, \
             created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (id) DO UPDATE SET url = excluded.url, description = excluded.description, \
             events = excluded.events, secret = excluded.secret, previous_secret = excluded.previous_secret, \
             previous_secret_until_ms = excluded.previous_secret_until_ms, \
             failing_since_ms = excluded.failing_since_ms, disabled_at_ms = excluded.disabled_at_ms, \
             disabled_reason = excluded.disabled_reason, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(&e.id)
        .bind(&e.url)
        .bind(&e.description)
        .bind(serde_json::to_string(&e.events).expect("strings serialize"))
        .bind(&e.secret)
        .bind(&e.previous_secret)
        .bind(ms(e.previous_secret_until))
        .bind(ms(e.failing_since))
        .bind(ms(e.disabled_at))
        .bind(&e.disabled_reason)
        .bind(e.created_at.timestamp_millis())
        .bind(e.updated_at.timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes an endpoint with its messages and their attempts; `false`
    /// if there was none.
    pub async fn delete_endpoint(&self, id: &str) -> StoreResult<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        for table in ["outbound_attempts", "outbound_messages"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE endpoint_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let deleted = sqlx::query("DELETE FROM outbound_endpoints WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(deleted)
    }
}
