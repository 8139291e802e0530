//! The JSON the API speaks. Requests parse into domain types; responses are
//! views of stored records.

use chrono::{DateTime, Utc};
use herald_domain::{
    Category, Channel, DeliveryState, EmailAddress, Locale, NotificationEvent, NotificationId,
    PhoneNumber, Priority, TemplateName, TimeZoneName, UserId,
};
use herald_store::{
    DeliveryRecord, InboxItem, InboxPage, NotificationRecord, UserProfile, UserRecord,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `PUT /v1/users/{id}`: the whole profile; fields left out are cleared.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    pub email: Option<EmailAddress>,
    pub phone: Option<PhoneNumber>,
    pub time_zone: Option<TimeZoneName>,
    pub locale: Option<Locale>,
    /// Up to 200 characters.
    pub name: Option<String>,
}

impl UserBody {
    pub fn into_profile(self) -> Result<UserProfile, String> {
        if let Some(name) = &self.name {
            if name.chars().count() > 200 || name.chars().any(char::is_control) {
                return Err(
                    "name must be at most 200 characters, without control characters".into(),
                );
            }
        }
        Ok(UserProfile {
            email: self.email,
            phone: self.phone,
            time_zone: self.time_zone,
            locale: self.locale,
            name: self.name.filter(|n| !n.trim().is_empty()),
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: UserId,
    pub email: Option<EmailAddress>,
    pub phone: Option<PhoneNumber>,
    pub time_zone: Option<TimeZoneName>,
    pub locale: Option<Locale>,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<UserRecord> for UserView {
    fn from(u: UserRecord) -> Self {
        UserView {
            id: u.id,
            email: u.profile.email,
            phone: u.profile.phone,
            time_zone: u.profile.time_zone,
            locale: u.profile.locale,
            name: u.profile.name,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// `POST /v1/notifications`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationRequest {
    pub template: TemplateName,
    /// User ids, 1 to 1000; duplicates are ignored.
    pub recipients: Vec<UserId>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    /// Only these of the template's channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<Channel>>,
    /// Overrides the template's category for preferences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    #[serde(default)]
    pub priority: Priority,
    /// Overrides each recipient's locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
}

impl NotificationRequest {
    pub fn into_event(self, id: NotificationId) -> NotificationEvent {
        NotificationEvent {
            event_id: id.to_string(),
            template: self.template,
            recipients: self.recipients,
            params: self.params,
            channels: self.channels,
            category: self.category,
            priority: self.priority,
            locale: self.locale,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AcceptedView {
    pub id: NotificationId,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub id: NotificationId,
    pub template: TemplateName,
    pub recipients: Vec<UserId>,
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    pub channels: Option<Vec<Channel>>,
    pub category: Option<Category>,
    pub priority: Priority,
    pub locale: Option<Locale>,
    /// `api` or `bus`.
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub deliveries: Vec<DeliveryView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub user_id: UserId,
    pub channel: Channel,
    pub state: DeliveryState,
    pub attempts: i64,
    pub provider_message_id: Option<String>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(d: DeliveryRecord) -> Self {
        DeliveryView {
            id: d.id.to_string(),
            user_id: d.user_id,
            channel: d.channel,
            state: d.state,
            attempts: d.attempts,
            provider_message_id: d.provider_message_id,
            last_error: d.last_error,
            updated_at: d.updated_at,
        }
    }
}

impl From<NotificationRecord> for NotificationView {
    fn from(n: NotificationRecord) -> Self {
        NotificationView {
            id: n.id,
            template: n.event.template,
            recipients: n.event.recipients,
            params: n.event.params,
            channels: n.event.channels,
            category: n.event.category,
            priority: n.event.priority,
            locale: n.event.locale,
            source: n.source,
            created_at: n.created_at,
            deliveries: n.deliveries.into_iter().map(DeliveryView::from).collect(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboxView {
    pub items: Vec<InboxItemView>,
    pub unread_count: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboxItemView {
    pub id: String,
    pub notification_id: NotificationId,
    pub category: String,
    pub title: String,
    pub body: String,
    pub read: bool,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

impl From<InboxItem> for InboxItemView {
    fn from(i: InboxItem) -> Self {
        InboxItemView {
            id: i.id.to_string(),
            notification_id: i.notification_id,
            category: i.category,
            title: i.title,
            body: i.body,
            read: i.read_at.is_some(),
            created_at: i.created_at,
            read_at: i.read_at,
        }
    }
}

impl From<InboxPage> for InboxView {
    fn from(p: InboxPage) -> Self {
        InboxView {
            items: p.items.into_iter().map(InboxItemView::from).collect(),
            unread_count: p.unread_count,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TemplateView {
    pub name: TemplateName,
    pub description: String,
    pub category: Category,
    pub channels: Vec<Channel>,
    pub locales: Vec<String>,
    pub params: Vec<String>,
}
