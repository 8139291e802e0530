//! The transactional outbox: messages committed with the change that caused
//! them, published afterwards by the relay.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::{millis, Dialect, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Set when read back from the table; ignored on insert.
    pub id: i64,
    /// The logical topic name, e.g. `events`; the bus maps it to its own.
    pub topic: String,
    pub key: String,
    pub payload: String,
}

impl OutboxMessage {
    pub fn new(
        topic: impl Into<String>,
        key: impl Into<String>,
        payload: impl Into<String>,
    ) -> Self {
        OutboxMessage {
            id: 0,
            topic: topic.into(),
            key: key.into(),
            payload: payload.into(),
        }
    }
}

/// A queue kept in the store's own database (the embedded bus). Messages
/// go onto it inside the transaction that caused them, so they need no
/// outbox row and no relay: the write is atomic either way.
#[async_trait::async_trait]
pub trait SameDatabaseQueue: Send + Sync {
    /// Puts `messages` on the queue inside the transaction on `conn`.
    async fn enqueue(
        &self,
        conn: &mut sqlx::AnyConnection,
        messages: &[(&OutboxMessage, DateTime<Utc>)],
    ) -> Result<(), sqlx::Error>;

    /// The transaction that enqueued onto these topics (as the messages
    /// named them) has committed: wake their consumers.
    fn committed(&self, topics: &[&str]);
}

impl Store {
    /// Announces `messages` as part of `tx`: onto the same-database queue if
    /// there is one, else into the outbox. Call [`Store::announced`] after
    /// the commit.
    pub(crate) async fn announce(
        &self,
        tx: &mut crate::WriteTx,
        messages: &[(&OutboxMessage, DateTime<Utc>)],
    ) -> Result<(), StoreError> {
        match &self.queue {
            Some(queue) => queue.enqueue(tx, messages).await?,
            None => insert_outbox_many(tx, messages).await?,
        }
        Ok(())
    }

    /// The transaction that announced `messages` has committed.
    pub(crate) fn announced(&self, messages: &[(&OutboxMessage, DateTime<Utc>)]) {
        if let Some(queue) = &self.queue {
            let mut topics: Vec<&str> = messages.iter().map(|(m, _)| m.topic.as_str()).collect();
            topics.sort_unstable();
            topics.dedup();
            queue.committed(&topics);
        }
    }
}

/// Writes outbox messages, a hundred to a statement.
async fn insert_outbox_many(
    tx: &mut crate::WriteTx,
    messages: &[(&OutboxMessage, DateTime<Utc>)],
) -> Result<(), StoreError> {
    for chunk in messages.chunks(100) {
        let sql = format!(
            "INSERT INTO outbox (topic, msg_key, payload, created_at) VALUES {}",
            crate::values_rows(chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for (message, now) in chunk {
            query = query
                .bind(message.topic.as_str())
                .bind(message.key.as_str())
                .bind(message.payload.as_str())
                .bind(millis(*now));
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// Leases up to `limit` unpublished messages, oldest first, until
    /// `lease_until`. Several relays may run: each gets different rows, and a
    /// relay that dies leaves its rows to be leased again when the lease ends.
    #[tracing::instrument(skip(self))]
    pub async fn lease_outbox(
        &self,
        limit: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let lock = match self.db.dialect() {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET lease_until = $1 WHERE id IN \
               (SELECT id FROM outbox WHERE lease_until < $2 ORDER BY id LIMIT $3 {lock}) \
             RETURNING id, topic, msg_key, payload"
        );
        let rows = sqlx::query(&sql)
            .bind(millis(lease_until))
            .bind(millis(now))
            .bind(limit)
            .fetch_all(&mut *self.db.writer().await?)
            .await?;
        let mut messages = rows
            .iter()
            .map(|row| {
                Ok(OutboxMessage {
                    id: row.try_get("id")?,
                    topic: row.try_get("topic")?,
                    key: row.try_get("msg_key")?,
                    payload: row.try_get("payload")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        messages.sort_by_key(|m| m.id);
        Ok(messages)
    }

    /// Hands leased messages back at once (their publish failed), so the
    /// next pass need not wait out the lease.
    pub async fn release_outbox(&self, ids: &[i64]) -> Result<(), StoreError> {
        let mut conn = self.db.writer().await?;
        crate::execute_for_ids(
            &mut conn,
            "UPDATE outbox SET lease_until = 0 WHERE id IN",
            ids,
        )
        .await?;
        Ok(())
    }

    /// Forgets messages the relay has published.
    pub async fn delete_outbox(&self, ids: &[i64]) -> Result<(), StoreError> {
        let mut conn = self.db.writer().await?;
        crate::execute_for_ids(&mut conn, "DELETE FROM outbox WHERE id IN", ids).await?;
        Ok(())
    }

    /// Messages waiting to be published, for metrics and tests.
    pub async fn outbox_len(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox")
            .fetch_one(self.db.read())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Announces a message on its own (into the outbox, or onto the
    /// same-database queue), for changes that are nothing but an
    /// announcement.
    pub async fn enqueue_outbox(
        &self,
        message: &OutboxMessage,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().await?;
        self.announce(&mut tx, &[(message, now)]).await?;
        tx.commit().await?;
        self.announced(&[(message, now)]);
        Ok(())
    }
}
