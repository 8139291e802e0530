//! The outbox relay: publishes what the API committed to its outbox, then
//! forgets it. A crash between the two publishes a message twice, never
//! zero times; every consumer downstream is idempotent.

use std::sync::Arc;
use std::time::Duration;

use herald_bus::Bus;
use herald_domain::Clock;
use herald_store::{Store, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub batch: i64,
    /// How long a leased batch stays away from other relays.
    pub lease: Duration,
    /// How often an idle relay looks, if nobody pokes it.
    pub poll_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch: 256,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(200),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] herald_bus::BusError),
}

pub struct OutboxRelay {
    store: Store,
    bus: Arc<dyn Bus>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    config: RelayConfig,
}

impl OutboxRelay {
    pub fn new(
        store: Store,
        bus: Arc<dyn Bus>,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
        config: RelayConfig,
    ) -> Self {
        OutboxRelay {
            store,
            bus,
            clock,
            wake,
            config,
        }
    }

    /// Publishes one batch. Returns how many messages it moved.
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        let now = self.clock.now();
        let batch = self
            .store
            .lease_outbox(self.config.batch, now, now + self.config.lease)
            .await?;
        if batch.is_empty() {
            return Ok(0);
        }
        let mut messages = Vec::with_capacity(batch.len());
        for row in &batch {
            match self.bus.topics().resolve(&row.topic) {
                Some(topic) => {
                    messages.push((topic, row.key.clone(), row.payload.clone().into_bytes()))
                }
                // Only Herald writes the outbox, so this is a bug; dropping
                // the row keeps it from blocking everything behind it.
                None => {
                    tracing::error!(topic = %row.topic, id = row.id, "outbox row names no topic; dropped")
                }
            }
        }
        let ids: Vec<i64> = batch.iter().map(|m| m.id).collect();
        if let Err(e) = self.bus.publish_all(&messages).await {
            // Back to the outbox at once: the next pass tries again rather
            // than waiting out the lease (a publish may time out after 30 s).
            if let Err(release) = self.store.release_outbox(&ids).await {
                tracing::warn!(error = %release, "cannot hand the batch back; it waits out its lease");
            }
            return Err(e.into());
        }
        self.store.delete_outbox(&ids).await?;
        metrics::counter!(herald_telemetry::OUTBOX_RELAYED).increment(batch.len() as u64);
        Ok(batch.len())
    }

    /// How long to wait before the next pass: the poll interval, longer
    /// after each failure in a row.
    fn wait(&self, failures: u32) -> Duration {
        self.config.poll_interval * failures.clamp(1, 50)
    }

    /// Relays what the outbox holds now, then stops: for a store that puts
    /// its announcements straight onto a queue in its own database, whose
    /// outbox only an older Herald filled. Polling it would take the one
    /// SQLite writer hundreds of times a second for nothing.
    pub async fn drain(self, shutdown: CancellationToken) {
        metrics::counter!(herald_telemetry::OUTBOX_RELAYED).increment(0);
        let mut failures = 0u32;
        loop {
            match self.relay_once().await {
                Ok(n) if n as i64 >= self.config.batch => failures = 0,
                Ok(_) => return,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, failures, "draining the outbox failed; will retry");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(self.wait(failures)) => {}
                    }
                }
            }
        }
    }

    /// Relays until `shutdown`, then makes one last pass.
    pub async fn run(self, shutdown: CancellationToken) {
        // Shown from the start, also where nothing goes through the outbox
        // (the embedded bus takes announcements directly).
        metrics::counter!(herald_telemetry::OUTBOX_RELAYED).increment(0);
        let mut failures = 0u32;
        loop {
            // Register before looking, so a poke during the pass is not lost.
            let woken = self.wake.clone();
            let notified = woken.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.relay_once().await {
                Ok(n) if n as i64 >= self.config.batch => {
                    failures = 0;
                    continue;
                }
                Ok(_) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, failures, "outbox relay failed; will retry");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = notified => {}
                _ = tokio::time::sleep(self.wait(failures)) => {}
            }
        }
        if let Err(e) = self.relay_once().await {
            tracing::warn!(error = %e, "final outbox pass failed; rows stay for the next start");
        }
    }
}
