//! The Redis-backed claim hint and rate limit, against a real Redis, and
//! what happens when Redis is not there.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_domain::{Channel, DeliveryId, NotificationId, UserId};
use herald_workers::{
    ClaimCache, ClaimHint, LocalClaimCache, LocalRateLimiter, RateLimiter, RedisClaimCache,
    RedisLink, RedisRateLimiter,
};

fn redis_url() -> String {
    std::env::var("HERALD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn link() -> RedisLink {
    RedisLink::new(&redis_url(), Duration::from_secs(1)).unwrap()
}

fn dead_link() -> RedisLink {
    // Nothing listens on port 1.
    RedisLink::new("redis://127.0.0.1:1", Duration::from_millis(200)).unwrap()
}

fn prefix() -> String {
    format!("test:{}:", uuid::Uuid::new_v4().simple())
}

fn delivery() -> DeliveryId {
    DeliveryId::derive(
        NotificationId::new(),
        &UserId::parse("u").unwrap(),
        Channel::Email,
    )
}

async fn claim_hints_behave_the_same(cache: &dyn ClaimCache) {
    let d = delivery();
    let ttl = Duration::from_secs(30);
    assert_eq!(cache.try_claim(d, "a", ttl).await, ClaimHint::Acquired);
    assert_eq!(cache.try_claim(d, "b", ttl).await, ClaimHint::HeldElsewhere);
    assert_eq!(
        cache.try_claim(d, "a", ttl).await,
        ClaimHint::Acquired,
        "the holder may claim again"
    );
    cache.release(d, "b").await;
    assert_eq!(
        cache.try_claim(d, "b", ttl).await,
        ClaimHint::HeldElsewhere,
        "only the holder releases"
    );
    cache.release(d, "a").await;
    assert_eq!(cache.try_claim(d, "b", ttl).await, ClaimHint::Acquired);
    cache.mark_sent(d, "<m1@example.com>").await;
    assert_eq!(
        cache.try_claim(d, "c", ttl).await,
        ClaimHint::Sent {
            provider_message_id: "<m1@example.com>".into()
        },
        "a send nobody recorded yet is reported, whoever held the claim"
    );
    cache.mark_done(d).await;
    assert_eq!(cache.try_claim(d, "c", ttl).await, ClaimHint::Done);
}

#[tokio::test]
async fn the_redis_claim_hint_behaves_like_the_local_one() {
    claim_hints_behave_the_same(&LocalClaimCache::default()).await;
    claim_hints_behave_the_same(&RedisClaimCache::new(link(), prefix())).await;
}

#[tokio::test]
async fn two_replicas_see_each_others_claims_through_redis() {
    let prefix = prefix();
    let (one, two) = (
        RedisClaimCache::new(link(), prefix.clone()),
        RedisClaimCache::new(link(), prefix),
    );
    let d = delivery();
    assert_eq!(
        one.try_claim(d, "worker-1", Duration::from_secs(30)).await,
        ClaimHint::Acquired
    );
    assert_eq!(
        two.try_claim(d, "worker-2", Duration::from_secs(30)).await,
        ClaimHint::HeldElsewhere
    );
    one.mark_done(d).await;
    assert_eq!(
        two.try_claim(d, "worker-2", Duration::from_secs(30)).await,
        ClaimHint::Done
    );
}

#[tokio::test]
async fn an_unreachable_redis_leaves_the_decision_to_the_database_quickly() {
    let cache = RedisClaimCache::new(dead_link(), prefix());
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(
            cache
                .try_claim(delivery(), "a", Duration::from_secs(30))
                .await,
            ClaimHint::Unknown
        );
    }
    cache.mark_done(delivery()).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a dead Redis is not retried per message: {:?}",
        started.elapsed()
    );
}

/// Acquires `n` permits, split over `limiters`, all at once; returns the time taken.
async fn drain(limiters: Vec<Arc<dyn RateLimiter>>, n: usize) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let limiter = limiters[i % limiters.len()].clone();
            tokio::spawn(async move { limiter.acquire("email").await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

#[tokio::test]
async fn replicas_share_one_rate_through_redis() {
    let rate = NonZeroU32::new(50).unwrap();
    let prefix = prefix();
    let shared: Vec<Arc<dyn RateLimiter>> = (0..2)
        .map(|_| {
            Arc::new(RedisRateLimiter::new(
                link(),
                prefix.clone(),
                [("email".to_owned(), rate)],
            )) as Arc<dyn RateLimiter>
        })
        .collect();
    // 100 sends at 50/s between two replicas: about two seconds, less the burst.
    let elapsed = drain(shared, 100).await;
    assert!(
        elapsed >= Duration::from_millis(1700),
        "two replicas together kept to 50/s: {elapsed:?}"
    );

    // The same with separate local buckets lets each replica go at 50/s.
    let local: Vec<Arc<dyn RateLimiter>> = (0..2)
        .map(|_| {
            Arc::new(LocalRateLimiter::new([("email".to_owned(), rate)])) as Arc<dyn RateLimiter>
        })
        .collect();
    let elapsed_local = drain(local, 100).await;
    assert!(
        elapsed_local < elapsed,
        "local buckets are per replica: {elapsed_local:?} vs {elapsed:?}"
    );
}

#[tokio::test]
async fn an_unreachable_redis_falls_back_to_the_local_rate() {
    let limiter = RedisRateLimiter::new(
        dead_link(),
        prefix(),
        [("sms".to_owned(), NonZeroU32::new(20).unwrap())],
    );
    let started = Instant::now();
    for _ in 0..25 {
        limiter.acquire("sms").await;
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(200),
        "still limited, locally: {elapsed:?}"
    );
    limiter.acquire("unlimited").await;
}
