//! The worker's side of a delivery: claiming it for an attempt, deferring
//! it to a retry, and recording the outcome, one at a time or for a batch
//! of jobs in a few statements.
//!
//! A claim is conditional per delivery: only a `queued` delivery, or one
//! whose lease ran out (or that this token holds), can be taken, so two
//! workers can never both send it. An outcome is recorded only while the
//! claim still holds.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use herald_domain::{DeliveryId, DeliveryState, Outcome, Rule, TraceStep};
use sqlx::Row;

use crate::deliveries::{delivery_id_of, encode_trace, move_members, move_members_of};
use crate::timers::{self, NewTimer, TimerKind};
use crate::{from_millis, millis, placeholders_from, OutboxMessage, Store, StoreError};

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
    /// Deferred until a timer releases it; a job for it now is stale.
    Waiting { until: Option<DateTime<Utc>> },
    /// No such delivery.
    Missing,
}

/// An outcome to record for a claimed delivery ([`Store::finish_deliveries`]).
#[derive(Debug, Clone)]
pub struct Finish<'a> {
    pub id: DeliveryId,
    pub token: &'a str,
    pub state: DeliveryState,
    pub provider_message_id: Option<&'a str>,
    pub error: Option<&'a str>,
    /// The delivery carries a digest: its members move along.
    pub carries_digest: bool,
    /// Its receipt, put onto the same-database queue in the transaction that
    /// records the outcome, if it is recorded and the store
    /// [announces in place](Store::announces_in_place). Elsewhere the caller
    /// publishes it after the commit, and this is not read.
    pub receipt: Option<&'a OutboxMessage>,
}

impl Store {
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
             WHERE id = $1 AND (state = 'queued' \
               OR (state = 'sending' AND (lease_until < $4 OR lease_token = $2))) \
             RETURNING attempts",
        )
        .bind(id.to_string())
        .bind(token)
        .bind(millis(lease_until))
        .bind(millis(now))
        .fetch_optional(&mut *self.db.writer().await?)
        .await?;
        if let Some(row) = claimed {
            return Ok(Claim::Claimed {
                attempt: row.try_get("attempts")?,
            });
        }
        let row = sqlx::query(
            "SELECT state, provider_message_id, lease_until, not_before FROM deliveries WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *self.db.writer().await?)
        .await?;
        match row {
            Some(row) => not_claimed(&row),
            None => Ok(Claim::Missing),
        }
    }

    /// Ends a claim with a transient failure: the delivery waits, as
    /// `deferred`, until `until`, when a retry timer hands it back to its
    /// queue. No worker holds anything while it waits. `false` if the claim
    /// was lost.
    #[tracing::instrument(skip(self, token, error))]
    pub async fn defer_retry(
        &self,
        id: DeliveryId,
        token: &str,
        error: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let step = TraceStep::new(Rule::Retry, Outcome::Deferred, now)
            .until(until.fixed_offset())
            .because(error.chars().take(300).collect::<String>());
        let mut tx = self.db.begin_write().await?;
        let done = sqlx::query(
            "UPDATE deliveries SET state = 'deferred', not_before = $3, last_error = $4, \
               trace = trace || $5, lease_token = NULL, lease_until = 0, updated_at = $6 \
             WHERE id = $1 AND lease_token = $2 AND state = 'sending'",
        )
        .bind(id.to_string())
        .bind(token)
        .bind(millis(until))
        .bind(error)
        .bind(encode_trace(std::slice::from_ref(&step))?)
        .bind(millis(now))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let timer = NewTimer::new(TimerKind::Retry, id.to_string(), until);
        timers::schedule(&mut tx, &timer, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends a claim with its outcome. `false` if the claim was lost (the
    /// lease ran out and another worker took over). A delivery that
    /// `carries_digest` takes the digest's members along in the same
    /// transaction.
    #[tracing::instrument(skip(self, token, error))]
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_delivery(
        &self,
        id: DeliveryId,
        token: &str,
        state: DeliveryState,
        provider_message_id: Option<&str>,
        error: Option<&str>,
        carries_digest: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let finish = sqlx::query(FINISH)
            .bind(id.to_string())
            .bind(token)
            .bind(state.as_str())
            .bind(provider_message_id)
            .bind(error)
            .bind(millis(now));
        if !carries_digest {
            // One statement on the hot path: no transaction needed.
            let done = finish.execute(&mut *self.db.writer().await?).await?;
            return Ok(done.rows_affected() == 1);
        }
        let mut tx = self.db.begin_write().await?;
        if finish.execute(&mut *tx).await?.rows_affected() != 1 {
            return Ok(false);
        }
        move_members(&mut tx, id, state, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// [`Store::claim_delivery`] for many deliveries under one token, in
    /// two statements: one conditional update that takes every delivery it
    /// may, and one read of the rest to say why not. Ids must be distinct.
    #[tracing::instrument(skip_all, fields(count = ids.len()))]
    pub async fn claim_deliveries(
        &self,
        ids: &[DeliveryId],
        token: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<HashMap<DeliveryId, Claim>, StoreError> {
        let mut claims = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = format!(
                "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, lease_token = $1, \
                   lease_until = $2, updated_at = $3 \
                 WHERE id IN ({}) AND (state = 'queued' \
                   OR (state = 'sending' AND (lease_until < $3 OR lease_token = $1))) \
                 RETURNING id, attempts",
                placeholders_from(4, chunk.len())
            );
            let mut query = sqlx::query(&sql)
                .bind(token)
                .bind(millis(lease_until))
                .bind(millis(now));
            for id in chunk {
                query = query.bind(id.to_string());
            }
            let rows = query.fetch_all(&mut *self.db.writer().await?).await?;
            for row in rows {
                claims.insert(
                    delivery_id_of(&row)?,
                    Claim::Claimed {
                        attempt: row.try_get("attempts")?,
                    },
                );
            }
        }
        let rest: Vec<&DeliveryId> = ids.iter().filter(|id| !claims.contains_key(id)).collect();
        for chunk in rest.chunks(500) {
            let sql = format!(
                "SELECT id, state, provider_message_id, lease_until, not_before FROM deliveries \
                 WHERE id IN ({})",
                placeholders_from(1, chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.to_string());
            }
            let rows = query.fetch_all(&mut *self.db.writer().await?).await?;
            for row in rows {
                claims.insert(delivery_id_of(&row)?, not_claimed(&row)?);
            }
        }
        for id in ids {
            claims.entry(*id).or_insert(Claim::Missing);
        }
        Ok(claims)
    }

    /// [`Store::finish_delivery`] for many, in one transaction, with each
    /// recorded outcome's receipt (which [`Store::apply_receipts`] then
    /// skips). Returns, per outcome, whether the claim still held and it was
    /// recorded.
    #[tracing::instrument(skip_all, fields(count = outcomes.len()))]
    pub async fn finish_deliveries(
        &self,
        outcomes: &[Finish<'_>],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.db.begin_write().await?;
        // One statement per hundred outcomes. Of two outcomes for one
        // delivery only the first can find it still `sending`, as if they
        // were recorded one after the other.
        let mut seen = HashSet::with_capacity(outcomes.len());
        let firsts: Vec<&Finish> = outcomes.iter().filter(|o| seen.insert(o.id)).collect();
        let mut held = HashSet::with_capacity(firsts.len());
        for chunk in firsts.chunks(100) {
            let sql = format!(
                "UPDATE deliveries AS d SET state = v.column3, provider_message_id = v.column4, \
                   last_error = v.column5, lease_token = NULL, lease_until = 0, updated_at = $1 \
                 FROM (VALUES {}) AS v \
                 WHERE d.id = v.column1 AND d.lease_token = v.column2 AND d.state = 'sending' \
                 RETURNING id",
                crate::values_rows_from(2, chunk.len(), 5)
            );
            let mut query = sqlx::query(&sql).bind(millis(now));
            for o in chunk {
                query = query
                    .bind(o.id.to_string())
                    .bind(o.token)
                    .bind(o.state.as_str())
                    .bind(o.provider_message_id)
                    .bind(o.error);
            }
            for row in query.fetch_all(&mut *tx).await? {
                held.insert(delivery_id_of(&row)?);
            }
        }
        let mut kept = Vec::with_capacity(outcomes.len());
        let mut carriers = Vec::new();
        for o in outcomes {
            // `remove`: a second outcome for the same delivery was not recorded.
            let recorded = held.remove(&o.id);
            if recorded && o.carries_digest {
                carriers.push((o.id, o.state));
            }
            kept.push(recorded);
        }
        move_members_of(&mut tx, &carriers, now).await?;
        // Each recorded outcome's receipt too, so the receipt consumer finds
        // it done and skips it.
        let recorded: Vec<&Finish> = outcomes
            .iter()
            .zip(&kept)
            .filter_map(|(o, &held)| held.then_some(o))
            .collect();
        for chunk in recorded.chunks(100) {
            let sql = format!(
                "INSERT INTO receipts (delivery_id, state, reason, provider_message_id, at) \
                 VALUES {} ON CONFLICT (delivery_id, state) DO NOTHING",
                crate::values_rows(chunk.len(), 5)
            );
            let mut query = sqlx::query(&sql);
            for o in chunk {
                query = query
                    .bind(o.id.to_string())
                    .bind(o.state.as_str())
                    .bind(o.error)
                    .bind(o.provider_message_id)
                    .bind(millis(now));
            }
            query.execute(&mut *tx).await?;
        }
        if self.announces_in_place() {
            let receipts: Vec<(&OutboxMessage, DateTime<Utc>)> = recorded
                .iter()
                .filter_map(|o| Some((o.receipt?, now)))
                .collect();
            self.announce(&mut tx, &receipts).await?;
            tx.commit().await?;
            self.announced(&receipts);
        } else {
            tx.commit().await?;
        }
        Ok(kept)
    }
}

const FINISH: &str =
    "UPDATE deliveries SET state = $3, provider_message_id = $4, last_error = $5, \
       lease_token = NULL, lease_until = 0, updated_at = $6 \
     WHERE id = $1 AND lease_token = $2 AND state = 'sending'";

/// Why a delivery that exists could not be claimed, from its row.
fn not_claimed(row: &sqlx::any::AnyRow) -> Result<Claim, StoreError> {
    let state: String = row.try_get("state")?;
    let state = DeliveryState::parse(&state).map_err(|e| StoreError::corrupt("delivery", e))?;
    Ok(match state {
        // Waiting for a timer (quiet hours, a cap, a retry): the timer hands
        // it out again when it is due.
        DeliveryState::Deferred => Claim::Waiting {
            until: row
                .try_get::<Option<i64>, _>("not_before")?
                .map(from_millis),
        },
        DeliveryState::Sending => Claim::Busy {
            until: from_millis(row.try_get("lease_until")?),
        },
        state => Claim::Done {
            state,
            provider_message_id: row.try_get("provider_message_id")?,
        },
    })
}
