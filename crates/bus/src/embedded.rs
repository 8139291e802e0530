//! The embedded bus: a durable queue per topic in the store's SQLite file.
//!
//! Consumers of a topic compete for its messages (one consumer group per
//! topic, which is how Herald uses it in one process). A consumer leases a
//! batch; acknowledging a message deletes it; a message whose lease runs out
//! unacknowledged is handed out again. Publishing wakes waiting consumers in
//! this process at once; a slow poll covers everything else.
//!
//! The queue keeps its own table (see [`SCHEMA`]) and is handed only the
//! database, not the store. It shares the store's one writing connection:
//! that is what lets the store put announcements on it inside its own
//! transactions ([`SameDatabaseQueue`]), and SQLite has one writer anyway.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use herald_store::{Db, Dialect, OutboxMessage, SameDatabaseQueue};
use sqlx::Row;
use tokio::sync::Notify;

use crate::{Acker, Bus, BusError, Consumer, Position, Record, Topic, Topics};

#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// How long a handed-out message stays invisible to other consumers.
    pub lease: Duration,
    /// How often an idle consumer looks for work it was not woken for.
    pub poll_interval: Duration,
    /// How many messages a consumer leases at once.
    pub batch: i64,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(250),
            batch: 64,
        }
    }
}

/// The queue's own schema, created by [`EmbeddedBus::open`] on any SQLite
/// database, so the queue needs nothing of the store's migrations. Files
/// made before it moved here got the same table from the store's first
/// migration, which cannot change now; `IF NOT EXISTS` leaves theirs be.
const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS bus_messages (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        topic       TEXT    NOT NULL,
        msg_key     TEXT    NOT NULL,
        payload     BLOB    NOT NULL,
        lease_until INTEGER NOT NULL DEFAULT 0,
        deliveries  INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS bus_messages_ready ON bus_messages (topic, lease_until, id)",
];

/// Messages written by one `INSERT` at most (four parameters each).
const PUBLISH_ROWS: usize = 200;

#[derive(Clone)]
pub struct EmbeddedBus {
    db: Db,
    topics: Topics,
    config: EmbeddedConfig,
    wakers: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl EmbeddedBus {
    /// Opens the bus on a SQLite database, creating its queue table if the
    /// database has none. Leases left by an earlier run of this process end
    /// now: the embedded bus has one process.
    pub async fn open(db: Db, topics: Topics, config: EmbeddedConfig) -> Result<Self, BusError> {
        if db.dialect() != Dialect::Sqlite {
            return Err(BusError::Config(
                "the embedded bus needs the SQLite store".into(),
            ));
        }
        for statement in SCHEMA {
            sqlx::query(statement)
                .execute(&mut *db.writer().await?)
                .await?;
        }
        sqlx::query("UPDATE bus_messages SET lease_until = 0 WHERE lease_until > 0")
            .execute(&mut *db.writer().await?)
            .await?;
        Ok(EmbeddedBus {
            db,
            topics,
            config,
            wakers: Arc::default(),
        })
    }

    fn waker(&self, topic: &str) -> Arc<Notify> {
        let mut wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
        wakers.entry(topic.to_owned()).or_default().clone()
    }

    /// Messages waiting on a topic, leased or not.
    pub async fn len(&self, topic: &Topic) -> Result<i64, BusError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM bus_messages WHERE topic = $1")
            .bind(topic.name())
            .fetch_one(self.db.read())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// The oldest `limit` messages of a topic, without leasing them.
    pub async fn peek(
        &self,
        topic: &Topic,
        limit: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, BusError> {
        let rows = sqlx::query(
            "SELECT msg_key, payload FROM bus_messages WHERE topic = $1 ORDER BY id LIMIT $2",
        )
        .bind(topic.name())
        .bind(limit)
        .fetch_all(self.db.read())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("msg_key")?, r.try_get("payload")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(BusError::from)
    }
}

#[async_trait]
impl Bus for EmbeddedBus {
    async fn publish(&self, topic: &Topic, key: &str, payload: &[u8]) -> Result<(), BusError> {
        self.publish_all(&[(topic.clone(), key.to_owned(), payload.to_vec())])
            .await
    }

    async fn publish_all(&self, messages: &[(Topic, String, Vec<u8>)]) -> Result<(), BusError> {
        let now = Utc::now().timestamp_millis();
        let rows: Vec<QueueRow<'_>> = messages
            .iter()
            .map(|(topic, key, payload)| (topic.name(), key.as_str(), payload.as_slice(), now))
            .collect();
        if rows.len() <= PUBLISH_ROWS {
            // One statement is atomic on its own.
            insert_rows(&mut *self.db.writer().await?, &rows).await?;
        } else {
            let mut tx = self.db.begin_write().await?;
            insert_rows(&mut tx, &rows).await?;
            tx.commit().await?;
        }
        let mut woken = std::collections::HashSet::new();
        for (topic, _, _) in messages {
            if woken.insert(topic.name()) {
                self.waker(topic.name()).notify_waiters();
            }
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &Topic, _group: &str) -> Result<Box<dyn Consumer>, BusError> {
        Ok(Box::new(EmbeddedConsumer {
            bus: self.clone(),
            topic: topic.name().to_owned(),
            waker: self.waker(topic.name()),
            buffer: VecDeque::new(),
            acker: Arc::new(EmbeddedAcker {
                db: self.db.clone(),
            }),
        }))
    }

    async fn ping(&self) -> Result<(), BusError> {
        sqlx::query("SELECT 1").execute(self.db.read()).await?;
        Ok(())
    }

    fn topics(&self) -> &Topics {
        &self.topics
    }

    async fn backlog(&self, topic: &Topic, _group: &str) -> Result<Option<i64>, BusError> {
        self.len(topic).await.map(Some)
    }
}

/// The store puts announcements straight onto this queue, in the
/// transaction that makes them: the queue is in the same SQLite file, so
/// there is nothing for an outbox relay to do.
#[async_trait]
impl SameDatabaseQueue for EmbeddedBus {
    async fn enqueue(
        &self,
        conn: &mut sqlx::AnyConnection,
        messages: &[(&OutboxMessage, chrono::DateTime<Utc>)],
    ) -> Result<(), sqlx::Error> {
        let resolved: Vec<(Topic, &OutboxMessage, i64)> = messages
            .iter()
            .filter_map(|(message, at)| match self.topics.resolve(&message.topic) {
                Some(topic) => Some((topic, *message, at.timestamp_millis())),
                // Only Herald announces, so this is a bug; the relay drops
                // such a row too, rather than block what follows it.
                None => {
                    tracing::error!(topic = %message.topic, "announcement names no topic; dropped");
                    None
                }
            })
            .collect();
        let rows: Vec<QueueRow<'_>> = resolved
            .iter()
            .map(|(topic, message, at)| {
                (
                    topic.name(),
                    message.key.as_str(),
                    message.payload.as_bytes(),
                    *at,
                )
            })
            .collect();
        insert_rows(conn, &rows).await
    }

    fn committed(&self, topics: &[&str]) {
        for logical in topics {
            // A name that is not ours was dropped by `enqueue`.
            if let Some(topic) = self.topics.resolve(logical) {
                self.waker(topic.name()).notify_waiters();
            }
        }
    }
}

/// A message as a row: topic, key, payload, time in milliseconds.
type QueueRow<'a> = (&'a str, &'a str, &'a [u8], i64);

/// Writes messages onto the queue on `conn`, [`PUBLISH_ROWS`] to a
/// statement: every statement is a round trip to the database's one
/// writing connection.
async fn insert_rows(
    conn: &mut sqlx::AnyConnection,
    rows: &[QueueRow<'_>],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(PUBLISH_ROWS) {
        let sql = format!(
            "INSERT INTO bus_messages (topic, msg_key, payload, created_at) VALUES {}",
            herald_store::values_rows(chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for (topic, key, payload, at) in chunk {
            query = query
                .bind(*topic)
                .bind(*key)
                .bind(payload.to_vec())
                .bind(*at);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

struct EmbeddedConsumer {
    bus: EmbeddedBus,
    topic: String,
    waker: Arc<Notify>,
    buffer: VecDeque<Record>,
    acker: Arc<EmbeddedAcker>,
}

impl EmbeddedConsumer {
    async fn lease_batch(&mut self, at_least: usize) -> Result<(), BusError> {
        let now = Utc::now();
        let lease_until = now + self.bus.config.lease;
        let limit = self
            .bus
            .config
            .batch
            .max(i64::try_from(at_least).unwrap_or(i64::MAX));
        // The oldest messages free to take: never leased (`lease_until` 0) or
        // whose lease ran out. Asked as two index walks, each stopping after
        // `$4` rows, then merged by id: `lease_until < now ORDER BY id` as
        // one walk sorts every waiting message first (7 ms a lease with
        // 100,000 waiting, against 0.03 ms).
        let rows = sqlx::query(
            "UPDATE bus_messages SET lease_until = $1, deliveries = deliveries + 1 WHERE id IN ( \
               SELECT id FROM (SELECT id FROM bus_messages WHERE topic = $2 AND lease_until = 0 \
                               ORDER BY id LIMIT $4) \
               UNION ALL \
               SELECT id FROM (SELECT id FROM bus_messages \
                               WHERE topic = $2 AND lease_until > 0 AND lease_until < $3 \
                               ORDER BY lease_until, id LIMIT $4) \
               ORDER BY id LIMIT $4) \
             RETURNING id, msg_key, payload, deliveries",
        )
        .bind(lease_until.timestamp_millis())
        .bind(self.topic.as_str())
        .bind(now.timestamp_millis())
        .bind(limit)
        .fetch_all(&mut *self.bus.db.writer().await?)
        .await?;
        let mut batch = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let deliveries: i64 = row.try_get("deliveries")?;
            batch.push(Record::new(
                self.topic.clone(),
                row.try_get("msg_key")?,
                row.try_get("payload")?,
                u32::try_from(deliveries).unwrap_or(u32::MAX),
                Position {
                    partition: 0,
                    offset: id,
                },
                self.acker.clone(),
            ));
        }
        batch.sort_by_key(|record| record.position);
        self.buffer.extend(batch);
        Ok(())
    }

    /// Waits until the buffer holds something, leasing at least `want`.
    async fn fill(&mut self, want: usize) -> Result<(), BusError> {
        while self.buffer.is_empty() {
            // Register for wake-ups before looking, so a publish that lands
            // between the look and the wait is not missed.
            let woken = self.waker.clone();
            let notified = woken.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.lease_batch(want).await?;
            if self.buffer.is_empty() {
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(self.bus.config.poll_interval) => {}
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn recv(&mut self) -> Result<Record, BusError> {
        self.fill(1).await?;
        self.buffer.pop_front().ok_or(BusError::Closed)
    }

    async fn recv_batch(&mut self, max: usize) -> Result<Vec<Record>, BusError> {
        self.fill(max).await?;
        let take = max.clamp(1, self.buffer.len());
        Ok(self.buffer.drain(..take).collect())
    }
}

struct EmbeddedAcker {
    db: Db,
}

#[async_trait]
impl Acker for EmbeddedAcker {
    async fn ack(&self, _topic: &str, positions: &[Position]) -> Result<(), BusError> {
        let ids: Vec<i64> = positions.iter().map(|p| p.offset).collect();
        let mut conn = self.db.writer().await?;
        herald_store::execute_for_ids(&mut conn, "DELETE FROM bus_messages WHERE id IN", &ids)
            .await?;
        Ok(())
    }
}
