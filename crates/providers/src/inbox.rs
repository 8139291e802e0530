//! The in-app inbox as a provider: an in-app message is sent by writing it
//! to the user's inbox in Herald's store, which the API lists and streams
//! to the user's apps.
//!
//! The row is keyed by the delivery id, so sending the same delivery twice
//! leaves one row, the way a provider honours an idempotency key. A failure
//! of the store is Herald's own, not a provider's: it comes back as
//! [`ProviderError::Store`], so the worker tries the whole job again rather
//! than counting it as an attempt.

use std::sync::Arc;

use async_trait::async_trait;
use herald_domain::Clock;
use herald_store::{NewInboxItem, Store};
use herald_templates::Rendered;

use crate::{Accepted, Outbound, Provider, ProviderError, Recipient};

#[derive(Clone)]
pub struct InboxProvider {
    store: Store,
    clock: Arc<dyn Clock>,
}

impl InboxProvider {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        InboxProvider { store, clock }
    }
}

#[async_trait]
impl Provider for InboxProvider {
    fn name(&self) -> &'static str {
        "inbox"
    }

    #[tracing::instrument(skip_all, fields(delivery = %message.delivery_id, channel = %message.channel))]
    async fn send(&self, message: &Outbound) -> Result<Accepted, ProviderError> {
        let Rendered::InApp { title, body } = &message.content else {
            return Err(ProviderError::permanent(
                "the template rendered no in-app message",
            ));
        };
        let Recipient::InApp { user_id } = &message.to else {
            return Err(ProviderError::Unsupported {
                provider: "inbox",
                what: format!("{} messages", message.channel),
            });
        };
        let item = NewInboxItem {
            id: message.delivery_id,
            user_id: user_id.clone(),
            notification_id: message.notification_id,
            category: message.category.clone(),
            title: title.clone(),
            body: body.clone(),
        };
        self.store.insert_inbox(&item, self.clock.now()).await?;
        Ok(Accepted {
            provider_message_id: format!("inbox:{}", message.delivery_id),
        })
    }
}
