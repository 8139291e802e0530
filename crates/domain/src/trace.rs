//! The decision trace: every rule that decided a delivery's fate, in order,
//! so "why did Ada not get this at 3 a.m.?" is answered by the API alone.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

/// A rule the router or the timers applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Is the recipient a known user?
    Recipient,
    /// Does the user have an address for the channel?
    Reachability,
    /// The user's switches and the category's policy.
    Preferences,
    /// The notification's `send_at`.
    SendAt,
    /// The category's `expires_after`.
    Expiry,
    /// The user's quiet hours.
    QuietHours,
    /// Grouping into a digest (a `group_key` window or the user's schedule).
    Digest,
    /// The category's frequency caps.
    FrequencyCap,
    /// A template's escalation to a second channel.
    Escalation,
    /// `DELETE /v1/notifications/{id}`.
    Cancellation,
    /// Handed to the channel's queue.
    Queue,
    /// A transient provider failure, retried after a backoff.
    Retry,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Recipient => "recipient",
            Rule::Reachability => "reachability",
            Rule::Preferences => "preferences",
            Rule::SendAt => "send_at",
            Rule::Expiry => "expiry",
            Rule::QuietHours => "quiet_hours",
            Rule::Digest => "digest",
            Rule::FrequencyCap => "frequency_cap",
            Rule::Escalation => "escalation",
            Rule::Cancellation => "cancellation",
            Rule::Queue => "queue",
            Rule::Retry => "retry",
        }
    }
}

/// What a rule came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Deferred,
    Suppressed,
    Grouped,
    Bypassed,
    Escalated,
    Cancelled,
    Queued,
    /// Could not be carried out (a template removed while it waited).
    Failed,
}

/// One entry of a delivery's trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TraceStep {
    pub rule: Rule,
    pub outcome: Outcome,
    /// When the rule was applied.
    pub at: DateTime<Utc>,
    /// The end of a deferral or a digest window, in the user's own offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<DateTime<FixedOffset>>,
    /// Why, in a word: `user_channel_switch`, `in_app_is_silent`, `expired`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl TraceStep {
    pub fn new(rule: Rule, outcome: Outcome, at: DateTime<Utc>) -> Self {
        TraceStep {
            rule,
            outcome,
            at,
            until: None,
            reason: None,
        }
    }

    pub fn until(mut self, until: DateTime<FixedOffset>) -> Self {
        self.until = Some(until);
        self
    }

    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_serialises_with_its_local_until_and_without_empty_fields() {
        let at = DateTime::parse_from_rfc3339("2026-11-30T18:00:00Z")
            .unwrap()
            .to_utc();
        let until = DateTime::parse_from_rfc3339("2026-12-01T07:00:00+09:00").unwrap();
        let step = TraceStep::new(Rule::QuietHours, Outcome::Deferred, at).until(until);
        assert_eq!(
            serde_json::to_value(&step).unwrap(),
            serde_json::json!({"rule": "quiet_hours", "outcome": "deferred",
                "at": "2026-11-30T18:00:00Z", "until": "2026-12-01T07:00:00+09:00"})
        );
        for rule in [
            Rule::QuietHours,
            Rule::FrequencyCap,
            Rule::SendAt,
            Rule::Retry,
        ] {
            assert_eq!(
                serde_json::to_value(rule).unwrap(),
                serde_json::json!(rule.as_str())
            );
        }
        let pass = TraceStep::new(Rule::FrequencyCap, Outcome::Pass, at);
        let back: TraceStep = serde_json::from_value(serde_json::to_value(&pass).unwrap()).unwrap();
        assert_eq!(back, pass);
    }
}
