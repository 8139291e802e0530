//! A batch of jobs in a few round trips: [`ChannelWorker::handle`] for many
//! jobs at once, with the same outcomes.
//!
//! The jobs share one claim token. Their deliveries are claimed in one
//! statement and their users read in one; each message still goes to the
//! provider on its own (concurrently, each waiting for the rate limit); the
//! outcomes are recorded in one transaction and the receipts published
//! together (on the embedded bus, whose queue is in the store's database,
//! enqueued in that transaction). A job that needs waiting (another worker holds its delivery)
//! is handed back to the consume loop ([`WorkerError::HeldElsewhere`], to
//! the loop `HandleError::Alone`), which tries it alone with a slot of its
//! own; a retry after a transient failure
//! is deferred to its timer as on the one-job path. So the usual case stays a
//! few statements and nothing in a batch waits for anything else.

use std::collections::{HashMap, HashSet};

use herald_domain::{DeliveryId, DeliveryJob, DeliveryState};
use herald_store::{Claim, Finish, OutboxMessage};

use super::report::count;
use super::Attempt;
use super::{ChannelWorker, Outcome, WorkerError};
use crate::ClaimHint;

/// A job of the batch that this worker holds, with what its send came to.
struct Held<'a> {
    index: usize,
    job: &'a DeliveryJob,
    attempt: i64,
    outcome: Option<Attempt>,
}

impl ChannelWorker {
    /// Handles several delivery jobs; one result per payload, in order.
    #[tracing::instrument(skip_all, fields(channel = %self.channel, jobs = payloads.len()))]
    pub async fn handle_many(&self, payloads: &[Vec<u8>]) -> Vec<Result<Outcome, WorkerError>> {
        let mut results: Vec<Option<Result<Outcome, WorkerError>>> =
            payloads.iter().map(|_| None).collect();
        let token = format!(
            "{}:{}",
            self.config.worker_id,
            uuid::Uuid::new_v4().simple()
        );
        // Parsed; a delivery's second job in the batch is the first's echo.
        let mut jobs: Vec<(usize, DeliveryJob)> = Vec::with_capacity(payloads.len());
        let mut seen = HashSet::new();
        for (i, payload) in payloads.iter().enumerate() {
            match self.parse(payload) {
                Ok(job) if seen.insert(job.delivery_id) => jobs.push((i, job)),
                Ok(_) => {
                    count(self.channel, "skipped");
                    results[i] = Some(Ok(Outcome::Skipped));
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        // The cache's hints: finished deliveries need nothing; one held
        // elsewhere is handed back; one a worker that died sent goes the
        // one-job way, which records that send without repeating it.
        let hints = futures::future::join_all(jobs.iter().map(|(_, job)| {
            self.claims
                .try_claim(job.delivery_id, &token, self.config.lease)
        }))
        .await;
        let mut ours = Vec::with_capacity(jobs.len());
        let mut alone = Vec::new();
        for ((i, job), hint) in jobs.iter().zip(hints) {
            match hint {
                ClaimHint::Done => {
                    count(self.channel, "skipped");
                    results[*i] = Some(Ok(Outcome::Skipped));
                }
                ClaimHint::Acquired | ClaimHint::Unknown => ours.push((*i, job)),
                // Waiting here would hold the whole batch: the loop hands it
                // back alone, to wait with a slot of its own.
                ClaimHint::HeldElsewhere => {
                    results[*i] = Some(Err(WorkerError::HeldElsewhere(job.delivery_id)))
                }
                ClaimHint::Sent { .. } => alone.push(*i),
            }
        }
        let finished = self.claim_send_and_finish(&ours, &token).await;
        for (i, result) in finished {
            results[i] = Some(result);
        }
        // Ours that did not end in an outcome let go of the cache's hint.
        for (i, job) in &ours {
            if !matches!(
                results[*i],
                Some(Ok(Outcome::Finished(_) | Outcome::AlreadyDone(_)))
            ) {
                self.claims.release(job.delivery_id, &token).await;
            }
        }
        let one_by_one =
            futures::future::join_all(alone.iter().map(|&i| self.handle(&payloads[i]))).await;
        for (i, result) in alone.into_iter().zip(one_by_one) {
            results[i] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(WorkerError::Interrupted)))
            .collect()
    }

    /// The batch's database claim, sends, outcomes and receipts. Returns a
    /// result for every job given.
    async fn claim_send_and_finish(
        &self,
        jobs: &[(usize, &DeliveryJob)],
        token: &str,
    ) -> Vec<(usize, Result<Outcome, WorkerError>)> {
        if jobs.is_empty() {
            return Vec::new();
        }
        let failed_all = |e: WorkerError| -> Vec<(usize, Result<Outcome, WorkerError>)> {
            let reason = e.to_string();
            jobs.iter()
                .map(|(i, _)| (*i, Err(WorkerError::Shared(reason.clone()))))
                .collect()
        };
        let now = self.clock.now();
        let ids: Vec<DeliveryId> = jobs.iter().map(|(_, job)| job.delivery_id).collect();
        let claims = match self
            .store
            .claim_deliveries(&ids, token, now, now + self.config.lease)
            .await
        {
            Ok(claims) => claims,
            Err(e) => return failed_all(e.into()),
        };
        let mut results = Vec::with_capacity(jobs.len());
        let mut held = Vec::with_capacity(jobs.len());
        for &(index, job) in jobs {
            match claims
                .get(&job.delivery_id)
                .cloned()
                .unwrap_or(Claim::Missing)
            {
                Claim::Claimed { attempt } => held.push(Held {
                    index,
                    job,
                    attempt,
                    outcome: None,
                }),
                Claim::Done {
                    state,
                    provider_message_id,
                } => {
                    let reported = self.report(job, state, None, provider_message_id).await;
                    let outcome = reported.map(|()| Outcome::AlreadyDone(state));
                    if outcome.is_ok() {
                        count(self.channel, "already_done");
                    }
                    results.push((index, outcome));
                }
                Claim::Waiting { .. } => {
                    count(self.channel, "waiting");
                    results.push((index, Ok(Outcome::Waiting)));
                }
                // Another worker is sending it: handed back, to wait alone.
                Claim::Busy { .. } => {
                    results.push((index, Err(WorkerError::HeldElsewhere(job.delivery_id))))
                }
                Claim::Missing => results.push((
                    index,
                    Err(WorkerError::Poison(format!(
                        "no delivery {} was routed",
                        job.delivery_id
                    ))),
                )),
            }
        }
        let user_ids: Vec<_> = held.iter().map(|h| h.job.user_id.clone()).collect();
        let users = match self.store.recipients(&user_ids).await {
            Ok(users) => users,
            Err(e) => {
                let reason = e.to_string();
                results.extend(
                    held.iter()
                        .map(|h| (h.index, Err(WorkerError::Shared(reason.clone())))),
                );
                return results;
            }
        };
        // Each message to the provider on its own, all at once.
        let attempts = futures::future::join_all(held.iter().map(|h| async {
            match users.get(&h.job.user_id) {
                Some((user, _)) => self.attempt(h.job, user).await,
                None => Ok(Attempt::failed("the user no longer exists")),
            }
        }))
        .await;
        let mut to_finish = Vec::with_capacity(held.len());
        for (mut h, attempt) in held.into_iter().zip(attempts) {
            match attempt {
                Ok(outcome) => match self.retry_wait(&outcome, h.attempt) {
                    Some(wait) => {
                        let retried = self
                            .retry_later(h.job, token, &outcome, h.attempt, wait)
                            .await;
                        if let Ok(Outcome::Retrying(_)) = retried {
                            count(self.channel, "retrying");
                        }
                        results.push((h.index, retried));
                    }
                    None => {
                        h.outcome = Some(outcome);
                        to_finish.push(h);
                    }
                },
                Err(e) => results.push((h.index, Err(e))),
            }
        }
        results.extend(self.finish_all(to_finish, token).await);
        results
    }

    /// Records the outcomes in one transaction, then publishes their
    /// receipts together (or has the store enqueue them in it) and
    /// remembers the final ones as done.
    async fn finish_all(
        &self,
        held: Vec<Held<'_>>,
        token: &str,
    ) -> Vec<(usize, Result<Outcome, WorkerError>)> {
        if held.is_empty() {
            return Vec::new();
        }
        let now = self.clock.now();
        // Each outcome's receipt, made first: where the bus is in the store's
        // database, it goes on in the transaction that records the outcome.
        let in_place = self.store.announces_in_place();
        let payloads: Vec<Option<Result<String, String>>> = held
            .iter()
            .map(|h| {
                let o = h.outcome.as_ref()?;
                let receipt = self.receipt(
                    h.job,
                    o.state,
                    o.error.clone(),
                    o.provider_message_id.clone(),
                );
                Some(serde_json::to_string(&receipt).map_err(|e| e.to_string()))
            })
            .collect();
        let enqueued: Vec<Option<OutboxMessage>> = held
            .iter()
            .zip(&payloads)
            .map(|(h, payload)| match payload {
                Some(Ok(payload)) if in_place => Some(OutboxMessage::new(
                    "receipts",
                    h.job.user_id.to_string(),
                    payload.clone(),
                )),
                _ => None,
            })
            .collect();
        let outcomes: Vec<Finish> = held
            .iter()
            .zip(&enqueued)
            .filter_map(|(h, receipt)| {
                let o = h.outcome.as_ref()?;
                Some(Finish {
                    id: h.job.delivery_id,
                    token,
                    state: o.state,
                    provider_message_id: o.provider_message_id.as_deref(),
                    error: o.error.as_deref(),
                    carries_digest: h.job.digest,
                    receipt: receipt.as_ref(),
                })
            })
            .collect();
        let kept = match self.store.finish_deliveries(&outcomes, now).await {
            Ok(kept) => kept,
            Err(e) => {
                let reason = e.to_string();
                return held
                    .iter()
                    .map(|h| (h.index, Err(WorkerError::Shared(reason.clone()))))
                    .collect();
            }
        };
        let mut results = Vec::with_capacity(held.len());
        let mut receipts = Vec::with_capacity(held.len());
        let mut reported = Vec::with_capacity(held.len());
        let with_outcome = held
            .iter()
            .zip(payloads)
            .filter_map(|(h, payload)| Some((h, h.outcome.as_ref()?, payload?)));
        for ((h, outcome, payload), kept) in with_outcome.zip(kept) {
            if !kept {
                tracing::warn!(delivery = %h.job.delivery_id, "claim lost before the outcome was recorded");
                count(self.channel, "lost_claim");
                results.push((h.index, Ok(Outcome::LostClaim)));
                continue;
            }
            match payload {
                Ok(payload) => {
                    if !in_place {
                        receipts.push((
                            self.bus.topics().receipts(),
                            h.job.user_id.to_string(),
                            payload.into_bytes(),
                        ));
                    }
                    reported.push((h.index, h.job.delivery_id, outcome.state));
                }
                Err(e) => results.push((h.index, Err(WorkerError::Poison(e)))),
            }
        }
        // Recorded: a failed publish only means the receipts go out when
        // the jobs come back and find their deliveries done.
        if !receipts.is_empty() {
            if let Err(e) = self.bus.publish_all(&receipts).await {
                let reason = e.to_string();
                results.extend(
                    reported
                        .into_iter()
                        .map(|(i, _, _)| (i, Err(WorkerError::Shared(reason.clone())))),
                );
                return results;
            }
        }
        let done: HashMap<DeliveryId, DeliveryState> = reported
            .iter()
            .filter(|(_, _, state)| state.is_final())
            .map(|(_, id, state)| (*id, *state))
            .collect();
        futures::future::join_all(done.keys().map(|id| self.claims.mark_done(*id))).await;
        for (i, _, state) in reported {
            count(self.channel, state.as_str());
            results.push((i, Ok(Outcome::Finished(state))));
        }
        results
    }
}
