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
        let event = self.checked(payload)?;
        let now = self.clock.now();
        let store = &self.judge.store;
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

    /// The event in `payload`, if it can ever be routed. Checked before it
    /// is recorded: an event for a template this deployment does not have
    /// is refused, not stored.
    fn checked(&self, payload: &[u8]) -> Result<NotificationEvent, RouteError> {
        let event: NotificationEvent = serde_json::from_slice(payload)
            .map_err(|e| RouteError::Poison(format!("not a notification event: {e}")))?;
        let event = event
            .validate()
            .map_err(|e| RouteError::Poison(e.to_string()))?;
        if self.judge.templates.get(&event.request.template).is_none() {
            return Err(RouteError::Poison(format!(
                "unknown template {}",
                event.request.template
            )));
        }
        Ok(event)
    }

    /// Routes several events of at most a page of named users each, and no
    /// topics, together: their notifications recorded and every delivery
    /// decided in one transaction, the users' profiles and the categories'
    /// policies read once, and every job and receipt published at once.
    /// Each event is decided exactly as [`Router::route_event`] would
    /// decide it alone. An error that is not one event's own fails them all.
    async fn route_together(
        &self,
        events: Vec<NotificationEvent>,
    ) -> Result<Vec<Result<Routed, RouteError>>, RouteError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let judge = &self.judge;
        let notices = Notice::for_events(&judge.store, &judge.templates, events, now).await?;
        let mut users: Vec<UserId> = notices
            .iter()
            .flatten()
            .flat_map(|n| n.event.request.users().cloned())
            .collect();
        users.sort_unstable();
        users.dedup();
        let profiles = judge.profiles(&users).await?;
        let candidates: Vec<Vec<Candidate>> = notices
            .iter()
            .flatten()
            .map(|notice| candidates(notice, notice.event.request.users()))
            .collect();
        let work: Vec<(&Notice, &[Candidate])> = notices
            .iter()
            .flatten()
            .zip(&candidates)
            .map(|(notice, candidates)| (notice, candidates.as_slice()))
            .collect();
        let (messages, routed) = judge
            .decide_many(&work, &profiles, now, Some(Source::Bus))
            .await?;
        // Deliveries first: a worker that gets a job must find its delivery.
        judge.publish(&messages).await?;
        let mut routed = routed.into_iter();
        Ok(notices
            .into_iter()
            .map(|notice| notice.map(|_| routed.next().unwrap_or_default()))
            .collect())
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

/// Every (user, channel) of a notice to decide.
fn candidates<'u>(notice: &Notice, users: impl Iterator<Item = &'u UserId>) -> Vec<Candidate<'u>> {
    users
        .flat_map(|user| {
            notice.channels.iter().map(move |&channel| Candidate {
                id: herald_domain::DeliveryId::derive(notice.id, user, channel),
                user,
                channel,
                may_group: true,
                preface: Vec::new(),
            })
        })
        .collect()
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
        let candidates = candidates(notice, page.iter());
        let (messages, routed) = judge
            .decide_new(notice, &candidates, &profiles, now)
            .await?;
        // Deliveries first: a worker that gets a job must find its delivery.
        judge.publish(&messages).await?;
        total.add(&routed);
    }
    Ok(total)
}

/// Events handed to the router at once at most.
const BATCH: usize = 64;

fn outcome(result: Result<Routed, RouteError>) -> Result<(), HandleError> {
    match result {
        Ok(routed) => {
            tracing::debug!(?routed, "event routed");
            Ok(())
        }
        Err(RouteError::Poison(reason)) => Err(HandleError::Poison(reason)),
        Err(e) => Err(HandleError::Retry(e.to_string())),
    }
}

#[async_trait]
impl Handler for Router {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        outcome(self.route_event(&record.payload).await)
    }

    /// Events of a page of named users or fewer go together
    /// ([`Router::route_together`]); larger ones and those naming topics
    /// are routed alone. When the shared work fails, every event of it is
    /// retried, one by one, so one event's trouble is found alone.
    async fn handle_batch(&self, records: &[Record]) -> Vec<Result<(), HandleError>> {
        let mut results: Vec<Option<Result<(), HandleError>>> =
            records.iter().map(|_| None).collect();
        let mut together = Vec::new();
        let mut alone = Vec::new();
        for (i, record) in records.iter().enumerate() {
            match self.checked(&record.payload) {
                Ok(event) => {
                    let request = &event.request;
                    if request.topics().next().is_none() && request.users().count() <= PAGE {
                        together.push((i, event));
                    } else {
                        alone.push(i);
                    }
                }
                Err(e) => results[i] = Some(outcome(Err(e))),
            }
        }
        let (indices, events): (Vec<usize>, Vec<NotificationEvent>) = together.into_iter().unzip();
        match self.route_together(events).await {
            Ok(routed) => {
                for (i, result) in indices.into_iter().zip(routed) {
                    results[i] = Some(outcome(result));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, events = indices.len(), "routing a batch failed; retrying its events one by one");
                for i in indices {
                    results[i] = Some(Err(HandleError::Retry(e.to_string())));
                }
            }
        }
        let routed_alone =
            futures::future::join_all(alone.iter().map(|&i| self.handle(&records[i]))).await;
        for (i, result) in alone.into_iter().zip(routed_alone) {
            results[i] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(HandleError::Retry("not routed".into()))))
            .collect()
    }

    fn max_batch(&self) -> usize {
        BATCH
    }
}
