//! What applying webhooks changed, told to the live pages and the metrics.
//! Shared by the two places webhooks are applied: the inbox writer (as they
//! are stored) and the processor (those stored pending).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::domain::{Changed, EventFacts};
use crate::live::Live;
use crate::metrics::Metrics;

/// The participants (and whole rooms) a batch of applied webhooks touched:
/// one push each per batch, however many events touched them.
#[derive(Debug, Default)]
pub(super) struct AppliedChanges(BTreeSet<(String, Option<String>)>);

impl AppliedChanges {
    /// A room nobody scheduled got its session: its subscribers resync.
    pub(super) fn room_opened(&mut self, room: &str) {
        self.0.insert((room.to_string(), None));
    }

    /// One applied webhook: counted, logged and its participants noted.
    pub(super) fn applied(
        &mut self,
        metrics: &Metrics,
        id: &str,
        event: &str,
        room: &str,
        facts: &EventFacts,
        lag: Duration,
    ) {
        Metrics::inc(&metrics.events_processed);
        metrics.processing_lag.observe(lag);
        let identity = match facts {
            EventFacts::Joined(f) | EventFacts::Closed { fact: f, .. } => f.identity.as_str(),
            EventFacts::Media(facts) => facts.first().map_or("", |f| f.identity.as_str()),
            EventFacts::RoomFinished { .. } | EventFacts::Ignored => "",
        };
        tracing::info!(event_id = %id, event, room, identity, "webhook processed");
        match facts {
            EventFacts::Joined(f) | EventFacts::Closed { fact: f, .. } => {
                self.0.insert((f.room.clone(), Some(f.identity.clone())));
            }
            EventFacts::RoomFinished { room, .. } => {
                self.0.insert((room.clone(), None));
            }
            EventFacts::Media(facts) => {
                for f in facts {
                    self.0.insert((f.room.clone(), Some(f.identity.clone())));
                }
            }
            EventFacts::Ignored => {}
        }
    }

    /// Announces the changes (nothing when there are none).
    pub(super) fn publish(self, live: &Live) {
        if self.0.is_empty() {
            return;
        }
        live.changed_many(
            self.0
                .into_iter()
                .map(|(room, identity)| Changed {
                    room,
                    identity,
                    heartbeat_at_ms: None,
                })
                .collect(),
        );
    }
}
