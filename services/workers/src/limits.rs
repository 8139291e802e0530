//! Per-provider rate limits, so Herald never sends faster than a provider
//! (or the contract with it) allows.
//!
//! [`LocalRateLimiter`] keeps a token bucket per provider in this process
//! (governor's GCRA). [`RedisRateLimiter`] runs the same algorithm in one
//! atomic Redis script, so every worker replica draws from one bucket; when
//! Redis is unreachable it falls back to the local buckets.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota};

use crate::redis_link::RedisLink;

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Waits until one more message may go to `provider`.
    async fn acquire(&self, provider: &str);
}

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

/// GCRA: a key holds the bucket's "theoretical arrival time" in
/// microseconds; a request is let through when it is no further in the
/// future than the burst allows. Redis's own clock is used, so replicas with
/// skewed clocks still share one rate. Returns 0 (go) or microseconds to wait.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat - interval * burst
if now < allow_at then return math.ceil(allow_at - now) end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
";

pub struct RedisRateLimiter {
    link: RedisLink,
    prefix: String,
    rates: HashMap<String, NonZeroU32>,
    fallback: LocalRateLimiter,
    script: redis::Script,
}

impl RedisRateLimiter {
    pub fn new(
        link: RedisLink,
        prefix: impl Into<String>,
        limits: impl IntoIterator<Item = (String, NonZeroU32)>,
    ) -> Self {
        let rates: HashMap<String, NonZeroU32> = limits.into_iter().collect();
        let fallback = LocalRateLimiter::new(rates.clone());
        RedisRateLimiter {
            link,
            prefix: prefix.into(),
            rates,
            fallback,
            script: redis::Script::new(GCRA),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn acquire(&self, provider: &str) {
        let Some(rate) = self.rates.get(provider) else {
            return;
        };
        let interval_us = 1_000_000.0 / f64::from(rate.get());
        // A burst of up to a tenth of a second's worth keeps replicas from
        // stalling on each other's rounding, without overshooting the rate.
        let burst = (f64::from(rate.get()) / 10.0).floor().max(0.0);
        let key = format!("{}rate:{provider}", self.prefix);
        loop {
            let wait = self
                .link
                .run("rate_limit", |mut conn| {
                    let (script, key) = (self.script.clone(), key.clone());
                    async move {
                        script
                            .key(&key)
                            .arg(interval_us)
                            .arg(burst)
                            .invoke_async::<i64>(&mut conn)
                            .await
                    }
                })
                .await;
            match wait {
                Some(0) => return,
                Some(us) => {
                    tokio::time::sleep(Duration::from_micros(u64::try_from(us).unwrap_or(1_000)))
                        .await
                }
                None => return self.fallback.acquire(provider).await,
            }
        }
    }
}
