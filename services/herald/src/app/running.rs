//! A started Herald: what [`start`](super::start) hands back, to look at
//! while it runs (its address, store and bus, each stage's progress) and
//! to stop it, gracefully or as a crash would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use herald_bus::{Bus, ConsumeStats};
use herald_store::Store;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A started Herald: its address, its parts, and the handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub store: Store,
    pub bus: Arc<dyn Bus>,
    pub(super) stats: HashMap<String, Arc<ConsumeStats>>,
    pub(super) shutdown: CancellationToken,
    pub(super) tasks: JoinSet<()>,
    pub(super) scheduler_wake: Option<Arc<Notify>>,
}

impl Running {
    /// Pokes this process's scheduler to look for due timers now (after a
    /// test moved its clock).
    pub fn wake_scheduler(&self) {
        if let Some(wake) = &self.scheduler_wake {
            wake.notify_one();
        }
    }

    /// Records the stage (`router`, `worker.email`, `receipts`…) of this
    /// process has finished and acknowledged; 0 for a stage it does not run.
    pub fn handled(&self, stage: &str) -> u64 {
        self.stats.get(stage).map_or(0, |s| s.handled())
    }

    /// The most records `stage` of this process handled at once so far.
    pub fn largest_batch(&self, stage: &str) -> u64 {
        self.stats.get(stage).map_or(0, |s| s.largest_batch())
    }

    /// Records of `stage` this process refused as poison and dead-lettered.
    pub fn dead_lettered(&self, stage: &str) -> u64 {
        self.stats.get(stage).map_or(0, |s| s.dead_lettered())
    }

    /// Stops taking work, finishes what is in hand, and returns.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.store.db().close().await;
    }

    /// Stops at once, abandoning work in hand, as a crash would (for tests).
    pub async fn abort(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until every part has stopped (after `shutdown` is cancelled).
    pub async fn wait(mut self) {
        while let Some(result) = self.tasks.join_next().await {
            if let Err(e) = result {
                tracing::error!(error = %e, "a task failed");
            }
        }
        self.store.db().close().await;
    }
}
