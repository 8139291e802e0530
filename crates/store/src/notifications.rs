//! Notifications as they were asked for, with their idempotency keys.

use chrono::{DateTime, Utc};
use herald_domain::{NotificationEvent, NotificationId};
use sqlx::Row;

use crate::outbox::{insert_outbox, OutboxMessage};
use crate::{from_millis, millis, DeliveryRecord, Store, StoreError};

/// Where a notification came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Api,
    Bus,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Bus => "bus",
        }
    }
}

/// A notification to record, with the message that announces it.
pub struct CreateNotification<'a> {
    pub event: &'a NotificationEvent,
    /// The `Idempotency-Key` and a hash of the request it came with.
    pub idempotency: Option<(&'a str, &'a str)>,
    pub announce: OutboxMessage,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    New(NotificationId),
    /// The key was used before with the same request: here is its answer.
    Replayed(NotificationId),
    /// The key was used before with a different request.
    KeyConflict,
}

#[derive(Debug, Clone)]
pub struct NotificationRecord {
    pub id: NotificationId,
    pub event: NotificationEvent,
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub deliveries: Vec<DeliveryRecord>,
}

impl Store {
    /// Records a notification and its outbox message in one transaction,
    /// honouring the idempotency key inside that same transaction.
    #[tracing::instrument(skip_all, fields(event_id = %create.event.event_id))]
    pub async fn create_notification(
        &self,
        create: CreateNotification<'_>,
    ) -> Result<Created, StoreError> {
        let id = create.event.notification_id();
        let mut tx = self.db.write().begin().await?;
        if let Some((key, hash)) = create.idempotency {
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (key, request_hash, notification_id, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(hash)
            .bind(id.to_string())
            .bind(millis(create.now))
            .execute(&mut *tx)
            .await?;
            if claimed.rows_affected() == 0 {
                let row = sqlx::query(
                    "SELECT request_hash, notification_id FROM idempotency_keys WHERE key = $1",
                )
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
                tx.rollback().await?;
                let stored_hash: String = row.try_get("request_hash")?;
                if stored_hash != hash {
                    return Ok(Created::KeyConflict);
                }
                let stored: String = row.try_get("notification_id")?;
                let stored = NotificationId::parse(&stored)
                    .map_err(|e| StoreError::corrupt("idempotency key", e))?;
                return Ok(Created::Replayed(stored));
            }
        }
        insert_notification(&mut tx, create.event, Source::Api, create.now).await?;
        insert_outbox(&mut tx, &create.announce, create.now).await?;
        tx.commit().await?;
        Ok(Created::New(id))
    }

    /// Records a notification that arrived on the bus, unless it is known.
    /// Returns whether it was new.
    pub async fn ensure_notification(
        &self,
        event: &NotificationEvent,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.write().begin().await?;
        let new = insert_notification(&mut tx, event, Source::Bus, now).await?;
        tx.commit().await?;
        Ok(new)
    }

    pub async fn get_notification(
        &self,
        id: NotificationId,
    ) -> Result<Option<NotificationRecord>, StoreError> {
        let row = sqlx::query("SELECT event, source, created_at FROM notifications WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.db.read())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let event: String = row.try_get("event")?;
        let event =
            serde_json::from_str(&event).map_err(|e| StoreError::corrupt("notification", e))?;
        Ok(Some(NotificationRecord {
            id,
            event,
            source: row.try_get("source")?,
            created_at: from_millis(row.try_get("created_at")?),
            deliveries: self.deliveries_of(id).await?,
        }))
    }
}

async fn insert_notification(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event: &NotificationEvent,
    source: Source,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let json = serde_json::to_string(event).map_err(|e| StoreError::corrupt("notification", e))?;
    let done = sqlx::query(
        "INSERT INTO notifications (id, event_id, template, category, priority, source, event, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
    )
    .bind(event.notification_id().to_string())
    .bind(event.event_id.as_str())
    .bind(event.template.as_str())
    .bind(event.category.as_ref().map(|c| c.as_str().to_owned()))
    .bind(event.priority.as_str())
    .bind(source.as_str())
    .bind(json)
    .bind(millis(now))
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
