//! Deliveries: one per (notification, user, channel), claimed by exactly one
//! worker at a time, moved forward by receipts.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use herald_domain::{
    Channel, DeliveryId, DeliveryState, NotificationId, Outcome, Receipt, Rule, TraceStep, UserId,
};
use sqlx::Row;

use crate::timers::{self, TimerKind};
use crate::{from_millis, millis, Store, StoreError};

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub notification_id: NotificationId,
    pub user_id: UserId,
    pub channel: Channel,
    pub state: DeliveryState,
    pub reason: Option<String>,
    /// When a deferred delivery is due.
    pub not_before: Option<DateTime<Utc>>,
    /// The rules that decided it so far.
    pub trace: Vec<TraceStep>,
    /// The digest that carries it, for a grouped notification.
    pub digest_id: Option<DeliveryId>,
}

impl NewDelivery {
    /// A delivery with no deferral, trace or digest; the rest is set by field.
    pub fn new(
        id: DeliveryId,
        notification_id: NotificationId,
        user_id: UserId,
        channel: Channel,
        state: DeliveryState,
    ) -> Self {
        NewDelivery {
            id,
            notification_id,
            user_id,
            channel,
            state,
            reason: None,
            not_before: None,
            trace: Vec::new(),
            digest_id: None,
        }
    }
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
    pub not_before: Option<DateTime<Utc>>,
    pub trace: Vec<TraceStep>,
    pub digest_id: Option<DeliveryId>,
    pub updated_at: DateTime<Utc>,
}

/// The trace column holds one JSON object per line, so appending a step is
/// a string concatenation both databases do in place.
pub(crate) fn encode_trace(steps: &[TraceStep]) -> Result<String, StoreError> {
    let mut out = String::new();
    for step in steps {
        out.push_str(&serde_json::to_string(step).map_err(|e| StoreError::corrupt("trace", e))?);
        out.push('\n');
    }
    Ok(out)
}

fn decode_trace(text: &str) -> Result<Vec<TraceStep>, StoreError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| StoreError::corrupt("trace", e)))
        .collect()
}

const DELIVERY_COLUMNS: &str = "id, notification_id, user_id, channel, state, attempts, \
     provider_message_id, last_error, not_before, trace, digest_id, updated_at";

/// The row's `id` column, as the delivery id it must be.
pub(crate) fn delivery_id_of(row: &sqlx::any::AnyRow) -> Result<DeliveryId, StoreError> {
    let id: String = row.try_get("id")?;
    DeliveryId::parse(&id).map_err(|e| StoreError::corrupt("delivery", e))
}

fn delivery_from_row(row: &sqlx::any::AnyRow) -> Result<DeliveryRecord, StoreError> {
    let corrupt = |e: herald_domain::DomainError| StoreError::corrupt("delivery", e);
    let notification_id: String = row.try_get("notification_id")?;
    let user_id: String = row.try_get("user_id")?;
    let channel: String = row.try_get("channel")?;
    let state: String = row.try_get("state")?;
    Ok(DeliveryRecord {
        id: delivery_id_of(row)?,
        notification_id: NotificationId::parse(&notification_id).map_err(corrupt)?,
        user_id: UserId::parse(user_id).map_err(corrupt)?,
        channel: channel.parse().map_err(corrupt)?,
        state: DeliveryState::parse(&state).map_err(corrupt)?,
        attempts: row.try_get("attempts")?,
        provider_message_id: row.try_get("provider_message_id")?,
        last_error: row.try_get("last_error")?,
        not_before: row
            .try_get::<Option<i64>, _>("not_before")?
            .map(from_millis),
        trace: decode_trace(&row.try_get::<String, _>("trace")?)?,
        digest_id: row
            .try_get::<Option<String>, _>("digest_id")?
            .map(|id| DeliveryId::parse(&id).map_err(corrupt))
            .transpose()?,
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
        let mut tx = self.db.begin_write().await?;
        insert_deliveries(&mut tx, deliveries, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a receipt and moves its delivery forward if the receipt allows
    /// it. Applying the same receipt again changes nothing. Returns whether
    /// the delivery's state changed.
    pub async fn apply_receipt(
        &self,
        receipt: &Receipt,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let moved = self
            .apply_receipts(std::slice::from_ref(receipt), now)
            .await?;
        Ok(moved.first().copied().unwrap_or(false))
    }

    /// Applies receipts in order, in one transaction: what
    /// [`Store::apply_receipt`] does for each, committed once. Returns, per
    /// receipt, whether its delivery's state changed.
    #[tracing::instrument(skip_all, fields(receipts = receipts.len()))]
    pub async fn apply_receipts(
        &self,
        receipts: &[Receipt],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        // Receipts recorded already (a worker records its outcome's receipt
        // with the outcome) are skipped: their effect is there. Most are, so
        // look first where reading costs no write transaction; receipts are
        // never removed, so what a reader sees recorded stays recorded.
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let seen = recorded_receipts(&mut *self.db.read().acquire().await?, receipts).await?;
        if receipts
            .iter()
            .all(|r| seen.contains(&(r.delivery_id, r.state)))
        {
            return Ok(vec![false; receipts.len()]);
        }
        let mut tx = self.db.begin_write().await?;
        let recorded = recorded_receipts(&mut tx, receipts).await?;
        let mut moved = Vec::with_capacity(receipts.len());
        for receipt in receipts {
            if recorded.contains(&(receipt.delivery_id, receipt.state)) {
                moved.push(false);
                continue;
            }
            moved.push(apply_one(&mut tx, receipt, now).await?);
        }
        tx.commit().await?;
        Ok(moved)
    }

    /// Appends steps to a delivery's trace without moving it.
    pub async fn append_trace(
        &self,
        id: DeliveryId,
        steps: &[TraceStep],
    ) -> Result<(), StoreError> {
        let mut conn = self.db.writer().await?;
        append_trace(&mut conn, id, steps).await
    }

    pub async fn get_delivery(&self, id: DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(self.db.read())
            .await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    /// Every delivery of a notification, in (user, channel) order.
    pub async fn deliveries_of(
        &self,
        notification: NotificationId,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.first_deliveries_of(notification, i64::MAX).await
    }

    /// The first `limit` deliveries of a notification, in (user, channel) order.
    pub async fn first_deliveries_of(
        &self,
        notification: NotificationId,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE notification_id = $1 \
             ORDER BY user_id, channel LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(notification.to_string())
            .bind(limit)
            .fetch_all(self.db.read())
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// A page of a notification's deliveries in id order: the first `limit`
    /// after `after`, only those in `state` if it is given.
    pub async fn deliveries_page(
        &self,
        notification: NotificationId,
        after: Option<DeliveryId>,
        state: Option<DeliveryState>,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE notification_id = $1 \
               AND id > $2 AND ($3 IS NULL OR state = $3) ORDER BY id LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(notification.to_string())
            .bind(after.map_or_else(String::new, |id| id.to_string()))
            .bind(state.map(|s| s.as_str().to_owned()))
            .bind(limit)
            .fetch_all(self.db.read())
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// How many deliveries a notification has in each state.
    pub async fn delivery_counts(
        &self,
        notification: NotificationId,
    ) -> Result<Vec<(DeliveryState, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM deliveries WHERE notification_id = $1 \
             GROUP BY state ORDER BY state",
        )
        .bind(notification.to_string())
        .fetch_all(self.db.read())
        .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                let state =
                    DeliveryState::parse(&state).map_err(|e| StoreError::corrupt("delivery", e))?;
                let n: i64 = row.try_get("n")?;
                Ok((state, u64::try_from(n).unwrap_or_default()))
            })
            .collect()
    }

    /// The states of the receipts recorded for a delivery, for tests and audits.
    pub async fn receipt_states(&self, id: DeliveryId) -> Result<Vec<DeliveryState>, StoreError> {
        Ok(self
            .receipts_of(id)
            .await?
            .into_iter()
            .map(|(state, _)| state)
            .collect())
    }

    /// The receipts recorded for a delivery, oldest first: each state once,
    /// with its reason, for tests and audits.
    pub async fn receipts_of(
        &self,
        id: DeliveryId,
    ) -> Result<Vec<(DeliveryState, Option<String>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, reason FROM receipts WHERE delivery_id = $1 ORDER BY at, state",
        )
        .bind(id.to_string())
        .fetch_all(self.db.read())
        .await?;
        rows.iter()
            .map(|r| {
                let s: String = r.try_get("state")?;
                let state =
                    DeliveryState::parse(&s).map_err(|e| StoreError::corrupt("receipt", e))?;
                Ok((state, r.try_get("reason")?))
            })
            .collect()
    }
}

/// One receipt inside a transaction: recorded once per (delivery, state),
/// and the delivery (with a digest's members) moved if the state allows.
/// Which of these receipts' (delivery, state) are recorded, one read per 500.
async fn recorded_receipts(
    conn: &mut sqlx::AnyConnection,
    receipts: &[Receipt],
) -> Result<std::collections::HashSet<(DeliveryId, DeliveryState)>, StoreError> {
    let mut ids: Vec<String> = receipts.iter().map(|r| r.delivery_id.to_string()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut recorded = std::collections::HashSet::new();
    let corrupt = |e| StoreError::corrupt("receipt", e);
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT delivery_id, state FROM receipts WHERE delivery_id IN ({})",
            crate::placeholders(chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            let id: String = row.try_get("delivery_id")?;
            let state: String = row.try_get("state")?;
            recorded.insert((
                DeliveryId::parse(&id).map_err(corrupt)?,
                DeliveryState::parse(&state).map_err(corrupt)?,
            ));
        }
    }
    Ok(recorded)
}

async fn apply_one(
    tx: &mut crate::WriteTx,
    receipt: &Receipt,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    sqlx::query(
        "INSERT INTO receipts (delivery_id, state, reason, provider_message_id, at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (delivery_id, state) DO NOTHING",
    )
    .bind(receipt.delivery_id.to_string())
    .bind(receipt.state.as_str())
    .bind(receipt.reason.clone())
    .bind(receipt.provider_message_id.clone())
    .bind(millis(receipt.at))
    .execute(&mut **tx)
    .await?;
    // The delivery and, if it carries a digest, the digest's members, in
    // one statement: receipts are the hot path.
    let reachable = state_list(receipt.state.reachable_from());
    let sql = format!(
        "UPDATE deliveries SET state = $2, \
           provider_message_id = COALESCE($3, provider_message_id), \
           last_error = COALESCE($4, last_error), updated_at = $5 \
         WHERE (id = $1 OR digest_id = $1) AND state IN ({reachable}) \
         RETURNING id"
    );
    let carrier = receipt.delivery_id.to_string();
    let moved = sqlx::query(&sql)
        .bind(carrier.as_str())
        .bind(receipt.state.as_str())
        .bind(receipt.provider_message_id.clone())
        .bind(receipt.reason.clone())
        .bind(millis(now))
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<Vec<_>, _>>()?
        .contains(&carrier);
    if receipt.state == DeliveryState::Read {
        // Read (or opened): an escalation waiting on it is not needed.
        let delivery = receipt.delivery_id.to_string();
        if timers::cancel(tx, TimerKind::Escalate, &delivery).await? {
            let step = TraceStep::new(Rule::Escalation, Outcome::Cancelled, now)
                .because(receipt.reason.clone().unwrap_or_else(|| "read".into()));
            append_trace(tx, receipt.delivery_id, std::slice::from_ref(&step)).await?;
        }
    }
    Ok(moved)
}

/// Moves the members of a digest along with the delivery that carries it
/// (a no-op for a delivery that carries none), as far as the state rules
/// allow. Called in the transaction that moves the carrier, so members never
/// wait on a receipt that a crash kept back.
pub(crate) async fn move_members(
    tx: &mut crate::WriteTx,
    carrier: DeliveryId,
    state: DeliveryState,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    move_members_of(tx, &[(carrier, state)], now).await
}

/// [`move_members`] for many carriers: one statement per state they moved
/// to (and per 500 carriers).
pub(crate) async fn move_members_of(
    tx: &mut crate::WriteTx,
    carriers: &[(DeliveryId, DeliveryState)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut by_state: Vec<(DeliveryState, Vec<String>)> = Vec::new();
    for &(carrier, state) in carriers {
        if state.reachable_from().is_empty() {
            continue;
        }
        match by_state.iter_mut().find(|(s, _)| *s == state) {
            Some((_, ids)) => ids.push(carrier.to_string()),
            None => by_state.push((state, vec![carrier.to_string()])),
        }
    }
    for (state, carriers) in by_state {
        for chunk in carriers.chunks(500) {
            let sql = format!(
                "UPDATE deliveries SET state = $1, updated_at = $2 \
                 WHERE digest_id IN ({}) AND state IN ({})",
                crate::placeholders_from(3, chunk.len()),
                state_list(state.reachable_from())
            );
            let mut query = sqlx::query(&sql).bind(state.as_str()).bind(millis(now));
            for carrier in chunk {
                query = query.bind(carrier.as_str());
            }
            query.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// Appends steps to a delivery's trace: a string concatenation in place.
async fn append_trace(
    conn: &mut sqlx::AnyConnection,
    id: DeliveryId,
    steps: &[TraceStep],
) -> Result<(), StoreError> {
    sqlx::query("UPDATE deliveries SET trace = trace || $2 WHERE id = $1")
        .bind(id.to_string())
        .bind(encode_trace(steps)?)
        .execute(conn)
        .await?;
    Ok(())
}

/// Rows written by one `INSERT INTO deliveries` at most (eleven parameters each).
const INSERT_ROWS: usize = 100;

/// Inserts deliveries that do not exist yet, inside `tx`, a hundred to a
/// statement. Returns the ids that were new; of two with the same id, the
/// first is the one written.
pub(crate) async fn insert_deliveries<'d>(
    tx: &mut crate::WriteTx,
    deliveries: impl IntoIterator<Item = &'d NewDelivery>,
    now: DateTime<Utc>,
) -> Result<HashSet<DeliveryId>, StoreError> {
    let mut seen = HashSet::new();
    let rows: Vec<&NewDelivery> = deliveries
        .into_iter()
        .filter(|d| seen.insert(d.id))
        .collect();
    let mut new = HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(INSERT_ROWS) {
        let sql = format!(
            "INSERT INTO deliveries (id, notification_id, user_id, channel, state, last_error, \
               not_before, trace, digest_id, created_at, updated_at) \
             VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id",
            crate::values_rows(chunk.len(), 11)
        );
        let mut query = sqlx::query(&sql);
        for d in chunk {
            query = query
                .bind(d.id.to_string())
                .bind(d.notification_id.to_string())
                .bind(d.user_id.as_str())
                .bind(d.channel.as_str())
                .bind(d.state.as_str())
                .bind(d.reason.clone())
                .bind(d.not_before.map(millis))
                .bind(encode_trace(&d.trace)?)
                .bind(d.digest_id.map(|id| id.to_string()))
                .bind(millis(now))
                .bind(millis(now));
        }
        for row in query.fetch_all(&mut **tx).await? {
            new.insert(delivery_id_of(&row)?);
        }
    }
    Ok(new)
}
