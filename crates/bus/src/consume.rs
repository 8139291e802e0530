//! The loop every consuming service runs: receive, handle with bounded
//! concurrency, acknowledge once the effect is durable, dead-letter poison.
//!
//! A service supplies only the step ([`Handler::handle`]); this loop owns
//! concurrency, retries of retriable failures, the DLQ and shutdown. Tests
//! drive the step directly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{Bus, BusError, DeadLetter, Record, Topic};

/// Why a record could not be handled.
#[derive(Debug)]
pub enum HandleError {
    /// The record itself is bad and always will be: dead-letter it.
    Poison(String),
    /// Something we depend on failed; handling the record again may work.
    Retry(String),
}

#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, record: &Record) -> Result<(), HandleError>;
}

/// What one consuming stage of this process has done, for operators and
/// tests (the metrics registry is process-wide; this is per stage instance).
#[derive(Debug, Default)]
pub struct ConsumeStats {
    handled: AtomicU64,
    dead_lettered: AtomicU64,
}

impl ConsumeStats {
    /// Records finished (handled or dead-lettered) and acknowledged.
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }

    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// The name recorded on dead letters and in logs: `router`, `worker.email`…
    pub stage: String,
    pub group: String,
    /// Records handled at once.
    pub concurrency: usize,
    /// First and longest wait between retries of a record that failed retriably.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub stats: Arc<ConsumeStats>,
}

impl ConsumeOptions {
    pub fn new(stage: impl Into<String>, group: impl Into<String>, concurrency: usize) -> Self {
        ConsumeOptions {
            stage: stage.into(),
            group: group.into(),
            concurrency: concurrency.max(1),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
            stats: Arc::default(),
        }
    }
}

/// Consumes `topic` until `shutdown` is cancelled, then finishes the records
/// in hand and returns. Records in hand at shutdown that could not be
/// finished stay unacknowledged and are handed out again later.
pub async fn consume(
    bus: Arc<dyn Bus>,
    topic: Topic,
    handler: Arc<dyn Handler>,
    options: ConsumeOptions,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let mut consumer = bus.subscribe(&topic, &options.group).await?;
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let mut in_flight = JoinSet::new();
    tracing::info!(topic = %topic, stage = %options.stage, concurrency = options.concurrency, "consuming");
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => permit.map_err(|_| BusError::Closed)?,
        };
        let record = tokio::select! {
            _ = shutdown.cancelled() => break,
            record = consumer.recv() => record,
        };
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!(topic = %topic, error = %e, "receive failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(options.retry_initial) => continue,
                }
            }
        };
        let (bus, handler, options, shutdown) = (
            bus.clone(),
            handler.clone(),
            options.clone(),
            shutdown.clone(),
        );
        in_flight.spawn(async move {
            handle_one(bus.as_ref(), handler.as_ref(), &options, record, &shutdown).await;
            drop(permit);
        });
        // Reap finished tasks so the set does not grow without bound.
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.try_join_next().is_some() {}
    tracing::info!(topic = %topic, in_flight = in_flight.len(), "draining");
    while in_flight.join_next().await.is_some() {}
    Ok(())
}

async fn handle_one(
    bus: &dyn Bus,
    handler: &dyn Handler,
    options: &ConsumeOptions,
    record: Record,
    shutdown: &CancellationToken,
) {
    let mut wait = options.retry_initial;
    loop {
        let result = handler.handle(&record).await;
        let label = match &result {
            Ok(()) => "ok",
            Err(HandleError::Poison(_)) => "poison",
            Err(HandleError::Retry(_)) => "retry",
        };
        metrics::counter!(herald_telemetry::RECORDS_CONSUMED, "stage" => options.stage.clone(), "result" => label)
            .increment(1);
        match result {
            Ok(()) => break,
            Err(HandleError::Poison(reason)) => {
                tracing::warn!(topic = %record.topic, key = %record.key, stage = %options.stage, %reason, "dead-lettering");
                if let Err(e) = dead_letter(bus, &record, &options.stage, &reason).await {
                    tracing::error!(error = %e, "cannot write to the DLQ; the record will be handed out again");
                    return;
                }
                metrics::counter!(herald_telemetry::DEAD_LETTERS, "stage" => options.stage.clone())
                    .increment(1);
                break;
            }
            Err(HandleError::Retry(reason)) => {
                tracing::warn!(topic = %record.topic, key = %record.key, %reason, retry_in = ?wait, "handling failed; will retry");
                tokio::select! {
                    // Unacknowledged, the record comes back after a restart.
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(options.retry_max);
            }
        }
    }
    if let Err(e) = record.ack().await {
        tracing::warn!(error = %e, "acknowledgement failed; the record may be handled again");
    }
    options.stats.handled.fetch_add(1, Ordering::Relaxed);
}

/// Publishes `record` to the DLQ with the reason it was refused.
pub async fn dead_letter(
    bus: &dyn Bus,
    record: &Record,
    stage: &str,
    reason: &str,
) -> Result<(), BusError> {
    let letter = DeadLetter::new(
        &record.topic,
        &record.key,
        &record.payload,
        stage,
        reason,
        chrono::Utc::now(),
    );
    let payload = serde_json::to_vec(&letter).map_err(|e| BusError::Config(e.to_string()))?;
    bus.publish(&bus.topics().dlq(), &record.key, &payload)
        .await
}
