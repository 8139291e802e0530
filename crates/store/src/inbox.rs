//! The in-app inbox: messages the in-app worker wrote, read by the user's apps.

use chrono::{DateTime, Utc};
use herald_domain::{Category, DeliveryId, NotificationId, UserId};
use sqlx::Row;

use crate::outbox::OutboxMessage;
use crate::{from_millis, millis, Store, StoreError};

#[derive(Debug, Clone)]
pub struct NewInboxItem {
    /// The delivery it came from, so a redelivered job writes it once.
    pub id: DeliveryId,
    pub user_id: UserId,
    pub notification_id: NotificationId,
    pub category: Category,
    pub title: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InboxItem {
    pub id: DeliveryId,
    pub notification_id: NotificationId,
    pub category: String,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InboxPage {
    pub items: Vec<InboxItem>,
    pub unread_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkRead {
    /// It was unread and is now read; the read receipt is in the outbox.
    Marked,
    AlreadyRead,
    NotFound,
}

impl Store {
    /// Writes an inbox message unless it is there already.
    #[tracing::instrument(skip_all, fields(id = %item.id))]
    pub async fn insert_inbox(
        &self,
        item: &NewInboxItem,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO inbox (id, user_id, notification_id, category, title, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(item.id.to_string())
        .bind(item.user_id.as_str())
        .bind(item.notification_id.to_string())
        .bind(item.category.as_str())
        .bind(item.title.as_str())
        .bind(item.body.as_str())
        .bind(millis(now))
        .execute(&mut *self.db.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The newest `limit` messages and the number still unread.
    pub async fn inbox(&self, user: &UserId, limit: i64) -> Result<InboxPage, StoreError> {
        let rows = sqlx::query(
            "SELECT id, notification_id, category, title, body, created_at, read_at FROM inbox \
             WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(user.as_str())
        .bind(limit)
        .fetch_all(self.db.read())
        .await?;
        let items = rows
            .iter()
            .map(|row| {
                let corrupt = |e| StoreError::corrupt("inbox item", e);
                let id: String = row.try_get("id")?;
                let notification_id: String = row.try_get("notification_id")?;
                Ok(InboxItem {
                    id: DeliveryId::parse(&id).map_err(corrupt)?,
                    notification_id: NotificationId::parse(&notification_id).map_err(corrupt)?,
                    category: row.try_get("category")?,
                    title: row.try_get("title")?,
                    body: row.try_get("body")?,
                    created_at: from_millis(row.try_get("created_at")?),
                    read_at: row.try_get::<Option<i64>, _>("read_at")?.map(from_millis),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let unread =
            sqlx::query("SELECT COUNT(*) AS n FROM inbox WHERE user_id = $1 AND read_at IS NULL")
                .bind(user.as_str())
                .fetch_one(self.db.read())
                .await?;
        Ok(InboxPage {
            items,
            unread_count: unread.try_get("n")?,
        })
    }

    /// Marks a message read and, in the same transaction, queues the `read`
    /// receipt that `receipt` describes.
    #[tracing::instrument(skip(self, receipt))]
    pub async fn mark_inbox_read(
        &self,
        user: &UserId,
        id: DeliveryId,
        receipt: impl FnOnce(&InboxItemKey) -> OutboxMessage,
        now: DateTime<Utc>,
    ) -> Result<MarkRead, StoreError> {
        let mut tx = self.db.begin_write().await?;
        let row = sqlx::query(
            "SELECT notification_id, read_at FROM inbox WHERE id = $1 AND user_id = $2",
        )
        .bind(id.to_string())
        .bind(user.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(MarkRead::NotFound);
        };
        if row.try_get::<Option<i64>, _>("read_at")?.is_some() {
            return Ok(MarkRead::AlreadyRead);
        }
        let notification_id: String = row.try_get("notification_id")?;
        let notification_id = NotificationId::parse(&notification_id)
            .map_err(|e| StoreError::corrupt("inbox item", e))?;
        sqlx::query("UPDATE inbox SET read_at = $1 WHERE id = $2 AND read_at IS NULL")
            .bind(millis(now))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let key = InboxItemKey {
            id,
            user_id: user.clone(),
            notification_id,
        };
        let receipt = receipt(&key);
        self.announce(&mut tx, &[(&receipt, now)]).await?;
        tx.commit().await?;
        self.announced(&[(&receipt, now)]);
        Ok(MarkRead::Marked)
    }
}

/// What identifies an inbox message's delivery, for building its receipt.
#[derive(Debug, Clone)]
pub struct InboxItemKey {
    pub id: DeliveryId,
    pub user_id: UserId,
    pub notification_id: NotificationId,
}
