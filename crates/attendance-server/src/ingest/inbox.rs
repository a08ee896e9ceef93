//! Group commit for the webhook inbox. Every request hands its verified
//! event to one writer task and waits; the writer stores whatever has
//! queued up in a single transaction (one fsync for all of them), then
//! answers each request. Nothing is acknowledged before it is on disk, and
//! under load hundreds of webhooks share one commit.

use tokio::sync::{mpsc, oneshot};

use crate::domain::{now_ms, NewEvent};
use crate::store::Store;

/// Most events in one transaction.
const MAX_BATCH: usize = 512;
const QUEUE: usize = 8 * 1024;

type Reply = oneshot::Sender<Result<bool, String>>;

#[derive(Clone)]
pub struct Inbox {
    tx: mpsc::Sender<(NewEvent, Reply)>,
}

/// The writer's half: run once, as a background task; it ends when every
/// [`Inbox`] handle is dropped.
pub struct InboxWriter {
    store: Store,
    rx: mpsc::Receiver<(NewEvent, Reply)>,
}

impl InboxWriter {
    pub async fn run(self) {
        write(self.store, self.rx).await
    }
}

impl Inbox {
    pub fn new(store: Store) -> (Inbox, InboxWriter) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Inbox { tx }, InboxWriter { store, rx })
    }

    /// Stores one event durably; `Ok(false)` if its id was already stored.
    pub async fn store(&self, event: NewEvent) -> Result<bool, String> {
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

async fn write(store: Store, mut rx: mpsc::Receiver<(NewEvent, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        // Whatever queued while the previous commit ran goes in this one.
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (events, replies): (Vec<NewEvent>, Vec<Reply>) = batch.drain(..).unzip();
        match store.insert_events(&events, now_ms()).await {
            Ok(stored) => {
                for (reply, stored) in replies.into_iter().zip(stored) {
                    let _ = reply.send(Ok(stored));
                }
            }
            Err(error) => {
                let message = error.to_string();
                for reply in replies {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}
