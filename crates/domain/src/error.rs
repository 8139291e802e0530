use thiserror::Error;

/// Why a value from the outside world was refused.
///
/// Every variant is the caller's fault, so the API maps all of them to 4xx;
/// the message is written for the person who sent the request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("invalid {kind} {value:?}: {reason}")]
    Invalid {
        kind: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("channel {channel} is not offered by template {template}")]
    ChannelNotInTemplate { channel: String, template: String },
    #[error("no channel left to deliver on: {0}")]
    NoChannels(String),
}

impl DomainError {
    pub(crate) fn invalid(kind: &'static str, value: &str, reason: &'static str) -> Self {
        // Keep error messages bounded even when the input is huge.
        let value: String = value.chars().take(80).collect();
        DomainError::Invalid {
            kind,
            value,
            reason,
        }
    }
}
