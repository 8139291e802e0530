//! The Kafka bus, on rdkafka (any Kafka-API broker).
//!
//! Producing is idempotent (`enable.idempotence`, `acks=all`), batched and
//! keyed, so one user's records stay in order within a partition. Consuming
//! is at-least-once: offsets are stored only for records whose handling is
//! durable, and only up to the first record still in hand, so records
//! handled concurrently and finished out of order never move the committed
//! offset past one that is unfinished ([`consumer`]).

mod consumer;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::{Bus, BusError, Consumer, Topic, Topics};
use consumer::{KafkaConsumer, Rewind};

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`
    pub brokers: String,
    /// How soon the group notices a dead consumer; also how long some
    /// brokers hold a JoinGroup, so keep it short.
    pub session_timeout: Duration,
    /// Partitions for topics Herald creates.
    pub partitions: i32,
    pub replication: i32,
    /// How long a publish may wait for the broker's acknowledgement.
    pub publish_timeout: Duration,
    /// Records per producer batch at most (`batch.num.messages`); never
    /// more than `resume_window` where the window is on.
    pub batch_messages: u32,
    /// How many records before its committed offset a consumer starts
    /// reading a partition it is assigned, dropping those below the offset.
    /// tansu 0.6 answers a fetch from an offset inside a record batch with
    /// the *next* batch, so a consumer resuming mid-batch (after a rebalance
    /// or restart) would skip records; rewinding by at least the largest
    /// batch any producer writes makes that impossible. 0 turns it off (for
    /// Apache Kafka or Redpanda, which answer such fetches correctly).
    pub resume_window: i64,
    /// librdkafka's debug contexts (`cgrp,fetch`…), logged under the
    /// `librdkafka` target; `None` for none.
    pub debug: Option<String>,
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            session_timeout: Duration::from_secs(10),
            partitions: 8,
            replication: 1,
            publish_timeout: Duration::from_secs(30),
            batch_messages: 1000,
            // librdkafka's own default batch limit, so outside producers
            // left at their defaults are covered too.
            resume_window: 10_000,
            debug: None,
        }
    }
}

#[derive(Clone)]
pub struct KafkaBus {
    producer: Arc<ProducerSlot>,
    config: KafkaConfig,
    topics: Topics,
}

/// The producer in use, replaced when it hits a fatal error.
///
/// An idempotent producer that the broker fences (its epoch bumped under it,
/// which librdkafka does after request timeouts; tansu then answers
/// `PRODUCER_FENCED`) is dead for good: every later send fails. A process
/// that kept it could never publish again, so the bus makes a new one and
/// sends the failed batch again (consumers are idempotent, so a record the
/// old producer did get out is harmless twice).
struct ProducerSlot {
    current: Mutex<(u64, FutureProducer)>,
    config: ClientConfig,
}

impl ProducerSlot {
    fn get(&self) -> (u64, FutureProducer) {
        let slot = self.current.lock().unwrap_or_else(|p| p.into_inner());
        (slot.0, slot.1.clone())
    }

    /// Replaces generation `seen` if it died; returns whether it did.
    fn replace_if_dead(&self, seen: u64) -> Result<bool, BusError> {
        let mut slot = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if slot.0 != seen {
            return Ok(true);
        }
        let Some((code, reason)) = slot.1.client().fatal_error() else {
            return Ok(false);
        };
        tracing::warn!(?code, %reason, "the Kafka producer died; starting a new one");
        let producer: FutureProducer = self.config.create().map_err(kafka)?;
        *slot = (seen + 1, producer);
        Ok(true)
    }
}

fn kafka(e: KafkaError) -> BusError {
    BusError::Kafka(e.to_string())
}

impl KafkaBus {
    pub fn connect(config: KafkaConfig, topics: Topics) -> Result<Self, BusError> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set(
                "batch.num.messages",
                config.batch_messages.max(1).to_string(),
            )
            .set(
                "message.timeout.ms",
                config.publish_timeout.as_millis().to_string(),
            );
        if let Some(debug) = &config.debug {
            client.set("debug", debug);
        }
        let producer: FutureProducer = client.create().map_err(kafka)?;
        Ok(KafkaBus {
            producer: Arc::new(ProducerSlot {
                current: Mutex::new((0, producer)),
                config: client,
            }),
            config,
            topics,
        })
    }

    /// Sends every message with one producer; `Err` carries the first error.
    async fn send_all(
        &self,
        producer: &FutureProducer,
        messages: &[(Topic, String, Vec<u8>)],
    ) -> Result<(), BusError> {
        let sends = messages.iter().map(|(topic, key, payload)| {
            let record = FutureRecord::to(topic.name())
                .key(key.as_str())
                .payload(payload.as_slice());
            producer.send(record, self.config.publish_timeout)
        });
        for result in futures::future::join_all(sends).await {
            result.map_err(|(e, _)| kafka(e))?;
        }
        Ok(())
    }

    /// Creates every Herald topic that does not exist yet.
    pub async fn ensure_topics(&self) -> Result<(), BusError> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.config.brokers)
            .create()
            .map_err(kafka)?;
        let names: Vec<Topic> = self.topics.all();
        let new: Vec<NewTopic> = names
            .iter()
            .map(|t| {
                NewTopic::new(
                    t.name(),
                    self.config.partitions,
                    TopicReplication::Fixed(self.config.replication),
                )
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for result in admin.create_topics(&new, &options).await.map_err(kafka)? {
            match result {
                Ok(name) => {
                    tracing::info!(topic = %name, partitions = self.config.partitions, "created topic")
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(BusError::Kafka(format!("creating topic {name}: {code}")))
                }
            }
        }
        Ok(())
    }

    fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.config.brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // librdkafka waits up to 500 ms for a fetch to fill by default;
            // each pipeline hop would pay that when traffic is light.
            .set("fetch.wait.max.ms", "50")
            .set(
                "session.timeout.ms",
                self.config.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (self.config.session_timeout.as_millis() / 3)
                    .max(100)
                    .to_string(),
            );
        if let Some(debug) = &self.config.debug {
            config.set("debug", debug);
        }
        config
    }
}

#[async_trait]
impl Bus for KafkaBus {
    async fn publish(&self, topic: &Topic, key: &str, payload: &[u8]) -> Result<(), BusError> {
        self.publish_all(&[(topic.clone(), key.to_owned(), payload.to_vec())])
            .await
    }

    async fn publish_all(&self, messages: &[(Topic, String, Vec<u8>)]) -> Result<(), BusError> {
        let (generation, producer) = self.producer.get();
        match self.send_all(&producer, messages).await {
            Ok(()) => Ok(()),
            Err(e) => {
                if !self.producer.replace_if_dead(generation)? {
                    return Err(e);
                }
                let (_, fresh) = self.producer.get();
                self.send_all(&fresh, messages).await
            }
        }
    }

    async fn subscribe(&self, topic: &Topic, group: &str) -> Result<Box<dyn Consumer>, BusError> {
        let consumer: StreamConsumer<Rewind> = self
            .consumer_config(group)
            .create_with_context(Rewind::new(self.config.resume_window))
            .map_err(kafka)?;
        consumer.subscribe(&[topic.name()]).map_err(kafka)?;
        let mut consumer = KafkaConsumer::new(consumer);
        // Bounded: a broker that holds JoinGroups for a session timeout, and
        // a member of a dead process it waits out first, both fit.
        let wait = self.config.session_timeout * 3;
        if consumer.join(wait).await {
            tracing::info!(topic = %topic, group, "joined consumer group");
        } else {
            tracing::warn!(topic = %topic, group, ?wait, "no assignment from the group yet; consuming anyway");
        }
        Ok(Box::new(consumer))
    }

    async fn ping(&self) -> Result<(), BusError> {
        let (_, producer) = self.producer.get();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(5))
                .map(|_| ())
                .map_err(kafka)
        })
        .await
        .map_err(|e| BusError::Kafka(e.to_string()))?
    }

    fn topics(&self) -> &Topics {
        &self.topics
    }

    async fn backlog(&self, topic: &Topic, group: &str) -> Result<Option<i64>, BusError> {
        let consumer: BaseConsumer = self.consumer_config(group).create().map_err(kafka)?;
        let topic = topic.name().to_owned();
        tokio::task::spawn_blocking(move || {
            let timeout = Duration::from_secs(5);
            let metadata = consumer
                .fetch_metadata(Some(&topic), timeout)
                .map_err(kafka)?;
            let mut tpl = TopicPartitionList::new();
            for t in metadata.topics() {
                for p in t.partitions() {
                    tpl.add_partition(&topic, p.id());
                }
            }
            let committed = consumer.committed_offsets(tpl, timeout).map_err(kafka)?;
            let mut backlog = 0i64;
            for element in committed.elements() {
                let (low, high) = consumer
                    .fetch_watermarks(&topic, element.partition(), timeout)
                    .map_err(kafka)?;
                let position = match element.offset() {
                    Offset::Offset(o) => o,
                    _ => low,
                };
                backlog += (high - position).max(0);
            }
            Ok(Some(backlog))
        })
        .await
        .map_err(|e| BusError::Kafka(e.to_string()))?
    }
}
