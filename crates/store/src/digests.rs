//! Digests: notifications collected for one user and channel while a window
//! is open, sent as one delivery when it closes.
//!
//! At most one digest per (user, channel, kind, key) is open at a time (a
//! partial unique index). Joining locks the open digest's row, and closing
//! updates the same row, so a member joins either before the close (and is
//! in the digest) or after it (and opens the next one): with any number of
//! routers, no member is dropped or sent twice.

use chrono::{DateTime, Utc};
use herald_domain::{
    Channel, DeliveryId, DeliveryState, NotificationEvent, NotificationId, Outcome, Rule,
    TemplateName, TraceStep, UserId,
};
use sqlx::Row;

use crate::decisions::DecisionTx;
use crate::deliveries::encode_trace;
use crate::timers::{schedule, NewTimer, TimerKind};
use crate::{from_millis, millis, Store, StoreError};

/// Which kind of window collects the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestKind {
    /// The request's `group_key` inside the template's window.
    Group,
    /// The user's scheduled digest for a category.
    Scheduled,
}

impl DigestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DigestKind::Group => "group",
            DigestKind::Scheduled => "scheduled",
        }
    }

    fn parse(value: &str) -> Result<Self, StoreError> {
        match value {
            "group" => Ok(DigestKind::Group),
            "scheduled" => Ok(DigestKind::Scheduled),
            other => Err(StoreError::corrupt(
                "digest",
                format!("unknown kind {other:?}"),
            )),
        }
    }
}

/// The digest a delivery joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestRef {
    /// The digest's own id (its timer's subject).
    pub id: DeliveryId,
    /// The delivery that will carry it: what members point at.
    pub carrier: DeliveryId,
    pub closes_at: DateTime<Utc>,
}

/// The delivery that carries a digest: the one delivery of the digest's own
/// notification ([`NotificationId::for_digest`]).
pub fn digest_carrier(digest: DeliveryId, user: &UserId, channel: Channel) -> DeliveryId {
    DeliveryId::derive(NotificationId::for_digest(digest), user, channel)
}

/// A digest whose window has closed, with what it collected, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedDigest {
    pub id: DeliveryId,
    pub carrier: DeliveryId,
    pub user_id: UserId,
    pub channel: Channel,
    pub kind: DigestKind,
    pub key: String,
    pub template: Option<TemplateName>,
    pub closed_at: DateTime<Utc>,
    pub members: Vec<DigestMember>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DigestMember {
    pub delivery_id: DeliveryId,
    pub notification_id: NotificationId,
    pub event: NotificationEvent,
    pub joined_at: DateTime<Utc>,
}

impl DecisionTx {
    /// Joins the open digest of (user, channel, kind, key), or opens one
    /// closing at `closes_at` (with its close timer) if none is open.
    #[allow(clippy::too_many_arguments)]
    pub async fn join_digest(
        &mut self,
        user: &UserId,
        channel: Channel,
        kind: DigestKind,
        key: &str,
        template: &TemplateName,
        closes_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<DigestRef, StoreError> {
        // Twice at most: if another router opened one between our two
        // statements, the insert does nothing and the second update joins it.
        for _ in 0..2 {
            let joined = sqlx::query(
                "UPDATE digests SET members = members + 1 \
                 WHERE user_id = $1 AND channel = $2 AND kind = $3 AND digest_key = $4 AND state = 'open' \
                 RETURNING id, closes_at",
            )
            .bind(user.as_str())
            .bind(channel.as_str())
            .bind(kind.as_str())
            .bind(key)
            .fetch_optional(&mut *self.tx)
            .await?;
            if let Some(row) = joined {
                let id: String = row.try_get("id")?;
                let id = DeliveryId::parse(&id).map_err(|e| StoreError::corrupt("digest", e))?;
                return Ok(DigestRef {
                    id,
                    carrier: digest_carrier(id, user, channel),
                    closes_at: from_millis(row.try_get("closes_at")?),
                });
            }
            let id = DeliveryId::for_digest(user, channel, key, millis(now));
            let opened = sqlx::query(
                "INSERT INTO digests (id, carrier, user_id, channel, kind, digest_key, template, state, \
                   members, closes_at, created_at) \
                 VALUES ($1, $9, $2, $3, $4, $5, $6, 'open', 1, $7, $8) \
                 ON CONFLICT (user_id, channel, kind, digest_key) WHERE state = 'open' DO NOTHING",
            )
            .bind(id.to_string())
            .bind(user.as_str())
            .bind(channel.as_str())
            .bind(kind.as_str())
            .bind(key)
            .bind(template.as_str())
            .bind(millis(closes_at))
            .bind(millis(now))
            .bind(digest_carrier(id, user, channel).to_string())
            .execute(&mut *self.tx)
            .await?;
            if opened.rows_affected() == 1 {
                let timer = NewTimer::new(TimerKind::DigestClose, id.to_string(), closes_at);
                schedule(&mut self.tx, &timer, now).await?;
                return Ok(DigestRef {
                    id,
                    carrier: digest_carrier(id, user, channel),
                    closes_at,
                });
            }
        }
        Err(StoreError::corrupt(
            "digest",
            "an open digest appeared and vanished while joining it",
        ))
    }
}

impl Store {
    /// Closes a digest's window and returns what it collected. Closing one
    /// that is already closed returns the same members again, so a timer
    /// fired twice sends the same digest (the same delivery id) twice at
    /// most, which the worker's claim turns into once.
    #[tracing::instrument(skip(self))]
    pub async fn close_digest(
        &self,
        id: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<Option<ClosedDigest>, StoreError> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query("UPDATE digests SET state = 'closed' WHERE id = $1 AND state = 'open'")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "SELECT user_id, channel, kind, digest_key, template FROM digests WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let corrupt = |e: herald_domain::DomainError| StoreError::corrupt("digest", e);
        let template: Option<String> = row.try_get("template")?;
        let user_id = UserId::parse(row.try_get::<String, _>("user_id")?).map_err(corrupt)?;
        let channel: Channel = row
            .try_get::<String, _>("channel")?
            .parse()
            .map_err(corrupt)?;
        let carrier = digest_carrier(id, &user_id, channel);
        let mut digest = ClosedDigest {
            id,
            carrier,
            user_id,
            channel,
            kind: DigestKind::parse(&row.try_get::<String, _>("kind")?)?,
            key: row.try_get("digest_key")?,
            template: template
                .map(TemplateName::parse)
                .transpose()
                .map_err(corrupt)?,
            closed_at: now,
            members: Vec::new(),
        };
        let rows = sqlx::query(
            "SELECT d.id, d.notification_id, d.created_at, n.event FROM deliveries d \
             JOIN notifications n ON n.id = d.notification_id \
             WHERE d.digest_id = $1 AND d.state IN ($2, $3) ORDER BY n.created_at, d.created_at, d.id",
        )
        .bind(carrier.to_string())
        .bind(DeliveryState::Deferred.as_str())
        .bind(DeliveryState::Queued.as_str())
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let event: String = row.try_get("event")?;
            digest.members.push(DigestMember {
                delivery_id: DeliveryId::parse(&row.try_get::<String, _>("id")?)
                    .map_err(corrupt)?,
                notification_id: NotificationId::parse(
                    &row.try_get::<String, _>("notification_id")?,
                )
                .map_err(corrupt)?,
                event: serde_json::from_str(&event)
                    .map_err(|e| StoreError::corrupt("notification", e))?,
                joined_at: from_millis(row.try_get("created_at")?),
            });
        }
        let step = TraceStep::new(Rule::Digest, Outcome::Pass, now).because(format!(
            "closed with {} in digest {carrier}",
            digest.members.len()
        ));
        sqlx::query(
            "UPDATE deliveries SET not_before = NULL, trace = trace || $2, updated_at = $3 \
             WHERE digest_id = $1 AND state = 'deferred' AND not_before IS NOT NULL",
        )
        .bind(carrier.to_string())
        .bind(encode_trace(std::slice::from_ref(&step))?)
        .bind(millis(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(digest))
    }
}
