//! The router: consumes notification events and decides, for each recipient
//! and channel, whether a delivery job goes out or a `suppressed` receipt
//! says why not.
//!
//! Routing the same event twice is harmless: delivery ids are deterministic,
//! deliveries are inserted only if absent, and a duplicate job finds its
//! delivery already claimed or done.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use herald_bus::{Bus, HandleError, Handler, Record, Topic};
use herald_domain::{
    route, select_channels, Category, CategoryPolicy, Clock, DeliveryId, DeliveryJob,
    DeliveryState, NotificationEvent, Receipt, RecipientProfile, RouteDecision, SuppressReason,
    UserId, SCHEMA_VERSION,
};
use herald_store::{NewDelivery, Store, StoreError};
use herald_templates::TemplateStore;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RouteError {
    #[error("refused event: {0}")]
    Poison(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] herald_bus::BusError),
}

/// What routing one event came to, for tests and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routed {
    pub jobs: usize,
    pub suppressed: usize,
}

pub struct Router {
    store: Store,
    bus: Arc<dyn Bus>,
    templates: TemplateStore,
    clock: Arc<dyn Clock>,
    policies: HashMap<Category, CategoryPolicy>,
}

impl Router {
    pub fn new(
        store: Store,
        bus: Arc<dyn Bus>,
        templates: TemplateStore,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Router {
            store,
            bus,
            templates,
            clock,
            policies: HashMap::new(),
        }
    }

    /// Operator rules per category (which may let `critical` bypass opt-outs).
    pub fn with_policies(mut self, policies: HashMap<Category, CategoryPolicy>) -> Self {
        self.policies = policies;
        self
    }

    /// Routes one event.
    #[tracing::instrument(skip_all)]
    pub async fn route_event(&self, payload: &[u8]) -> Result<Routed, RouteError> {
        let event: NotificationEvent = serde_json::from_slice(payload)
            .map_err(|e| RouteError::Poison(format!("not a notification event: {e}")))?;
        let event = event
            .validate()
            .map_err(|e| RouteError::Poison(e.to_string()))?;
        let template = self
            .templates
            .get(&event.template)
            .ok_or_else(|| RouteError::Poison(format!("unknown template {}", event.template)))?;
        let channels = select_channels(
            &event.template,
            &template.channels,
            event.channels.as_deref(),
        )
        .map_err(|e| RouteError::Poison(e.to_string()))?;
        let category = event
            .category
            .clone()
            .unwrap_or_else(|| template.category.clone());
        let policy = self.policies.get(&category).cloned().unwrap_or_default();
        let now = self.clock.now();
        self.store.ensure_notification(&event, now).await?;

        let mut deliveries = Vec::new();
        let mut messages = Vec::new();
        let mut routed = Routed::default();
        for user in &event.recipients {
            let decisions = match self.profile(user).await? {
                Some(profile) => route(&channels, &category, event.priority, &policy, &profile),
                None => channels
                    .iter()
                    .map(|&c| (c, RouteDecision::Suppress(SuppressReason::UnknownUser)))
                    .collect(),
            };
            for (channel, decision) in decisions {
                let id = DeliveryId::derive(event.notification_id(), user, channel);
                let (state, reason) = match &decision {
                    RouteDecision::Deliver => (DeliveryState::Queued, None),
                    RouteDecision::Suppress(reason) => {
                        (DeliveryState::Suppressed, Some(reason.to_string()))
                    }
                };
                deliveries.push(NewDelivery {
                    id,
                    notification_id: event.notification_id(),
                    user_id: user.clone(),
                    channel,
                    state,
                    reason: reason.clone(),
                });
                match decision {
                    RouteDecision::Deliver => {
                        let job = DeliveryJob::new(&event, user, channel, category.clone());
                        messages.push(message(self.bus.topics().deliveries(channel), user, &job)?);
                        metrics::counter!(herald_telemetry::JOBS_ROUTED, "channel" => channel.as_str()).increment(1);
                        routed.jobs += 1;
                    }
                    RouteDecision::Suppress(_) => {
                        let receipt = Receipt {
                            schema_version: SCHEMA_VERSION,
                            delivery_id: id,
                            notification_id: event.notification_id(),
                            user_id: user.clone(),
                            channel,
                            state: DeliveryState::Suppressed,
                            reason,
                            provider_message_id: None,
                            at: now,
                        };
                        metrics::counter!(herald_telemetry::SUPPRESSED, "channel" => channel.as_str(),
                            "reason" => receipt.reason.clone().unwrap_or_default())
                        .increment(1);
                        messages.push(message(self.bus.topics().receipts(), user, &receipt)?);
                        routed.suppressed += 1;
                    }
                }
            }
        }
        // Deliveries first: a worker that gets a job must find its delivery.
        self.store.insert_deliveries(&deliveries, now).await?;
        self.bus.publish_all(&messages).await?;
        Ok(routed)
    }

    async fn profile(&self, user: &UserId) -> Result<Option<RecipientProfile>, StoreError> {
        let Some(record) = self.store.get_user(user).await? else {
            return Ok(None);
        };
        let push_devices = self.store.devices(user).await?.len();
        Ok(Some(RecipientProfile {
            has_email: record.profile.email.is_some(),
            has_phone: record.profile.phone.is_some(),
            push_devices,
            preferences: record.preferences,
        }))
    }
}

fn message<T: serde::Serialize>(
    topic: Topic,
    user: &UserId,
    body: &T,
) -> Result<(Topic, String, Vec<u8>), RouteError> {
    // Keyed by user, so one user's messages stay in order on a partitioned bus.
    let payload = serde_json::to_vec(body).map_err(|e| RouteError::Poison(e.to_string()))?;
    Ok((topic, user.to_string(), payload))
}

#[async_trait]
impl Handler for Router {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        match self.route_event(&record.payload).await {
            Ok(routed) => {
                tracing::debug!(?routed, "event routed");
                Ok(())
            }
            Err(RouteError::Poison(reason)) => Err(HandleError::Poison(reason)),
            Err(e) => Err(HandleError::Retry(e.to_string())),
        }
    }
}
