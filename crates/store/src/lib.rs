//! Herald's durable state: users, notifications, deliveries, receipts, the
//! inbox and the outbox.
//!
//! One set of queries serves both backends through sqlx's `Any` driver: the
//! embedded default is a SQLite file, production is PostgreSQL. The SQL is
//! written in the subset both understand (`$n` parameters, `ON CONFLICT`,
//! `RETURNING`, times as Unix milliseconds); the few places that differ ask
//! [`Dialect`]. Every multi-row change commits in one transaction together
//! with the outbox rows it causes, so nothing is published for a change that
//! did not happen and no change is left unannounced.

mod categories;
mod db;
mod decisions;
mod deliveries;
mod digests;
mod error;
mod inbox;
mod notifications;
mod outbox;
mod sending;
#[cfg(feature = "testing")]
pub mod testing;
mod timers;
mod topics;
mod users;

pub use categories::CategoryRecord;
pub use db::{redact as redact_url, Db, Dialect, WriteConn, WriteTx};
pub use decisions::{CapSlot, Decided, DecisionTx, LiveNotification};
pub use deliveries::{DeliveryRecord, NewDelivery};
pub use digests::{digest_carrier, ClosedDigest, DigestKind, DigestMember, DigestRef};
pub use error::StoreError;
pub use inbox::{InboxItem, InboxItemKey, InboxPage, MarkRead, NewInboxItem};
pub use notifications::{Cancelled, CreateNotification, Created, NotificationRecord, Source};
pub use outbox::{OutboxMessage, SameDatabaseQueue};
pub use sending::{Claim, Finish};
pub use timers::{timer_id, NewTimer, Timer, TimerKind};
pub use topics::{SubscriberChange, TopicRecord};
pub use users::{UserProfile, UserRecord};

use chrono::{DateTime, TimeZone, Utc};

/// The store's handle. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Db,
    /// Where announcements go when the bus lives in this database.
    queue: Option<std::sync::Arc<dyn SameDatabaseQueue>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("db", &self.db)
            .field("same_database_queue", &self.queue.is_some())
            .finish()
    }
}

impl Store {
    pub fn new(db: Db) -> Self {
        Store { db, queue: None }
    }

    /// Announcements (new events, receipts) go onto `queue` in the
    /// transaction that makes them, instead of into the outbox for the
    /// relay: the embedded bus, whose queue is in this same database.
    pub fn with_queue(mut self, queue: std::sync::Arc<dyn SameDatabaseQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Whether announcements go onto a same-database queue (see
    /// [`Store::with_queue`]) rather than into the outbox.
    pub fn announces_in_place(&self) -> bool {
        self.queue.is_some()
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// This store for the API: its writes go ahead of the pipeline's on
    /// SQLite's one writer ([`Db::for_requests`]).
    pub fn for_requests(&self) -> Store {
        Store {
            db: self.db.for_requests(),
            queue: self.queue.clone(),
        }
    }

    /// A trivial query, for readiness probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.db.read()).await?;
        Ok(())
    }
}

/// `$1, $2, …, $n`, for an `IN (…)` list of `n` bound values.
pub fn placeholders(n: usize) -> String {
    placeholders_from(1, n)
}

/// `($1, …, $columns), ($columns+1, …), …` for `rows` rows: the `VALUES`
/// list of a multi-row `INSERT`.
pub fn values_rows(rows: usize, columns: usize) -> String {
    values_rows_from(1, rows, columns)
}

/// [`values_rows`] after `first - 1` other parameters.
pub fn values_rows_from(first: usize, rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| format!("({})", placeholders_from(first + row * columns, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$first, …` for `n` values: a list after `first - 1` other parameters.
pub fn placeholders_from(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `{statement} ({list})` for `ids`, 500 bound ids at a time, on one
/// connection (inside a transaction, or one taken from a pool):
/// `statement` ends in `… WHERE id IN`.
pub async fn execute_for_ids<T>(
    conn: &mut sqlx::AnyConnection,
    statement: &str,
    ids: &[T],
) -> Result<(), sqlx::Error>
where
    T: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Clone + Send + Sync,
{
    for chunk in ids.chunks(500) {
        let sql = format!("{statement} ({})", placeholders(chunk.len()));
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.clone());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
