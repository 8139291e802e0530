//! Writing the router's decisions: deliveries, their timers and their cap
//! slots, in one transaction.
//!
//! A decision under a frequency cap must see every other router's slots:
//! [`DecisionTx::lock_caps`] locks one row per user for the rest of the
//! transaction (users in sorted order, so two routers cannot deadlock), and
//! only then are the slots read, the rule applied and the slot written.
//! SQLite has one writer, so there the lock is the transaction itself.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use herald_domain::{
    Category, Channel, DeliveryId, DeliveryState, NotificationEvent, NotificationId, UserId,
};
use sqlx::Row;

use crate::deliveries::{delivery_id_of, encode_trace, insert_deliveries, move_members_of};
use crate::timers::{schedule_all, NewTimer};
use crate::{
    from_millis, millis, placeholders, Dialect, NewDelivery, OutboxMessage, Store, StoreError,
};

/// One decision to record.
#[derive(Debug, Clone)]
pub struct Decided {
    pub delivery: NewDelivery,
    /// The timers that act on it next (a release at the end of a deferral,
    /// an escalation check).
    pub timers: Vec<NewTimer>,
    /// What becomes of the cap slot it holds.
    pub cap_slot: CapSlot,
}

/// A delivery's hold on a frequency cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapSlot {
    /// Leave it as it is (a retry keeps the slot its first attempt took).
    Keep,
    /// Hold this slot under this category.
    Hold(Category, DateTime<Utc>),
    /// Hold none.
    Release,
}

/// What a decision needs to know of its notification, read under lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveNotification {
    pub created_at: DateTime<Utc>,
    pub cancelled: bool,
    /// Some delivery of it was recorded already (the event is being handled
    /// again, or a topic is past its first page).
    pub has_deliveries: bool,
}

/// `EXISTS` comes back as a boolean from PostgreSQL and an integer from SQLite.
fn truthy(row: &sqlx::any::AnyRow, column: &str) -> Result<bool, StoreError> {
    match row.try_get::<bool, _>(column) {
        Ok(value) => Ok(value),
        Err(_) => Ok(row.try_get::<i64, _>(column)? != 0),
    }
}

/// An open transaction for decisions. Dropped without [`commit`](Self::commit), it rolls back.
pub struct DecisionTx {
    pub(crate) tx: crate::WriteTx,
    dialect: Dialect,
}

impl Store {
    pub async fn begin_decisions(&self) -> Result<DecisionTx, StoreError> {
        Ok(DecisionTx {
            tx: self.db.begin_write().await?,
            dialect: self.db.dialect(),
        })
    }
}

impl DecisionTx {
    /// Records notifications that arrived on the bus, those not known yet,
    /// as part of the decisions about them: one statement per 100.
    pub async fn ensure_notifications(
        &mut self,
        events: &[&NotificationEvent],
        source: crate::Source,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let rows: Vec<_> = events.iter().map(|e| (*e, now)).collect();
        crate::notifications::insert_notifications(&mut self.tx, &rows, source).await?;
        Ok(())
    }

    /// The notification as this decision must see it: when it was created,
    /// whether it was cancelled, and whether it has deliveries yet. Read so
    /// that a cancellation cannot slip between this and the commit: on
    /// PostgreSQL the row is share-locked against `DELETE
    /// /v1/notifications/{id}`'s update until then (SQLite has one writer,
    /// which serialises the two anyway). `None` if there is no such
    /// notification.
    pub async fn notification(
        &mut self,
        id: NotificationId,
    ) -> Result<Option<LiveNotification>, StoreError> {
        Ok(self.notifications(&[id]).await?.remove(&id))
    }

    /// [`DecisionTx::notification`] for several, in one read per 500.
    pub async fn notifications(
        &mut self,
        ids: &[NotificationId],
    ) -> Result<HashMap<NotificationId, LiveNotification>, StoreError> {
        let lock = match self.dialect {
            Dialect::Postgres => "FOR SHARE",
            Dialect::Sqlite => "",
        };
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT id, created_at, cancelled_at, \
                   EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id) AS has_deliveries \
                 FROM notifications n WHERE id IN ({}) {lock}",
                placeholders(chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.to_string());
            }
            for row in query.fetch_all(&mut *self.tx).await? {
                let id: String = row.try_get("id")?;
                let id = NotificationId::parse(&id)
                    .map_err(|e| StoreError::corrupt("notification", e))?;
                found.insert(
                    id,
                    LiveNotification {
                        created_at: from_millis(row.try_get("created_at")?),
                        cancelled: row.try_get::<Option<i64>, _>("cancelled_at")?.is_some(),
                        has_deliveries: truthy(&row, "has_deliveries")?,
                    },
                );
            }
        }
        Ok(found)
    }

    /// Locks these users' cap counters until commit.
    pub async fn lock_caps(&mut self, users: &[&UserId]) -> Result<(), StoreError> {
        let mut sorted: Vec<&str> = users.iter().map(|u| u.as_str()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        for user in sorted {
            sqlx::query(
                "INSERT INTO cap_locks (user_id, version) VALUES ($1, 1) \
                 ON CONFLICT (user_id) DO UPDATE SET version = cap_locks.version + 1",
            )
            .bind(user)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    /// The slots other deliveries hold on (user, category, channel) from
    /// `since` on, future reservations included. Older slots are forgotten.
    pub async fn cap_taken(
        &mut self,
        user: &UserId,
        category: &Category,
        channel: Channel,
        except: DeliveryId,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        sqlx::query(
            "DELETE FROM cap_slots WHERE user_id = $1 AND category = $2 AND channel = $3 AND at < $4",
        )
        .bind(user.as_str())
        .bind(category.as_str())
        .bind(channel.as_str())
        .bind(millis(since))
        .execute(&mut *self.tx)
        .await?;
        let rows = sqlx::query(
            "SELECT at FROM cap_slots WHERE user_id = $1 AND category = $2 AND channel = $3 \
               AND delivery_id <> $4 ORDER BY at",
        )
        .bind(user.as_str())
        .bind(category.as_str())
        .bind(channel.as_str())
        .bind(except.to_string())
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| Ok(from_millis(r.try_get("at")?)))
            .collect()
    }

    /// The state of each of these deliveries that exists.
    pub async fn states(
        &mut self,
        ids: &[DeliveryId],
    ) -> Result<HashMap<DeliveryId, DeliveryState>, StoreError> {
        let mut states = HashMap::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT id, state FROM deliveries WHERE id IN ({})",
                placeholders(chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.to_string());
            }
            for row in query.fetch_all(&mut *self.tx).await? {
                let state: String = row.try_get("state")?;
                states.insert(
                    delivery_id_of(&row)?,
                    DeliveryState::parse(&state).map_err(|e| StoreError::corrupt("delivery", e))?,
                );
            }
        }
        Ok(states)
    }

    /// Records new deliveries with their timers and slots, a hundred rows to
    /// a statement. One that exists already (another router got there
    /// first) is left as it is. Returns the ids that were new.
    pub async fn insert(
        &mut self,
        decided: &[Decided],
        now: DateTime<Utc>,
    ) -> Result<Vec<DeliveryId>, StoreError> {
        let mut new =
            insert_deliveries(&mut self.tx, decided.iter().map(|d| &d.delivery), now).await?;
        // Of two decisions with one id, the first was written.
        let fresh: Vec<&Decided> = decided
            .iter()
            .filter(|d| new.remove(&d.delivery.id))
            .collect();
        self.side_effects(&fresh, true, now).await?;
        Ok(fresh.iter().map(|d| d.delivery.id).collect())
    }

    /// Decides again a delivery that waits on its own (in no digest), if it
    /// still waits as the timer that fired saw it: `deferred` until
    /// `waited_until`. Anything else (cancelled, released by another runner,
    /// deferred since for another reason) leaves it alone. Returns whether
    /// it moved.
    pub async fn redecide(
        &mut self,
        decided: &Decided,
        waited_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let d = &decided.delivery;
        let moved = sqlx::query(
            "UPDATE deliveries SET state = $2, not_before = $3, last_error = COALESCE($4, last_error), \
               trace = trace || $5, digest_id = $6, updated_at = $7 \
             WHERE id = $1 AND state = 'deferred' AND digest_id IS NULL AND not_before = $8",
        )
        .bind(d.id.to_string())
        .bind(d.state.as_str())
        .bind(d.not_before.map(millis))
        .bind(d.reason.clone())
        .bind(encode_trace(&d.trace)?)
        .bind(d.digest_id.map(|id| id.to_string()))
        .bind(millis(now))
        .bind(millis(waited_until))
        .execute(&mut *self.tx)
        .await?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        self.side_effects(&[decided], false, now).await?;
        Ok(true)
    }

    /// Timers, cap slots and carriers' members, for many decisions at once.
    /// A `fresh` delivery holds no slot yet, so there is none to release.
    async fn side_effects(
        &mut self,
        decided: &[&Decided],
        fresh: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let timers: Vec<&NewTimer> = decided.iter().flat_map(|d| &d.timers).collect();
        schedule_all(&mut self.tx, &timers, now).await?;
        let held: Vec<(&Decided, &Category, DateTime<Utc>)> = decided
            .iter()
            .filter_map(|d| match &d.cap_slot {
                CapSlot::Hold(category, at) => Some((*d, category, *at)),
                _ => None,
            })
            .collect();
        for chunk in held.chunks(100) {
            let sql = format!(
                "INSERT INTO cap_slots (delivery_id, user_id, category, channel, at) VALUES {} \
                 ON CONFLICT (delivery_id) DO UPDATE SET at = excluded.at",
                crate::values_rows(chunk.len(), 5)
            );
            let mut query = sqlx::query(&sql);
            for (d, category, at) in chunk {
                query = query
                    .bind(d.delivery.id.to_string())
                    .bind(d.delivery.user_id.as_str())
                    .bind(category.as_str())
                    .bind(d.delivery.channel.as_str())
                    .bind(millis(*at));
            }
            query.execute(&mut *self.tx).await?;
        }
        if !fresh {
            let released: Vec<String> = decided
                .iter()
                .filter(|d| d.cap_slot == CapSlot::Release)
                .map(|d| d.delivery.id.to_string())
                .collect();
            crate::execute_for_ids(
                &mut self.tx,
                "DELETE FROM cap_slots WHERE delivery_id IN",
                &released,
            )
            .await?;
        }
        // A digest's carrier decided now (suppressed, cancelled) takes its
        // members along in the same transaction; a member carries nobody.
        let carriers: Vec<(DeliveryId, DeliveryState)> = decided
            .iter()
            .filter(|d| d.delivery.digest_id.is_none())
            .map(|d| (d.delivery.id, d.delivery.state))
            .collect();
        move_members_of(&mut self.tx, &carriers, now).await
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Commits `tx` with `messages` (the jobs its decisions make) put onto
    /// the same-database queue inside it: one trip to the database's one
    /// writer fewer than publishing after the commit, and a job can never
    /// be published without its delivery. Only for a store that
    /// [`Store::announces_in_place`]; elsewhere the messages would land in
    /// the outbox, which the router's process does not relay.
    pub async fn commit_decisions_enqueuing(
        &self,
        mut tx: DecisionTx,
        messages: &[OutboxMessage],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if self.queue.is_none() {
            return Err(StoreError::NoQueue);
        }
        let rows: Vec<_> = messages.iter().map(|m| (m, now)).collect();
        self.announce(&mut tx.tx, &rows).await?;
        tx.commit().await?;
        self.announced(&rows);
        Ok(())
    }
}
