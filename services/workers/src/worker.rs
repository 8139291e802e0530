//! One channel's worker: the step that turns a delivery job into a send.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_bus::{Bus, HandleError, Handler, Record};
use herald_domain::{
    Channel, Clock, DeliveryJob, DeliveryState, Receipt, RetryAction, RetryPolicy, SCHEMA_VERSION,
};
use herald_providers::{Outbound, Provider, ProviderError, Recipient};
use herald_store::{Claim, NewInboxItem, Store, StoreError, UserRecord};
use herald_templates::{Rendered, TemplateStore};
use serde_json::{Map, Value};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::{ClaimCache, ClaimHint, RateLimiter};

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
    /// `None` for the in-app channel, which writes to the inbox.
    provider: Option<Arc<dyn Provider>>,
    claims: Arc<dyn ClaimCache>,
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<dyn Clock>,
    config: WorkerConfig,
    shutdown: CancellationToken,
}

/// What a send attempt came to, before it is recorded.
struct Attempt {
    state: DeliveryState,
    provider_message_id: Option<String>,
    error: Option<String>,
    /// For a transient failure: `Some`, with the provider's requested wait if it gave one.
    transient: Option<Option<Duration>>,
}

impl Attempt {
    fn sent(provider_message_id: String) -> Self {
        Attempt {
            state: DeliveryState::Sent,
            provider_message_id: Some(provider_message_id),
            error: None,
            transient: None,
        }
    }

    fn failed(reason: impl Into<String>) -> Self {
        Attempt {
            state: DeliveryState::Failed,
            provider_message_id: None,
            error: Some(reason.into()),
            transient: None,
        }
    }

    fn from_provider_error(error: ProviderError) -> Self {
        let transient = error.is_transient().then(|| error.retry_after());
        Attempt {
            transient,
            ..Attempt::failed(error.to_string())
        }
    }
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
        let job: DeliveryJob = serde_json::from_slice(payload)
            .map_err(|e| WorkerError::Poison(format!("not a delivery job: {e}")))?;
        if job.channel != self.channel {
            return Err(WorkerError::Poison(format!(
                "a {} job on the {} queue",
                job.channel, self.channel
            )));
        }
        let token = format!(
            "{}:{}",
            self.config.worker_id,
            uuid::Uuid::new_v4().simple()
        );
        // The cache's hint first: finished deliveries skip the database, and
        // one held elsewhere is waited for rather than raced.
        let give_up_waiting = std::time::Instant::now() + self.config.lease;
        let mut sent_before = None;
        loop {
            match self
                .claims
                .try_claim(job.delivery_id, &token, self.config.lease)
                .await
            {
                ClaimHint::Done => {
                    count(self.channel, "skipped");
                    return Ok(Outcome::Skipped);
                }
                ClaimHint::Sent {
                    provider_message_id,
                } => {
                    sent_before = Some(provider_message_id);
                    break;
                }
                ClaimHint::HeldElsewhere if std::time::Instant::now() < give_up_waiting => {
                    self.pause(Duration::from_millis(100)).await?;
                }
                _ => break,
            }
        }
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

    /// The database claim (the truth), then one attempt. A transient
    /// failure leaves the delivery waiting on a retry timer, holding nothing.
    async fn claim_and_send(
        &self,
        job: &DeliveryJob,
        token: &str,
        sent_before: Option<String>,
    ) -> Result<Outcome, WorkerError> {
        let attempt = loop {
            let now = self.clock.now();
            match self
                .store
                .claim_delivery(job.delivery_id, token, now, now + self.config.lease)
                .await?
            {
                Claim::Claimed { attempt } => break attempt,
                Claim::Done {
                    state,
                    provider_message_id,
                } => {
                    self.report(job, state, None, provider_message_id).await?;
                    return Ok(Outcome::AlreadyDone(state));
                }
                // Deferred since this job was queued (a retry, a cap): its
                // timer queues a fresh job when it is due.
                Claim::Waiting { .. } => return Ok(Outcome::Waiting),
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
        let Some(wait) = self.retry_wait(&outcome, attempt) else {
            return self.finish(job, token, outcome).await;
        };
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

    /// Waits, unless the worker is stopping: then the job is left for
    /// redelivery rather than holding shutdown up.
    async fn pause(&self, wait: Duration) -> Result<(), WorkerError> {
        tokio::select! {
            _ = tokio::time::sleep(wait) => Ok(()),
            _ = self.shutdown.cancelled() => Err(WorkerError::Interrupted),
        }
    }

    /// Transient failures are retried while the policy allows.
    fn retry_wait(&self, outcome: &Attempt, attempts_made: i64) -> Option<Duration> {
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

    async fn finish(
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

    /// Publishes the receipt, then remembers the delivery as done.
    async fn report(
        &self,
        job: &DeliveryJob,
        state: DeliveryState,
        reason: Option<String>,
        provider_message_id: Option<String>,
    ) -> Result<(), WorkerError> {
        let receipt = Receipt {
            schema_version: SCHEMA_VERSION,
            delivery_id: job.delivery_id,
            notification_id: job.notification_id,
            user_id: job.user_id.clone(),
            channel: job.channel,
            state,
            reason,
            provider_message_id,
            at: self.clock.now(),
        };
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

    /// One attempt: render and send. Store errors (ours, not the
    /// provider's) propagate so the whole job is retried.
    async fn attempt(&self, job: &DeliveryJob, user: &UserRecord) -> Result<Attempt, WorkerError> {
        let locale = job.locale.as_ref().or(user.profile.locale.as_ref());
        let rendered = if job.digest {
            let items: Vec<Map<String, Value>> = job
                .params
                .get("items")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i.as_object().cloned())
                        .collect()
                })
                .unwrap_or_default();
            // A large digest carries a sample of its items and the count.
            let count = job
                .params
                .get("count")
                .and_then(Value::as_u64)
                .map_or(items.len(), |n| usize::try_from(n).unwrap_or(usize::MAX));
            self.templates
                .render_digest_of(&job.template, job.channel, locale, &items, count)
        } else {
            self.templates
                .render(&job.template, job.channel, locale, &job.params)
        };
        let content = match rendered {
            Ok(content) => content,
            Err(e) => return Ok(Attempt::failed(format!("template: {e}"))),
        };
        if self.channel == Channel::InApp {
            return self.write_inbox(job, content).await;
        }
        let to = match self.recipient(user).await? {
            Ok(to) => to,
            Err(reason) => return Ok(Attempt::failed(reason)),
        };
        let Some(provider) = &self.provider else {
            return Ok(Attempt::failed(format!(
                "no provider is configured for {}",
                self.channel
            )));
        };
        self.limiter.acquire(self.channel.as_str()).await;
        let outbound = Outbound {
            delivery_id: job.delivery_id,
            channel: job.channel,
            to,
            content,
        };
        let started = std::time::Instant::now();
        let sent = provider.send(&outbound).await;
        let result = match &sent {
            Ok(_) => "ok",
            Err(e) if e.is_transient() => "transient",
            Err(_) => "permanent",
        };
        metrics::histogram!(herald_telemetry::PROVIDER_SECONDS, "channel" => self.channel.as_str(),
            "provider" => provider.name(), "result" => result)
        .record(started.elapsed().as_secs_f64());
        Ok(match sent {
            Ok(accepted) => {
                self.claims
                    .mark_sent(job.delivery_id, &accepted.provider_message_id)
                    .await;
                Attempt::sent(accepted.provider_message_id)
            }
            Err(e) => Attempt::from_provider_error(e),
        })
    }

    async fn write_inbox(
        &self,
        job: &DeliveryJob,
        content: Rendered,
    ) -> Result<Attempt, WorkerError> {
        let Rendered::InApp { title, body } = content else {
            return Ok(Attempt::failed("the template rendered no in-app message"));
        };
        let item = NewInboxItem {
            id: job.delivery_id,
            user_id: job.user_id.clone(),
            notification_id: job.notification_id,
            category: job.category.clone(),
            title,
            body,
        };
        self.store.insert_inbox(&item, self.clock.now()).await?;
        Ok(Attempt::sent(format!("inbox:{}", job.delivery_id)))
    }

    /// Where this channel reaches the user now; their details may have
    /// changed since the router looked.
    async fn recipient(&self, user: &UserRecord) -> Result<Result<Recipient, String>, WorkerError> {
        Ok(match self.channel {
            Channel::Email => match &user.profile.email {
                Some(address) => Ok(Recipient::Email {
                    address: address.clone(),
                    name: user.profile.name.clone(),
                }),
                None => Err("no_email_address".into()),
            },
            Channel::Sms => match &user.profile.phone {
                Some(number) => Ok(Recipient::Sms {
                    number: number.clone(),
                }),
                None => Err("no_phone_number".into()),
            },
            Channel::Push => {
                let devices = self.store.devices(&user.id).await?;
                if devices.is_empty() {
                    Err("no_push_device".into())
                } else {
                    Ok(Recipient::Push { devices })
                }
            }
            Channel::InApp => Err("in-app messages have no address".into()),
        })
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
        match handled {
            Ok(outcome) => {
                tracing::debug!(?outcome, "delivery job handled");
                Ok(())
            }
            Err(WorkerError::Poison(reason)) => Err(HandleError::Poison(reason)),
            Err(e) => Err(HandleError::Retry(e.to_string())),
        }
    }
}

fn count(channel: Channel, outcome: &str) {
    metrics::counter!(herald_telemetry::DELIVERIES, "channel" => channel.as_str(), "outcome" => outcome.to_owned())
        .increment(1);
}
