//! What comes in (a notification event) and what the router sends on (a delivery job).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Category, Channel, DeliveryId, DomainError, Locale, NotificationId, TemplateName, UserId,
};

/// Version of the JSON documents Herald writes to its topics.
pub const SCHEMA_VERSION: u32 = 1;

/// The most recipients one event may name; larger audiences use topics.
pub const MAX_RECIPIENTS: usize = 1000;

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    /// Bypasses opt-outs only where the category's policy allows it.
    Critical,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }

    pub fn parse(value: &str) -> Result<Self, DomainError> {
        match value {
            "low" => Ok(Priority::Low),
            "normal" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            "critical" => Ok(Priority::Critical),
            other => Err(DomainError::invalid(
                "priority",
                other,
                "expected low, normal, high or critical",
            )),
        }
    }
}

/// "Tell these users this, with these params": the body of `POST
/// /v1/notifications` and, with an `event_id`, of a `herald.events` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationEvent {
    /// The producer's idempotency key. The API sets it to the notification id.
    pub event_id: String,
    pub template: TemplateName,
    pub recipients: Vec<UserId>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    /// Restricts delivery to these of the template's channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<Channel>>,
    /// Overrides the template's category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    #[serde(default)]
    pub priority: Priority,
    /// Overrides each recipient's own locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
}

impl NotificationEvent {
    pub fn notification_id(&self) -> NotificationId {
        NotificationId::from_event_id(&self.event_id)
    }

    /// Checks what serde cannot: sizes, and that there is someone to tell.
    /// Duplicate recipients are dropped, keeping the first occurrence.
    pub fn validate(mut self) -> Result<Self, DomainError> {
        if self.event_id.is_empty() || self.event_id.len() > 200 {
            return Err(DomainError::invalid(
                "event_id",
                &self.event_id,
                "must be 1 to 200 characters",
            ));
        }
        if self.recipients.is_empty() {
            return Err(DomainError::invalid(
                "recipients",
                "[]",
                "must name at least one user",
            ));
        }
        if self.recipients.len() > MAX_RECIPIENTS {
            return Err(DomainError::invalid(
                "recipients",
                "[…]",
                "may name at most 1000 users",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        self.recipients.retain(|u| seen.insert(u.clone()));
        if let Some(channels) = &mut self.channels {
            if channels.is_empty() {
                return Err(DomainError::invalid(
                    "channels",
                    "[]",
                    "must name at least one channel when given",
                ));
            }
            let mut seen = std::collections::HashSet::new();
            channels.retain(|c| seen.insert(*c));
        }
        Ok(self)
    }
}

/// One delivery for one worker: the record on `herald.deliveries.<channel>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryJob {
    pub schema_version: u32,
    pub delivery_id: DeliveryId,
    pub notification_id: NotificationId,
    pub user_id: UserId,
    pub channel: Channel,
    pub template: TemplateName,
    pub params: Map<String, Value>,
    pub category: Category,
    pub priority: Priority,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
}

impl DeliveryJob {
    pub fn new(
        event: &NotificationEvent,
        user: &UserId,
        channel: Channel,
        category: Category,
    ) -> Self {
        let notification_id = event.notification_id();
        DeliveryJob {
            schema_version: SCHEMA_VERSION,
            delivery_id: DeliveryId::derive(notification_id, user, channel),
            notification_id,
            user_id: user.clone(),
            channel,
            template: event.template.clone(),
            params: event.params.clone(),
            category,
            priority: event.priority,
            locale: event.locale.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Result<NotificationEvent, String> {
        serde_json::from_str::<NotificationEvent>(json)
            .map_err(|e| e.to_string())
            .and_then(|e| e.validate().map_err(|e| e.to_string()))
    }

    #[test]
    fn a_minimal_event_parses_with_defaults() {
        let e = event(r#"{"event_id":"e1","template":"welcome","recipients":["42"]}"#).unwrap();
        assert_eq!(e.priority, Priority::Normal);
        assert!(e.params.is_empty());
        assert_eq!(e.channels, None);
    }

    #[test]
    fn bad_events_are_refused_with_a_reason() {
        let cases = [
            (
                r#"{"event_id":"e1","template":"welcome","recipients":[]}"#,
                "at least one user",
            ),
            (
                r#"{"event_id":"","template":"welcome","recipients":["1"]}"#,
                "event_id",
            ),
            (
                r#"{"event_id":"e","template":"Welcome","recipients":["1"]}"#,
                "template name",
            ),
            (
                r#"{"event_id":"e","template":"welcome","recipients":["a b"]}"#,
                "user id",
            ),
            (
                r#"{"event_id":"e","template":"welcome","recipients":["1"],"channels":["fax"]}"#,
                "unknown variant",
            ),
            (
                r#"{"event_id":"e","template":"welcome","recipients":["1"],"channels":[]}"#,
                "at least one channel",
            ),
            (
                r#"{"event_id":"e","template":"welcome","recipients":["1"],"params":[1]}"#,
                "invalid type",
            ),
            (
                r#"{"event_id":"e","template":"welcome","recipients":["1"],"priority":"urgent"}"#,
                "unknown variant",
            ),
            (
                r#"{"event_id":"e","template":"welcome","recipients":["1"],"colour":"red"}"#,
                "unknown field",
            ),
        ];
        for (json, needle) in cases {
            let err = event(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn duplicate_recipients_and_channels_are_dropped() {
        let e = event(
            r#"{"event_id":"e","template":"welcome","recipients":["1","2","1"],"channels":["sms","sms"]}"#,
        )
        .unwrap();
        assert_eq!(e.recipients.len(), 2);
        assert_eq!(e.channels, Some(vec![Channel::Sms]));
    }

    #[test]
    fn too_many_recipients_are_refused() {
        let recipients: Vec<String> = (0..=MAX_RECIPIENTS).map(|i| format!("\"u{i}\"")).collect();
        let json = format!(
            r#"{{"event_id":"e","template":"t","recipients":[{}]}}"#,
            recipients.join(",")
        );
        assert!(event(&json).unwrap_err().contains("at most 1000"));
    }

    #[test]
    fn delivery_jobs_carry_the_deterministic_delivery_id() {
        let e = event(r#"{"event_id":"e1","template":"welcome","recipients":["42"]}"#).unwrap();
        let user = UserId::parse("42").unwrap();
        let job = DeliveryJob::new(
            &e,
            &user,
            Channel::Email,
            Category::parse("account").unwrap(),
        );
        assert_eq!(
            job.delivery_id,
            DeliveryId::derive(e.notification_id(), &user, Channel::Email)
        );
        let back: DeliveryJob = serde_json::from_slice(&serde_json::to_vec(&job).unwrap()).unwrap();
        assert_eq!(back, job);
    }
}
