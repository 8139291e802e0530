//! The JSON the API speaks. Requests parse into domain types; responses are
//! views of stored records.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use herald_domain::{
    Category, Channel, DeliveryId, DeliveryState, EmailAddress, GroupKey, Locale, NotificationId,
    PhoneNumber, Priority, Recipient, TemplateName, TimeZoneName, TraceStep, UserId,
};
use herald_store::{
    DeliveryRecord, InboxItem, InboxPage, NotificationRecord, UserProfile, UserRecord,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `PUT /v1/users/{id}`: the whole profile; fields left out are cleared.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "phone": "+14155550100",
    "time_zone": "Europe/London",
    "locale": "en"
}))]
pub struct UserBody {
    pub email: Option<EmailAddress>,
    pub phone: Option<PhoneNumber>,
    pub time_zone: Option<TimeZoneName>,
    pub locale: Option<Locale>,
    /// Up to 200 characters, without control characters; blank means none.
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
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

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AcceptedView {
    pub id: NotificationId,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub id: NotificationId,
    pub template: TemplateName,
    pub recipients: Vec<Recipient>,
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    pub channels: Option<Vec<Channel>>,
    pub category: Option<Category>,
    pub priority: Priority,
    pub locale: Option<Locale>,
    pub send_at: Option<DateTime<Utc>>,
    pub group_key: Option<GroupKey>,
    /// `api`, `bus`, or `digest` for a digest Herald assembled.
    pub source: String,
    pub created_at: DateTime<Utc>,
    /// Set once `DELETE /v1/notifications/{id}` was called.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// How many deliveries there are in all.
    pub deliveries_total: u64,
    /// How many deliveries are in each state (states with none are left out).
    #[schema(value_type = Object, example = json!({"sent": 998, "deferred": 2}))]
    pub delivery_counts: BTreeMap<String, u64>,
    /// The first 2,000 deliveries in (user, channel) order. A notification
    /// to a large topic has more: page through all of them with
    /// `GET /v1/notifications/{id}/deliveries`.
    pub deliveries: Vec<DeliveryView>,
}

/// `GET /v1/notifications/{id}/deliveries`: a page of deliveries in id order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveriesPage {
    pub items: Vec<DeliveryView>,
    /// Pass as `after` for the next page; absent on the last one.
    pub next: Option<DeliveryId>,
}

/// One delivery: one user on one channel.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: DeliveryId,
    pub notification_id: NotificationId,
    pub user_id: UserId,
    pub channel: Channel,
    pub state: DeliveryState,
    pub attempts: i64,
    pub provider_message_id: Option<String>,
    pub last_error: Option<String>,
    /// When a deferred delivery is due to be decided again (end of quiet
    /// hours, a cap slot, `send_at`, a retry, a digest window).
    pub not_before: Option<DateTime<Utc>>,
    /// For a notification grouped into a digest: the delivery that carries
    /// the digest (`GET /v1/deliveries/{id}`).
    pub digest_id: Option<DeliveryId>,
    /// Every rule that decided this delivery's fate, in order.
    pub trace: Vec<TraceStep>,
    pub updated_at: DateTime<Utc>,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(d: DeliveryRecord) -> Self {
        DeliveryView {
            id: d.id,
            notification_id: d.notification_id,
            user_id: d.user_id,
            channel: d.channel,
            state: d.state,
            attempts: d.attempts,
            provider_message_id: d.provider_message_id,
            last_error: d.last_error,
            not_before: d.not_before,
            digest_id: d.digest_id,
            trace: d.trace,
            updated_at: d.updated_at,
        }
    }
}

impl NotificationView {
    /// The view of `n`, whose `deliveries` are the ones to list, with the
    /// count of all its deliveries in each state as the store gave it.
    pub fn new(n: NotificationRecord, counts: Vec<(DeliveryState, u64)>) -> Self {
        let request = n.event.request;
        NotificationView {
            id: n.id,
            template: request.template,
            recipients: request.recipients,
            params: request.params,
            channels: request.channels,
            category: request.category,
            priority: request.priority,
            locale: request.locale,
            send_at: request.send_at,
            group_key: request.group_key,
            source: n.source,
            created_at: n.created_at,
            cancelled_at: n.cancelled_at,
            deliveries_total: counts.iter().map(|(_, n)| n).sum(),
            delivery_counts: counts
                .into_iter()
                .map(|(state, n)| (state.as_str().to_owned(), n))
                .collect(),
            deliveries: n.deliveries.into_iter().map(DeliveryView::from).collect(),
        }
    }
}

/// `DELETE /v1/notifications/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CancelledView {
    pub id: NotificationId,
    /// The deliveries withdrawn now; those already sent are not recalled.
    pub cancelled: Vec<DeliveryId>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboxView {
    pub items: Vec<InboxItemView>,
    pub unread_count: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboxItemView {
    /// The message's delivery id: `POST /v1/users/{id}/inbox/{message}/read`.
    #[schema(value_type = DeliveryId)]
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
