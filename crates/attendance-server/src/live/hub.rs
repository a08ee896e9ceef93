//! The change hub: who needs to hear that a room's attendance changed.
//!
//! Each room with live subscribers has a bounded broadcast channel. A change
//! is rendered to JSON once and shared by every subscriber; a subscriber that
//! falls behind loses messages (never stalls the others) and resyncs from a
//! fresh snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

/// Messages a room's subscribers may miss before they must resync: more
/// than a whole class's joins in one batch. Every room with subscribers
/// holds this many slots from its first subscriber on.
const ROOM_QUEUE: usize = 128;

#[derive(Debug, Clone)]
pub enum Change {
    /// One participant's attendance in the room's current session changed.
    /// Behind a pointer so that a queue slot is one word: an idle room's
    /// queue is then 5 KiB, not 18.
    Participant(Arc<ParticipantChange>),
    /// Something room-wide changed (schedule, many closes): resync.
    Room,
}

#[derive(Debug)]
pub struct ParticipantChange {
    pub identity: String,
    /// The session it happened in.
    pub session: i64,
    /// The full `attendance.updated` message, rendered once for everyone.
    pub json: Arc<str>,
}

#[derive(Clone, Default)]
pub struct Hub {
    rooms: Arc<Mutex<HashMap<String, broadcast::Sender<Change>>>>,
    /// Open live connections per (room, identity), to cap them.
    connections: Arc<Mutex<HashMap<(String, String), usize>>>,
    /// When each identity's heartbeat was last announced to subscribers.
    heartbeats_announced: Arc<Mutex<HashMap<(String, String), Instant>>>,
    /// The session each room's subscribers were last told is current, and
    /// a hash of the session object last pushed to them (0: none yet).
    current_sessions: Arc<Mutex<HashMap<String, (i64, u64)>>>,
}

/// A heartbeat changes what subscribers see only when it is the first in a
/// while (a stale participant comes back); the rest are not worth a push.
const HEARTBEAT_ANNOUNCE_GAP: Duration = Duration::from_secs(30);

/// Holds one admitted connection's place; gives it back when dropped.
pub struct ConnectionSlot {
    key: (String, String),
    connections: Arc<Mutex<HashMap<(String, String), usize>>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut connections = self.connections.lock().expect("hub lock");
        if let Some(n) = connections.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                connections.remove(&self.key);
            }
        }
    }
}

impl Hub {
    /// Admits one more live connection for `identity` in `room`, unless it
    /// already has `max` (a misbehaving page opening sockets in a loop).
    pub fn admit(&self, room: &str, identity: &str, max: usize) -> Option<ConnectionSlot> {
        let key = (room.to_string(), identity.to_string());
        let mut connections = self.connections.lock().expect("hub lock");
        let n = connections.entry(key.clone()).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            key,
            connections: self.connections.clone(),
        })
    }

    pub fn subscribe(&self, room: &str) -> broadcast::Receiver<Change> {
        let mut rooms = self.rooms.lock().expect("hub lock");
        rooms
            .entry(room.to_string())
            .or_insert_with(|| broadcast::channel(ROOM_QUEUE).0)
            .subscribe()
    }

    /// Whether anyone listens: lets publishers skip rendering for nobody.
    pub fn has_subscribers(&self, room: &str) -> bool {
        let rooms = self.rooms.lock().expect("hub lock");
        rooms.get(room).is_some_and(|tx| tx.receiver_count() > 0)
    }

    pub fn publish(&self, room: &str, change: Change) {
        let mut rooms = self.rooms.lock().expect("hub lock");
        if let Some(tx) = rooms.get(room) {
            if tx.send(change).is_err() {
                // Last subscriber gone: forget the room.
                rooms.remove(room);
            }
        }
    }

    /// Rooms with at least one local subscriber.
    pub fn rooms(&self) -> Vec<String> {
        let rooms = self.rooms.lock().expect("hub lock");
        rooms
            .iter()
            .filter(|(_, tx)| tx.receiver_count() > 0)
            .map(|(room, _)| room.clone())
            .collect()
    }

    /// Whether this heartbeat should be pushed to subscribers; remembers it.
    pub fn heartbeat_worth_announcing(&self, room: &str, identity: &str) -> bool {
        let mut announced = self.heartbeats_announced.lock().expect("hub lock");
        let now = Instant::now();
        if announced.len() > 100_000 {
            announced.retain(|_, at| now.duration_since(*at) < HEARTBEAT_ANNOUNCE_GAP);
        }
        let key = (room.to_string(), identity.to_string());
        match announced.get(&key) {
            Some(at) if now.duration_since(*at) < HEARTBEAT_ANNOUNCE_GAP => false,
            _ => {
                announced.insert(key, now);
                true
            }
        }
    }

    /// Notes that `session` is the room's current session as subscribers
    /// see it; `true` when it was another one (they must resync).
    pub fn note_current(&self, room: &str, session: i64) -> bool {
        let mut current = self.current_sessions.lock().expect("hub lock");
        if current.len() > 100_000 {
            current.clear();
        }
        match current.get_mut(room) {
            Some((shown, _)) if *shown == session => false,
            Some(entry) => {
                *entry = (session, 0);
                true
            }
            None => {
                current.insert(room.to_string(), (session, 0));
                false
            }
        }
    }

    /// Whether the session object (serialized: `json`) differs from the one
    /// last pushed to the room's subscribers; notes it as pushed. Updates
    /// carry the session only then: subscribers keep the one they have.
    pub fn session_changed(&self, room: &str, json: &str) -> bool {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        json.hash(&mut hasher);
        // 0 means "none pushed yet", so no real hash may be 0.
        let hash = hasher.finish().max(1);
        let mut current = self.current_sessions.lock().expect("hub lock");
        match current.get_mut(room) {
            Some((_, pushed)) if *pushed == hash => false,
            Some((_, pushed)) => {
                *pushed = hash;
                true
            }
            None => true,
        }
    }

    pub fn subscriber_count(&self) -> usize {
        let rooms = self.rooms.lock().expect("hub lock");
        rooms.values().map(broadcast::Sender::receiver_count).sum()
    }
}
