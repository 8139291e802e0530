//! Herald's domain: the pure types and rules every service shares.
//!
//! Nothing in here does IO or needs an async runtime. Values are parsed at the
//! edge into newtypes whose only constructor validates them, so an invalid
//! user id, channel or e-mail address cannot travel further than the request
//! that carried it. Rules (which channels a recipient gets, whether a receipt
//! may move a delivery's state, when to retry, when to escalate, what a
//! digest carries) are plain functions tested with tables next to them. Time
//! comes from an injected [`Clock`].

mod caps;
mod channel;
mod clock;
mod contact;
mod decision;
mod device;
mod digest;
mod error;
mod escalation;
mod ids;
mod notification;
mod policy;
mod preferences;
mod receipt;
mod retry;
mod routing;
mod schedule;
mod span;
mod trace;

pub use caps::next_slot;
pub use channel::Channel;
pub use clock::{Clock, ManualClock, SystemClock};
pub use contact::{EmailAddress, Locale, PhoneNumber, TimeZoneName};
pub use decision::{decide, Decision, DigestPlan, Situation, Verdict, FOLDED_BY_CAP, GROUPED};
pub use device::{Device, PushPlatform};
pub use digest::{digest_items, DIGEST_BYTES, DIGEST_ITEMS};
pub use error::DomainError;
pub use escalation::{escalation_due, hold_back_escalation, Escalation, EscalationDue, FirstSend};
pub use ids::{Category, DeliveryId, GroupKey, NotificationId, TemplateName, TopicName, UserId};
pub use notification::{
    DeliveryJob, NotificationEvent, NotificationRequest, Priority, Recipient, MAX_RECIPIENTS,
    SCHEMA_VERSION,
};
pub use policy::{CategoryPolicy, FrequencyCap};
pub use preferences::{DecidingRule, Effective, Preferences};
pub use receipt::{DeliveryState, Receipt};
pub use retry::{RetryAction, RetryPolicy};
pub use routing::{select_channels, RecipientProfile, SuppressReason};
pub use schedule::{Day, DigestSchedule, Every, LocalTime, QuietHours, QuietWindow};
pub use span::Span;
pub use trace::{Outcome, Rule, TraceStep};
