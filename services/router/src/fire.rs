//! What each timer does when it fires: decide a deferred delivery again,
//! hand a retried one back to its queue, send a closed digest, escalate an
//! unread message.
//!
//! Every handler can run twice for one timer (a runner that died after the
//! effect but before deleting the timer): each first looks at what is
//! recorded and only republishes what is already decided.

use chrono::{DateTime, Utc};
use herald_domain::{
    digest_items, escalation_due, DeliveryId, DeliveryState, EscalationDue, NotificationEvent,
    NotificationRequest, Outcome, Recipient, Rule, TraceStep,
};
use herald_store::{CapSlot, Decided, NewDelivery, Source};
use serde_json::{Map, Value};

use crate::judge::{lock_capped, Candidate, Judge, Live, Routed};
use crate::notice::{Notice, Origin};
use crate::RouteError;

impl Judge {
    /// A deferral ended: decide the delivery again (the user may have
    /// opted out, a new quiet window may have begun, the cap may be full).
    pub(crate) async fn release(
        &self,
        id: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<Routed, RouteError> {
        let Some(record) = self.store.get_delivery(id).await? else {
            return Ok(Routed::default());
        };
        let Some(notice) =
            Notice::load(&self.store, &self.templates, record.notification_id).await?
        else {
            return Ok(Routed::default());
        };
        let waited_until = match (record.state, record.not_before) {
            (DeliveryState::Deferred, Some(until)) if record.digest_id.is_none() => until,
            (DeliveryState::Queued, _) => {
                // Released before, and the runner died before publishing.
                let job = self.job(&notice, id, &record.user_id, record.channel)?;
                self.publish(&[job]).await?;
                return Ok(Routed::default());
            }
            _ => return Ok(Routed::default()),
        };
        let profiles = self.profiles(std::slice::from_ref(&record.user_id)).await?;
        let candidate = Candidate {
            id,
            user: &record.user_id,
            channel: record.channel,
            // An escalation is not grouped again once its deferral ends.
            may_group: !record.trace.iter().any(|t| t.rule == Rule::Escalation),
            preface: Vec::new(),
        };
        let mut tx = self.store.begin_decisions().await?;
        let live = Live::read(&mut tx, &notice).await?;
        if !live.cancelled {
            lock_capped(
                &mut tx,
                std::iter::once((&notice, &record.user_id, record.channel)),
            )
            .await?;
        }
        let judged = self
            .judge(
                &mut tx,
                &notice,
                &candidate,
                profiles.get(&record.user_id),
                &live,
                now,
            )
            .await?;
        if !tx.redecide(&judged.record, waited_until, now).await? {
            // Decided meanwhile (cancelled, or by another runner).
            return Ok(Routed::default());
        }
        tx.commit().await?;
        let mut messages = Vec::new();
        let mut routed = Routed::default();
        self.announce(&notice, &judged, now, &mut messages, &mut routed)?;
        self.publish(&messages).await?;
        Ok(routed)
    }

    /// A retry's backoff ended: the delivery goes back to its queue as it
    /// is; the rules were applied when it was first decided.
    pub(crate) async fn requeue(
        &self,
        id: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<(), RouteError> {
        let Some(record) = self.store.get_delivery(id).await? else {
            return Ok(());
        };
        let waited_until = match (record.state, record.not_before) {
            (DeliveryState::Deferred, Some(until)) if record.digest_id.is_none() => Some(until),
            (DeliveryState::Queued, _) => None,
            _ => return Ok(()),
        };
        let Some(notice) =
            Notice::load(&self.store, &self.templates, record.notification_id).await?
        else {
            return Ok(());
        };
        if let Some(waited_until) = waited_until {
            let mut delivery = NewDelivery::new(
                id,
                record.notification_id,
                record.user_id.clone(),
                record.channel,
                DeliveryState::Queued,
            );
            delivery.trace = vec![TraceStep::new(Rule::Retry, Outcome::Queued, now)];
            let mut tx = self.store.begin_decisions().await?;
            let moved = tx
                .redecide(
                    &Decided {
                        delivery,
                        timers: Vec::new(),
                        // The slot its first attempt took stays taken.
                        cap_slot: CapSlot::Keep,
                    },
                    waited_until,
                    now,
                )
                .await?;
            if !moved {
                return Ok(());
            }
            tx.commit().await?;
        }
        let job = self.job(&notice, id, &record.user_id, record.channel)?;
        self.publish(&[job]).await
    }

    /// A digest's window closed: assemble its notification from what it
    /// collected and decide its one delivery like any other.
    pub(crate) async fn close_digest(
        &self,
        digest: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<Routed, RouteError> {
        let Some(closed) = self.store.close_digest(digest, now).await? else {
            return Ok(Routed::default());
        };
        let Some(first) = closed.members.first() else {
            // Every member was cancelled: nothing to send.
            return Ok(Routed::default());
        };
        let first = &first.event.request;
        let json_bytes = |p: &Map<String, Value>| serde_json::to_string(p).map_or(0, |s| s.len());
        let items: Vec<Value> =
            digest_items(&closed.members, |m| json_bytes(&m.event.request.params))
                .into_iter()
                .map(|m| Value::Object(m.event.request.params.clone()))
                .collect();
        let priority = closed
            .members
            .iter()
            .map(|m| m.event.request.priority)
            .max()
            .unwrap_or_default();
        let template = closed
            .template
            .clone()
            .unwrap_or_else(|| first.template.clone());
        let mut params = Map::new();
        params.insert("items".into(), Value::Array(items));
        params.insert("count".into(), Value::from(closed.members.len()));
        let event = NotificationEvent {
            // The digest's id, so its notification id is the digest's own.
            event_id: herald_domain::NotificationId::for_digest(closed.id).to_string(),
            request: NotificationRequest {
                template,
                recipients: vec![Recipient::User(closed.user_id.clone())],
                params,
                channels: Some(vec![closed.channel]),
                category: first.category.clone(),
                priority,
                locale: first.locale.clone(),
                send_at: None,
                group_key: first.group_key.clone(),
            },
        };
        self.store
            .ensure_notification(&event, Source::Digest, now)
            .await?;
        let stored = self
            .store
            .get_notification_only(event.notification_id())
            .await?
            .ok_or_else(|| RouteError::Poison("the digest's notification vanished".into()))?;
        let notice = Notice::for_event(
            &self.store,
            &self.templates,
            event,
            stored.created_at,
            stored.cancelled_at.is_some(),
            Origin::Digest,
        )
        .await?;
        let profiles = self.profiles(std::slice::from_ref(&closed.user_id)).await?;
        let candidate = Candidate {
            id: closed.carrier,
            user: &closed.user_id,
            channel: closed.channel,
            may_group: false,
            preface: vec![TraceStep::new(Rule::Digest, Outcome::Pass, now)
                .because(format!("carries {} notifications", closed.members.len()))],
        };
        let (messages, routed) = self
            .decide_new(&notice, &[candidate], &profiles, now)
            .await?;
        self.publish(&messages).await?;
        Ok(routed)
    }

    /// The first channel's window passed: if it was not read, send the
    /// second. If it has not gone out yet, look again a window after it does.
    pub(crate) async fn escalate(
        &self,
        from: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<Escalated, RouteError> {
        let Some(record) = self.store.get_delivery(from).await? else {
            return Ok(Escalated::Done);
        };
        let Some(notice) =
            Notice::load(&self.store, &self.templates, record.notification_id).await?
        else {
            return Ok(Escalated::Done);
        };
        let (to, why) = match escalation_due(
            notice.escalate.as_ref(),
            notice.cancelled,
            record.state,
            record.not_before,
            now,
        ) {
            EscalationDue::Done => return Ok(Escalated::Done),
            EscalationDue::Later(at) => return Ok(Escalated::Later(at)),
            EscalationDue::Now { to, why } => (to, why),
        };
        let candidate = Candidate {
            id: DeliveryId::derive(notice.id, &record.user_id, to),
            user: &record.user_id,
            channel: to,
            may_group: false,
            preface: vec![
                TraceStep::new(Rule::Escalation, Outcome::Escalated, now).because(why.clone())
            ],
        };
        let profiles = self.profiles(std::slice::from_ref(&record.user_id)).await?;
        let (messages, _) = self
            .decide_new(&notice, &[candidate], &profiles, now)
            .await?;
        self.store
            .append_trace(
                from,
                &[TraceStep::new(Rule::Escalation, Outcome::Escalated, now)
                    .because(format!("{why}; sent by {to}"))],
            )
            .await?;
        self.publish(&messages).await?;
        Ok(Escalated::Done)
    }
}

/// What an escalation check came to.
pub(crate) enum Escalated {
    Done,
    /// The first channel has not gone out yet: look again then.
    Later(DateTime<Utc>),
}
