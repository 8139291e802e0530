//! What goes to the DLQ: the record as it came, and why it was refused.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub schema_version: u32,
    /// The topic the record came from.
    pub topic: String,
    pub key: String,
    /// The record's payload; bytes that are not UTF-8 are replaced.
    pub payload: String,
    pub reason: String,
    /// Which service refused it.
    pub stage: String,
    pub at: DateTime<Utc>,
}

impl DeadLetter {
    pub fn new(
        topic: &str,
        key: &str,
        payload: &[u8],
        stage: &str,
        reason: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Self {
        DeadLetter {
            schema_version: herald_domain::SCHEMA_VERSION,
            topic: topic.to_owned(),
            key: key.to_owned(),
            payload: String::from_utf8_lossy(payload).into_owned(),
            reason: reason.into(),
            stage: stage.to_owned(),
            at,
        }
    }
}
