//! The router's judgement for one (notification, user, channel): whether,
//! when and how to interrupt a person.
//!
//! [`decide`] is a pure function of the [`Situation`] (the notification,
//! the recipient's profile and preferences, the category's policy, the
//! cap's counters and the time) and returns a [`Decision`]: a verdict and
//! the trace of every rule that led to it. The router calls it when an
//! event arrives; the timers call it again when a deferral ends, so a user
//! who opted out overnight is not woken at 07:00 by what was held back.
//!
//! The rules, in order; the first that stops the delivery ends the list:
//!
//! 1. **recipient**: an unknown user is suppressed (`unknown_user`);
//! 2. **reachability**: no address for the channel is suppressed;
//! 3. **preferences**: [`Preferences::effective`](crate::Preferences::effective);
//! 4. **send_at**: before it, defer to it (everything after is decided then);
//! 5. **expiry**: older than the category's `expires_after` (counted from
//!    `send_at` when later than creation) is suppressed as `expired`;
//! 6. **quiet hours** in the user's zone: defer to the window's end, or
//!    suppress as `expired` if that is past the expiry; in-app is silent and
//!    passes; `critical` passes where the category allows;
//! 7. **digest**: a user's scheduled digest for the category collects `low`
//!    and `normal` notifications on every channel but in-app (if the
//!    template has a digest variant to render them with); a `group_key`
//!    with the template's digest window groups the rest;
//! 8. **frequency caps**: non-critical sends take the earliest slot that
//!    keeps every cap; a later slot defers, or folds into the user's
//!    scheduled digest where they have one;
//! 9. **queue**: deliver now.

use chrono::{DateTime, Utc};

use crate::caps::next_slot;
use crate::trace::{Outcome, Rule, TraceStep};
use crate::{
    Category, CategoryPolicy, Channel, GroupKey, Priority, RecipientProfile, Span, SuppressReason,
};

/// Everything one decision depends on.
#[derive(Debug, Clone)]
pub struct Situation<'a> {
    pub channel: Channel,
    pub category: &'a Category,
    pub priority: Priority,
    pub policy: &'a CategoryPolicy,
    /// `None`: no such user.
    pub recipient: Option<&'a RecipientProfile>,
    /// When the notification was accepted.
    pub created_at: DateTime<Utc>,
    pub send_at: Option<DateTime<Utc>>,
    /// The request's group key and the template's digest window, when both exist.
    pub group: Option<(&'a GroupKey, Span)>,
    /// `false` for a delivery that is itself a digest or an escalation:
    /// those are not grouped again.
    pub may_group: bool,
    /// The template has a digest variant, so a scheduled digest can carry it.
    pub digestible: bool,
    /// Other deliveries' sends and reservations on this user, category and
    /// channel, for the caps.
    pub cap_taken: &'a [DateTime<Utc>],
    pub now: DateTime<Utc>,
}

/// How a delivery is to be grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestPlan {
    /// Into the open digest of this key (or a new one closing `window` from now).
    Group { key: GroupKey, window: Span },
    /// Into the user's scheduled digest for the category, which closes at `closes_at`.
    Scheduled { closes_at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the channel's queue now.
    Queue,
    /// Decide again at `until`.
    Defer {
        until: DateTime<Utc>,
        by: Rule,
    },
    Suppress(SuppressReason),
    Digest(DigestPlan),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub trace: Vec<TraceStep>,
    /// The send slot this delivery holds under the caps: `now` when queued
    /// under a cap, the later slot when deferred by one, `None` otherwise
    /// (releasing any slot it held).
    pub cap_slot: Option<DateTime<Utc>>,
}

/// Decides one delivery. See the module docs for the rules and their order.
/// The receipt reason of a delivery a digest took because a frequency cap
/// folded it there, rather than its `group_key` or the user's schedule.
pub const FOLDED_BY_CAP: &str = "frequency_cap_folded";
/// The receipt reason of a delivery a digest took by its `group_key` or the
/// user's digest schedule.
pub const GROUPED: &str = "grouped";

impl Decision {
    /// What the receipt of a delivery left waiting says: the rule that
    /// deferred it, [`GROUPED`] for a digest, or [`FOLDED_BY_CAP`] when a
    /// frequency cap folded it into the user's digest. `None` when it does
    /// not wait (queued or suppressed).
    pub fn waiting_reason(&self) -> Option<&'static str> {
        match &self.verdict {
            Verdict::Defer { by, .. } => Some(by.as_str()),
            Verdict::Digest(_) => Some(
                if self
                    .trace
                    .last()
                    .is_some_and(|step| step.rule == Rule::FrequencyCap)
                {
                    FOLDED_BY_CAP
                } else {
                    GROUPED
                },
            ),
            Verdict::Queue | Verdict::Suppress(_) => None,
        }
    }
}

pub fn decide(s: &Situation<'_>) -> Decision {
    let mut d = Decider {
        s,
        trace: Vec::new(),
        cap_slot: None,
    };
    let verdict = d.run();
    Decision {
        verdict,
        trace: d.trace,
        cap_slot: d.cap_slot,
    }
}

struct Decider<'s, 'a> {
    s: &'s Situation<'a>,
    trace: Vec<TraceStep>,
    cap_slot: Option<DateTime<Utc>>,
}

impl Decider<'_, '_> {
    fn step(&mut self, rule: Rule, outcome: Outcome) -> &mut TraceStep {
        self.trace.push(TraceStep::new(rule, outcome, self.s.now));
        let last = self.trace.len() - 1;
        &mut self.trace[last]
    }

    fn until(
        &mut self,
        rule: Rule,
        outcome: Outcome,
        until: DateTime<Utc>,
        tz: chrono_tz::Tz,
    ) -> &mut TraceStep {
        let step = self.step(rule, outcome);
        step.until = Some(until.with_timezone(&tz).fixed_offset());
        step
    }

    fn suppress(&mut self, rule: Rule, reason: SuppressReason) -> Verdict {
        self.step(rule, Outcome::Suppressed).reason = Some(reason.to_string());
        Verdict::Suppress(reason)
    }

    fn run(&mut self) -> Verdict {
        let s = self.s;
        let Some(who) = s.recipient else {
            return self.suppress(Rule::Recipient, SuppressReason::UnknownUser);
        };
        let tz = who.time_zone;
        let unreachable = match s.channel {
            Channel::Email if !who.has_email => Some(SuppressReason::NoEmailAddress),
            Channel::Sms if !who.has_phone => Some(SuppressReason::NoPhoneNumber),
            Channel::Push if who.push_devices == 0 => Some(SuppressReason::NoPushDevice),
            _ => None,
        };
        if let Some(reason) = unreachable {
            return self.suppress(Rule::Reachability, reason);
        }

        let effective = who
            .preferences
            .effective(s.policy, s.category, s.channel, s.priority);
        if !effective.enabled {
            let reason = match effective.decided_by {
                crate::DecidingRule::UserChannelSwitch => SuppressReason::OptedOutOfChannel,
                crate::DecidingRule::CategoryDefault => SuppressReason::NotOptedIn,
                _ => SuppressReason::OptedOutOfCategory,
            };
            return self.suppress(Rule::Preferences, reason);
        }
        self.step(Rule::Preferences, Outcome::Pass).reason = Some(effective.decided_by.to_string());

        if let Some(send_at) = s.send_at.filter(|&at| at > s.now) {
            self.until(Rule::SendAt, Outcome::Deferred, send_at, tz);
            return Verdict::Defer {
                until: send_at,
                by: Rule::SendAt,
            };
        }

        let born = s.send_at.map_or(s.created_at, |at| at.max(s.created_at));
        let expires_at = s.policy.expires_after.map(|after| born + after.as_chrono());
        if expires_at.is_some_and(|at| s.now >= at) {
            return self.suppress(Rule::Expiry, SuppressReason::Expired);
        }
        let expired_by = |at: DateTime<Utc>| expires_at.is_some_and(|e| at > e);

        if !who.preferences.quiet_hours.is_empty() {
            if s.channel == Channel::InApp {
                self.step(Rule::QuietHours, Outcome::Pass).reason = Some("in_app_is_silent".into());
            } else if let Some(end) = who.preferences.quiet_hours.quiet_until(tz, s.now) {
                if s.policy.bypasses_quiet_hours(s.priority) {
                    self.step(Rule::QuietHours, Outcome::Bypassed).reason = Some("critical".into());
                } else if expired_by(end) {
                    self.until(Rule::QuietHours, Outcome::Suppressed, end, tz)
                        .reason = Some("expired".into());
                    return Verdict::Suppress(SuppressReason::Expired);
                } else {
                    self.until(Rule::QuietHours, Outcome::Deferred, end, tz);
                    return Verdict::Defer {
                        until: end,
                        by: Rule::QuietHours,
                    };
                }
            } else {
                self.step(Rule::QuietHours, Outcome::Pass);
            }
        }

        let schedule = who
            .preferences
            .digest_for(s.category)
            .filter(|_| s.may_group && s.digestible && s.channel != Channel::InApp);
        if let Some(schedule) = schedule {
            if matches!(s.priority, Priority::Low | Priority::Normal) {
                let closes_at = schedule.next_after(tz, s.now);
                if expired_by(closes_at) {
                    self.until(Rule::Digest, Outcome::Suppressed, closes_at, tz)
                        .reason = Some("expired".into());
                    return Verdict::Suppress(SuppressReason::Expired);
                }
                self.until(Rule::Digest, Outcome::Grouped, closes_at, tz)
                    .reason = Some("scheduled".into());
                return Verdict::Digest(DigestPlan::Scheduled { closes_at });
            }
        }
        if let Some((key, window)) = s.group.filter(|_| s.may_group) {
            self.step(Rule::Digest, Outcome::Grouped).reason = Some("group_key".into());
            return Verdict::Digest(DigestPlan::Group {
                key: key.clone(),
                window,
            });
        }

        let caps: Vec<_> = s.policy.caps_on(s.channel).collect();
        if !caps.is_empty() {
            if s.priority == Priority::Critical {
                self.step(Rule::FrequencyCap, Outcome::Bypassed).reason = Some("critical".into());
            } else {
                let slot = next_slot(&caps, s.cap_taken, s.now);
                if slot <= s.now {
                    self.step(Rule::FrequencyCap, Outcome::Pass);
                    self.cap_slot = Some(s.now);
                } else if let Some(schedule) = schedule {
                    let closes_at = schedule.next_after(tz, s.now);
                    self.until(Rule::FrequencyCap, Outcome::Grouped, closes_at, tz)
                        .reason = Some("folded_into_digest".into());
                    return Verdict::Digest(DigestPlan::Scheduled { closes_at });
                } else if expired_by(slot) {
                    self.until(Rule::FrequencyCap, Outcome::Suppressed, slot, tz)
                        .reason = Some("expired".into());
                    return Verdict::Suppress(SuppressReason::Expired);
                } else {
                    self.until(Rule::FrequencyCap, Outcome::Deferred, slot, tz);
                    self.cap_slot = Some(slot);
                    return Verdict::Defer {
                        until: slot,
                        by: Rule::FrequencyCap,
                    };
                }
            }
        }

        self.step(Rule::Queue, Outcome::Queued);
        Verdict::Queue
    }
}

#[cfg(test)]
mod tests;
