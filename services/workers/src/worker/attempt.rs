//! One attempt at a send: render the template in the user's language, wait
//! for the provider's rate limit, and hand the message to the provider.
//!
//! What the attempt came to is an [`Attempt`], not yet recorded: the caller
//! decides whether it is final or waits on a retry. A failure on the
//! provider's side is an `Attempt`; a failure of Herald's own store (also
//! when the in-app inbox provider writes to it) is an error, so the whole
//! job is tried again.

use std::time::Duration;

use herald_domain::{DeliveryJob, DeliveryState};
use herald_providers::{Outbound, ProviderError};
use herald_store::UserRecord;
use herald_templates::{Rendered, TemplateError};
use serde_json::{Map, Value};

use super::{ChannelWorker, WorkerError};

/// What a send attempt came to, before it is recorded.
pub(super) struct Attempt {
    pub(super) state: DeliveryState,
    pub(super) provider_message_id: Option<String>,
    pub(super) error: Option<String>,
    /// For a transient failure: `Some`, with the provider's requested wait if it gave one.
    pub(super) transient: Option<Option<Duration>>,
}

impl Attempt {
    pub(super) fn sent(provider_message_id: String) -> Self {
        Attempt {
            state: DeliveryState::Sent,
            provider_message_id: Some(provider_message_id),
            error: None,
            transient: None,
        }
    }

    pub(super) fn failed(reason: impl Into<String>) -> Self {
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
    /// One attempt: render and send. Store errors (ours, not the
    /// provider's) propagate so the whole job is retried.
    pub(super) async fn attempt(
        &self,
        job: &DeliveryJob,
        user: &UserRecord,
    ) -> Result<Attempt, WorkerError> {
        let content = match self.render(job, user) {
            Ok(content) => content,
            Err(e) => return Ok(Attempt::failed(format!("template: {e}"))),
        };
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
            notification_id: job.notification_id,
            category: job.category.clone(),
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
            Err(ProviderError::Store(e)) => return Err(e.into()),
            Err(e) => Attempt::from_provider_error(e),
        })
    }

    /// The job's template for this channel, in the job's locale or else the
    /// user's; a digest renders its items and their count.
    fn render(&self, job: &DeliveryJob, user: &UserRecord) -> Result<Rendered, TemplateError> {
        let locale = job.locale.as_ref().or(user.profile.locale.as_ref());
        if !job.digest {
            return self
                .templates
                .render(&job.template, job.channel, locale, &job.params);
        }
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
    }
}
