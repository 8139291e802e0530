//! A notification as the rules see it: the request, what its template
//! offers, its category and that category's policy.

use chrono::{DateTime, Utc};
use herald_domain::{
    hold_back_escalation, select_channels, Category, CategoryPolicy, Channel, Escalation, GroupKey,
    NotificationEvent, NotificationId, Span,
};
use herald_store::{NotificationRecord, Store};
use herald_templates::TemplateStore;

use crate::RouteError;

/// Where a notification came from, for the job it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A request or an event.
    Single,
    /// A digest Herald assembled from several.
    Digest,
}

#[derive(Debug, Clone)]
pub(crate) struct Notice {
    pub id: NotificationId,
    pub event: NotificationEvent,
    /// The channels it goes out on now (an escalation's target is held back).
    pub channels: Vec<Channel>,
    pub category: Category,
    pub policy: CategoryPolicy,
    pub created_at: DateTime<Utc>,
    pub cancelled: bool,
    pub origin: Origin,
    pub digest_window: Option<Span>,
    pub digestible: bool,
    pub escalate: Option<Escalation>,
}

impl Notice {
    /// Builds the notice for an event: checks the template and channels and
    /// looks up the category's policy.
    pub async fn for_event(
        store: &Store,
        templates: &TemplateStore,
        event: NotificationEvent,
        created_at: DateTime<Utc>,
        cancelled: bool,
        origin: Origin,
    ) -> Result<Notice, RouteError> {
        let mut notice = Notice::without_policy(templates, event, created_at, cancelled, origin)?;
        notice.policy = store
            .policies(std::slice::from_ref(&notice.category))
            .await?
            .remove(&notice.category)
            .unwrap_or_default();
        Ok(notice)
    }

    /// The notices for a batch of events, their categories' policies read
    /// at once. An event that cannot be a notice is refused alone.
    pub async fn for_events(
        store: &Store,
        templates: &TemplateStore,
        events: Vec<NotificationEvent>,
        created_at: DateTime<Utc>,
    ) -> Result<Vec<Result<Notice, RouteError>>, RouteError> {
        let mut notices: Vec<Result<Notice, RouteError>> = events
            .into_iter()
            .map(|event| {
                Notice::without_policy(templates, event, created_at, false, Origin::Single)
            })
            .collect();
        let mut categories: Vec<Category> = notices
            .iter()
            .flatten()
            .map(|n| n.category.clone())
            .collect();
        categories.sort_unstable();
        categories.dedup();
        let policies = store.policies(&categories).await?;
        for notice in notices.iter_mut().flatten() {
            notice.policy = policies.get(&notice.category).cloned().unwrap_or_default();
        }
        Ok(notices)
    }

    /// The notice with the default policy: what the template and the request
    /// say, checked.
    fn without_policy(
        templates: &TemplateStore,
        event: NotificationEvent,
        created_at: DateTime<Utc>,
        cancelled: bool,
        origin: Origin,
    ) -> Result<Notice, RouteError> {
        let request = &event.request;
        let template = templates
            .get(&request.template)
            .ok_or_else(|| RouteError::Poison(format!("unknown template {}", request.template)))?;
        let selected = select_channels(
            &request.template,
            &template.channels,
            request.channels.as_deref(),
        )
        .map_err(|e| RouteError::Poison(e.to_string()))?;
        let first = hold_back_escalation(selected, request.channels.is_some(), template.escalate);
        let category = request
            .category
            .clone()
            .unwrap_or_else(|| template.category.clone());
        Ok(Notice {
            id: event.notification_id(),
            channels: first.channels,
            category,
            policy: CategoryPolicy::default(),
            created_at,
            cancelled,
            origin,
            digest_window: template.digest.map(|d| d.window),
            digestible: template.digestible,
            escalate: first.escalation,
            event,
        })
    }

    /// The notice of a stored notification (for a timer).
    pub async fn for_record(
        store: &Store,
        templates: &TemplateStore,
        record: NotificationRecord,
    ) -> Result<Notice, RouteError> {
        let origin = if record.source == "digest" {
            Origin::Digest
        } else {
            Origin::Single
        };
        Notice::for_event(
            store,
            templates,
            record.event,
            record.created_at,
            record.cancelled_at.is_some(),
            origin,
        )
        .await
    }

    pub async fn load(
        store: &Store,
        templates: &TemplateStore,
        id: NotificationId,
    ) -> Result<Option<Notice>, RouteError> {
        match store.get_notification_only(id).await? {
            Some(record) => Ok(Some(Notice::for_record(store, templates, record).await?)),
            None => Ok(None),
        }
    }

    /// The group key with the template's window, when both are set and this
    /// is not a digest already.
    pub fn group(&self) -> Option<(&GroupKey, Span)> {
        match (
            self.origin,
            &self.event.request.group_key,
            self.digest_window,
        ) {
            (Origin::Single, Some(key), Some(window)) => Some((key, window)),
            _ => None,
        }
    }

    pub fn template(&self) -> &herald_domain::TemplateName {
        &self.event.request.template
    }
}
