//! Identifiers. String ids are validated newtypes; the ids Herald mints are UUIDs.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Channel, DomainError};

/// Declares a string newtype whose only constructor checks the value.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr, $allowed:expr, $reason:literal, $pattern:literal, $example:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(try_from = "String", into = "String")]
        #[schema(value_type = String, pattern = $pattern, example = $example)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, DomainError> {
                let value = value.into();
                let allowed: fn(char) -> bool = $allowed;
                if value.is_empty() {
                    return Err(DomainError::invalid($kind, &value, "must not be empty"));
                }
                if value.chars().count() > $max {
                    return Err(DomainError::invalid($kind, &value, concat!("must be at most ", stringify!($max), " characters")));
                }
                if !value.chars().all(allowed) {
                    return Err(DomainError::invalid($kind, &value, $reason));
                }
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// The product's own id for a person (Herald never invents user ids).
    UserId,
    "user id",
    128,
    |c| c.is_ascii_alphanumeric() || "-_.:@+".contains(c),
    "may contain only ASCII letters, digits and - _ . : @ +",
    r"^[A-Za-z0-9_.:@+\-]{1,128}$",
    "42"
);

checked_string!(
    /// The name of a folder under the templates directory.
    TemplateName,
    "template name",
    64,
    |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-',
    "may contain only lower-case letters, digits, _ and -",
    r"^[a-z0-9_\-]{1,64}$",
    "welcome"
);

checked_string!(
    /// What a notification is about, for preferences: `account`, `marketing`, `social`…
    Category,
    "category",
    64,
    |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-',
    "may contain only lower-case letters, digits, _ and -",
    r"^[a-z0-9_\-]{1,64}$",
    "marketing"
);

checked_string!(
    /// A list of subscribers a notification can be sent to: `release-notes`.
    TopicName,
    "topic name",
    128,
    |c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.:".contains(c),
    "may contain only lower-case letters, digits and _ - . :",
    r"^[a-z0-9_.:\-]{1,128}$",
    "release-notes"
);

checked_string!(
    /// What makes notifications one digest: the same key, user and channel
    /// inside the template's digest window (`post-981-comments`).
    GroupKey,
    "group key",
    200,
    |c| c.is_ascii_graphic(),
    "may contain only visible ASCII characters",
    r"^[!-~]{1,200}$",
    "post-981-comments"
);

/// Namespace for notification ids derived from a producer's `event_id`.
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_0d5e_3a2c_4e7b_9f10_2c4d_8e6a_0b01);
/// Namespace for delivery ids derived from (notification, user, channel).
const DELIVERY_NAMESPACE: Uuid = Uuid::from_u128(0x9d3a_51c2_7e84_4f06_b1a9_5e0c_2d7f_4c02);

/// Declares an id Herald mints: a UUID newtype that parses from and shows as
/// the UUID's text.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid, example = "0190b7a2-6c3e-7d7a-8f00-000000000001")]
        pub struct $name(Uuid);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, DomainError> {
                Uuid::parse_str(value)
                    .map($name)
                    .map_err(|_| DomainError::invalid($kind, value, "must be a UUID"))
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// One notification: one request or event, possibly for many users.
    NotificationId,
    "notification id"
);

impl NotificationId {
    /// A fresh, time-ordered id for a request that arrived over the API.
    pub fn new() -> Self {
        NotificationId(Uuid::now_v7())
    }

    /// The id of the notification a producer's event stands for. A UUID
    /// `event_id` is used as it is; anything else is hashed, so the same
    /// event published twice names the same notification.
    pub fn from_event_id(event_id: &str) -> Self {
        match Uuid::parse_str(event_id) {
            Ok(uuid) => NotificationId(uuid),
            Err(_) => NotificationId(Uuid::new_v5(&EVENT_NAMESPACE, event_id.as_bytes())),
        }
    }
}

impl Default for NotificationId {
    fn default() -> Self {
        Self::new()
    }
}

uuid_id!(
    /// One attempt to reach one user on one channel for one notification.
    ///
    /// Deterministic, so every stage that sees the same (notification, user,
    /// channel) agrees on the id, and a redelivered job can be recognised.
    DeliveryId,
    "delivery id"
);

impl DeliveryId {
    pub fn derive(notification: NotificationId, user: &UserId, channel: Channel) -> Self {
        let name = format!("{}/{}/{}", notification, user.as_str(), channel.as_str());
        DeliveryId(Uuid::new_v5(&DELIVERY_NAMESPACE, name.as_bytes()))
    }

    /// A digest's own delivery: one per (user, channel, digest key, window
    /// opening), never equal to a single notification's delivery id.
    pub fn for_digest(user: &UserId, channel: Channel, key: &str, opened_at_ms: i64) -> Self {
        let name = format!(
            "digest/{}/{}/{}/{opened_at_ms}",
            user.as_str(),
            channel.as_str(),
            key
        );
        DeliveryId(Uuid::new_v5(&DELIVERY_NAMESPACE, name.as_bytes()))
    }
}

impl NotificationId {
    /// The notification a digest delivery belongs to: the digest itself.
    pub fn for_digest(digest: DeliveryId) -> Self {
        NotificationId(digest.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_accept_common_shapes_and_refuse_the_rest() {
        for ok in ["42", "user_42", "a.b-c:d@e+f", &"x".repeat(128)] {
            assert!(UserId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "has space",
            "slash/y",
            "ünï",
            &"x".repeat(129),
            "new\nline",
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn invalid_user_ids_fail_json_deserialisation() {
        let err = serde_json::from_str::<UserId>("\"a b\"").unwrap_err();
        assert!(err.to_string().contains("invalid user id"), "{err}");
    }

    #[test]
    fn template_names_and_categories_are_lower_case_slugs() {
        assert!(TemplateName::parse("order_shipped").is_ok());
        assert!(TemplateName::parse("Order").is_err());
        assert!(TemplateName::parse("../etc").is_err());
        assert!(Category::parse("marketing").is_ok());
        assert!(Category::parse("").is_err());
        assert!(TopicName::parse("release-notes").is_ok());
        assert!(TopicName::parse("post.981:followers").is_ok());
        assert!(TopicName::parse("Release Notes").is_err());
        assert!(GroupKey::parse("post-981/comments").is_ok());
        assert!(GroupKey::parse("has space").is_err());
        assert!(GroupKey::parse("x".repeat(201)).is_err());
    }

    #[test]
    fn delivery_ids_are_deterministic_per_notification_user_and_channel() {
        let n = NotificationId::new();
        let u = UserId::parse("42").unwrap();
        let a = DeliveryId::derive(n, &u, Channel::Email);
        assert_eq!(a, DeliveryId::derive(n, &u, Channel::Email));
        assert_ne!(a, DeliveryId::derive(n, &u, Channel::Sms));
        assert_ne!(
            a,
            DeliveryId::derive(n, &UserId::parse("43").unwrap(), Channel::Email)
        );
        assert_ne!(
            a,
            DeliveryId::derive(NotificationId::new(), &u, Channel::Email)
        );
    }

    #[test]
    fn event_ids_map_to_stable_notification_ids() {
        let uuid = "0190b7a2-6c3e-7d7a-8f00-000000000001";
        assert_eq!(NotificationId::from_event_id(uuid).to_string(), uuid);
        assert_eq!(
            NotificationId::from_event_id("order-981-shipped"),
            NotificationId::from_event_id("order-981-shipped")
        );
        assert_ne!(
            NotificationId::from_event_id("order-981-shipped"),
            NotificationId::from_event_id("order-982-shipped")
        );
    }
}
