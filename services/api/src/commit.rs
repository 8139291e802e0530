//! Group commit for `POST /v1/notifications`: requests that arrive while a
//! transaction is being written share the next one.
//!
//! Each request is still answered only once its notification is durable.
//! One request alone is written at once (nothing waits to fill a group), so
//! latency at a low rate is one commit as before; under load a group is
//! whatever queued during the previous commit, up to [`GROUP`]. When a
//! group's transaction fails, its requests are written one by one, so one
//! request's trouble is its own.

use chrono::{DateTime, Utc};
use herald_domain::NotificationEvent;
use herald_store::{CreateNotification, Created, OutboxMessage, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Requests written in one transaction at most.
const GROUP: usize = 128;

/// A request to record, owned so it can wait in the queue.
struct Pending {
    event: NotificationEvent,
    idempotency: Option<(String, String)>,
    announce: OutboxMessage,
    now: DateTime<Utc>,
    answer: oneshot::Sender<Result<Created, StoreError>>,
}

impl Pending {
    fn create(&self) -> CreateNotification<'_> {
        CreateNotification {
            event: &self.event,
            idempotency: self
                .idempotency
                .as_ref()
                .map(|(key, hash)| (key.as_str(), hash.as_str())),
            announce: self.announce.clone(),
            now: self.now,
        }
    }
}

/// The handle requests use; cheap to clone. The writing task ends when the
/// last handle is dropped, after writing what is queued.
#[derive(Clone)]
pub struct NotificationWriter {
    queue: mpsc::Sender<Pending>,
}

impl NotificationWriter {
    /// Starts the writing task on the current runtime.
    pub fn start(store: Store) -> Self {
        let (queue, pending) = mpsc::channel(GROUP * 8);
        tokio::spawn(write(store, pending));
        NotificationWriter { queue }
    }

    /// Records the notification and its outbox message, honouring the
    /// idempotency key, as [`Store::create_notification`] does.
    pub async fn create(
        &self,
        event: NotificationEvent,
        idempotency: Option<(String, String)>,
        announce: OutboxMessage,
        now: DateTime<Utc>,
    ) -> Result<Created, StoreError> {
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            event,
            idempotency,
            announce,
            now,
            answer,
        };
        // The writing task is gone only when the process is shutting down.
        if self.queue.send(pending).await.is_err() {
            return Err(StoreError::Closed);
        }
        answered.await.unwrap_or(Err(StoreError::Closed))
    }
}

async fn write(store: Store, mut queue: mpsc::Receiver<Pending>) {
    let mut group = Vec::with_capacity(GROUP);
    while queue.recv_many(&mut group, GROUP).await > 0 {
        metrics::histogram!(herald_telemetry::BATCH_RECORDS, "stage" => "api")
            .record(group.len() as f64);
        let creates: Vec<CreateNotification> = group.iter().map(Pending::create).collect();
        let written = store.create_notifications(&creates).await;
        drop(creates);
        match written {
            Ok(answers) => {
                for (pending, answer) in group.drain(..).zip(answers) {
                    let _ = pending.answer.send(Ok(answer));
                }
            }
            Err(e) if group.len() == 1 => {
                if let Some(pending) = group.pop() {
                    let _ = pending.answer.send(Err(e));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, requests = group.len(), "a group commit failed; writing its requests one by one");
                for pending in group.drain(..) {
                    let answer = store.create_notification(pending.create()).await;
                    let _ = pending.answer.send(answer);
                }
            }
        }
    }
}
