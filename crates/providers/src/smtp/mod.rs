//! E-mail through an SMTP server: lettre's SMTP client on Herald's own
//! connection pool ([`pool`]), so a message costs its round trips and no
//! more.

mod pool;
mod target;

use std::time::Duration;

use async_trait::async_trait;

use crate::email::{build_email, EmailIdentity};
use crate::{Accepted, Outbound, Provider, ProviderError};

use pool::SmtpPool;
use target::Target;

pub struct SmtpProvider {
    pool: SmtpPool,
    identity: EmailIdentity,
    timeout: Duration,
}

impl std::fmt::Debug for SmtpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpProvider")
            .field("relay", self.pool.target())
            .field("from", &self.identity.from.to_string())
            .finish()
    }
}

impl SmtpProvider {
    /// `url` as lettre reads it: `smtp://host:port` (plain),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS) or
    /// `smtps://user:pass@host:465` (TLS). At most `connections` are open
    /// at once; a send waits for a free one, so this bounds the e-mail rate
    /// at `connections` / one message's round trips.
    pub fn from_url(
        url: &str,
        identity: EmailIdentity,
        timeout: Duration,
        connections: u32,
    ) -> Result<Self, ProviderError> {
        SmtpProvider::trusting(url, None, identity, timeout, connections)
    }

    /// Like [`from_url`](Self::from_url), also trusting the certificates in
    /// `roots` (PEM) for the relay's TLS: a relay inside your network whose
    /// certificate your own CA signs.
    pub fn trusting(
        url: &str,
        roots: Option<&[u8]>,
        identity: EmailIdentity,
        timeout: Duration,
        connections: u32,
    ) -> Result<Self, ProviderError> {
        let target = Target::parse(url, roots)?;
        Ok(SmtpProvider {
            pool: SmtpPool::new(target, timeout, connections),
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
        let bytes = email.formatted();
        // Twice the per-command timeout bounds the whole exchange.
        match tokio::time::timeout(self.timeout * 2, self.pool.send(email.envelope(), &bytes)).await
        {
            Err(_) => Err(ProviderError::transient(
                "the SMTP server did not answer in time",
            )),
            Ok(Ok(())) => Ok(Accepted {
                provider_message_id: self.identity.message_id(message),
            }),
            Ok(Err(e)) if e.is_permanent() => Err(ProviderError::permanent(e.to_string())),
            Ok(Err(e)) => Err(ProviderError::transient(e.to_string())),
        }
    }
}
