//! What a decision announces: the job for a queued delivery, the receipt
//! for any other, and how they reach the bus (published after the commit,
//! or, where the bus is in the store's database, enqueued in it).

use chrono::{DateTime, Utc};
use herald_bus::Topic;
use herald_domain::{
    Channel, DeliveryId, DeliveryJob, DeliveryState, Receipt, UserId, FOLDED_BY_CAP, GROUPED,
    SCHEMA_VERSION,
};
use herald_store::OutboxMessage;

use super::{Judge, Judged, Message, Routed};
use crate::notice::{Notice, Origin};
use crate::RouteError;

impl Judge {
    /// The job and receipt messages for a decided delivery, and its count.
    pub fn announce(
        &self,
        notice: &Notice,
        judged: &Judged,
        now: DateTime<Utc>,
        messages: &mut Vec<Message>,
        routed: &mut Routed,
    ) -> Result<(), RouteError> {
        let delivery = &judged.record.delivery;
        let channel = delivery.channel;
        let (state, reason) = match delivery.state {
            DeliveryState::Queued => {
                messages.push(self.job(notice, delivery.id, &delivery.user_id, channel)?);
                metrics::counter!(herald_telemetry::JOBS_ROUTED, "channel" => channel.as_str())
                    .increment(1);
                routed.queued += 1;
                return Ok(());
            }
            DeliveryState::Cancelled => {
                routed.cancelled += 1;
                (DeliveryState::Cancelled, Some("cancelled".to_owned()))
            }
            DeliveryState::Suppressed => {
                routed.suppressed += 1;
                metrics::counter!(herald_telemetry::SUPPRESSED, "channel" => channel.as_str(),
                    "reason" => delivery.reason.clone().unwrap_or_default())
                .increment(1);
                (DeliveryState::Suppressed, delivery.reason.clone())
            }
            _ => {
                let why = judged.waiting_for.unwrap_or("deferred");
                if why == GROUPED || why == FOLDED_BY_CAP {
                    routed.grouped += 1;
                } else {
                    routed.deferred += 1;
                }
                metrics::counter!(herald_telemetry::DEFERRED, "channel" => channel.as_str(), "rule" => why)
                    .increment(1);
                (DeliveryState::Deferred, Some(why.to_owned()))
            }
        };
        let receipt = Receipt {
            schema_version: SCHEMA_VERSION,
            delivery_id: delivery.id,
            notification_id: delivery.notification_id,
            user_id: delivery.user_id.clone(),
            channel,
            state,
            reason,
            provider_message_id: None,
            at: now,
        };
        messages.push(message(
            self.bus.topics().receipts(),
            &delivery.user_id,
            &receipt,
        )?);
        Ok(())
    }

    /// The job for one delivery of a notice.
    pub fn job(
        &self,
        notice: &Notice,
        id: DeliveryId,
        user: &UserId,
        channel: Channel,
    ) -> Result<Message, RouteError> {
        let mut job = DeliveryJob::new(&notice.event, user, channel, notice.category.clone());
        job.delivery_id = id;
        job.digest = notice.origin == Origin::Digest;
        message(self.bus.topics().deliveries(channel), user, &job)
    }

    pub async fn publish(&self, messages: &[Message]) -> Result<(), RouteError> {
        if !messages.is_empty() {
            self.bus.publish_all(messages).await?;
        }
        Ok(())
    }

    /// A message as the store's same-database queue takes it.
    pub(super) fn enqueued(
        &self,
        (topic, key, payload): &Message,
    ) -> Result<OutboxMessage, RouteError> {
        let topics = self.bus.topics();
        let logical = topics.logical(topic).ok_or_else(|| {
            RouteError::Poison(format!("{} is not one of our topics", topic.name()))
        })?;
        let payload = String::from_utf8(payload.clone())
            .map_err(|e| RouteError::Poison(format!("a job is not UTF-8 JSON: {e}")))?;
        Ok(OutboxMessage::new(logical, key.clone(), payload))
    }
}

fn message<T: serde::Serialize>(
    topic: Topic,
    user: &UserId,
    body: &T,
) -> Result<Message, RouteError> {
    // Keyed by user, so one user's messages stay in order on a partitioned bus.
    let payload = serde_json::to_vec(body).map_err(|e| RouteError::Poison(e.to_string()))?;
    Ok((topic, user.to_string(), payload))
}
