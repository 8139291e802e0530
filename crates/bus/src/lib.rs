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
}

/// Acknowledges one record: its effect is durable, the bus may forget it.
#[async_trait]
pub trait Acker: Send + Sync {
    async fn ack(&self) -> Result<(), BusError>;
}

/// One message received from a topic.
pub struct Record {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    /// How many times this record has been handed out, this time included
    /// (1 on the first delivery; always 1 where the bus cannot tell).
    pub delivery_count: u32,
    acker: Box<dyn Acker>,
}

impl Record {
    pub fn new(
        topic: String,
        key: String,
        payload: Vec<u8>,
        delivery_count: u32,
        acker: Box<dyn Acker>,
    ) -> Self {
        Record {
            topic,
            key,
            payload,
            delivery_count,
            acker,
        }
    }

    /// Acknowledges the record. Call it only once its effect is durable.
    pub async fn ack(self) -> Result<(), BusError> {
        self.acker.ack().await
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("topic", &self.topic)
            .field("key", &self.key)
            .field("bytes", &self.payload.len())
            .field("delivery_count", &self.delivery_count)
            .finish()
    }
}
