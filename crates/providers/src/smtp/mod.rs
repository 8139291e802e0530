//! E-mail through an SMTP server, with lettre's pooled async transport.

use std::time::Duration;

use async_trait::async_trait;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::email::{build_email, EmailIdentity};
use crate::{Accepted, Outbound, Provider, ProviderError};

#[derive(Clone)]
pub struct SmtpProvider {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    identity: EmailIdentity,
    timeout: Duration,
}

impl std::fmt::Debug for SmtpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpProvider")
            .field("from", &self.identity.from.to_string())
            .finish()
    }
}

impl SmtpProvider {
    /// `url` as lettre reads it: `smtp://host:port` (plain),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS) or
    /// `smtps://user:pass@host:465` (TLS). At most `connections` are open
    /// at once (lettre's pool); a send waits for a free one, so this bounds
    /// the e-mail rate at `connections` / one message's round trips.
    pub fn from_url(
        url: &str,
        identity: EmailIdentity,
        timeout: Duration,
        connections: u32,
    ) -> Result<Self, ProviderError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| ProviderError::permanent(format!("invalid SMTP url: {e}")))?
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(connections.max(1)))
            .build();
        Ok(SmtpProvider {
            transport,
            identity,
            timeout,
        })
    }
}

#[async_trait]
impl Provider for SmtpProvider {
    fn name(&self) -> &'static str {
        "smtp"
    }

    #[tracing::instrument(skip_all, fields(delivery = %message.delivery_id))]
    async fn send(&self, message: &Outbound) -> Result<Accepted, ProviderError> {
        let email = build_email(&self.identity, message)?;
        // Twice the per-command timeout bounds the whole exchange.
        match tokio::time::timeout(self.timeout * 2, self.transport.send(email)).await {
            Err(_) => Err(ProviderError::transient(
                "the SMTP server did not answer in time",
            )),
            Ok(Ok(_response)) => Ok(Accepted {
                provider_message_id: self.identity.message_id(message),
            }),
            Ok(Err(e)) if e.is_permanent() => Err(ProviderError::permanent(format!("SMTP: {e}"))),
            Ok(Err(e)) => Err(ProviderError::transient(format!("SMTP: {e}"))),
        }
    }
}
