//! Escalation: when a first channel goes unread, a second one is sent.
//!
//! A template may say "if the push is not read within 15 minutes, send an
//! e-mail" ([`Escalation`]). Two rules carry that out, both pure:
//!
//! * [`hold_back_escalation`], when a notification is routed: the second
//!   channel is held back from the first send, unless the request named its
//!   channels itself (then it gets exactly those, at once, and nothing
//!   escalates);
//! * [`escalation_due`], when the escalation's timer fires: given where the
//!   first delivery stands, it is done (read, withdrawn), due later (it has
//!   not gone out yet) or due now.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Channel, DeliveryState, Span};

/// If the `from` delivery is not read within `after`, `to` is sent
/// (`escalate = { from = "in_app", to = "email", after = "15m" }` in a
/// template's manifest).
///
/// The template loader guarantees `from` is `in_app` or `push`, both
/// channels are in the template's `channels`, and they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Escalation {
    pub from: Channel,
    pub to: Channel,
    pub after: Span,
}

/// The channels a notification goes out on at first, and the escalation
/// that may send another later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstSend {
    /// The channels to send on now.
    pub channels: Vec<Channel>,
    /// The escalation in force: `None` when the template has none, when the
    /// request named its channels, or when its `from` channel is not sent.
    pub escalation: Option<Escalation>,
}

/// Holds an escalation's target channel back from the first send.
///
/// `selected` are the channels the notification would go out on (the
/// template's, or the request's when `named_by_request`). A request that
/// names its channels gets exactly those, at once: an escalation holds a
/// channel back only when the template chooses the channels. Otherwise, if
/// the template escalates from one of the selected channels, its `to`
/// channel waits for the first to go unread.
pub fn hold_back_escalation(
    mut selected: Vec<Channel>,
    named_by_request: bool,
    template_escalation: Option<Escalation>,
) -> FirstSend {
    let escalation =
        template_escalation.filter(|e| !named_by_request && selected.contains(&e.from));
    if let Some(escalation) = &escalation {
        selected.retain(|c| *c != escalation.to);
    }
    FirstSend {
        channels: selected,
        escalation,
    }
}

/// What an escalation's timer comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscalationDue {
    /// Nothing more to do: the first delivery was read or withdrawn, the
    /// notification was cancelled, or no escalation is in force.
    Done,
    /// The first delivery has not gone out yet: look again at this instant.
    Later(DateTime<Utc>),
    /// Send on `to` now; `why` is the trace's reason.
    Now { to: Channel, why: String },
}

/// Decides an escalation when its timer fires.
///
/// `first` and `first_not_before` are the state and `not_before` of the
/// `from` delivery; `notification_cancelled` says the notification was
/// withdrawn. While the first delivery is still queued, deferred or being
/// sent, the window starts again from when it may go out
/// (`max(not_before, now) + after`). Every other state but `read` and
/// `cancelled` escalates: sent or delivered and not read in time, and also a
/// first delivery that failed, bounced or was suppressed, which will never
/// be read.
pub fn escalation_due(
    escalation: Option<&Escalation>,
    notification_cancelled: bool,
    first: DeliveryState,
    first_not_before: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> EscalationDue {
    let Some(escalation) = escalation else {
        return EscalationDue::Done;
    };
    if notification_cancelled {
        // Nothing more of a cancelled notification goes out.
        return EscalationDue::Done;
    }
    // Every state is listed, so a new one needs a decision here.
    match first {
        DeliveryState::Read | DeliveryState::Cancelled => EscalationDue::Done,
        DeliveryState::Queued | DeliveryState::Deferred | DeliveryState::Sending => {
            let from_then = first_not_before.unwrap_or(now).max(now);
            EscalationDue::Later(from_then + escalation.after.as_chrono())
        }
        DeliveryState::Sent
        | DeliveryState::Delivered
        | DeliveryState::Failed
        | DeliveryState::Bounced
        | DeliveryState::Suppressed => EscalationDue::Now {
            to: escalation.to,
            why: format!("{} not read within {}", escalation.from, escalation.after),
        },
    }
}

#[cfg(test)]
mod tests;
