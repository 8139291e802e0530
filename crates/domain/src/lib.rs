//! Herald's domain: the pure types and rules every service shares.
//!
//! Nothing in here does IO or needs an async runtime. Values are parsed at the
//! edge into newtypes whose only constructor validates them, so an invalid
//! user id, channel or e-mail address cannot travel further than the request
//! that carried it. Rules (which channels a recipient gets, whether a receipt
//! may move a delivery's state, when to retry) are plain functions tested with
//! tables next to them. Time comes from an injected [`Clock`].

mod channel;
mod clock;
mod contact;
mod device;
mod error;
mod ids;
mod notification;
mod preferences;
mod receipt;
mod retry;
mod routing;

pub use channel::Channel;
pub use clock::{Clock, ManualClock, SystemClock};
pub use contact::{EmailAddress, Locale, PhoneNumber, TimeZoneName};
pub use device::{Device, PushPlatform};
pub use error::DomainError;
pub use ids::{Category, DeliveryId, NotificationId, TemplateName, UserId};
pub use notification::{DeliveryJob, NotificationEvent, Priority, SCHEMA_VERSION};
pub use preferences::{CategoryPolicy, Preferences};
pub use receipt::{DeliveryState, Receipt};
pub use retry::{RetryAction, RetryPolicy};
pub use routing::{route, select_channels, RecipientProfile, RouteDecision, SuppressReason};
