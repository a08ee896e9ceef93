//! Reading one session's facts (everyone's or one participant's), from the
//! database or, for the room's current session, from what the
//! [`FactsCache`] kept.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::Row;

use super::facts_cache::{FactsCache, Kept};
use super::sql::{cycle_from_row, CYCLE_SELECT};
use super::{Store, StoreResult};
use crate::domain::{ms_to_time, now, now_ms, OverrideRow, RoomFacts, SessionRow};

impl Store {
    /// The facts of the room's current session (see
    /// [`crate::domain::lessons::current`]); no session: nothing.
    pub async fn room_facts(&self, room: &str) -> StoreResult<RoomFacts> {
        self.current_facts(room, None).await
    }

    /// One identity's facts in the room's current session.
    pub async fn participant_facts(&self, room: &str, identity: &str) -> StoreResult<RoomFacts> {
        self.current_facts(room, Some(identity)).await
    }

    /// One identity's facts in the room's current session, from what was
    /// kept since the last change to them when possible (see
    /// [`FactsCache`]); heartbeats are as fresh as
    /// [`Store::participant_facts`] gives them. What is kept is dropped once
    /// the room's current session may have become another one.
    pub async fn participant_facts_kept(
        &self,
        room: &str,
        identity: &str,
    ) -> StoreResult<RoomFacts> {
        // Buffer first, as in `facts`: an entry leaves it only once written,
        // and a written one has been noted in the kept entry.
        let buffered = self.buffered_heartbeats(room, Some(identity));
        let kept = match self.facts_cache.get(room, identity, now_ms()) {
            Ok(kept) => kept,
            Err(ticket) => {
                let facts = Arc::new(self.current_facts(room, Some(identity)).await?);
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

    async fn current_facts(&self, room: &str, identity: Option<&str>) -> StoreResult<RoomFacts> {
        match self.current_session(room, now()).await? {
            Some((session, until)) => {
                let mut facts = self.session_facts(&session, identity).await?;
                facts.current_until_ms = until;
                Ok(facts)
            }
            None => Ok(RoomFacts::default()),
        }
    }

    /// One session's facts, for everyone or for one identity: the cycles
    /// that overlap its window (so a join counts in no other lesson), the
    /// room's heartbeats, the session's roster and corrections.
    pub async fn session_facts(
        &self,
        session: &SessionRow,
        identity: Option<&str>,
    ) -> StoreResult<RoomFacts> {
        let room = session.room.as_str();
        let who = identity.unwrap_or("");
        let buffered = self.buffered_heartbeats(room, identity);
        let start_ms = session.start().timestamp_millis();
        let end_ms = session.end().map_or(i64::MAX, |e| e.timestamp_millis());
        // Five reads that do not depend on one another, side by side: on
        // PostgreSQL each is a round trip, and a recompute of a participant
        // (every join and leave) waited for all five in turn.
        let cycles = async {
            sqlx::query(&format!(
                "{CYCLE_SELECT} WHERE room = $1 AND ($2 = '' OR identity = $2) \
                 AND (joined_at_ms IS NULL OR joined_at_ms < $4) AND (left_at_ms IS NULL OR left_at_ms > $3) \
                 AND (joined_at_ms IS NOT NULL OR left_at_ms <= $4) \
                 ORDER BY identity, joined_at_ms, participant_sid"
            ))
            .bind(room)
            .bind(who)
            .bind(start_ms)
            .bind(end_ms)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(cycle_from_row)
            .collect::<StoreResult<Vec<_>>>()
        };
        let heartbeats = async {
            sqlx::query(
                "SELECT identity, last_heartbeat_at_ms FROM heartbeats WHERE room = $1 AND ($2 = '' OR identity = $2)",
            )
            .bind(room)
            .bind(who)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("identity")?, ms_to_time(r.try_get("last_heartbeat_at_ms")?))))
            .collect::<StoreResult<HashMap<_, _>>>()
        };
        let (cycles, heartbeats, roster, overrides, media) = tokio::try_join!(
            cycles,
            heartbeats,
            self.roster(session.id, identity),
            self.overrides(session.id, who),
            self.media_facts(room, identity),
        )?;
        let mut facts = RoomFacts {
            session: Some(session.clone()),
            current_until_ms: None,
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

    /// A session's corrections, for everyone or one identity (`""` = all).
    async fn overrides(
        &self,
        session_id: i64,
        who: &str,
    ) -> StoreResult<HashMap<String, OverrideRow>> {
        sqlx::query(
            "SELECT identity, status, reason, author, created_at_ms FROM attendance_overrides \
             WHERE session_id = $1 AND ($2 = '' OR identity = $2)",
        )
        .bind(session_id)
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
        .collect()
    }
}
