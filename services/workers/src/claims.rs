//! The fast path in front of the database claim.
//!
//! Before the conditional database update that decides who may send, a
//! worker asks a [`ClaimCache`]: is this delivery finished already (skip it
//! without touching the database), or being sent by another worker right now
//! (wait)? The cache is only a hint. When it is unreachable, or forgets, the
//! database still lets exactly one worker through.
//!
//! [`RedisClaimCache`] shares the hint across replicas with `SET NX PX`;
//! [`LocalClaimCache`] keeps it in this process for the embedded set.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use herald_domain::DeliveryId;

use crate::redis_link::RedisLink;

/// What the cache knows about a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimHint {
    /// Nobody else holds it: go on to the database claim.
    Acquired,
    /// Finished and reported: nothing to do.
    Done,
    /// The provider took it, but the outcome may not be recorded yet (the
    /// worker died in between): record it, do not send again.
    Sent { provider_message_id: String },
    /// Another worker holds it until its lease ends.
    HeldElsewhere,
    /// The cache cannot say (unreachable); the database decides.
    Unknown,
}

#[async_trait]
pub trait ClaimCache: Send + Sync + 'static {
    /// Takes the hint-lock for `ttl` under `token`, unless finished or held.
    async fn try_claim(&self, id: DeliveryId, token: &str, ttl: Duration) -> ClaimHint;
    /// Remembers, the instant the provider answered, that it took the
    /// message: the narrowest window a crash can fall into before the
    /// outcome is durable in the database.
    async fn mark_sent(&self, id: DeliveryId, provider_message_id: &str);
    /// Remembers the delivery as finished (after its receipt is out).
    async fn mark_done(&self, id: DeliveryId);
    /// Gives the hint-lock back without finishing, if `token` still holds it.
    async fn release(&self, id: DeliveryId, token: &str);
}

enum Entry {
    Held {
        token: String,
        until: Instant,
    },
    Sent {
        provider_message_id: String,
        until: Instant,
    },
    Done {
        until: Instant,
    },
}

/// In-process cache for the embedded set.
pub struct LocalClaimCache {
    done_ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<DeliveryId, Entry>>,
}

impl LocalClaimCache {
    pub fn new(done_ttl: Duration, capacity: usize) -> Self {
        LocalClaimCache {
            done_ttl,
            capacity: capacity.max(1),
            entries: Mutex::default(),
        }
    }
}

impl Default for LocalClaimCache {
    fn default() -> Self {
        LocalClaimCache::new(Duration::from_secs(3600), 100_000)
    }
}

#[async_trait]
impl ClaimCache for LocalClaimCache {
    async fn try_claim(&self, id: DeliveryId, token: &str, ttl: Duration) -> ClaimHint {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(&id) {
            Some(Entry::Done { until }) if *until > now => return ClaimHint::Done,
            Some(Entry::Sent {
                provider_message_id,
                until,
            }) if *until > now => {
                return ClaimHint::Sent {
                    provider_message_id: provider_message_id.clone(),
                }
            }
            Some(Entry::Held {
                token: holder,
                until,
            }) if *until > now && holder != token => return ClaimHint::HeldElsewhere,
            _ => {}
        }
        if entries.len() >= self.capacity {
            entries.retain(|_, e| match e {
                Entry::Held { until, .. } | Entry::Sent { until, .. } | Entry::Done { until } => {
                    *until > now
                }
            });
            if entries.len() >= self.capacity {
                // Still full of live entries: forget them all. The database
                // remains the truth, so this costs only a few lookups.
                entries.clear();
            }
        }
        entries.insert(
            id,
            Entry::Held {
                token: token.to_owned(),
                until: now + ttl,
            },
        );
        ClaimHint::Acquired
    }

    async fn mark_sent(&self, id: DeliveryId, provider_message_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + self.done_ttl;
        entries.insert(
            id,
            Entry::Sent {
                provider_message_id: provider_message_id.to_owned(),
                until,
            },
        );
    }

    async fn mark_done(&self, id: DeliveryId) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(
            id,
            Entry::Done {
                until: Instant::now() + self.done_ttl,
            },
        );
    }

    async fn release(&self, id: DeliveryId, token: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(entries.get(&id), Some(Entry::Held { token: holder, .. }) if holder == token) {
            entries.remove(&id);
        }
    }
}

/// The hint shared by every replica, in Redis: `SET key token NX PX ttl` to
/// claim, `sent:<provider message id>` the moment the provider took it, and
/// `done` once finished (both kept an hour, or as long as
/// [`RedisClaimCache::remembering`] says).
pub struct RedisClaimCache {
    link: RedisLink,
    prefix: String,
    done_ttl: Duration,
}

const RELEASE: &str =
    r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

impl RedisClaimCache {
    pub fn new(link: RedisLink, prefix: impl Into<String>) -> Self {
        RedisClaimCache {
            link,
            prefix: prefix.into(),
            done_ttl: Duration::from_secs(3_600),
        }
    }

    /// How long `sent` and `done` are kept: longer than a claim's lease (a
    /// dead worker's `sent` must outlive it), and short enough that a busy
    /// deployment's keys fit in memory (one per delivery in that time).
    pub fn remembering(mut self, ttl: Duration) -> Self {
        self.done_ttl = ttl;
        self
    }

    fn key(&self, id: DeliveryId) -> String {
        format!("{}claim:{id}", self.prefix)
    }

    /// Overwrites the delivery's hint with `value`, whoever held it.
    async fn remember(&self, id: DeliveryId, value: String) {
        let key = self.key(id);
        let ttl = self.done_ttl.as_secs();
        let _ = self
            .link
            .run("claims", |mut conn| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .arg("EX")
                    .arg(ttl)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await;
    }
}

#[async_trait]
impl ClaimCache for RedisClaimCache {
    async fn try_claim(&self, id: DeliveryId, token: &str, ttl: Duration) -> ClaimHint {
        let key = self.key(id);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let result = self
            .link
            .run("claims", |mut conn| {
                let (key, token) = (key.clone(), token.to_owned());
                async move {
                    let set: Option<String> = redis::cmd("SET")
                        .arg(&key)
                        .arg(&token)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut conn)
                        .await?;
                    if set.is_some() {
                        return Ok(ClaimHint::Acquired);
                    }
                    let holder: Option<String> =
                        redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
                    Ok(match holder.as_deref() {
                        Some("done") => ClaimHint::Done,
                        Some(h) if h.starts_with("sent:") => ClaimHint::Sent {
                            provider_message_id: h["sent:".len()..].to_owned(),
                        },
                        Some(h) if h == token => ClaimHint::Acquired,
                        Some(_) => ClaimHint::HeldElsewhere,
                        // Expired between the two calls: let the database decide.
                        None => ClaimHint::Unknown,
                    })
                }
            })
            .await;
        result.unwrap_or(ClaimHint::Unknown)
    }

    async fn mark_sent(&self, id: DeliveryId, provider_message_id: &str) {
        self.remember(id, format!("sent:{provider_message_id}"))
            .await;
    }

    async fn mark_done(&self, id: DeliveryId) {
        self.remember(id, "done".to_owned()).await;
    }

    async fn release(&self, id: DeliveryId, token: &str) {
        let key = self.key(id);
        let _ = self
            .link
            .run("claims", |mut conn| {
                let (key, token) = (key.clone(), token.to_owned());
                async move {
                    redis::Script::new(RELEASE)
                        .key(&key)
                        .arg(&token)
                        .invoke_async::<i64>(&mut conn)
                        .await
                }
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::{Channel, NotificationId, UserId};

    fn id() -> DeliveryId {
        DeliveryId::derive(
            NotificationId::new(),
            &UserId::parse("u").unwrap(),
            Channel::Email,
        )
    }

    #[tokio::test]
    async fn an_expired_hold_is_taken_over() {
        let cache = LocalClaimCache::default();
        let d = id();
        assert_eq!(
            cache.try_claim(d, "a", Duration::from_millis(1)).await,
            ClaimHint::Acquired
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(
            cache.try_claim(d, "b", Duration::from_secs(1)).await,
            ClaimHint::Acquired
        );
    }
}
