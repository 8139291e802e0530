//! Taking a delivery before sending it: the fast-path cache's hint first,
//! then the conditional database update that is the truth.
//!
//! The cache lets finished deliveries skip the database and makes a worker
//! wait for one held elsewhere rather than race it. Only the database claim
//! lets a send go ahead; it also says when there is nothing to send (done
//! before, waiting on a timer, or never routed).

use std::time::Duration;

use herald_domain::DeliveryJob;
use herald_store::Claim;

use super::{ChannelWorker, Outcome, WorkerError};
use crate::ClaimHint;

/// What the database claim came to.
pub(super) enum Claimed {
    /// This worker holds the delivery; `attempt` counts this one.
    Held { attempt: i64 },
    /// Nothing to send: the job ends with this outcome.
    Settled(Outcome),
}

impl ChannelWorker {
    /// The cache's hint, once no other worker holds the delivery, or once
    /// a lease's worth of waiting for it has passed.
    pub(super) async fn cache_hint(
        &self,
        job: &DeliveryJob,
        token: &str,
    ) -> Result<ClaimHint, WorkerError> {
        let give_up_waiting = std::time::Instant::now() + self.config.lease;
        loop {
            match self
                .claims
                .try_claim(job.delivery_id, token, self.config.lease)
                .await
            {
                ClaimHint::HeldElsewhere if std::time::Instant::now() < give_up_waiting => {
                    self.pause(Duration::from_millis(100)).await?;
                }
                hint => return Ok(hint),
            }
        }
    }

    /// The database claim: waits out another worker's lease, and publishes
    /// the receipt again for a delivery that is already done.
    pub(super) async fn claim(
        &self,
        job: &DeliveryJob,
        token: &str,
    ) -> Result<Claimed, WorkerError> {
        loop {
            let now = self.clock.now();
            match self
                .store
                .claim_delivery(job.delivery_id, token, now, now + self.config.lease)
                .await?
            {
                Claim::Claimed { attempt } => return Ok(Claimed::Held { attempt }),
                Claim::Done {
                    state,
                    provider_message_id,
                } => {
                    self.report(job, state, None, provider_message_id).await?;
                    return Ok(Claimed::Settled(Outcome::AlreadyDone(state)));
                }
                // Deferred since this job was queued (a retry, a cap): its
                // timer queues a fresh job when it is due.
                Claim::Waiting { .. } => return Ok(Claimed::Settled(Outcome::Waiting)),
                Claim::Busy { until } => {
                    // Someone else is sending it; wait for them to finish or
                    // for their lease to end, whichever comes first.
                    let wait = (until - now)
                        .to_std()
                        .unwrap_or_default()
                        .min(Duration::from_secs(5));
                    self.pause(wait.max(Duration::from_millis(50))).await?;
                }
                Claim::Missing => {
                    return Err(WorkerError::Poison(format!(
                        "no delivery {} was routed",
                        job.delivery_id
                    )));
                }
            }
        }
    }
}
