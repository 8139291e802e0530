//! The recipient check of `POST /v1/notifications`, shared by concurrent
//! requests on PostgreSQL: those that arrive while every check slot is busy
//! share the next one, a single `SELECT` for all their users. One request
//! alone is checked at once, so latency at a low rate is one read as before.
//! Under load it had been one statement per request, more statements than
//! the rest of a delivery together (loadtest/RESULTS.md).

use std::collections::HashSet;
use std::sync::Arc;

use herald_domain::UserId;
use herald_store::{Dialect, Store, StoreError};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Requests checked together at most.
const GROUP: usize = 256;

/// Checks under way at once at most.
const IN_FLIGHT: usize = 4;

struct Pending {
    users: Vec<UserId>,
    answer: oneshot::Sender<Result<Vec<UserId>, StoreError>>,
}

/// The handle requests use; cheap to clone. The checking task ends when the
/// last handle is dropped.
#[derive(Clone)]
pub struct RecipientCheck {
    store: Store,
    /// `None` on SQLite: there each request reads on its own.
    queue: Option<mpsc::Sender<Pending>>,
}

impl RecipientCheck {
    /// Starts the checking task on the current runtime, on PostgreSQL.
    ///
    /// On SQLite a read is a call into this process, not a statement a
    /// server must parse and plan; sharing it only added a hand-off between
    /// tasks. The load test measured that: at 1,000/s the API's p50 went
    /// from 9.7 to 14-19 ms, while on PostgreSQL sharing took the services
    /// run from 1,177-1,278 to 1,466-1,622 deliveries/s.
    pub fn start(store: Store) -> Self {
        let queue = (store.db().dialect() == Dialect::Postgres).then(|| {
            let (queue, pending) = mpsc::channel(GROUP * 4);
            tokio::spawn(check(store.clone(), pending));
            queue
        });
        RecipientCheck { store, queue }
    }

    /// The users among `users` that do not exist, in the order given, as
    /// [`Store::unknown_users`] answers.
    pub async fn unknown(&self, users: Vec<UserId>) -> Result<Vec<UserId>, StoreError> {
        let Some(queue) = &self.queue else {
            return self.store.unknown_users(&users).await;
        };
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let (answer, answered) = oneshot::channel();
        // The checking task is gone only when the process is shutting down.
        if queue.send(Pending { users, answer }).await.is_err() {
            return Err(StoreError::Closed);
        }
        answered.await.unwrap_or(Err(StoreError::Closed))
    }
}

async fn check(store: Store, mut queue: mpsc::Receiver<Pending>) {
    // A few checks run at once (the read pool has several connections);
    // requests queue for the next only while all of them are under way.
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let mut group = Vec::with_capacity(GROUP);
        if queue.recv_many(&mut group, GROUP).await == 0 {
            return;
        }
        let store = store.clone();
        tokio::spawn(async move {
            answer(&store, group).await;
            drop(permit);
        });
    }
}

/// Checks one group with one read, and answers each request.
async fn answer(store: &Store, group: Vec<Pending>) {
    let mut all: Vec<UserId> = group.iter().flat_map(|p| p.users.iter().cloned()).collect();
    all.sort_unstable();
    all.dedup();
    match store.unknown_users(&all).await {
        Ok(unknown) => {
            let unknown: HashSet<UserId> = unknown.into_iter().collect();
            for pending in group {
                let mine = pending
                    .users
                    .iter()
                    .filter(|u| unknown.contains(*u))
                    .cloned()
                    .collect();
                let _ = pending.answer.send(Ok(mine));
            }
        }
        // Each request gets an error of its own to answer with.
        Err(first) => {
            let mut first = Some(first);
            for pending in group {
                let answer = match first.take() {
                    Some(e) => Err(e),
                    None => store.unknown_users(&pending.users).await,
                };
                let _ = pending.answer.send(answer);
            }
        }
    }
}
