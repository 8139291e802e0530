//! The fast path in front of the database claim: deliveries known to be done.
//!
//! The database's conditional update decides who may send. This cache only
//! lets a redelivered job for a finished delivery skip the database, and it
//! is written after the receipt is out, so skipping never loses a receipt.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use herald_domain::DeliveryId;

#[async_trait]
pub trait ClaimCache: Send + Sync + 'static {
    /// Was this delivery finished and reported?
    async fn is_done(&self, id: DeliveryId) -> bool;
    /// Remember that it was, for a while.
    async fn mark_done(&self, id: DeliveryId);
}

/// In-process cache for the embedded set: a map with expiry, pruned as it grows.
#[derive(Debug)]
pub struct LocalClaimCache {
    ttl: Duration,
    capacity: usize,
    done: Mutex<HashMap<DeliveryId, Instant>>,
}

impl LocalClaimCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        LocalClaimCache {
            ttl,
            capacity: capacity.max(1),
            done: Mutex::default(),
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
    async fn is_done(&self, id: DeliveryId) -> bool {
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        done.get(&id).is_some_and(|at| at.elapsed() < self.ttl)
    }

    async fn mark_done(&self, id: DeliveryId) {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        if done.len() >= self.capacity {
            let ttl = self.ttl;
            done.retain(|_, at| at.elapsed() < ttl);
            if done.len() >= self.capacity {
                // Still full of live entries: forget them all; the database
                // remains the truth, so this only costs a few lookups.
                done.clear();
            }
        }
        done.insert(id, Instant::now());
    }
}
