//! Group commit for the webhook inbox. Every request hands its verified
//! event to one writer task and waits; the writer stores whatever has
//! queued up in a single transaction (one fsync for all of them), applies
//! their facts in that same transaction, then answers each request and
//! tells the live pages. Nothing is acknowledged before it is on disk, and
//! under load hundreds of webhooks share one commit.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::applied::AppliedChanges;
use crate::domain::{now_ms, NewEvent};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::store::Store;

/// Most events in one transaction.
const MAX_BATCH: usize = 512;
const QUEUE: usize = 8 * 1024;

/// What became of a stored webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// New, and applied as it was stored.
    Applied,
    /// New, and pending: for the processor.
    Pending,
    /// Its id was stored before.
    Duplicate,
}

type Reply = oneshot::Sender<Result<Stored, String>>;

#[derive(Clone)]
pub struct Inbox {
    tx: mpsc::Sender<(NewEvent, Reply)>,
}

/// The writer's half: run once, as a background task; it ends when every
/// [`Inbox`] handle is dropped.
pub struct InboxWriter {
    store: Store,
    live: Live,
    metrics: Arc<Metrics>,
    rx: mpsc::Receiver<(NewEvent, Reply)>,
}

impl InboxWriter {
    pub async fn run(mut self) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = self.rx.recv().await {
            batch.push(first);
            // Whatever queued while the previous commit ran goes in this one.
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let (events, replies): (Vec<NewEvent>, Vec<Reply>) = batch.drain(..).unzip();
            self.write(events, replies).await;
        }
    }

    async fn write(&self, events: Vec<NewEvent>, replies: Vec<Reply>) {
        let started = Instant::now();
        let stored = match self.store.insert_events(&events, now_ms()).await {
            Ok(stored) => stored,
            Err(error) => {
                let message = error.to_string();
                for reply in replies {
                    let _ = reply.send(Err(message.clone()));
                }
                return;
            }
        };
        let mut changes = AppliedChanges::default();
        for room in &stored.opened {
            changes.room_opened(room);
        }
        for ((event, reply), new) in events.iter().zip(replies).zip(&stored.new) {
            let outcome = match (new, &event.facts) {
                (false, _) => Stored::Duplicate,
                (true, Some(facts)) if stored.applied => {
                    changes.applied(
                        &self.metrics,
                        &event.id,
                        &event.event,
                        &event.room,
                        facts,
                        started.elapsed(),
                    );
                    Stored::Applied
                }
                (true, _) => Stored::Pending,
            };
            let _ = reply.send(Ok(outcome));
        }
        changes.publish(&self.live);
    }
}

impl Inbox {
    pub fn new(store: Store, live: Live, metrics: Arc<Metrics>) -> (Inbox, InboxWriter) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Inbox { tx },
            InboxWriter {
                store,
                live,
                metrics,
                rx,
            },
        )
    }

    /// Stores one event durably (and applies it, when it carries its facts).
    pub async fn store(&self, event: NewEvent) -> Result<Stored, String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((event, reply))
            .await
            .map_err(|_| "the inbox writer has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the inbox writer has stopped".to_string())?
    }
}
