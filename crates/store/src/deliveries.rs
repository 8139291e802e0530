//! Deliveries: one per (notification, user, channel), claimed by exactly one
//! worker at a time, moved forward by receipts.

use chrono::{DateTime, Utc};
use herald_domain::{Channel, DeliveryId, DeliveryState, NotificationId, Receipt, UserId};
use sqlx::Row;

use crate::{from_millis, millis, Store, StoreError};

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub notification_id: NotificationId,
    pub user_id: UserId,
    pub channel: Channel,
    pub state: DeliveryState,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: DeliveryId,
    pub notification_id: NotificationId,
    pub user_id: UserId,
    pub channel: Channel,
    pub state: DeliveryState,
    pub attempts: i64,
    pub provider_message_id: Option<String>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// The answer to "may I send this delivery now?".
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Yours until the lease ends; this is attempt number `attempt`.
    Claimed { attempt: i64 },
    /// Nothing left to do: it already reached `state`.
    Done {
        state: DeliveryState,
        provider_message_id: Option<String>,
    },
    /// Another worker holds it until `until`.
    Busy { until: DateTime<Utc> },
    /// No such delivery.
    Missing,
}

const DELIVERY_COLUMNS: &str =
    "id, notification_id, user_id, channel, state, attempts, provider_message_id, last_error, updated_at";

fn delivery_from_row(row: &sqlx::any::AnyRow) -> Result<DeliveryRecord, StoreError> {
    let corrupt = |e: herald_domain::DomainError| StoreError::corrupt("delivery", e);
    let id: String = row.try_get("id")?;
    let notification_id: String = row.try_get("notification_id")?;
    let user_id: String = row.try_get("user_id")?;
    let channel: String = row.try_get("channel")?;
    let state: String = row.try_get("state")?;
    Ok(DeliveryRecord {
        id: DeliveryId::parse(&id).map_err(corrupt)?,
        notification_id: NotificationId::parse(&notification_id).map_err(corrupt)?,
        user_id: UserId::parse(user_id).map_err(corrupt)?,
        channel: channel.parse().map_err(corrupt)?,
        state: DeliveryState::parse(&state).map_err(corrupt)?,
        attempts: row.try_get("attempts")?,
        provider_message_id: row.try_get("provider_message_id")?,
        last_error: row.try_get("last_error")?,
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

/// `'a', 'b'` for an `IN (…)` list; the names come from our own enum.
fn state_list(states: &[DeliveryState]) -> String {
    let quoted: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
    if quoted.is_empty() {
        "NULL".to_owned()
    } else {
        quoted.join(", ")
    }
}

impl Store {
    /// Records the router's decisions. A delivery that exists already is left
    /// as it is, so routing the same event twice changes nothing.
    #[tracing::instrument(skip_all, fields(count = deliveries.len()))]
    pub async fn insert_deliveries(
        &self,
        deliveries: &[NewDelivery],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.write().begin().await?;
        for d in deliveries {
            sqlx::query(
                "INSERT INTO deliveries (id, notification_id, user_id, channel, state, last_error, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (id) DO NOTHING",
            )
            .bind(d.id.to_string())
            .bind(d.notification_id.to_string())
            .bind(d.user_id.as_str())
            .bind(d.channel.as_str())
            .bind(d.state.as_str())
            .bind(d.reason.clone())
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims a delivery for one attempt, atomically: only one worker can
    /// hold it, and the holder (`token`) may claim it again for a retry.
    #[tracing::instrument(skip(self, token))]
    pub async fn claim_delivery(
        &self,
        id: DeliveryId,
        token: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let claimed = sqlx::query(
            "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, lease_token = $2, \
               lease_until = $3, updated_at = $4 \
             WHERE id = $1 AND (state IN ('queued', 'deferred') \
               OR (state = 'sending' AND (lease_until < $4 OR lease_token = $2))) \
             RETURNING attempts",
        )
        .bind(id.to_string())
        .bind(token)
        .bind(millis(lease_until))
        .bind(millis(now))
        .fetch_optional(self.db.write())
        .await?;
        if let Some(row) = claimed {
            return Ok(Claim::Claimed {
                attempt: row.try_get("attempts")?,
            });
        }
        let row = sqlx::query(
            "SELECT state, provider_message_id, lease_until FROM deliveries WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(self.db.write())
        .await?;
        let Some(row) = row else {
            return Ok(Claim::Missing);
        };
        let state: String = row.try_get("state")?;
        let state = DeliveryState::parse(&state).map_err(|e| StoreError::corrupt("delivery", e))?;
        if state == DeliveryState::Sending {
            return Ok(Claim::Busy {
                until: from_millis(row.try_get("lease_until")?),
            });
        }
        Ok(Claim::Done {
            state,
            provider_message_id: row.try_get("provider_message_id")?,
        })
    }

    /// Notes a failed attempt while keeping the claim, extending the lease to
    /// cover the wait before the next one.
    pub async fn note_attempt_failed(
        &self,
        id: DeliveryId,
        token: &str,
        error: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET last_error = $3, lease_until = $4, updated_at = $5 \
             WHERE id = $1 AND lease_token = $2 AND state = 'sending'",
        )
        .bind(id.to_string())
        .bind(token)
        .bind(error)
        .bind(millis(lease_until))
        .bind(millis(now))
        .execute(self.db.write())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a claim with its outcome. `false` if the claim was lost (the
    /// lease ran out and another worker took over).
    #[tracing::instrument(skip(self, token, error))]
    pub async fn finish_delivery(
        &self,
        id: DeliveryId,
        token: &str,
        state: DeliveryState,
        provider_message_id: Option<&str>,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET state = $3, provider_message_id = $4, last_error = $5, \
               lease_token = NULL, lease_until = 0, updated_at = $6 \
             WHERE id = $1 AND lease_token = $2 AND state = 'sending'",
        )
        .bind(id.to_string())
        .bind(token)
        .bind(state.as_str())
        .bind(provider_message_id)
        .bind(error)
        .bind(millis(now))
        .execute(self.db.write())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a receipt and moves its delivery forward if the receipt allows
    /// it. Applying the same receipt again changes nothing. Returns whether
    /// the delivery's state changed.
    #[tracing::instrument(skip_all, fields(delivery = %receipt.delivery_id, state = %receipt.state))]
    pub async fn apply_receipt(
        &self,
        receipt: &Receipt,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.write().begin().await?;
        sqlx::query(
            "INSERT INTO receipts (delivery_id, state, reason, provider_message_id, at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (delivery_id, state) DO NOTHING",
        )
        .bind(receipt.delivery_id.to_string())
        .bind(receipt.state.as_str())
        .bind(receipt.reason.clone())
        .bind(receipt.provider_message_id.clone())
        .bind(millis(receipt.at))
        .execute(&mut *tx)
        .await?;
        let sql = format!(
            "UPDATE deliveries SET state = $2, \
               provider_message_id = COALESCE($3, provider_message_id), \
               last_error = COALESCE($4, last_error), updated_at = $5 \
             WHERE id = $1 AND state IN ({})",
            state_list(receipt.state.reachable_from())
        );
        let moved = sqlx::query(&sql)
            .bind(receipt.delivery_id.to_string())
            .bind(receipt.state.as_str())
            .bind(receipt.provider_message_id.clone())
            .bind(receipt.reason.clone())
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(moved.rows_affected() == 1)
    }

    pub async fn get_delivery(&self, id: DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(self.db.read())
            .await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    pub async fn deliveries_of(
        &self,
        notification: NotificationId,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE notification_id = $1 ORDER BY user_id, channel"
        );
        let rows = sqlx::query(&sql)
            .bind(notification.to_string())
            .fetch_all(self.db.read())
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// How many receipts were recorded for a delivery, for tests and audits.
    pub async fn receipt_states(&self, id: DeliveryId) -> Result<Vec<DeliveryState>, StoreError> {
        let rows =
            sqlx::query("SELECT state FROM receipts WHERE delivery_id = $1 ORDER BY at, state")
                .bind(id.to_string())
                .fetch_all(self.db.read())
                .await?;
        rows.iter()
            .map(|r| {
                let s: String = r.try_get("state")?;
                DeliveryState::parse(&s).map_err(|e| StoreError::corrupt("receipt", e))
            })
            .collect()
    }
}
