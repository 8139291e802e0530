//! The loop every consuming service runs: receive in batches, handle with
//! bounded concurrency, acknowledge in groups once the effects are durable,
//! dead-letter poison.
//!
//! A service supplies only the step ([`Handler::handle`], and where it can
//! do a batch's work in fewer round trips, [`Handler::handle_batch`]); this
//! loop owns batching, concurrency, retries of retriable failures, the DLQ
//! and shutdown. Tests drive the step directly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
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
    /// Not a failure: the record has to wait for something (another worker
    /// holds what it needs), which a batch must not do. It is handled again
    /// on its own, with a slot of its own, as a retried record is, but
    /// logged quietly.
    Alone(String),
}

#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, record: &Record) -> Result<(), HandleError>;

    /// Handles a batch; one result per record, in order. The default
    /// handles the records concurrently, one by one.
    async fn handle_batch(&self, records: &[Record]) -> Vec<Result<(), HandleError>> {
        futures::future::join_all(records.iter().map(|record| self.handle(record))).await
    }

    /// The most records [`consume`] hands to [`Handler::handle_batch`] at
    /// once. 1 (the default) for a handler that does a record's work on its
    /// own: each record then holds its own slot and is acknowledged as soon
    /// as it is done, so one slow record (a send waiting out another
    /// worker's claim) holds back nothing else. A handler that does a
    /// batch's work together (one transaction) says how many it takes.
    fn max_batch(&self) -> usize {
        1
    }
}

/// What one consuming stage of this process has done, for operators and
/// tests (the metrics registry is process-wide; this is per stage instance).
#[derive(Debug, Default)]
pub struct ConsumeStats {
    handled: AtomicU64,
    dead_lettered: AtomicU64,
    batches: AtomicU64,
    largest_batch: AtomicU64,
}

impl ConsumeStats {
    /// Records finished (handled or dead-lettered) and acknowledged.
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }

    /// Records of those refused as poison and written to the DLQ (counted
    /// when written, before their acknowledgement).
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered.load(Ordering::Relaxed)
    }

    /// Times records were handed to the handler (one record or several).
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// The most records handed to the handler at once so far.
    pub fn largest_batch(&self) -> u64 {
        self.largest_batch.load(Ordering::Relaxed)
    }

    fn record_batch(&self, stage: &str, records: usize) {
        let n = records as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.largest_batch.fetch_max(n, Ordering::Relaxed);
        metrics::histogram!(herald_telemetry::BATCH_RECORDS, "stage" => stage.to_owned())
            .record(n as f64);
    }
}

#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// The name recorded on dead letters and in logs: `router`, `worker.email`…
    pub stage: String,
    pub group: String,
    /// Records handled at once.
    pub concurrency: usize,
    /// Records handed to the handler together at most (and never more than
    /// [`Handler::max_batch`]). A batch takes what is already waiting; it
    /// never waits to fill.
    pub batch: usize,
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
            batch: 64,
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
    let (finished, to_acknowledge) = mpsc::unbounded_channel();
    let acknowledging = tokio::spawn(acknowledge(to_acknowledge, options.stats.clone()));
    tracing::info!(topic = %topic, stage = %options.stage, concurrency = options.concurrency, batch = options.batch, "consuming");
    loop {
        // One free slot is enough to take a record; a batch takes as many
        // records as there are free slots, up to the batch size.
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => permit.map_err(|_| BusError::Closed)?,
        };
        let room = 1 + permits
            .available_permits()
            .min(options.batch.min(handler.max_batch()).max(1) - 1);
        let records = tokio::select! {
            _ = shutdown.cancelled() => break,
            records = consumer.recv_batch(room) => records,
        };
        let records = match records {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(topic = %topic, error = %e, "receive failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(options.retry_initial) => continue,
                }
            }
        };
        options.stats.record_batch(&options.stage, records.len());
        let mut permit = first;
        if records.len() > 1 {
            // Only this loop takes permits, so the free ones are still free.
            let more = u32::try_from(records.len() - 1).unwrap_or(u32::MAX);
            match permits.clone().try_acquire_many_owned(more) {
                Ok(more) => permit.merge(more),
                Err(_) => return Err(BusError::Closed),
            }
        }
        let (bus, handler, options, shutdown, finished) = (
            bus.clone(),
            handler.clone(),
            options.clone(),
            shutdown.clone(),
            finished.clone(),
        );
        in_flight.spawn(async move {
            let step = Step {
                bus: bus.as_ref(),
                handler: handler.as_ref(),
                options: &options,
                shutdown: &shutdown,
                finished: &finished,
            };
            step.batch(records, permit).await;
        });
        // Reap finished tasks so the set does not grow without bound.
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.try_join_next().is_some() {}
    tracing::info!(topic = %topic, in_flight = in_flight.len(), "draining");
    while in_flight.join_next().await.is_some() {}
    drop(finished);
    if let Err(e) = acknowledging.await {
        tracing::error!(error = %e, "the acknowledging task failed; unacknowledged records come back");
    }
    Ok(())
}

/// Records acknowledged together at most.
const ACK_BATCH: usize = 512;

/// Acknowledges finished records in groups: whatever finished while the
/// previous acknowledgement was written goes in the next one (on the
/// embedded bus, one statement for many records). Ends when every sender
/// is gone and everything sent is acknowledged.
async fn acknowledge(mut finished: mpsc::UnboundedReceiver<Record>, stats: Arc<ConsumeStats>) {
    let mut batch = Vec::with_capacity(ACK_BATCH);
    while finished.recv_many(&mut batch, ACK_BATCH).await > 0 {
        let done = batch.len() as u64;
        if let Err(e) = crate::ack_all(std::mem::take(&mut batch)).await {
            tracing::warn!(error = %e, "acknowledgement failed; the records may be handled again");
        }
        stats.handled.fetch_add(done, Ordering::Relaxed);
    }
}

/// What handling a record needs, for one batch's task.
struct Step<'a> {
    bus: &'a dyn Bus,
    handler: &'a dyn Handler,
    options: &'a ConsumeOptions,
    shutdown: &'a CancellationToken,
    /// Where finished records go to be acknowledged.
    finished: &'a mpsc::UnboundedSender<Record>,
}

fn count(options: &ConsumeOptions, result: &Result<(), HandleError>) {
    let label = match result {
        Ok(()) => "ok",
        Err(HandleError::Poison(_)) => "poison",
        Err(HandleError::Retry(_)) => "retry",
        Err(HandleError::Alone(_)) => "alone",
    };
    metrics::counter!(herald_telemetry::RECORDS_CONSUMED, "stage" => options.stage.clone(), "result" => label)
        .increment(1);
}

impl Step<'_> {
    /// Handles a batch at once, hands what it finished over to be
    /// acknowledged, and takes what failed retriably through
    /// [`Step::one`]'s retries one by one.
    async fn batch(&self, records: Vec<Record>, mut permit: OwnedSemaphorePermit) {
        let results = if records.len() == 1 {
            vec![self.handler.handle(&records[0]).await]
        } else {
            self.handler.handle_batch(&records).await
        };
        let mut again = Vec::new();
        let mut results = results.into_iter();
        for record in records {
            // A handler that answers for fewer records than it was given
            // has a bug; what it did not answer for is handled again.
            let result = results
                .next()
                .unwrap_or_else(|| Err(HandleError::Retry("no result from the batch".into())));
            count(self.options, &result);
            match result {
                Ok(()) => self.finish(record),
                Err(HandleError::Poison(reason)) => {
                    if self.poison(&record, &reason).await {
                        self.finish(record);
                    }
                }
                Err(again_later) => again.push((record, again_later)),
            }
        }
        // Finished records free their slots now; one that is retried keeps
        // its own until it is done.
        let finished = permit.num_permits().saturating_sub(again.len());
        if finished > 0 {
            drop(permit.split(finished));
        }
        let wait = self.options.retry_initial;
        let retries = again.into_iter().map(|(record, why)| async move {
            say_again(&record, &why, wait);
            tokio::select! {
                // Unacknowledged, the record comes back after a restart.
                _ = self.shutdown.cancelled() => {}
                _ = tokio::time::sleep(wait) => self.one(record, wait * 2).await,
            }
        });
        futures::future::join_all(retries).await;
    }

    /// Hands a finished record over to be acknowledged.
    fn finish(&self, record: Record) {
        if self.finished.send(record).is_err() {
            // Only after the loop has ended; the record comes back.
            tracing::warn!("a finished record could not be acknowledged");
        }
    }

    /// Dead-letters a poison record; false if the DLQ could not take it
    /// (the record is then left unacknowledged and handed out again).
    async fn poison(&self, record: &Record, reason: &str) -> bool {
        let stage = &self.options.stage;
        tracing::warn!(topic = %record.topic, key = %record.key, %stage, %reason, "dead-lettering");
        if let Err(e) = dead_letter(self.bus, record, stage, reason).await {
            tracing::error!(error = %e, "cannot write to the DLQ; the record will be handed out again");
            return false;
        }
        metrics::counter!(herald_telemetry::DEAD_LETTERS, "stage" => stage.clone()).increment(1);
        self.options
            .stats
            .dead_lettered
            .fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Handles one record until it is finished, waiting longer after each
    /// retriable failure, starting at `wait`.
    async fn one(&self, record: Record, mut wait: Duration) {
        wait = wait.min(self.options.retry_max);
        loop {
            let result = self.handler.handle(&record).await;
            count(self.options, &result);
            match result {
                Ok(()) => break,
                Err(HandleError::Poison(reason)) => {
                    if !self.poison(&record, &reason).await {
                        return;
                    }
                    break;
                }
                Err(why) => {
                    say_again(&record, &why, wait);
                    tokio::select! {
                        // Unacknowledged, the record comes back after a restart.
                        _ = self.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(self.options.retry_max);
                }
            }
        }
        self.finish(record);
    }
}

/// Logs that `record` will be handled again in `wait`: a failure as a
/// warning, a record handed back to wait on its own quietly.
fn say_again(record: &Record, why: &HandleError, wait: Duration) {
    match why {
        HandleError::Alone(reason) => {
            tracing::debug!(topic = %record.topic, key = %record.key, %reason, retry_in = ?wait, "handling it again on its own")
        }
        HandleError::Retry(reason) | HandleError::Poison(reason) => {
            tracing::warn!(topic = %record.topic, key = %record.key, %reason, retry_in = ?wait, "handling failed; will retry")
        }
    }
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
