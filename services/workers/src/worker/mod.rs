//! One channel's worker: the step that turns a delivery job into a send.
//!
//! [`ChannelWorker::handle`] is the whole step, told here in order; each
//! part lives next to it: taking the delivery (`claim`), sending it once
//! (`attempt`, to the address `address` picks), waiting out a transient
//! failure (`retry`), and recording and announcing the outcome (`report`).

mod address;
mod attempt;
mod batch;
mod claim;
mod report;
mod retry;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_bus::{Bus, HandleError, Handler, Record};
use herald_domain::{Channel, Clock, DeliveryJob, DeliveryState, RetryPolicy};
use herald_providers::Provider;
use herald_store::{Store, StoreError};
use herald_templates::TemplateStore;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::{ClaimCache, ClaimHint, RateLimiter};
use attempt::Attempt;
use claim::Claimed;
use report::count;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub retry: RetryPolicy,
    /// How long a claim lasts before another worker may take the delivery
    /// over; it must outlast one provider call.
    pub lease: Duration,
    /// A name for this process in claim tokens and logs.
    pub worker_id: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            retry: RetryPolicy::default(),
            lease: Duration::from_secs(120),
            worker_id: format!("worker-{}", std::process::id()),
        }
    }
}

#[derive(Debug, Error)]
pub enum WorkerError {
    #[error("bad delivery job: {0}")]
    Poison(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] herald_bus::BusError),
    #[error("stopped while waiting to retry")]
    Interrupted,
    /// A failure of the work a batch of jobs shared (its claim, its
    /// outcomes' transaction, its receipts' publish), for each job in it.
    #[error("{0}")]
    Shared(String),
    /// Another worker holds the delivery: the job waits for it on its own,
    /// not inside a batch.
    #[error("delivery {0} is held by another worker")]
    HeldElsewhere(herald_domain::DeliveryId),
}

/// What handling one job came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// This worker took the delivery to `state` and reported it.
    Finished(DeliveryState),
    /// The delivery was done before; its receipt was published again.
    AlreadyDone(DeliveryState),
    /// The fast-path cache knew it was done; nothing touched.
    Skipped,
    /// The claim ran out mid-send and another worker took over.
    LostClaim,
    /// The delivery waits on a timer (deferred after this job was queued).
    Waiting,
    /// A transient failure: a retry timer queues it again at this time.
    Retrying(chrono::DateTime<chrono::Utc>),
}

/// Cheap to clone: every field is shared.
#[derive(Clone)]
pub struct ChannelWorker {
    channel: Channel,
    store: Store,
    bus: Arc<dyn Bus>,
    templates: TemplateStore,
    /// `None` when no provider is configured: every send fails, saying so.
    provider: Option<Arc<dyn Provider>>,
    claims: Arc<dyn ClaimCache>,
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<dyn Clock>,
    config: WorkerConfig,
    shutdown: CancellationToken,
}

impl ChannelWorker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        channel: Channel,
        store: Store,
        bus: Arc<dyn Bus>,
        templates: TemplateStore,
        provider: Option<Arc<dyn Provider>>,
        claims: Arc<dyn ClaimCache>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        config: WorkerConfig,
    ) -> Self {
        ChannelWorker {
            channel,
            store,
            bus,
            templates,
            provider,
            claims,
            limiter,
            clock,
            config,
            shutdown: CancellationToken::new(),
        }
    }

    /// Retry waits end early when `shutdown` is cancelled.
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// Handles one delivery job, start to finish.
    #[tracing::instrument(skip_all, fields(channel = %self.channel))]
    pub async fn handle(&self, payload: &[u8]) -> Result<Outcome, WorkerError> {
        let job = self.parse(payload)?;
        let token = format!(
            "{}:{}",
            self.config.worker_id,
            uuid::Uuid::new_v4().simple()
        );
        // The cache's hint first: finished deliveries skip the database, and
        // one held elsewhere is waited for rather than raced.
        let sent_before = match self.cache_hint(&job, &token).await? {
            ClaimHint::Done => {
                count(self.channel, "skipped");
                return Ok(Outcome::Skipped);
            }
            ClaimHint::Sent {
                provider_message_id,
            } => Some(provider_message_id),
            _ => None,
        };
        let result = self.claim_and_send(&job, &token, sent_before).await;
        match &result {
            Ok(Outcome::Finished(state)) => count(self.channel, state.as_str()),
            Ok(Outcome::AlreadyDone(_)) => count(self.channel, "already_done"),
            Ok(Outcome::LostClaim) => count(self.channel, "lost_claim"),
            Ok(Outcome::Waiting) => count(self.channel, "waiting"),
            Ok(Outcome::Retrying(_)) => count(self.channel, "retrying"),
            _ => {}
        }
        if !matches!(result, Ok(Outcome::Finished(_) | Outcome::AlreadyDone(_))) {
            self.claims.release(job.delivery_id, &token).await;
        }
        result
    }

    /// The job in `payload`, if it is one for this channel.
    fn parse(&self, payload: &[u8]) -> Result<DeliveryJob, WorkerError> {
        let job: DeliveryJob = serde_json::from_slice(payload)
            .map_err(|e| WorkerError::Poison(format!("not a delivery job: {e}")))?;
        if job.channel != self.channel {
            return Err(WorkerError::Poison(format!(
                "a {} job on the {} queue",
                job.channel, self.channel
            )));
        }
        Ok(job)
    }

    /// The database claim (the truth), then one attempt. A transient
    /// failure leaves the delivery waiting on a retry timer, holding nothing.
    async fn claim_and_send(
        &self,
        job: &DeliveryJob,
        token: &str,
        sent_before: Option<String>,
    ) -> Result<Outcome, WorkerError> {
        let attempt = match self.claim(job, token).await? {
            Claimed::Held { attempt } => attempt,
            Claimed::Settled(outcome) => return Ok(outcome),
        };
        if let Some(provider_message_id) = sent_before {
            // A worker died between the provider's answer and recording it.
            tracing::info!(delivery = %job.delivery_id, "recording a send a dead worker made; not sending again");
            return self
                .finish(job, token, Attempt::sent(provider_message_id))
                .await;
        }
        let user = self.store.get_user(&job.user_id).await?;
        let outcome = match &user {
            Some(user) => self.attempt(job, user).await?,
            None => Attempt::failed("the user no longer exists"),
        };
        match self.retry_wait(&outcome, attempt) {
            Some(wait) => self.retry_later(job, token, &outcome, attempt, wait).await,
            None => self.finish(job, token, outcome).await,
        }
    }
}

/// Jobs handed to a worker at once at most.
const BATCH: usize = 64;

fn outcome(handled: Result<Outcome, WorkerError>) -> Result<(), HandleError> {
    match handled {
        Ok(outcome) => {
            tracing::debug!(?outcome, "delivery job handled");
            Ok(())
        }
        Err(WorkerError::Poison(reason)) => Err(HandleError::Poison(reason)),
        Err(e @ WorkerError::HeldElsewhere(_)) => Err(HandleError::Alone(e.to_string())),
        Err(e) => Err(HandleError::Retry(e.to_string())),
    }
}

#[async_trait]
impl Handler for ChannelWorker {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        // Run the job in a task of its own: if this service is stopped or
        // aborted mid-send, the send still finishes and is recorded, so a
        // message the provider took is never left unrecorded and sent again.
        let (worker, payload) = (self.clone(), record.payload.clone());
        let handled = tokio::spawn(async move { worker.handle(&payload).await })
            .await
            .map_err(|e| HandleError::Retry(format!("worker task failed: {e}")))?;
        outcome(handled)
    }

    /// [`ChannelWorker::handle_many`], in a task of its own for the same
    /// reason as one job.
    async fn handle_batch(&self, records: &[Record]) -> Vec<Result<(), HandleError>> {
        let worker = self.clone();
        let payloads: Vec<Vec<u8>> = records.iter().map(|r| r.payload.clone()).collect();
        match tokio::spawn(async move { worker.handle_many(&payloads).await }).await {
            Ok(results) => results.into_iter().map(outcome).collect(),
            Err(e) => records
                .iter()
                .map(|_| Err(HandleError::Retry(format!("worker task failed: {e}"))))
                .collect(),
        }
    }

    fn max_batch(&self) -> usize {
        BATCH
    }
}
