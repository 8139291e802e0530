//! Loading what the rules need, calling them, and writing what they decide.
//!
//! Both the router (a fresh event) and the timers (a deferral ending, a
//! digest closing, an escalation falling due) come here: [`Judge`] loads the
//! recipients in one batch, opens one transaction, locks the cap counters
//! of the users whose channel is capped, calls [`decide`] per delivery, and
//! records deliveries, timers and cap slots together. Jobs and receipts
//! ([`announce`]) are published after the commit; a crash in between is
//! covered by the event (or the timer) being handled again, which
//! republishes what is queued. Where the bus is in the store's database, a
//! batch's jobs are enqueued in its transaction instead.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use herald_bus::{Bus, Topic};
use herald_domain::{
    decide, Channel, DeliveryId, DeliveryState, DigestPlan, NotificationEvent, NotificationId,
    Outcome, Priority, RecipientProfile, Rule, Situation, TimeZoneName, TraceStep, UserId, Verdict,
};
use herald_store::{
    CapSlot, Decided, DecisionTx, DigestKind, LiveNotification, NewDelivery, NewTimer, Source,
    Store, TimerKind, UserRecord,
};
use herald_templates::TemplateStore;

use crate::notice::{Notice, Origin};
use crate::RouteError;

mod announce;

/// A message to publish once the decisions are durable.
pub(crate) type Message = (Topic, String, Vec<u8>);

/// What deciding came to, for tests, logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routed {
    pub queued: usize,
    pub deferred: usize,
    pub suppressed: usize,
    pub grouped: usize,
    pub cancelled: usize,
    /// Topics whose expansion was started.
    pub topics: usize,
}

impl Routed {
    pub(crate) fn add(&mut self, other: &Routed) {
        self.queued += other.queued;
        self.deferred += other.deferred;
        self.suppressed += other.suppressed;
        self.grouped += other.grouped;
        self.cancelled += other.cancelled;
        self.topics += other.topics;
    }
}

/// Shared by the router and the timers. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Judge {
    pub store: Store,
    pub bus: Arc<dyn Bus>,
    pub templates: TemplateStore,
}

/// The notification as a decision's transaction sees it, under lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Live {
    pub created_at: DateTime<Utc>,
    pub cancelled: bool,
    pub has_deliveries: bool,
}

impl Live {
    /// Reads (and on PostgreSQL share-locks) the notification: a
    /// cancellation commits either before this decision, which then sees
    /// it, or after it, and then finds what this decision recorded.
    pub async fn read(tx: &mut DecisionTx, notice: &Notice) -> Result<Live, RouteError> {
        Ok(Live::of(tx.notification(notice.id).await?.as_ref(), notice))
    }

    /// The notification as read. Without a row, deliveries are assumed to
    /// exist, so what exists is looked up rather than decided again.
    pub fn of(found: Option<&LiveNotification>, notice: &Notice) -> Live {
        match found {
            Some(n) => Live {
                created_at: n.created_at,
                cancelled: notice.cancelled || n.cancelled,
                has_deliveries: n.has_deliveries,
            },
            None => Live {
                created_at: notice.created_at,
                cancelled: notice.cancelled,
                has_deliveries: true,
            },
        }
    }
}

/// A decision ready to record, with the word its receipt gives for a wait.
#[derive(Debug, Clone)]
pub(crate) struct Judged {
    pub record: Decided,
    /// `quiet_hours`, `send_at`, `frequency_cap`, `grouped`… for a delivery
    /// left waiting.
    pub waiting_for: Option<&'static str>,
}

/// One delivery about to be decided.
pub(crate) struct Candidate<'a> {
    pub id: DeliveryId,
    pub user: &'a UserId,
    pub channel: Channel,
    /// `false` for digests and escalations, which are not grouped again.
    pub may_group: bool,
    /// Trace steps to put before the rules' own (an escalation says why it exists).
    pub preface: Vec<TraceStep>,
}

impl Judge {
    /// The recipients' profiles, in one batch.
    pub async fn profiles(
        &self,
        users: &[UserId],
    ) -> Result<HashMap<UserId, RecipientProfile>, RouteError> {
        Ok(self
            .store
            .recipients(users)
            .await?
            .into_iter()
            .map(|(id, (user, devices))| (id, profile(&user, devices)))
            .collect())
    }

    /// Decides new deliveries and records them. Deliveries that exist already
    /// (the event was handled before) are not decided again: their stored
    /// state says what to publish.
    pub async fn decide_new(
        &self,
        notice: &Notice,
        candidates: &[Candidate<'_>],
        profiles: &HashMap<UserId, RecipientProfile>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Message>, Routed), RouteError> {
        let (messages, mut routed) = self
            .decide_many(&[(notice, candidates)], profiles, now, None)
            .await?;
        Ok((messages, routed.pop().unwrap_or_default()))
    }

    /// [`Judge::decide_new`] for several notices in one transaction (a
    /// batch of events), each notice decided exactly as it would be alone.
    /// With `record`, each notice's notification that is not recorded yet
    /// is recorded in the same transaction first (events off the bus).
    /// Returns what to publish (nothing where the jobs went onto a
    /// same-database queue with their deliveries) and, per notice, what it
    /// came to.
    pub async fn decide_many(
        &self,
        work: &[(&Notice, &[Candidate<'_>])],
        profiles: &HashMap<UserId, RecipientProfile>,
        now: DateTime<Utc>,
        record: Option<Source>,
    ) -> Result<(Vec<Message>, Vec<Routed>), RouteError> {
        let mut tx = self.store.begin_decisions().await?;
        let ids: Vec<NotificationId> = work.iter().map(|(n, _)| n.id).collect();
        let mut found = tx.notifications(&ids).await?;
        if let Some(source) = record {
            // Read first, record only what is missing: an event the API took
            // is recorded already (in the transaction that published it), so
            // the usual batch writes nothing here.
            let missing: Vec<&NotificationEvent> = work
                .iter()
                .filter(|(n, _)| !found.contains_key(&n.id))
                .map(|(n, _)| &n.event)
                .collect();
            if !missing.is_empty() {
                tx.ensure_notifications(&missing, source, now).await?;
                let ids: Vec<NotificationId> =
                    missing.iter().map(|e| e.notification_id()).collect();
                found.extend(tx.notifications(&ids).await?);
            }
        }
        let lives: Vec<Live> = work
            .iter()
            .map(|(notice, _)| Live::of(found.get(&notice.id), notice))
            .collect();
        // The first time an event is routed, nothing of it exists yet.
        let routed_before: Vec<DeliveryId> = work
            .iter()
            .zip(&lives)
            .filter(|(_, live)| live.has_deliveries)
            .flat_map(|((_, candidates), _)| candidates.iter().map(|c| c.id))
            .collect();
        let existing = if routed_before.is_empty() {
            HashMap::new()
        } else {
            tx.states(&routed_before).await?
        };
        // The cap counters of every capped recipient, locked at once and in
        // one order by every router, so two cannot deadlock on them.
        let fresh: Vec<(&Notice, &UserId, Channel)> = work
            .iter()
            .zip(&lives)
            .filter(|(_, live)| !live.cancelled)
            .flat_map(|((notice, candidates), _)| {
                candidates
                    .iter()
                    .filter(|c| !existing.contains_key(&c.id))
                    .map(move |c| (*notice, c.user, c.channel))
            })
            .collect();
        lock_capped(&mut tx, fresh.into_iter()).await?;
        let mut decided_per_notice = Vec::with_capacity(work.len());
        let mut inserted = HashSet::new();
        // Decisions are written together, except that a notice under a cap
        // must see the slots every notice before it in this batch took.
        let mut unwritten: Vec<Decided> = Vec::new();
        for ((notice, candidates), live) in work.iter().zip(&lives) {
            let reads_caps = notice.channels.iter().any(|&c| is_capped(notice, c));
            if reads_caps && !unwritten.is_empty() {
                inserted.extend(tx.insert(&unwritten, now).await?);
                unwritten.clear();
            }
            // Open digests are joined in one order too.
            let mut fresh: Vec<&Candidate> = candidates
                .iter()
                .filter(|c| !existing.contains_key(&c.id))
                .collect();
            fresh.sort_by(|a, b| (a.user, a.channel).cmp(&(b.user, b.channel)));
            let mut decided = Vec::with_capacity(fresh.len());
            for candidate in &fresh {
                let profile = profiles.get(candidate.user);
                decided.push(
                    self.judge(&mut tx, notice, candidate, profile, live, now)
                        .await?,
                );
            }
            unwritten.extend(decided.iter().map(|j| j.record.clone()));
            decided_per_notice.push(decided);
        }
        inserted.extend(tx.insert(&unwritten, now).await?);

        let mut messages = Vec::new();
        let mut routed_per_notice = Vec::with_capacity(work.len());
        for ((notice, candidates), decided) in work.iter().zip(&decided_per_notice) {
            let mut routed = Routed::default();
            // Another router that got there first announces its own.
            for judged in decided
                .iter()
                .filter(|j| inserted.contains(&j.record.delivery.id))
            {
                self.announce(notice, judged, now, &mut messages, &mut routed)?;
            }
            for candidate in candidates.iter() {
                // Handled before: publish again what a crash may have kept back.
                if existing.get(&candidate.id) == Some(&DeliveryState::Queued) {
                    messages.push(self.job(
                        notice,
                        candidate.id,
                        candidate.user,
                        candidate.channel,
                    )?);
                }
            }
            routed_per_notice.push(routed);
        }
        if self.store.announces_in_place() {
            // The queue is in this database: the jobs go in with their
            // deliveries, and there is nothing left to publish.
            let jobs = messages
                .iter()
                .map(|m| self.enqueued(m))
                .collect::<Result<Vec<_>, _>>()?;
            self.store
                .commit_decisions_enqueuing(tx, &jobs, now)
                .await?;
            messages.clear();
        } else {
            tx.commit().await?;
        }
        Ok((messages, routed_per_notice))
    }

    /// Decides one delivery, inside `tx`, without recording it. `live` is
    /// the notification as `tx` locked it.
    pub async fn judge(
        &self,
        tx: &mut DecisionTx,
        notice: &Notice,
        candidate: &Candidate<'_>,
        profile: Option<&RecipientProfile>,
        live: &Live,
        now: DateTime<Utc>,
    ) -> Result<Judged, RouteError> {
        let mut delivery = NewDelivery::new(
            candidate.id,
            notice.id,
            candidate.user.clone(),
            candidate.channel,
            DeliveryState::Queued,
        );
        delivery.trace = candidate.preface.clone();
        if live.cancelled {
            delivery.state = DeliveryState::Cancelled;
            delivery
                .trace
                .push(TraceStep::new(Rule::Cancellation, Outcome::Cancelled, now));
            return Ok(Judged {
                record: Decided {
                    delivery,
                    timers: Vec::new(),
                    cap_slot: CapSlot::Release,
                },
                waiting_for: None,
            });
        }
        let capped = profile.is_some() && is_capped(notice, candidate.channel);
        let taken = if capped {
            let since = now - longest_cap(notice, candidate.channel);
            tx.cap_taken(
                candidate.user,
                &notice.category,
                candidate.channel,
                candidate.id,
                since,
            )
            .await?
        } else {
            Vec::new()
        };
        let decision = decide(&Situation {
            channel: candidate.channel,
            category: &notice.category,
            priority: notice.event.request.priority,
            policy: &notice.policy,
            recipient: profile,
            created_at: live.created_at,
            send_at: notice.event.request.send_at,
            group: notice.group(),
            may_group: candidate.may_group && notice.origin == Origin::Single,
            digestible: notice.digestible,
            cap_taken: &taken,
            now,
        });
        delivery.trace.extend(decision.trace.iter().cloned());
        let mut timers = Vec::new();
        let waiting_for = decision.waiting_reason();
        match &decision.verdict {
            Verdict::Queue => {}
            Verdict::Defer { until, .. } => {
                delivery.state = DeliveryState::Deferred;
                delivery.not_before = Some(*until);
                timers.push(NewTimer::new(
                    TimerKind::Release,
                    candidate.id.to_string(),
                    *until,
                ));
            }
            Verdict::Suppress(reason) => {
                delivery.state = DeliveryState::Suppressed;
                delivery.reason = Some(reason.to_string());
            }
            Verdict::Digest(plan) => {
                let (kind, key, closes_at) = match plan {
                    DigestPlan::Group { key, window } => (
                        DigestKind::Group,
                        format!("{}/{}", notice.template(), key),
                        now + window.as_chrono(),
                    ),
                    DigestPlan::Scheduled { closes_at } => (
                        DigestKind::Scheduled,
                        format!("{}/{}", notice.category, notice.template()),
                        *closes_at,
                    ),
                };
                let joined = tx
                    .join_digest(
                        candidate.user,
                        candidate.channel,
                        kind,
                        &key,
                        notice.template(),
                        closes_at,
                        now,
                    )
                    .await?;
                delivery.state = DeliveryState::Deferred;
                delivery.not_before = Some(joined.closes_at);
                delivery.digest_id = Some(joined.carrier);
                let tz = profile.map_or(chrono_tz::UTC, |p| p.time_zone);
                if let Some(last) = delivery.trace.last_mut() {
                    last.until = Some(joined.closes_at.with_timezone(&tz).fixed_offset());
                    last.reason = Some(format!(
                        "{}; digest {}",
                        last.reason.clone().unwrap_or_default(),
                        joined.carrier
                    ));
                }
            }
        }
        let cap_slot = match decision.cap_slot {
            Some(at) => CapSlot::Hold(notice.category.clone(), at),
            None => CapSlot::Release,
        };
        let escalation = notice
            .escalate
            .filter(|e| e.from == candidate.channel && delivery.digest_id.is_none());
        if let Some(escalation) = escalation {
            // Checked when the window has passed since the first channel
            // could have been seen; a read or an open cancels it.
            let from = delivery.not_before.unwrap_or(now);
            timers.push(NewTimer::new(
                TimerKind::Escalate,
                candidate.id.to_string(),
                from + escalation.after.as_chrono(),
            ));
        }
        Ok(Judged {
            record: Decided {
                delivery,
                timers,
                cap_slot,
            },
            waiting_for,
        })
    }
}

/// Locks the cap counters of every user with a capped channel among these
/// (notice, user, channel) deliveries, all at once and in one order.
pub(crate) async fn lock_capped<'u>(
    tx: &mut DecisionTx,
    deliveries: impl Iterator<Item = (&'u Notice, &'u UserId, Channel)>,
) -> Result<(), RouteError> {
    let users: Vec<&UserId> = deliveries
        .filter(|(notice, _, channel)| is_capped(notice, *channel))
        .map(|(_, user, _)| user)
        .collect();
    if !users.is_empty() {
        tx.lock_caps(&users).await?;
    }
    Ok(())
}

fn is_capped(notice: &Notice, channel: Channel) -> bool {
    notice.event.request.priority != Priority::Critical
        && !notice.cancelled
        && notice.policy.caps_on(channel).next().is_some()
}

fn longest_cap(notice: &Notice, channel: Channel) -> chrono::Duration {
    notice
        .policy
        .caps_on(channel)
        .map(|c| c.per.as_chrono())
        .max()
        .unwrap_or_default()
}

pub(crate) fn profile(user: &UserRecord, push_devices: usize) -> RecipientProfile {
    RecipientProfile {
        has_email: user.profile.email.is_some(),
        has_phone: user.profile.phone.is_some(),
        push_devices,
        preferences: user.preferences.clone(),
        time_zone: TimeZoneName::or_utc(user.profile.time_zone.as_ref()),
    }
}
