//! The consumer stages of a process (router, workers, receipts): each is
//! spawned and supervised here, and every consumed topic's backlog is
//! published as a gauge.
//!
//! A stage that cannot subscribe (the broker is away) is not left dead in
//! a live process: it tries again with a growing wait until shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_bus::{consume, Bus, ConsumeOptions, ConsumeStats, Handler, Topic};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Spawns consumer stages into a process's tasks, remembering each one's
/// topic and group (for the backlog gauge) and its stats.
pub(super) struct Consumers<'a> {
    pub(super) tasks: &'a mut JoinSet<()>,
    pub(super) bus: &'a Arc<dyn Bus>,
    pub(super) shutdown: &'a CancellationToken,
    pub(super) prefix: &'a str,
    pub(super) watched: Vec<(Topic, String)>,
    pub(super) stats: HashMap<String, Arc<ConsumeStats>>,
}

impl Consumers<'_> {
    /// Consumes `topic` with `handler` as the stage `stage` (its consumer
    /// group is the topic prefix plus the stage), until shutdown.
    pub(super) fn spawn(
        &mut self,
        topic: Topic,
        handler: Arc<dyn Handler>,
        stage: &str,
        concurrency: usize,
    ) {
        let group = format!("{}{stage}", self.prefix);
        self.watched.push((topic.clone(), group.clone()));
        let options = ConsumeOptions::new(stage, group, concurrency);
        self.stats.insert(stage.to_owned(), options.stats.clone());
        let (bus, shutdown) = (self.bus.clone(), self.shutdown.clone());
        self.tasks.spawn(async move {
            // A consumer that cannot subscribe (broker away) tries again
            // rather than leaving the process alive but idle.
            let mut wait = Duration::from_secs(1);
            loop {
                match consume(bus.clone(), topic.clone(), handler.clone(), options.clone(), shutdown.clone()).await {
                    Ok(()) => return,
                    Err(e) => tracing::error!(stage = %options.stage, error = %e, retry_in = ?wait, "consumer failed"),
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        });
    }
}

/// Publishes each consumed topic's backlog as a gauge, for dashboards and
/// autoscaling on lag.
pub(super) async fn watch_backlog(
    bus: Arc<dyn Bus>,
    watched: Vec<(Topic, String)>,
    shutdown: CancellationToken,
) {
    loop {
        for (topic, group) in &watched {
            match bus.backlog(topic, group).await {
                Ok(Some(n)) => metrics::gauge!(herald_telemetry::QUEUE_BACKLOG, "topic" => topic.name().to_owned())
                    .set(n as f64),
                Ok(None) => {}
                Err(e) => tracing::debug!(topic = %topic, error = %e, "backlog unknown"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(15)) => {}
        }
    }
}
