//! The router proper: a notification event in, one decided delivery per
//! (user, channel) out, and a fan-out timer per topic it names.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_bus::{Bus, HandleError, Handler, Record};
use herald_domain::{Clock, NotificationEvent, UserId};
use herald_store::{NewTimer, Source, Store, TimerKind};
use herald_templates::TemplateStore;
use tokio::sync::Notify;

use crate::expand::ExpandCursor;
use crate::judge::{Candidate, Judge, Routed};
use crate::notice::{Notice, Origin};
use crate::RouteError;

/// How many recipients are decided in one transaction.
pub(crate) const PAGE: usize = 500;

pub struct Router {
    judge: Judge,
    clock: Arc<dyn Clock>,
    /// Pokes the scheduler when this router sets a timer due now.
    wake: Arc<Notify>,
}

impl Router {
    pub fn new(
        store: Store,
        bus: Arc<dyn Bus>,
        templates: TemplateStore,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
    ) -> Self {
        Router {
            judge: Judge {
                store,
                bus,
                templates,
            },
            clock,
            wake,
        }
    }

    /// Routes one event.
    #[tracing::instrument(skip_all)]
    pub async fn route_event(&self, payload: &[u8]) -> Result<Routed, RouteError> {
        let event: NotificationEvent = serde_json::from_slice(payload)
            .map_err(|e| RouteError::Poison(format!("not a notification event: {e}")))?;
        let event = event
            .validate()
            .map_err(|e| RouteError::Poison(e.to_string()))?;
        let now = self.clock.now();
        let store = &self.judge.store;
        // Checked before it is recorded: an event for a template this
        // deployment does not have is refused, not stored.
        if self.judge.templates.get(&event.request.template).is_none() {
            return Err(RouteError::Poison(format!(
                "unknown template {}",
                event.request.template
            )));
        }
        store.ensure_notification(&event, Source::Bus, now).await?;
        // When it was created and whether it was cancelled are read under
        // lock by each decision (the API may have recorded it long ago).
        let notice = Notice::for_event(
            store,
            &self.judge.templates,
            event,
            now,
            false,
            Origin::Single,
        )
        .await?;
        let users: Vec<UserId> = notice.event.request.users().cloned().collect();
        let mut routed = self.route_users(&notice, &users, now).await?;
        let topics: Vec<_> = notice.event.request.topics().cloned().collect();
        if !topics.is_empty() && !notice.cancelled {
            for topic in &topics {
                let cursor = ExpandCursor::start(notice.id, topic.clone());
                let timer = NewTimer::new(TimerKind::Expand, cursor.subject(), now)
                    .with_payload(cursor.payload()?);
                // Once per (notification, topic): an event handled twice
                // must not restart an expansion already under way.
                store.schedule_timer_once(&timer, now).await?;
            }
            routed.topics = topics.len();
            self.wake.notify_one();
        }
        Ok(routed)
    }

    /// Decides and records `users` × the notice's channels, a page at a
    /// time, publishing each page's jobs and receipts once it is durable.
    pub(crate) async fn route_users(
        &self,
        notice: &Notice,
        users: &[UserId],
        now: DateTime<Utc>,
    ) -> Result<Routed, RouteError> {
        route_page_by_page(&self.judge, notice, users, now).await
    }
}

/// Shared with the topic expansion: decides users page by page.
pub(crate) async fn route_page_by_page(
    judge: &Judge,
    notice: &Notice,
    users: &[UserId],
    now: DateTime<Utc>,
) -> Result<Routed, RouteError> {
    let mut total = Routed::default();
    for page in users.chunks(PAGE) {
        let profiles = judge.profiles(page).await?;
        let candidates: Vec<Candidate> = page
            .iter()
            .flat_map(|user| {
                notice.channels.iter().map(move |&channel| Candidate {
                    id: herald_domain::DeliveryId::derive(notice.id, user, channel),
                    user,
                    channel,
                    may_group: true,
                    preface: Vec::new(),
                })
            })
            .collect();
        let (messages, routed) = judge
            .decide_new(notice, &candidates, &profiles, now)
            .await?;
        // Deliveries first: a worker that gets a job must find its delivery.
        judge.publish(&messages).await?;
        total.add(&routed);
    }
    Ok(total)
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
