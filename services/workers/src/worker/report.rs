//! Recording and announcing an outcome: the delivery row, the receipt on
//! `herald.receipts`, and the deliveries counter.
//!
//! The outcome is recorded only while this worker's claim still holds; the
//! receipt goes out after it, and only then is the delivery remembered as
//! done in the claim cache.

use herald_domain::{Channel, DeliveryJob, DeliveryState, Receipt, SCHEMA_VERSION};

use super::{Attempt, ChannelWorker, Outcome, WorkerError};

impl ChannelWorker {
    pub(super) async fn finish(
        &self,
        job: &DeliveryJob,
        token: &str,
        outcome: Attempt,
    ) -> Result<Outcome, WorkerError> {
        let now = self.clock.now();
        let kept = self
            .store
            .finish_delivery(
                job.delivery_id,
                token,
                outcome.state,
                outcome.provider_message_id.as_deref(),
                outcome.error.as_deref(),
                job.digest,
                now,
            )
            .await?;
        if !kept {
            tracing::warn!(delivery = %job.delivery_id, "claim lost before the outcome was recorded");
            return Ok(Outcome::LostClaim);
        }
        self.report(
            job,
            outcome.state,
            outcome.error,
            outcome.provider_message_id,
        )
        .await?;
        Ok(Outcome::Finished(outcome.state))
    }

    /// The receipt that announces a delivery reached `state`.
    pub(super) fn receipt(
        &self,
        job: &DeliveryJob,
        state: DeliveryState,
        reason: Option<String>,
        provider_message_id: Option<String>,
    ) -> Receipt {
        Receipt {
            schema_version: SCHEMA_VERSION,
            delivery_id: job.delivery_id,
            notification_id: job.notification_id,
            user_id: job.user_id.clone(),
            channel: job.channel,
            state,
            reason,
            provider_message_id,
            at: self.clock.now(),
        }
    }

    /// Publishes the receipt, then remembers the delivery as done.
    pub(super) async fn report(
        &self,
        job: &DeliveryJob,
        state: DeliveryState,
        reason: Option<String>,
        provider_message_id: Option<String>,
    ) -> Result<(), WorkerError> {
        let receipt = self.receipt(job, state, reason, provider_message_id);
        let payload =
            serde_json::to_vec(&receipt).map_err(|e| WorkerError::Poison(e.to_string()))?;
        self.bus
            .publish(
                &self.bus.topics().receipts(),
                &job.user_id.to_string(),
                &payload,
            )
            .await?;
        if state.is_final() {
            self.claims.mark_done(job.delivery_id).await;
        }
        Ok(())
    }
}

/// Counts one handled job by what it came to.
pub(super) fn count(channel: Channel, outcome: &str) {
    metrics::counter!(herald_telemetry::DELIVERIES, "channel" => channel.as_str(), "outcome" => outcome.to_owned())
        .increment(1);
}
