//! Notifications as they were asked for, with their idempotency keys.

use chrono::{DateTime, Utc};
use herald_domain::{
    Channel, DeliveryId, DeliveryState, NotificationEvent, NotificationId, Outcome, Receipt, Rule,
    TraceStep, UserId, SCHEMA_VERSION,
};
use sqlx::Row;

use crate::deliveries::{delivery_id_of, encode_trace};
use crate::outbox::OutboxMessage;
use crate::timers::{self, TimerKind};
use crate::{execute_for_ids, from_millis, millis, DeliveryRecord, Store, StoreError};

/// Where a notification came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Api,
    Bus,
    /// Assembled by Herald from the notifications a digest collected.
    Digest,
}

impl Source {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Bus => "bus",
            Source::Digest => "digest",
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
    pub cancelled_at: Option<DateTime<Utc>>,
    pub deliveries: Vec<DeliveryRecord>,
}

/// What `DELETE /v1/notifications/{id}` came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancelled {
    /// These deliveries were withdrawn; the rest had been sent or decided.
    Withdrawn(Vec<DeliveryId>),
    NotFound,
}

impl Store {
    /// Records a notification and its outbox message in one transaction,
    /// honouring the idempotency key inside that same transaction.
    #[tracing::instrument(skip_all, fields(event_id = %create.event.event_id))]
    pub async fn create_notification(
        &self,
        create: CreateNotification<'_>,
    ) -> Result<Created, StoreError> {
        let mut answers = self.create_notifications(&[create]).await?;
        answers
            .pop()
            .ok_or_else(|| StoreError::corrupt("notification", "no answer for the request"))
    }

    /// [`Store::create_notification`] for several requests in one
    /// transaction (group commit): each answered as if alone. A key used
    /// twice in the group is claimed by the first; the second is its replay
    /// (or a conflict). The new notifications and their outbox messages are
    /// written a hundred to a statement.
    #[tracing::instrument(skip_all, fields(requests = creates.len()))]
    pub async fn create_notifications(
        &self,
        creates: &[CreateNotification<'_>],
    ) -> Result<Vec<Created>, StoreError> {
        let mut tx = self.db.begin_write().await?;
        let mut answers: Vec<Option<Created>> = creates.iter().map(|_| None).collect();
        for (answer, create) in answers.iter_mut().zip(creates) {
            let Some((key, hash)) = create.idempotency else {
                continue;
            };
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (key, request_hash, notification_id, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(hash)
            .bind(create.event.notification_id().to_string())
            .bind(millis(create.now))
            .execute(&mut *tx)
            .await?;
            if claimed.rows_affected() == 1 {
                continue;
            }
            let row = sqlx::query(
                "SELECT request_hash, notification_id FROM idempotency_keys WHERE key = $1",
            )
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
            let stored_hash: String = row.try_get("request_hash")?;
            *answer = Some(if stored_hash != hash {
                Created::KeyConflict
            } else {
                let stored: String = row.try_get("notification_id")?;
                Created::Replayed(
                    NotificationId::parse(&stored)
                        .map_err(|e| StoreError::corrupt("idempotency key", e))?,
                )
            });
        }
        let new: Vec<&CreateNotification> = creates
            .iter()
            .zip(&answers)
            .filter_map(|(create, answer)| answer.is_none().then_some(create))
            .collect();
        if new.is_empty() {
            tx.rollback().await?;
        } else {
            let events: Vec<_> = new.iter().map(|c| (c.event, c.now)).collect();
            insert_notifications(&mut tx, &events, Source::Api).await?;
            let messages: Vec<_> = new.iter().map(|c| (&c.announce, c.now)).collect();
            self.announce(&mut tx, &messages).await?;
            tx.commit().await?;
            self.announced(&messages);
        }
        Ok(creates
            .iter()
            .zip(answers)
            .map(|(create, answer)| {
                answer.unwrap_or_else(|| Created::New(create.event.notification_id()))
            })
            .collect())
    }

    /// Records a notification that arrived on the bus (or that a digest
    /// assembled), unless it is known. Returns whether it was new.
    pub async fn ensure_notification(
        &self,
        event: &NotificationEvent,
        source: Source,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // One statement: no transaction of its own needed.
        let mut conn = self.db.writer().await?;
        Ok(insert_notifications(&mut conn, &[(event, now)], source).await? == 1)
    }

    pub async fn get_notification(
        &self,
        id: NotificationId,
    ) -> Result<Option<NotificationRecord>, StoreError> {
        let Some(mut record) = self.get_notification_only(id).await? else {
            return Ok(None);
        };
        record.deliveries = self.deliveries_of(id).await?;
        Ok(Some(record))
    }

    /// A notification without its deliveries.
    pub async fn get_notification_only(
        &self,
        id: NotificationId,
    ) -> Result<Option<NotificationRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT event, source, created_at, cancelled_at FROM notifications WHERE id = $1",
        )
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
            cancelled_at: row
                .try_get::<Option<i64>, _>("cancelled_at")?
                .map(from_millis),
            deliveries: Vec::new(),
        }))
    }

    /// Cancels a notification: every delivery not yet handed to a provider
    /// (queued or deferred) becomes `cancelled`, its timers and cap slots
    /// go, and a `cancelled` receipt for each is put in the outbox; anything
    /// routed later (an event not yet routed, a topic not yet expanded) is
    /// cancelled as it is routed. A job already queued finds its delivery
    /// cancelled and sends nothing.
    #[tracing::instrument(skip(self))]
    pub async fn cancel_notification(
        &self,
        id: NotificationId,
        now: DateTime<Utc>,
    ) -> Result<Cancelled, StoreError> {
        let mut tx = self.db.begin_write().await?;
        let found = sqlx::query(
            "UPDATE notifications SET cancelled_at = COALESCE(cancelled_at, $2) WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(millis(now))
        .execute(&mut *tx)
        .await?;
        if found.rows_affected() == 0 {
            return Ok(Cancelled::NotFound);
        }
        // Lock the open digests its deliveries wait in: a digest closing
        // at this moment either takes them before this (and they go out) or
        // after (and they are cancelled), never both.
        sqlx::query(
            "UPDATE digests SET members = members WHERE state = 'open' AND carrier IN \
               (SELECT digest_id FROM deliveries WHERE notification_id = $1 \
                AND digest_id IS NOT NULL AND state = 'deferred')",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let step = TraceStep::new(Rule::Cancellation, Outcome::Cancelled, now);
        let rows = sqlx::query(
            "UPDATE deliveries SET state = 'cancelled', not_before = NULL, trace = trace || $2, \
               updated_at = $3 \
             WHERE notification_id = $1 AND state IN ('queued', 'deferred') \
               AND (digest_id IS NULL OR EXISTS (SELECT 1 FROM digests g \
                    WHERE g.carrier = deliveries.digest_id AND g.state = 'open')) \
             RETURNING id, user_id, channel",
        )
        .bind(id.to_string())
        .bind(encode_trace(std::slice::from_ref(&step))?)
        .bind(millis(now))
        .fetch_all(&mut *tx)
        .await?;
        // What the cancelled deliveries held goes in a few statements, however
        // many there are (a topic's thousands): their timers, their cap
        // slots, and a `cancelled` receipt each into the outbox.
        let mut withdrawn = Vec::with_capacity(rows.len());
        let mut receipts = Vec::with_capacity(rows.len());
        for row in &rows {
            let corrupt = |e| StoreError::corrupt("delivery", e);
            let delivery = delivery_id_of(row)?;
            let user = UserId::parse(row.try_get::<String, _>("user_id")?).map_err(corrupt)?;
            let channel: Channel = row
                .try_get::<String, _>("channel")?
                .parse()
                .map_err(corrupt)?;
            let receipt = Receipt {
                schema_version: SCHEMA_VERSION,
                delivery_id: delivery,
                notification_id: id,
                user_id: user.clone(),
                channel,
                state: DeliveryState::Cancelled,
                reason: Some("cancelled".into()),
                provider_message_id: None,
                at: now,
            };
            let payload =
                serde_json::to_string(&receipt).map_err(|e| StoreError::corrupt("receipt", e))?;
            receipts.push(OutboxMessage::new("receipts", user.as_str(), payload));
            withdrawn.push(delivery);
        }
        let keys: Vec<String> = withdrawn.iter().map(ToString::to_string).collect();
        let timer_ids: Vec<String> = keys
            .iter()
            .flat_map(|key| {
                [TimerKind::Release, TimerKind::Retry, TimerKind::Escalate]
                    .map(|kind| timers::timer_id(kind, key))
            })
            .collect();
        execute_for_ids(&mut tx, "DELETE FROM timers WHERE id IN", &timer_ids).await?;
        execute_for_ids(&mut tx, "DELETE FROM cap_slots WHERE delivery_id IN", &keys).await?;
        let receipts: Vec<(&OutboxMessage, DateTime<Utc>)> =
            receipts.iter().map(|m| (m, now)).collect();
        self.announce(&mut tx, &receipts).await?;
        tx.commit().await?;
        self.announced(&receipts);
        Ok(Cancelled::Withdrawn(withdrawn))
    }
}

/// Records notifications not known yet, a hundred to a statement.
pub(crate) async fn insert_notifications(
    conn: &mut sqlx::AnyConnection,
    events: &[(&NotificationEvent, DateTime<Utc>)],
    source: Source,
) -> Result<u64, StoreError> {
    const COLUMNS: usize = 8;
    let mut inserted = 0;
    for chunk in events.chunks(100) {
        let sql = format!(
            "INSERT INTO notifications (id, event_id, template, category, priority, source, event, created_at) \
             VALUES {} ON CONFLICT (id) DO NOTHING",
            crate::values_rows(chunk.len(), COLUMNS)
        );
        let mut query = sqlx::query(&sql);
        for (event, now) in chunk {
            let json =
                serde_json::to_string(event).map_err(|e| StoreError::corrupt("notification", e))?;
            query = query
                .bind(event.notification_id().to_string())
                .bind(event.event_id.as_str().to_owned())
                .bind(event.request.template.as_str().to_owned())
                .bind(
                    event
                        .request
                        .category
                        .as_ref()
                        .map(|c| c.as_str().to_owned()),
                )
                .bind(event.request.priority.as_str())
                .bind(source.as_str())
                .bind(json)
                .bind(millis(*now));
        }
        inserted += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(inserted)
}
