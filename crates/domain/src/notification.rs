//! What comes in (a notification event) and what the router sends on (a delivery job).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Category, Channel, DeliveryId, DomainError, GroupKey, Locale, NotificationId, TemplateName,
    TopicName, UserId,
};

/// Version of the JSON documents Herald writes to its topics.
pub const SCHEMA_VERSION: u32 = 1;

/// The most recipients one event may name; larger audiences use topics.
pub const MAX_RECIPIENTS: usize = 1000;

/// Ordered from least to most urgent.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
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

/// Who a notification is for: a user id (`"42"`), or every subscriber of a
/// topic (`{"topic": "release-notes"}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Recipient {
    User(UserId),
    Topic(TopicName),
}

impl Serialize for Recipient {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Recipient::User(user) => serializer.serialize_str(user.as_str()),
            Recipient::Topic(topic) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("topic", topic.as_str())?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Recipient {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Recipient;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"a user id or {"topic": "name"}"#)
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Recipient, E> {
                UserId::parse(v).map(Recipient::User).map_err(E::custom)
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Recipient, A::Error> {
                use serde::de::Error;
                let mut topic = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "topic" {
                        return Err(A::Error::unknown_field(&key, &["topic"]));
                    }
                    if topic.is_some() {
                        return Err(A::Error::duplicate_field("topic"));
                    }
                    topic = Some(map.next_value::<TopicName>()?);
                }
                topic
                    .map(Recipient::Topic)
                    .ok_or_else(|| A::Error::missing_field("topic"))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl utoipa::PartialSchema for Recipient {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder};
        let topic = ObjectBuilder::new()
            .property("topic", TopicName::schema())
            .required("topic")
            .additional_properties(Some(
                utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
            ));
        OneOfBuilder::new()
            .item(UserId::schema())
            .item(topic)
            .description(Some(
                r#"A user id, or {"topic": "name"} for every subscriber of a topic"#,
            ))
            .into()
    }
}

impl utoipa::ToSchema for Recipient {}

/// "Tell these users this, with these params": the body of `POST
/// /v1/notifications`, and of a `herald.events` record together with its
/// `event_id` ([`NotificationEvent`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "template": "welcome",
    "recipients": ["42"],
    "channels": ["email", "in_app"],
    "params": {"name": "Ada", "app_name": "Acme"}
}))]
pub struct NotificationRequest {
    pub template: TemplateName,
    /// User ids and topics, 1 to 1000 entries; duplicates are ignored.
    #[schema(min_items = 1, max_items = 1000)]
    pub recipients: Vec<Recipient>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    /// Restricts delivery to these of the template's channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1)]
    pub channels: Option<Vec<Channel>>,
    /// Overrides the template's category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    #[serde(default)]
    pub priority: Priority,
    /// Overrides each recipient's own locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
    /// Deliver no earlier than this (RFC 3339); absent or past means now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at: Option<DateTime<Utc>>,
    /// Notifications with the same key for the same user and channel inside
    /// the template's digest window become one digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_key: Option<GroupKey>,
}

impl NotificationRequest {
    /// Checks what serde cannot: sizes, and that there is someone to tell.
    /// Duplicate recipients and channels are dropped, keeping the first.
    pub fn validate(mut self) -> Result<Self, DomainError> {
        if self.recipients.is_empty() {
            return Err(DomainError::invalid(
                "recipients",
                "[]",
                "must name at least one user or topic",
            ));
        }
        if self.recipients.len() > MAX_RECIPIENTS {
            return Err(DomainError::invalid(
                "recipients",
                "[…]",
                "may name at most 1000 users and topics",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        self.recipients.retain(|r| seen.insert(r.clone()));
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

    /// The user ids named directly.
    pub fn users(&self) -> impl Iterator<Item = &UserId> {
        self.recipients.iter().filter_map(|r| match r {
            Recipient::User(user) => Some(user),
            Recipient::Topic(_) => None,
        })
    }

    /// The topics named.
    pub fn topics(&self) -> impl Iterator<Item = &TopicName> {
        self.recipients.iter().filter_map(|r| match r {
            Recipient::Topic(topic) => Some(topic),
            Recipient::User(_) => None,
        })
    }
}

/// A notification as it travels on `herald.events`: the request's fields
/// plus the producer's idempotency key, `event_id`, in one flat JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationEvent {
    /// The producer's idempotency key. The API sets it to the notification id.
    pub event_id: String,
    pub request: NotificationRequest,
}

impl NotificationEvent {
    pub fn notification_id(&self) -> NotificationId {
        NotificationId::from_event_id(&self.event_id)
    }

    /// Checks the `event_id` and the request.
    pub fn validate(mut self) -> Result<Self, DomainError> {
        if self.event_id.is_empty() || self.event_id.len() > 200 {
            return Err(DomainError::invalid(
                "event_id",
                &self.event_id,
                "must be 1 to 200 characters",
            ));
        }
        self.request = self.request.validate()?;
        Ok(self)
    }
}

// Flat on the wire, one definition of the fields in code: serde's `flatten`
// cannot be combined with `deny_unknown_fields`, so the object is split by
// hand and the rest is read by the request's own strict deserializer.
impl Serialize for NotificationEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut fields = match serde_json::to_value(&self.request).map_err(S::Error::custom)? {
            Value::Object(fields) => fields,
            _ => return Err(S::Error::custom("a request serialises as an object")),
        };
        fields.insert("event_id".into(), Value::String(self.event_id.clone()));
        fields.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for NotificationEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut fields = Map::<String, Value>::deserialize(deserializer)?;
        let event_id = match fields.remove("event_id") {
            Some(Value::String(id)) => id,
            Some(_) => return Err(D::Error::custom("event_id must be a string")),
            None => return Err(D::Error::missing_field("event_id")),
        };
        let request =
            NotificationRequest::deserialize(Value::Object(fields)).map_err(D::Error::custom)?;
        Ok(NotificationEvent { event_id, request })
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
    /// A digest: render the template's digest variant with `params.items`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub digest: bool,
}

impl DeliveryJob {
    pub fn new(
        event: &NotificationEvent,
        user: &UserId,
        channel: Channel,
        category: Category,
    ) -> Self {
        let notification_id = event.notification_id();
        let request = &event.request;
        DeliveryJob {
            schema_version: SCHEMA_VERSION,
            delivery_id: DeliveryId::derive(notification_id, user, channel),
            notification_id,
            user_id: user.clone(),
            channel,
            template: request.template.clone(),
            params: request.params.clone(),
            category,
            priority: request.priority,
            locale: request.locale.clone(),
            digest: false,
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
        assert_eq!(e.request.priority, Priority::Normal);
        assert!(e.request.params.is_empty());
        assert_eq!(e.request.channels, None);
        assert_eq!(e.request.send_at, None);
        assert_eq!(e.request.group_key, None);
    }

    #[test]
    fn an_event_is_one_flat_object_that_round_trips() {
        let json = r#"{"event_id":"e1","template":"new_comment","recipients":["42",{"topic":"post-981"}],
            "params":{"a":1},"send_at":"2026-12-01T07:00:00+09:00","group_key":"post-981"}"#;
        let e = event(json).unwrap();
        assert_eq!(
            e.request.send_at.unwrap().to_rfc3339(),
            "2026-11-30T22:00:00+00:00"
        );
        assert_eq!(e.request.users().count(), 1);
        assert_eq!(
            e.request.topics().map(|t| t.as_str()).collect::<Vec<_>>(),
            vec!["post-981"]
        );
        let value = serde_json::to_value(&e).unwrap();
        assert_eq!(value["event_id"], "e1");
        assert_eq!(value["recipients"][1]["topic"], "post-981");
        let back: NotificationEvent = serde_json::from_value(value).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn bad_events_are_refused_with_a_reason() {
        let cases = [
            (
                r#"{"event_id":"e1","template":"welcome","recipients":[]}"#,
                "at least one user or topic",
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
            (r#"{"template":"welcome","recipients":["1"]}"#, "event_id"),
            (
                r#"{"event_id":7,"template":"welcome","recipients":["1"]}"#,
                "event_id must be a string",
            ),
            (
                r#"{"event_id":"e","template":"welcome","recipients":[{"topic":"A B"}]}"#,
                "topic name",
            ),
            (
                r#"{"event_id":"e","template":"welcome","recipients":[{"topic":"a","x":1}]}"#,
                "unknown field",
            ),
            (
                r#"{"event_id":"e","template":"welcome","recipients":[{}]}"#,
                "missing field `topic`",
            ),
            (
                r#"{"event_id":"e","template":"welcome","recipients":[7]}"#,
                "a user id or",
            ),
            (
                r#"{"event_id":"e","template":"welcome","recipients":["1"],"send_at":"tomorrow"}"#,
                "input contains invalid characters",
            ),
            (
                r#"{"event_id":"e","template":"welcome","recipients":["1"],"group_key":"a b"}"#,
                "group key",
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
        assert_eq!(e.request.recipients.len(), 2);
        assert_eq!(e.request.channels, Some(vec![Channel::Sms]));
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
