//! Herald's bus: the topics that connect API, router, workers and receipt
//! consumer.
//!
//! Services see two small traits, [`Bus`] to publish and [`Consumer`] to
//! receive. Each received [`Record`] carries its own acknowledgement, so a
//! service can work on several records at once and acknowledge each when its
//! effect is durable (at-least-once). Two implementations sit behind them:
//! [`EmbeddedBus`], a durable queue in the same SQLite file as the store, and
//! a Kafka one for production. [`connect`] picks one from configuration.

mod consume;
mod dead_letter;
mod embedded;
mod error;
mod kafka;
mod topic;

use std::sync::Arc;

use async_trait::async_trait;

pub use consume::{consume, dead_letter, ConsumeOptions, ConsumeStats, HandleError, Handler};
pub use dead_letter::DeadLetter;
pub use embedded::{EmbeddedBus, EmbeddedConfig};
pub use error::BusError;
pub use kafka::{KafkaBus, KafkaConfig};
pub use topic::{Topic, Topics};

/// Publishes to topics.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes one message and returns once the bus has it durably.
    async fn publish(&self, topic: &Topic, key: &str, payload: &[u8]) -> Result<(), BusError>;

    /// Publishes several messages; returns once all are durable. The default
    /// publishes them one by one.
    async fn publish_all(&self, messages: &[(Topic, String, Vec<u8>)]) -> Result<(), BusError> {
        for (topic, key, payload) in messages {
            self.publish(topic, key, payload).await?;
        }
        Ok(())
    }

    /// Joins consumer group `group` on `topic`.
    async fn subscribe(&self, topic: &Topic, group: &str) -> Result<Box<dyn Consumer>, BusError>;

    /// Checks the bus can be reached, for readiness probes.
    async fn ping(&self) -> Result<(), BusError>;

    /// Records on `topic` that consumer group `group` has not finished, if
    /// the bus can tell: the queue lag, for metrics and autoscaling.
    async fn backlog(&self, topic: &Topic, group: &str) -> Result<Option<i64>, BusError>;

    /// The topic names in use.
    fn topics(&self) -> &Topics;
}

/// Receives records from one topic for one consumer group.
#[async_trait]
pub trait Consumer: Send {
    /// Waits for the next record.
    async fn recv(&mut self) -> Result<Record, BusError>;

    /// Waits for one record, then takes up to `max` in all of those already
    /// at hand, without waiting for more: a record arriving alone is never
    /// held back for a batch to fill.
    async fn recv_batch(&mut self, max: usize) -> Result<Vec<Record>, BusError> {
        let _ = max;
        Ok(vec![self.recv().await?])
    }
}

/// Where a record sits in its topic: enough for its consumer to forget it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

/// Acknowledges records of one consumer: their effects are durable, the bus
/// may forget them.
#[async_trait]
pub trait Acker: Send + Sync {
    async fn ack(&self, topic: &str, positions: &[Position]) -> Result<(), BusError>;
}

/// One message received from a topic.
pub struct Record {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    /// How many times this record has been handed out, this time included
    /// (1 on the first delivery; always 1 where the bus cannot tell).
    pub delivery_count: u32,
    position: Position,
    acker: Arc<dyn Acker>,
}

impl Record {
    pub fn new(
        topic: String,
        key: String,
        payload: Vec<u8>,
        delivery_count: u32,
        position: Position,
        acker: Arc<dyn Acker>,
    ) -> Self {
        Record {
            topic,
            key,
            payload,
            delivery_count,
            position,
            acker,
        }
    }

    /// Acknowledges the record. Call it only once its effect is durable.
    pub async fn ack(self) -> Result<(), BusError> {
        self.acker.ack(&self.topic, &[self.position]).await
    }
}

/// Acknowledges many records at once: one call per consumer and topic (for
/// the embedded bus, one statement). Call it only once every effect is
/// durable.
pub async fn ack_all(records: Vec<Record>) -> Result<(), BusError> {
    let mut groups: Vec<(Arc<dyn Acker>, String, Vec<Position>)> = Vec::new();
    for record in records {
        match groups
            .iter_mut()
            .find(|(acker, topic, _)| Arc::ptr_eq(acker, &record.acker) && *topic == record.topic)
        {
            Some((_, _, positions)) => positions.push(record.position),
            None => groups.push((record.acker, record.topic, vec![record.position])),
        }
    }
    for (acker, topic, positions) in groups {
        acker.ack(&topic, &positions).await?;
    }
    Ok(())
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("topic", &self.topic)
            .field("key", &self.key)
            .field("bytes", &self.payload.len())
            .field("delivery_count", &self.delivery_count)
            .field("position", &self.position)
            .finish()
    }
}
