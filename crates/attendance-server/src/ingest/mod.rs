//! Webhooks in: verified and stored durably before LiveKit gets its 200
//! ([`receive`], through the group-committing [`inbox`]), and applied to the
//! facts in the transaction that stores them; those that could not be are
//! applied in the background ([`processor`]), retried, dead-lettered. The
//! [`sweeper`] closes what LiveKit never will (stale heartbeats, ended
//! sessions).

mod applied;
pub mod inbox;
pub mod processor;
pub mod receive;
pub mod reconciler;
pub mod sweeper;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::domain::EventFacts;
use crate::live::Live;
use crate::livekit::{facts_of, KeyRing, WebhookEvent};
use crate::metrics::Metrics;
use crate::store::Store;
use inbox::{Inbox, InboxWriter};

#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Processing attempts before an event is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles on each attempt.
    pub retry_base: Duration,
    /// How long a claimed webhook is reserved for the instance processing it.
    pub processing_lease: Duration,
    pub sweep_interval: Duration,
    /// Camera, microphone and screen-share time: `false` stores nothing
    /// about tracks or mutes.
    pub engagement: bool,
    /// Checks against LiveKit's RoomService; off without a LiveKit URL.
    pub reconcile: Option<reconciler::ReconcileSettings>,
}

/// A handle on ingestion, shared by the webhook route and the background
/// tasks; a clone is one reference count.
#[derive(Clone)]
pub struct Ingest(Arc<IngestState>);

pub struct IngestState {
    pub store: Store,
    pub keys: KeyRing,
    pub metrics: Arc<Metrics>,
    pub live: Live,
    pub settings: IngestSettings,
    inbox: Inbox,
    /// The inbox writer, until the task that runs it starts.
    inbox_writer: Mutex<Option<InboxWriter>>,
    /// Wakes the processor when a webhook was stored.
    pub wake: Notify,
}

impl std::ops::Deref for Ingest {
    type Target = IngestState;

    fn deref(&self) -> &IngestState {
        &self.0
    }
}

impl Ingest {
    pub fn new(
        store: Store,
        keys: KeyRing,
        metrics: Arc<Metrics>,
        live: Live,
        settings: IngestSettings,
    ) -> Ingest {
        let (inbox, writer) = Inbox::new(store.clone(), live.clone(), metrics.clone());
        Ingest(Arc::new(IngestState {
            store,
            keys,
            metrics,
            live,
            settings,
            inbox,
            inbox_writer: Mutex::new(Some(writer)),
            wake: Notify::new(),
        }))
    }

    /// The inbox writer, for the one task that runs it; `None` once taken.
    pub fn take_inbox_writer(&self) -> Option<InboxWriter> {
        self.inbox_writer.lock().expect("inbox lock").take()
    }

    /// Puts a dead-lettered webhook back in the queue; `false` if unknown.
    pub async fn replay(&self, id: &str) -> Result<bool, sqlx::Error> {
        let queued = self.store.replay_event(id, crate::domain::now_ms()).await?;
        if queued {
            self.wake_processors();
        }
        Ok(queued)
    }

    /// What a webhook means for the facts; with engagement off, nothing
    /// about tracks is stored.
    pub(crate) fn facts_of(&self, event: &WebhookEvent) -> Result<EventFacts, String> {
        match facts_of(event)? {
            EventFacts::Media(_) if !self.settings.engagement => Ok(EventFacts::Ignored),
            facts => Ok(facts),
        }
    }

    /// Wakes every idle processor (each claims its own rooms' events), and
    /// leaves a wake-up for one that was busy, so none sleeps on new work.
    pub(crate) fn wake_processors(&self) {
        self.wake.notify_waiters();
        self.wake.notify_one();
    }
}
