//! One participant's facts, kept after they are read, so that the heartbeat
//! every tracked student sends each minute is answered without a database
//! read.
//!
//! The store drops an entry whenever it writes something that changes it
//! (cycles, schedule, roster, override) and, with several instances, whenever
//! another instance announces such a change. A read that raced with a write
//! must not put its older result back: every read takes a [`Ticket`] first,
//! and the result is kept only if no invalidation of that participant or room
//! happened since the ticket was taken.
//!
//! Heartbeats change far more often than anything else: they do not drop an
//! entry, they are noted in it ([`FactsCache::note_heartbeat`]) as they are
//! written or announced by another instance.
//!
//! What is kept is the room's *current* session's facts, and which session
//! is current changes with time (a lesson ends, the next one begins): an
//! entry is served only until the instant its facts say the current session
//! may change ([`RoomFacts::current_until_ms`]). An unscheduled session's
//! length depends on everyone's joins and leaves, so in a room whose kept
//! facts are of one, a change to any participant drops the whole room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::RoomFacts;

type Key = (String, String);

/// How many participants are kept before everything is dropped and refilled.
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Clone, Debug)]
pub struct FactsCache {
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
}

#[derive(Default, Debug)]
struct Inner {
    /// Counts invalidations; a ticket remembers its value when taken.
    clock: u64,
    entries: HashMap<Key, Entry>,
    /// Reads in flight per participant, and the last invalidation they saw.
    reading: HashMap<Key, Reading>,
    /// Last room-wide invalidation per room.
    rooms: HashMap<String, u64>,
    /// Rooms with kept facts of an unscheduled session.
    shared: std::collections::HashSet<String>,
}

impl Inner {
    fn forget_all(&mut self) {
        self.clock += 1;
        let now = self.clock;
        self.entries.clear();
        for reading in self.reading.values_mut() {
            reading.invalidated_at = now;
        }
        // Room marks only matter for entries and reads, and both are now void.
        self.rooms.clear();
        self.shared.clear();
    }
}

#[derive(Debug)]
struct Entry {
    facts: Arc<RoomFacts>,
    /// `clock` when the read that produced it started.
    read_at: u64,
    /// Newest heartbeat noted since (unix ms).
    heartbeat_ms: Option<i64>,
}

/// Facts as kept, and the newest heartbeat noted since they were read.
#[derive(Debug, Clone)]
pub struct Kept {
    pub facts: Arc<RoomFacts>,
    pub heartbeat_ms: Option<i64>,
}

#[derive(Default, Debug)]
struct Reading {
    readers: u32,
    invalidated_at: u64,
}

/// Permission to keep the result of one database read.
#[derive(Debug)]
pub struct Ticket {
    cache: FactsCache,
    key: Key,
    taken_at: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.cache.lock();
        if let Some(reading) = inner.reading.get_mut(&self.key) {
            reading.readers -= 1;
            if reading.readers == 0 {
                inner.reading.remove(&self.key);
            }
        }
    }
}

impl Default for FactsCache {
    fn default() -> Self {
        FactsCache::new(DEFAULT_CAPACITY)
    }
}

impl FactsCache {
    pub fn new(capacity: usize) -> FactsCache {
        FactsCache {
            inner: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kept facts, or a ticket to read them and [`FactsCache::keep`]
    /// them; kept facts whose session may no longer be current at `now_ms`
    /// are not served.
    pub fn get(&self, room: &str, identity: &str, now_ms: i64) -> Result<Kept, Ticket> {
        let key = (room.to_string(), identity.to_string());
        let mut inner = self.lock();
        let room_invalidated = inner.rooms.get(room).copied().unwrap_or(0);
        match inner.entries.get(&key) {
            Some(entry)
                if entry.read_at >= room_invalidated
                    && entry
                        .facts
                        .current_until_ms
                        .is_none_or(|until| now_ms < until) =>
            {
                return Ok(Kept {
                    facts: entry.facts.clone(),
                    heartbeat_ms: entry.heartbeat_ms,
                })
            }
            Some(_) => {
                inner.entries.remove(&key);
            }
            None => {}
        }
        let taken_at = inner.clock;
        inner.reading.entry(key.clone()).or_default().readers += 1;
        Err(Ticket {
            cache: self.clone(),
            key,
            taken_at,
        })
    }

    /// Keeps what was read under `ticket`, unless it may be outdated.
    pub fn keep(&self, ticket: Ticket, facts: Arc<RoomFacts>) {
        let mut inner = self.lock();
        let invalidated = inner
            .reading
            .get(&ticket.key)
            .map_or(u64::MAX, |r| r.invalidated_at)
            .max(inner.rooms.get(&ticket.key.0).copied().unwrap_or(0));
        if invalidated > ticket.taken_at {
            return;
        }
        if inner.entries.len() >= self.capacity {
            inner.forget_all();
        }
        if facts.session.as_ref().is_some_and(|s| s.is_unscheduled()) {
            inner.shared.insert(ticket.key.0.clone());
        }
        inner.entries.insert(
            ticket.key.clone(),
            Entry {
                facts,
                read_at: ticket.taken_at,
                heartbeat_ms: None,
            },
        );
    }

    /// Something about one participant changed.
    pub fn invalidate(&self, room: &str, identity: &str) {
        let key = (room.to_string(), identity.to_string());
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        if inner.shared.contains(room) {
            inner.rooms.insert(room.to_string(), now);
        }
        inner.entries.remove(&key);
        if let Some(reading) = inner.reading.get_mut(&key) {
            reading.invalidated_at = now;
        }
    }

    /// A heartbeat was written (or another instance announced one).
    pub fn note_heartbeat(&self, room: &str, identity: &str, at_ms: i64) {
        let key = (room.to_string(), identity.to_string());
        if let Some(entry) = self.lock().entries.get_mut(&key) {
            entry.heartbeat_ms = entry.heartbeat_ms.max(Some(at_ms));
        }
    }

    /// Something about a whole room changed (schedule, roster, room finished).
    pub fn invalidate_room(&self, room: &str) {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        inner.rooms.insert(room.to_string(), now);
    }

    /// Anything may have changed (e.g. notifications from other instances
    /// were missed).
    pub fn clear(&self) {
        self.lock().forget_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(title: &str) -> Arc<RoomFacts> {
        let mut facts = RoomFacts::default();
        facts.roster.push(crate::domain::RosterEntry {
            identity: title.into(),
            name: String::new(),
            role: String::new(),
        });
        Arc::new(facts)
    }

    fn kept(cache: &FactsCache, room: &str, who: &str) -> Option<String> {
        cache
            .get(room, who, 0)
            .ok()
            .map(|kept| kept.facts.roster[0].identity.clone())
    }

    #[test]
    fn keeps_a_read_until_its_participant_or_room_changes() {
        let cache = FactsCache::new(10);
        let ticket = cache.get("r", "a", 0).unwrap_err();
        cache.keep(ticket, facts("v1"));
        assert_eq!(kept(&cache, "r", "a").as_deref(), Some("v1"));
        cache.invalidate("r", "b");
        assert_eq!(kept(&cache, "r", "a").as_deref(), Some("v1"));
        cache.invalidate("r", "a");
        assert_eq!(kept(&cache, "r", "a"), None);

        let ticket = cache.get("r", "a", 0).unwrap_err();
        cache.keep(ticket, facts("v2"));
        cache.invalidate_room("other");
        assert_eq!(kept(&cache, "r", "a").as_deref(), Some("v2"));
        cache.invalidate_room("r");
        assert_eq!(kept(&cache, "r", "a"), None);
    }

    #[test]
    fn a_read_that_raced_with_a_write_is_not_kept() {
        let cache = FactsCache::new(10);
        // Participant-level write during the read.
        let ticket = cache.get("r", "a", 0).unwrap_err();
        let second = cache.get("r", "a", 0).unwrap_err();
        cache.invalidate("r", "a");
        cache.keep(ticket, facts("old"));
        assert_eq!(kept(&cache, "r", "a"), None);
        // The other reader of the same participant is refused too.
        cache.keep(second, facts("old"));
        assert_eq!(kept(&cache, "r", "a"), None);
        // Room-level write during the read.
        let ticket = cache.get("r", "a", 0).unwrap_err();
        cache.invalidate_room("r");
        cache.keep(ticket, facts("old"));
        assert_eq!(kept(&cache, "r", "a"), None);
        // Everything dropped during the read.
        let ticket = cache.get("r", "a", 0).unwrap_err();
        cache.clear();
        cache.keep(ticket, facts("old"));
        assert_eq!(kept(&cache, "r", "a"), None);
        // A read after the write is kept.
        let ticket = cache.get("r", "a", 0).unwrap_err();
        cache.keep(ticket, facts("new"));
        assert_eq!(kept(&cache, "r", "a").as_deref(), Some("new"));
    }

    #[test]
    fn heartbeats_are_noted_without_dropping_the_entry() {
        let cache = FactsCache::new(10);
        cache.note_heartbeat("r", "a", 5); // nothing kept yet: ignored
        let ticket = cache.get("r", "a", 0).unwrap_err();
        cache.keep(ticket, facts("v1"));
        assert_eq!(cache.get("r", "a", 0).ok().unwrap().heartbeat_ms, None);
        cache.note_heartbeat("r", "a", 20);
        cache.note_heartbeat("r", "a", 10);
        let kept = cache.get("r", "a", 0).ok().unwrap();
        assert_eq!(kept.heartbeat_ms, Some(20));
        assert_eq!(kept.facts.roster[0].identity, "v1");
    }

    #[test]
    fn a_kept_session_is_served_only_while_it_is_current() {
        let cache = FactsCache::new(10);
        let mut lesson = RoomFacts {
            current_until_ms: Some(100),
            ..RoomFacts::default()
        };
        lesson.roster.push(crate::domain::RosterEntry {
            identity: "v1".into(),
            name: String::new(),
            role: String::new(),
        });
        let ticket = cache.get("r", "a", 0).unwrap_err();
        cache.keep(ticket, Arc::new(lesson));
        assert!(cache.get("r", "a", 99).is_ok());
        assert!(
            cache.get("r", "a", 100).is_err(),
            "the next lesson may be current"
        );
    }

    #[test]
    fn in_an_unscheduled_session_anyone_s_change_drops_the_room() {
        let cache = FactsCache::new(10);
        let mut session = crate::domain::lessons::tests::lesson(1, "2026-01-05T09:00:00Z", 1);
        session.kind = crate::domain::SessionKind::Unscheduled;
        let facts = RoomFacts {
            session: Some(session),
            ..RoomFacts::default()
        };
        let ticket = cache.get("r", "a", 0).unwrap_err();
        cache.keep(ticket, Arc::new(facts));
        assert!(cache.get("r", "a", 0).is_ok());
        cache.invalidate("r", "b");
        assert!(
            cache.get("r", "a", 0).is_err(),
            "b's leave may end the instance"
        );
    }

    #[test]
    fn stays_within_its_capacity_and_forgets_finished_reads() {
        let cache = FactsCache::new(3);
        for i in 0..10 {
            let who = format!("s{i}");
            let ticket = cache.get("r", &who, 0).unwrap_err();
            cache.keep(ticket, facts(&who));
            assert!(cache.lock().entries.len() <= 3);
            assert_eq!(kept(&cache, "r", &who), Some(who));
        }
        let dropped = cache.get("r", "gone", 0).unwrap_err();
        drop(dropped);
        assert!(cache.lock().reading.is_empty());
    }
}
