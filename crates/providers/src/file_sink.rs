//! The file sink: every message becomes a file under `<data>/outbox/`, so a
//! new user sees the whole flow without configuring a single provider.
//!
//! E-mail is written as the real RFC 5322 message (`.eml`, openable in any
//! mail client); push and SMS as JSON. The file is named after the delivery
//! id and created atomically, so sending the same delivery twice leaves one
//! file, the way a provider honours an idempotency key.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::json;

use crate::email::{build_email, EmailIdentity};
use crate::{Accepted, Outbound, Provider, ProviderError, Recipient};
use herald_templates::Rendered;

#[derive(Debug, Clone)]
pub struct FileSink {
    dir: PathBuf,
    identity: EmailIdentity,
}

impl FileSink {
    pub fn new(dir: impl Into<PathBuf>, identity: EmailIdentity) -> Self {
        FileSink {
            dir: dir.into(),
            identity,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn contents(&self, message: &Outbound) -> Result<(&'static str, Vec<u8>), ProviderError> {
        match (&message.to, &message.content) {
            (Recipient::Email { .. }, Rendered::Email { .. }) => {
                Ok(("eml", build_email(&self.identity, message)?.formatted()))
            }
            (Recipient::Push { devices }, Rendered::Push { title, body }) => {
                let devices: Vec<_> = devices
                    .iter()
                    .map(|d| json!({"platform": d.platform(), "token": d.token()}))
                    .collect();
                let doc = json!({"delivery_id": message.delivery_id, "devices": devices, "title": title, "body": body});
                Ok(("json", pretty(&doc)?))
            }
            (Recipient::Sms { number }, Rendered::Sms { body }) => {
                let doc = json!({"delivery_id": message.delivery_id, "to": number, "body": body});
                Ok(("json", pretty(&doc)?))
            }
            _ => Err(ProviderError::Unsupported {
                provider: "file",
                what: format!("{} content", message.channel),
            }),
        }
    }
}

fn pretty(doc: &serde_json::Value) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec_pretty(doc).map_err(|e| ProviderError::permanent(e.to_string()))
}

#[async_trait]
impl Provider for FileSink {
    fn name(&self) -> &'static str {
        "file"
    }

    #[tracing::instrument(skip_all, fields(delivery = %message.delivery_id, channel = %message.channel))]
    async fn send(&self, message: &Outbound) -> Result<Accepted, ProviderError> {
        let (extension, bytes) = self.contents(message)?;
        let dir = self.dir.join(message.channel.as_str());
        let io = |e: std::io::Error| {
            ProviderError::transient(format!("file sink {}: {e}", dir.display()))
        };
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        let name = format!("{}.{extension}", message.delivery_id);
        let path = dir.join(&name);
        // Write aside, then link into place: the final name appears whole or
        // not at all, and never twice.
        let partial = dir.join(format!(".{name}.{}.partial", std::process::id()));
        tokio::fs::write(&partial, &bytes).await.map_err(io)?;
        let linked = tokio::fs::hard_link(&partial, &path).await;
        let _ = tokio::fs::remove_file(&partial).await;
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                tracing::info!(path = %path.display(), "already written; keeping the first copy");
            }
            Err(e) => return Err(io(e)),
        }
        Ok(Accepted {
            provider_message_id: format!("file:{}/{name}", message.channel.as_str()),
        })
    }
}
