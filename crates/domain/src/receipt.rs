//! Outcomes: the states of a delivery and the receipts that report them.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Channel, DeliveryId, DomainError, NotificationId, UserId};

/// Where one delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Queued,
    Deferred,
    Suppressed,
    Sending,
    Sent,
    Delivered,
    Failed,
    Bounced,
    Read,
    /// Withdrawn by `DELETE /v1/notifications/{id}` before it was sent.
    Cancelled,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 10] = [
        DeliveryState::Queued,
        DeliveryState::Deferred,
        DeliveryState::Suppressed,
        DeliveryState::Sending,
        DeliveryState::Sent,
        DeliveryState::Delivered,
        DeliveryState::Failed,
        DeliveryState::Bounced,
        DeliveryState::Read,
        DeliveryState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Deferred => "deferred",
            DeliveryState::Suppressed => "suppressed",
            DeliveryState::Sending => "sending",
            DeliveryState::Sent => "sent",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Bounced => "bounced",
            DeliveryState::Read => "read",
            DeliveryState::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Result<Self, DomainError> {
        DeliveryState::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| DomainError::invalid("delivery state", value, "unknown state"))
    }

    /// The states a delivery may be in for a report of `self` to move it.
    ///
    /// Reports arrive late, twice and out of order; this keeps a delivery
    /// from going backwards (a late `sent` never overwrites `delivered`) and
    /// makes applying the same report twice a no-op.
    pub fn reachable_from(self) -> &'static [DeliveryState] {
        use DeliveryState::*;
        match self {
            // Whoever queues or defers a delivery writes that itself; a
            // receipt saying so is an echo and must not undo a later move
            // (a retry timer may have queued it again already).
            Queued | Deferred => &[],
            Suppressed => &[Queued, Deferred],
            Sending => &[Queued, Deferred],
            Sent => &[Queued, Deferred, Sending, Failed],
            Failed => &[Queued, Deferred, Sending],
            Delivered => &[Queued, Deferred, Sending, Sent],
            Bounced => &[Sending, Sent, Delivered],
            // The in-app worker writes the inbox just before it records
            // `sent`: a read can come first.
            Read => &[Sending, Sent, Delivered],
            Cancelled => &[Queued, Deferred],
        }
    }

    /// No worker will act on the delivery again.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            DeliveryState::Queued | DeliveryState::Deferred | DeliveryState::Sending
        )
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outcome, as published on `herald.receipts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub schema_version: u32,
    pub delivery_id: DeliveryId,
    pub notification_id: NotificationId,
    pub user_id: UserId,
    pub channel: Channel,
    pub state: DeliveryState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeliveryState::*;

    #[test]
    fn states_round_trip_as_lower_case_names() {
        for s in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(s.as_str()), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!(DeliveryState::parse("SENT").is_err());
    }

    #[test]
    fn reports_never_move_a_delivery_backwards_or_repeat() {
        let moves = [
            (Queued, Sending, true),
            (Sending, Sent, true),
            (Sent, Delivered, true),
            (Delivered, Read, true),
            (Sent, Read, true),
            (Failed, Sent, true),
            (Sent, Bounced, true),
            (Queued, Suppressed, true),
            (Sent, Sent, false),
            (Delivered, Sent, false),
            (Read, Delivered, false),
            (Sent, Failed, false),
            (Suppressed, Sent, false),
            (Bounced, Delivered, false),
            (Queued, Read, false),
            (Sending, Read, true),
            (Sent, Queued, false),
            (Queued, Cancelled, true),
            (Deferred, Cancelled, true),
            (Sending, Cancelled, false),
            (Sent, Cancelled, false),
            (Cancelled, Sent, false),
            (Cancelled, Queued, false),
        ];
        for (from, to, allowed) in moves {
            assert_eq!(
                to.reachable_from().contains(&from),
                allowed,
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn a_state_never_reaches_itself() {
        for s in DeliveryState::ALL {
            assert!(!s.reachable_from().contains(&s), "{s}");
        }
    }
}
