//! Topics: named lists of subscribers a notification can be sent to.
//!
//! Subscribers are kept in user-id order so the router can walk a topic of
//! any size a page at a time with a cursor (`after`), never holding the
//! whole list: a page read twice (after a restart) names the same users.

use chrono::{DateTime, Utc};
use herald_domain::{TopicName, UserId};
use sqlx::Row;

use crate::{from_millis, millis, placeholders_from, Store, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct TopicRecord {
    pub name: TopicName,
    pub description: Option<String>,
    pub subscribers: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How a bulk change went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriberChange {
    pub added: u64,
    pub removed: u64,
}

impl Store {
    /// Creates or updates a topic. Returns whether it was new.
    pub async fn put_topic(
        &self,
        name: &TopicName,
        description: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "INSERT INTO topics (name, description, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (name) DO UPDATE SET description = excluded.description, \
               updated_at = excluded.updated_at \
             RETURNING created_at, updated_at",
        )
        .bind(name.as_str())
        .bind(description)
        .bind(millis(now))
        .fetch_one(&mut *self.db.writer().await?)
        .await?;
        let created: i64 = row.try_get("created_at")?;
        let updated: i64 = row.try_get("updated_at")?;
        Ok(created == updated)
    }

    pub async fn get_topic(&self, name: &TopicName) -> Result<Option<TopicRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT t.name, t.description, t.created_at, t.updated_at, \
               (SELECT COUNT(*) FROM topic_subscribers s WHERE s.topic = t.name) AS subscribers \
             FROM topics t WHERE t.name = $1",
        )
        .bind(name.as_str())
        .fetch_optional(self.db.read())
        .await?;
        row.map(|row| {
            Ok(TopicRecord {
                name: name.clone(),
                description: row.try_get("description")?,
                subscribers: row.try_get("subscribers")?,
                created_at: from_millis(row.try_get("created_at")?),
                updated_at: from_millis(row.try_get("updated_at")?),
            })
        })
        .transpose()
    }

    /// Deletes a topic and its subscriptions. `false` if there was none.
    pub async fn delete_topic(&self, name: &TopicName) -> Result<bool, StoreError> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query("DELETE FROM topic_subscribers WHERE topic = $1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM topics WHERE name = $1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Adds and removes subscribers in one transaction; adding one twice or
    /// removing one who is not subscribed changes nothing. `None`, and no
    /// change, if the topic or one of the users to add does not exist (the
    /// caller checks first; this covers one deleted in between).
    pub async fn change_subscribers(
        &self,
        topic: &TopicName,
        add: &[UserId],
        remove: &[UserId],
        now: DateTime<Utc>,
    ) -> Result<Option<SubscriberChange>, StoreError> {
        let mut change = SubscriberChange::default();
        let mut tx = self.db.begin_write().await?;
        // Three values a row keeps every statement under the drivers' limits.
        for chunk in add.chunks(300) {
            let sql = format!(
                "INSERT INTO topic_subscribers (topic, user_id, created_at) VALUES {} \
                 ON CONFLICT (topic, user_id) DO NOTHING",
                crate::values_rows(chunk.len(), 3)
            );
            let mut query = sqlx::query(&sql);
            for user in chunk {
                query = query
                    .bind(topic.as_str())
                    .bind(user.as_str())
                    .bind(millis(now));
            }
            change.added += match query.execute(&mut *tx).await {
                Ok(done) => done.rows_affected(),
                Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => return Ok(None),
                Err(e) => return Err(e.into()),
            };
        }
        for chunk in remove.chunks(500) {
            let sql = format!(
                "DELETE FROM topic_subscribers WHERE topic = $1 AND user_id IN ({})",
                placeholders_from(2, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(topic.as_str());
            for user in chunk {
                query = query.bind(user.as_str());
            }
            change.removed += query.execute(&mut *tx).await?.rows_affected();
        }
        sqlx::query("UPDATE topics SET updated_at = $2 WHERE name = $1")
            .bind(topic.as_str())
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(change))
    }

    /// Up to `limit` subscribers after `after`, in user-id order.
    pub async fn topic_subscribers(
        &self,
        topic: &TopicName,
        after: Option<&UserId>,
        limit: i64,
    ) -> Result<Vec<UserId>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id FROM topic_subscribers WHERE topic = $1 AND user_id > $2 \
             ORDER BY user_id LIMIT $3",
        )
        .bind(topic.as_str())
        .bind(after.map_or("", |u| u.as_str()))
        .bind(limit)
        .fetch_all(self.db.read())
        .await?;
        rows.iter()
            .map(|r| {
                UserId::parse(r.try_get::<String, _>("user_id")?)
                    .map_err(|e| StoreError::corrupt("topic subscriber", e))
            })
            .collect()
    }
}
