//! Waiting: for a transient failure's retry, and for another worker.
//!
//! A transient failure is not retried in place: the delivery is deferred
//! to a retry timer (the policy's backoff, or the provider's `Retry-After`)
//! and the worker lets go of it. Short waits inside a job end early when the
//! worker is told to stop.

use std::time::Duration;

use herald_domain::{DeliveryJob, DeliveryState, RetryAction};

use super::{Attempt, ChannelWorker, Outcome, WorkerError};

impl ChannelWorker {
    /// Waits, unless the worker is stopping: then the job is left for
    /// redelivery rather than holding shutdown up.
    pub(super) async fn pause(&self, wait: Duration) -> Result<(), WorkerError> {
        tokio::select! {
            _ = tokio::time::sleep(wait) => Ok(()),
            _ = self.shutdown.cancelled() => Err(WorkerError::Interrupted),
        }
    }

    /// Transient failures are retried while the policy allows.
    pub(super) fn retry_wait(&self, outcome: &Attempt, attempts_made: i64) -> Option<Duration> {
        let retry_after = outcome.transient?;
        let made = u32::try_from(attempts_made).unwrap_or(u32::MAX);
        match self
            .config
            .retry
            .decide(made, retry_after, rand::random::<f64>())
        {
            RetryAction::RetryAfter(wait) => Some(wait),
            RetryAction::GiveUp => None,
        }
    }

    /// Defers the delivery to a retry timer `wait` from now and reports it
    /// deferred, unless the claim was lost meanwhile.
    pub(super) async fn retry_later(
        &self,
        job: &DeliveryJob,
        token: &str,
        outcome: &Attempt,
        attempt: i64,
        wait: Duration,
    ) -> Result<Outcome, WorkerError> {
        let now = self.clock.now();
        let until = now + chrono::Duration::from_std(wait).unwrap_or_default();
        let error = outcome.error.as_deref().unwrap_or_default();
        if !self
            .store
            .defer_retry(job.delivery_id, token, error, until, now)
            .await?
        {
            return Ok(Outcome::LostClaim);
        }
        tracing::info!(delivery = %job.delivery_id, attempt, ?wait, %error, "transient failure; retrying");
        metrics::counter!(herald_telemetry::RETRIES, "channel" => self.channel.as_str())
            .increment(1);
        self.report(job, DeliveryState::Deferred, Some("retry".into()), None)
            .await?;
        Ok(Outcome::Retrying(until))
    }
}
