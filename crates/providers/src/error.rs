use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ProviderError {
    /// Might work later: a timeout, a 4xx SMTP reply, a 429 or 5xx HTTP answer.
    #[error("temporary failure: {reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will not work however often we try: a malformed message, a refused sender.
    #[error("permanent failure: {reason}")]
    Permanent { reason: String },
    /// This provider cannot carry this kind of message; a configuration error.
    #[error("provider {provider} cannot send {what}")]
    Unsupported {
        provider: &'static str,
        what: String,
    },
    /// Herald's own store failed, not a provider (the in-app inbox writes
    /// there): the worker tries the whole job again rather than counting
    /// an attempt.
    #[error(transparent)]
    Store(#[from] herald_store::StoreError),
}

impl ProviderError {
    pub fn transient(reason: impl Into<String>) -> Self {
        ProviderError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        ProviderError::Permanent {
            reason: reason.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        match self {
            ProviderError::Transient { .. } => true,
            ProviderError::Store(e) => e.is_retriable(),
            ProviderError::Permanent { .. } | ProviderError::Unsupported { .. } => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
