//! Providers: where a rendered message leaves Herald.
//!
//! Every provider implements [`Provider`]: it gets one [`Outbound`] message
//! (who, what, and the delivery id to use as the idempotency key) and either
//! accepts it, with the provider's message id, or says why not and whether
//! trying again could help. The worker decides what to do with that.
//!
//! * [`FileSink`] writes each message to a file under the data directory:
//!   the default until real providers are configured.
//! * [`SmtpProvider`] sends e-mail through any SMTP server with lettre.
//! * [`InboxProvider`] writes in-app messages to the user's inbox in
//!   Herald's own store.

mod email;
mod error;
mod file_sink;
mod inbox;
mod smtp;

use async_trait::async_trait;
use herald_domain::{
    Category, Channel, DeliveryId, Device, EmailAddress, NotificationId, PhoneNumber, UserId,
};
use herald_templates::Rendered;

pub use email::{build_email, EmailIdentity};
pub use error::ProviderError;
pub use file_sink::FileSink;
pub use inbox::InboxProvider;
pub use smtp::SmtpProvider;

/// Where a message goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Recipient {
    Email {
        address: EmailAddress,
        name: Option<String>,
    },
    Push {
        devices: Vec<Device>,
    },
    Sms {
        number: PhoneNumber,
    },
    /// The user's in-app inbox.
    InApp {
        user_id: UserId,
    },
}

/// One message for one recipient on one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    /// Also the idempotency key for providers that accept one.
    pub delivery_id: DeliveryId,
    /// The notification this message is one delivery of.
    pub notification_id: NotificationId,
    /// The notification's category, for providers that file messages by it
    /// (the inbox).
    pub category: Category,
    pub channel: Channel,
    pub to: Recipient,
    pub content: Rendered,
}

/// The provider took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub provider_message_id: String,
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// A short name for logs and metrics, e.g. `smtp`, `file` or `inbox`.
    fn name(&self) -> &'static str;

    async fn send(&self, message: &Outbound) -> Result<Accepted, ProviderError>;
}
