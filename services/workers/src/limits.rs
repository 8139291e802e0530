//! Per-provider rate limits, so Herald never sends faster than a provider
//! (or the contract with it) allows.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota};

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Waits until one more message may go to `provider`.
    async fn acquire(&self, provider: &str);
}

/// Token buckets in this process (governor's GCRA), one per provider. With
/// several replicas each has its own bucket; the Redis limiter shares one.
#[derive(Default)]
pub struct LocalRateLimiter {
    buckets: HashMap<String, Arc<DefaultDirectRateLimiter>>,
}

impl LocalRateLimiter {
    /// `per_second` messages per second for each named provider; providers not
    /// named are not limited.
    pub fn new(limits: impl IntoIterator<Item = (String, NonZeroU32)>) -> Self {
        let buckets = limits
            .into_iter()
            .map(|(provider, rate)| {
                (
                    provider,
                    Arc::new(governor::RateLimiter::direct(Quota::per_second(rate))),
                )
            })
            .collect();
        LocalRateLimiter { buckets }
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn acquire(&self, provider: &str) {
        if let Some(bucket) = self.buckets.get(provider) {
            bucket.until_ready().await;
        }
    }
}
