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
    /// The `attendance.updated` message, rendered once for everyone: for
    /// subscribers who already have the session object as it is now…
    pub json: Arc<str>,
    /// …and with it, for those who were last sent another one.
    pub json_with_session: Arc<str>,
    /// Tells the session objects apart (never 0: 0 is "none sent").
    pub session_hash: u64,
}

impl ParticipantChange {
    /// The message for a subscriber last sent the session object hashed
    /// `shown`; notes that it now has this one. Each subscriber is told of
    /// a changed session with its next update, whoever's update brought
    /// the change (a student's page sees only its own).
    pub fn message_for(&self, shown: &mut u64) -> &Arc<str> {
        if *shown == self.session_hash {
            &self.json
        } else {
            *shown = self.session_hash;
            &self.json_with_session
        }
    }
}

#[derive(Clone, Default)]
pub struct Hub {
    rooms: Arc<Mutex<HashMap<String, broadcast::Sender<Change>>>>,
    /// Open live connections per (room, identity), to cap them; also tells
    /// whether a participant's own page is open here.
    connections: Arc<Mutex<HashMap<(String, String), usize>>>,
    /// Subscribers per room who see every participant (teachers, admins).
    seeing_everyone: Arc<Mutex<HashMap<String, usize>>>,
    /// When each identity's heartbeat was last announced to subscribers.
    heartbeats_announced: Arc<Mutex<HashMap<(String, String), Instant>>>,
    /// The session each room's subscribers were last told is current.
    current_sessions: Arc<Mutex<HashMap<String, Shown>>>,
}

/// A subscriber who sees every participant of a room, counted while held.
pub struct SeeingEveryone {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    room: String,
}

impl Drop for SeeingEveryone {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("hub lock");
        if let Some(n) = counts.get_mut(&self.room) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.room);
            }
        }
    }
}

/// What a room's subscribers were last told about its current session.
#[derive(Debug, Clone, Copy)]
struct Shown {
    session: i64,
    /// Until when (unix ms) that session stays current if nothing is
    /// written meanwhile; `None`: for good.
    until_ms: Option<i64>,
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

    /// Counts a subscriber of `room` who sees every participant, until the
    /// returned guard is dropped (see [`Hub::wants`]).
    pub fn seeing_everyone(&self, room: &str) -> SeeingEveryone {
        *self
            .seeing_everyone
            .lock()
            .expect("hub lock")
            .entry(room.to_string())
            .or_default() += 1;
        SeeingEveryone {
            counts: self.seeing_everyone.clone(),
            room: room.to_string(),
        }
    }

    /// Whether anyone listens: lets publishers skip rendering for nobody.
    fn has_subscribers(&self, room: &str) -> bool {
        let rooms = self.rooms.lock().expect("hub lock");
        rooms.get(room).is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// Whether a change of `identity` is worth recomputing for this
    /// instance's subscribers at `now_ms`: someone here sees it (a teacher,
    /// or the participant's own page), or the room's current session may
    /// have changed since they were told (recomputing finds that out and
    /// resyncs them). With students and teachers spread over several
    /// instances, most instances see most students' changes nowhere.
    pub fn wants(&self, room: &str, identity: &str, now_ms: i64) -> bool {
        if !self.has_subscribers(room) {
            return false;
        }
        let seen = self
            .seeing_everyone
            .lock()
            .expect("hub lock")
            .contains_key(room)
            || self
                .connections
                .lock()
                .expect("hub lock")
                .contains_key(&(room.to_string(), identity.to_string()));
        seen || {
            let current = self.current_sessions.lock().expect("hub lock");
            current
                .get(room)
                .is_none_or(|shown| shown.until_ms.is_some_and(|until| now_ms >= until))
        }
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
    /// see it, current until `until_ms` (see [`crate::domain::RoomFacts`]);
    /// `true` when it was another one (they must resync).
    pub fn note_current(&self, room: &str, session: i64, until_ms: Option<i64>) -> bool {
        let mut current = self.current_sessions.lock().expect("hub lock");
        if current.len() > 100_000 {
            current.clear();
        }
        let noted = Shown { session, until_ms };
        match current.get_mut(room) {
            Some(shown) if shown.session == session => {
                shown.until_ms = until_ms;
                false
            }
            Some(shown) => {
                *shown = noted;
                true
            }
            None => {
                current.insert(room.to_string(), noted);
                false
            }
        }
    }

    pub fn subscriber_count(&self) -> usize {
        let rooms = self.rooms.lock().expect("hub lock");
        rooms.values().map(broadcast::Sender::receiver_count).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_wanted_where_someone_sees_it() {
        let hub = Hub::default();
        assert!(!hub.wants("r", "a", 0), "nobody here");

        // a's own page: admitted, then subscribed.
        let a_slot = hub.admit("r", "a", 8).unwrap();
        let a_changes = hub.subscribe("r");
        // Which session is current is not known yet: recompute to learn it.
        assert!(hub.wants("r", "b", 0));
        hub.note_current("r", 7, Some(1_000));
        assert!(hub.wants("r", "a", 0));
        assert!(!hub.wants("r", "b", 0), "a's page does not show b");
        // The lesson may have ended: b's change is recomputed, and finding
        // another current session resyncs a's page.
        assert!(hub.wants("r", "b", 1_000));
        hub.note_current("r", 7, None);
        assert!(!hub.wants("r", "b", i64::MAX));

        let teacher = (hub.subscribe("r"), hub.seeing_everyone("r"));
        assert!(hub.wants("r", "b", 0));
        drop(teacher);
        assert!(!hub.wants("r", "b", 0));

        let second = hub.admit("r", "a", 8).unwrap();
        drop(a_slot);
        assert!(hub.wants("r", "a", 0), "a's second page is still open");
        drop(second);
        assert!(!hub.wants("r", "a", 0));
        // A slot without a subscription yet (or any more) hears nothing.
        let _slot = hub.admit("r", "a", 8).unwrap();
        drop(a_changes);
        assert!(!hub.wants("r", "a", 0));
        assert!(hub.rooms().is_empty());
        assert!(
            hub.seeing_everyone.lock().unwrap().is_empty(),
            "the room's count is forgotten"
        );
    }

    #[test]
    fn published_changes_reach_every_subscriber_of_the_room() {
        let hub = Hub::default();
        let mut teacher = hub.subscribe("r");
        let mut student = hub.subscribe("r");
        hub.publish("r", Change::Room);
        hub.publish("other", Change::Room);
        assert!(matches!(teacher.try_recv(), Ok(Change::Room)));
        assert!(matches!(student.try_recv(), Ok(Change::Room)));
        assert!(teacher.try_recv().is_err());
        assert_eq!(hub.subscriber_count(), 2);
    }

    fn update(identity: &str, session_hash: u64) -> ParticipantChange {
        ParticipantChange {
            identity: identity.into(),
            session: 7,
            json: format!("{identity} only").into(),
            json_with_session: format!("{identity} with session {session_hash}").into(),
            session_hash,
        }
    }

    #[test]
    fn each_subscriber_gets_a_changed_session_with_its_next_update() {
        let (first, longer) = (11, 12);
        // Both pages got the first session object in their snapshots.
        let (mut a, mut b) = (first, first);
        assert_eq!(&**update("a", first).message_for(&mut a), "a only");
        // The session grew: a's update brings it to a's page…
        assert_eq!(
            &**update("a", longer).message_for(&mut a),
            "a with session 12"
        );
        assert_eq!(&**update("a", longer).message_for(&mut a), "a only");
        // …and b, who never sees a's updates, gets it with its own next one.
        assert_eq!(
            &**update("b", longer).message_for(&mut b),
            "b with session 12"
        );
        assert_eq!(&**update("b", longer).message_for(&mut b), "b only");
        // A page that has no session object yet gets it.
        let mut none = 0;
        assert_eq!(
            &**update("c", first).message_for(&mut none),
            "c with session 11"
        );
    }
}
