//! Media facts: cameras, microphones and screen shares turning on and off.

use sqlx::Row;

use super::sql::Placeholders;
use super::{Backend, Store, StoreResult};
use crate::domain::MediaFact;

/// Rows per multi-row insert (8 parameters each).
const ROWS_PER_STATEMENT: usize = 100;

impl Store {
    /// Records what a participant's page reported (mute, unmute); returns
    /// how many facts were kept (none inside a lesson with engagement off).
    pub async fn record_media(&self, facts: &[MediaFact]) -> StoreResult<usize> {
        if facts.is_empty() {
            return Ok(0);
        }
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let kept = insert_media(&mut tx, self.backend, facts).await?;
        tx.commit().await?;
        for fact in facts {
            self.facts_cache.invalidate(&fact.room, &fact.identity);
        }
        Ok(kept)
    }

    /// A room's media facts (or one identity's), in time order.
    pub async fn media_facts(
        &self,
        room: &str,
        identity: Option<&str>,
    ) -> StoreResult<Vec<MediaFact>> {
        sqlx::query(
            "SELECT room, participant_sid, identity, track_sid, source, change, at_ms, origin \
             FROM media_facts WHERE room = $1 AND ($2 = '' OR identity = $2) ORDER BY at_ms, id",
        )
        .bind(room)
        .bind(identity.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(MediaFact {
                room: r.try_get("room")?,
                participant_sid: r.try_get("participant_sid")?,
                identity: r.try_get("identity")?,
                track_sid: r.try_get("track_sid")?,
                source: r.try_get("source")?,
                change: r.try_get("change")?,
                at_ms: r.try_get("at_ms")?,
                origin: r.try_get("origin")?,
            })
        })
        .collect()
    }
}

impl Store {
    /// Each track's last known state in a room, keyed by (participant sid,
    /// track sid), from every fact so far, in one read.
    pub async fn media_states(
        &self,
        room: &str,
    ) -> StoreResult<std::collections::HashMap<(String, String), TrackState>> {
        let mut states = std::collections::HashMap::new();
        for fact in self.media_facts(room, None).await? {
            let state = states
                .entry((fact.participant_sid.clone(), fact.track_sid.clone()))
                .or_insert_with(|| TrackState {
                    source: fact.source.clone(),
                    published: false,
                    muted: false,
                });
            match fact.change.as_str() {
                "published" => (state.published, state.muted) = (true, false),
                "unpublished" => state.published = false,
                "muted" => state.muted = true,
                "unmuted" => state.muted = false,
                _ => {}
            }
        }
        Ok(states)
    }
}

/// What the facts say of one track now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackState {
    pub source: String,
    pub published: bool,
    pub muted: bool,
}

impl Store {
    /// Turns a lesson's engagement on or off; off also forgets every media
    /// fact already kept inside its window. `false` if there is no such
    /// session.
    pub async fn set_engagement(&self, session_id: i64, on: bool) -> StoreResult<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let row =
            sqlx::query("SELECT room, scheduled_at_ms, window_end_ms FROM sessions WHERE id = $1")
                .bind(session_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let room: String = row.try_get("room")?;
        sqlx::query("UPDATE sessions SET engagement = $2 WHERE id = $1")
            .bind(session_id)
            .bind(i64::from(on))
            .execute(&mut *tx)
            .await?;
        if !on {
            sqlx::query("DELETE FROM media_facts WHERE room = $1 AND at_ms >= $2 AND at_ms <= $3")
                .bind(&room)
                .bind(row.try_get::<i64, _>("scheduled_at_ms")?)
                .bind(row.try_get::<i64, _>("window_end_ms")?)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.facts_cache.invalidate_room(&room);
        Ok(true)
    }
}

/// The windows `[start, end]` (unix ms) of `room`'s lessons with engagement
/// off.
async fn engagement_off_windows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    room: &str,
) -> StoreResult<Vec<(i64, i64)>> {
    sqlx::query(
        "SELECT scheduled_at_ms, window_end_ms FROM sessions WHERE room = $1 AND engagement = 0",
    )
    .bind(room)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("scheduled_at_ms")?, r.try_get("window_end_ms")?)))
    .collect()
}

/// Inserts media facts inside a transaction (a processed webhook batch, or a
/// page's report), except those inside the window of a lesson with
/// engagement off: of those nothing is kept. Returns how many were kept.
pub(super) async fn insert_media(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    facts: &[MediaFact],
) -> StoreResult<usize> {
    let mut rooms: Vec<&str> = facts.iter().map(|f| f.room.as_str()).collect();
    rooms.sort_unstable();
    rooms.dedup();
    let mut off = std::collections::HashMap::new();
    for room in rooms {
        off.insert(room, engagement_off_windows(tx, room).await?);
    }
    let kept: Vec<&MediaFact> = facts
        .iter()
        .filter(|f| {
            !off[f.room.as_str()]
                .iter()
                .any(|&(start, end)| (start..=end).contains(&f.at_ms))
        })
        .collect();
    for chunk in kept.chunks(ROWS_PER_STATEMENT) {
        let rows = Placeholders::new(backend).rows("(?, ?, ?, ?, ?, ?, ?, ?)", chunk.len());
        let sql = format!(
            "INSERT INTO media_facts (room, participant_sid, identity, track_sid, source, change, \
             at_ms, origin) VALUES {rows}"
        );
        let mut query = sqlx::query(&sql);
        for fact in chunk.iter().copied() {
            query = query
                .bind(&fact.room)
                .bind(&fact.participant_sid)
                .bind(&fact.identity)
                .bind(&fact.track_sid)
                .bind(&fact.source)
                .bind(&fact.change)
                .bind(fact.at_ms)
                .bind(&fact.origin);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(kept.len())
}
