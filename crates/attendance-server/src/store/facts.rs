//! Reading a room's (or one participant's) facts, from the database or
//! from what the [`FactsCache`] kept.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::Row;

use super::facts_cache::{FactsCache, Kept};
use super::sql::{cycle_from_row, CYCLE_SELECT};
use super::{Store, StoreResult};
use crate::domain::{ms_to_time, OverrideRow, RoomFacts};

impl Store {
    pub async fn room_facts(&self, room: &str) -> StoreResult<RoomFacts> {
        self.facts(room, None).await
    }

    /// One identity's facts in a room.
    pub async fn participant_facts(&self, room: &str, identity: &str) -> StoreResult<RoomFacts> {
        self.facts(room, Some(identity)).await
    }

    /// One identity's facts, from what was kept since the last change to
    /// them when possible (see [`FactsCache`]); heartbeats are as fresh as
    /// [`Store::participant_facts`] gives them.
    pub async fn participant_facts_kept(
        &self,
        room: &str,
        identity: &str,
    ) -> StoreResult<RoomFacts> {
        // Buffer first, as in `facts`: an entry leaves it only once written,
        // and a written one has been noted in the kept entry.
        let buffered = self.buffered_heartbeats(room, Some(identity));
        let kept = match self.facts_cache.get(room, identity) {
            Ok(kept) => kept,
            Err(ticket) => {
                let facts = Arc::new(self.facts(room, Some(identity)).await?);
                self.facts_cache.keep(ticket, facts.clone());
                Kept {
                    facts,
                    heartbeat_ms: None,
                }
            }
        };
        let mut facts = Arc::unwrap_or_clone(kept.facts);
        let newest = buffered
            .into_iter()
            .map(|(_, at_ms)| at_ms)
            .chain(kept.heartbeat_ms)
            .max();
        if let Some(at_ms) = newest {
            facts.note_heartbeat(identity, ms_to_time(at_ms));
        }
        Ok(facts)
    }

    /// What is kept for heartbeat replies; another instance's announcements
    /// update it (this instance's own writes already do).
    pub fn facts_cache(&self) -> &FactsCache {
        &self.facts_cache
    }

    /// A room's facts, for everyone or for one identity (`$2 = ''` = all).
    async fn facts(&self, room: &str, identity: Option<&str>) -> StoreResult<RoomFacts> {
        let who = identity.unwrap_or("");
        let buffered = self.buffered_heartbeats(room, identity);
        let session = self.session(room).await?;
        let cycles = sqlx::query(&format!(
            "{CYCLE_SELECT} WHERE room = $1 AND ($2 = '' OR identity = $2) \
             ORDER BY identity, joined_at_ms, participant_sid"
        ))
        .bind(room)
        .bind(who)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(cycle_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        let heartbeats = sqlx::query(
            "SELECT identity, last_heartbeat_at_ms FROM heartbeats WHERE room = $1 AND ($2 = '' OR identity = $2)",
        )
        .bind(room)
        .bind(who)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("identity")?, ms_to_time(r.try_get("last_heartbeat_at_ms")?))))
        .collect::<StoreResult<HashMap<_, _>>>()?;
        let roster = self.roster(room, identity).await?;
        let overrides = sqlx::query(
            "SELECT identity, status, reason, author, created_at_ms FROM attendance_overrides \
             WHERE room = $1 AND ($2 = '' OR identity = $2)",
        )
        .bind(room)
        .bind(who)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let o = OverrideRow {
                identity: r.try_get("identity")?,
                status: r.try_get("status")?,
                reason: r.try_get("reason")?,
                author: r.try_get("author")?,
                created_at: ms_to_time(r.try_get("created_at_ms")?),
            };
            Ok((o.identity.clone(), o))
        })
        .collect::<StoreResult<HashMap<_, _>>>()?;
        let media = self.media_facts(room, identity).await?;
        let mut facts = RoomFacts {
            session,
            cycles,
            heartbeats,
            roster,
            overrides,
            media,
        };
        for (who, at_ms) in buffered {
            facts.note_heartbeat(&who, ms_to_time(at_ms));
        }
        Ok(facts)
    }

    /// Rooms in which `identity` has cycles, an override or a roster place.
    pub async fn rooms_of_identity(&self, identity: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT room FROM cycles WHERE identity = $1 UNION SELECT room FROM roster WHERE identity = $1 \
             UNION SELECT room FROM attendance_overrides WHERE identity = $1",
        )
        .bind(identity)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get("room")).collect()
    }
}
