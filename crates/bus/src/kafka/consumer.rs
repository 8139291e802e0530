//! Consuming from Kafka: records handed out one by one, offsets committed
//! only for a finished prefix, and partitions rewound on assignment so a
//! broker that answers a fetch from inside a record batch with the *next*
//! batch cannot make a resuming consumer skip records.
//!
//! The rewind: when the group hands this consumer a partition whose
//! committed offset is `O`, it starts fetching at `O - window` instead and
//! drops every record below `O` (finished before, by whoever held the
//! partition). A fetch from `O - window` may itself land inside a batch and
//! skip to the next one, but that batch starts at or before `O` as long as
//! no batch holds more than `window` records, so record `O` always arrives.
//! On brokers that answer mid-batch fetches correctly (Apache Kafka,
//! Redpanda) a window of 0 turns this off.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt as _;
use rdkafka::bindings::rd_kafka_resp_err_t as RespErr;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, Consumer as _, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};

use super::kafka;
use crate::{Acker, BusError, Consumer, Position, Record};

type PartitionKey = (String, i32);

/// How long a rewind waits for the group's committed offsets.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(10);
const COMMITTED_ATTEMPTS: u32 = 3;

/// The consumer's context: rewinds newly assigned partitions.
pub(super) struct Rewind {
    window: i64,
    /// Per partition, the committed offset at assignment: records below it
    /// were finished before and are dropped.
    floors: Arc<Mutex<HashMap<PartitionKey, i64>>>,
    /// Set once the group has given this consumer an assignment (possibly
    /// empty): from then on it has a member id and leaves the group cleanly.
    joined: AtomicBool,
}

impl Rewind {
    pub(super) fn new(window: i64) -> Self {
        Rewind {
            window: window.max(0),
            floors: Arc::default(),
            joined: AtomicBool::new(false),
        }
    }

    /// Sets each partition's start `window` records before its committed
    /// offset and remembers that offset as the partition's floor.
    fn rewind(&self, consumer: &BaseConsumer<Self>, assigned: &mut TopicPartitionList) {
        if self.window == 0 || assigned.count() == 0 {
            return;
        }
        let mut committed = None;
        for attempt in 1..=COMMITTED_ATTEMPTS {
            match consumer.committed_offsets(assigned.clone(), COMMITTED_TIMEOUT) {
                Ok(offsets) => {
                    committed = Some(offsets);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "cannot read committed offsets to rewind")
                }
            }
        }
        let Some(committed) = committed else {
            tracing::error!(
                "assigned partitions resume at their committed offsets without a rewind; \
                 a broker that skips to the next batch may skip records"
            );
            return;
        };
        let mut floors = self.floors.lock().unwrap_or_else(|p| p.into_inner());
        for element in committed.elements() {
            let key = (element.topic().to_owned(), element.partition());
            let Offset::Offset(resume) = element.offset() else {
                // Nothing committed yet: the reset policy starts at the
                // log's beginning, which is a batch boundary.
                floors.remove(&key);
                continue;
            };
            let start = (resume - self.window).max(0);
            if let Err(e) = assigned.set_partition_offset(&key.0, key.1, Offset::Offset(start)) {
                tracing::warn!(topic = %key.0, partition = key.1, error = %e, "cannot rewind");
                continue;
            }
            tracing::debug!(topic = %key.0, partition = key.1, resume, start, "rewound");
            floors.insert(key, resume);
        }
    }

    /// Whether a record at `offset` was finished before this assignment.
    fn below_floor(&self, key: &PartitionKey, offset: i64) -> bool {
        let floors = self.floors.lock().unwrap_or_else(|p| p.into_inner());
        floors.get(key).is_some_and(|&floor| offset < floor)
    }
}

impl ClientContext for Rewind {}

impl ConsumerContext for Rewind {
    /// librdkafka's own rebalance, with the rewind before an assignment.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.rewind(consumer, partitions);
                let assigned = if cooperative {
                    consumer.incremental_assign(partitions)
                } else {
                    consumer.assign(partitions)
                };
                self.joined.store(true, Ordering::Release);
                assigned
            }
            RespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS if cooperative => {
                consumer.incremental_unassign(partitions)
            }
            RespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => consumer.unassign(),
            other => {
                tracing::warn!(error = ?other, "rebalance failed; dropping the assignment");
                if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                }
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot apply the group's assignment");
        }
    }
}

/// Records in hand per partition, so only a finished prefix is committed.
#[derive(Default)]
struct PartitionOffsets {
    in_hand: BTreeSet<i64>,
    highest_done: Option<i64>,
}

impl PartitionOffsets {
    /// The next offset the group may resume from, after `offset` is done.
    fn done(&mut self, offset: i64) -> Option<i64> {
        self.in_hand.remove(&offset);
        self.highest_done = Some(self.highest_done.map_or(offset, |h| h.max(offset)));
        match self.in_hand.first() {
            Some(&first) => Some(first),
            None => self.highest_done.map(|h| h + 1),
        }
    }
}

type OffsetBook = Arc<Mutex<HashMap<PartitionKey, PartitionOffsets>>>;

pub(super) struct KafkaConsumer {
    consumer: Arc<StreamConsumer<Rewind>>,
    acker: Arc<KafkaAcker>,
    /// Records that arrived while [`KafkaConsumer::join`] waited.
    early: VecDeque<Record>,
}

impl KafkaConsumer {
    pub(super) fn new(consumer: StreamConsumer<Rewind>) -> Self {
        let consumer = Arc::new(consumer);
        KafkaConsumer {
            acker: Arc::new(KafkaAcker {
                consumer: consumer.clone(),
                offsets: Arc::default(),
            }),
            consumer,
            early: VecDeque::new(),
        }
    }

    /// Waits, up to `timeout`, until the group has given this consumer its
    /// first assignment, keeping any record that arrives meanwhile.
    ///
    /// A consumer closed while its first JoinGroup is in flight has no
    /// member id yet, so it cannot leave: the broker keeps the member it
    /// set aside for it until the session times out. On Apache Kafka that
    /// delays the next rebalance; on tansu 0.6 the expiry of such a member
    /// leaves the partitions it had been given with nobody, for good (a
    /// restarted stage then never saw some records). Joining before the
    /// stage starts work means a stop always leaves cleanly.
    pub(super) async fn join(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        // Rebalance callbacks run only while the consumer is polled.
        while !self.consumer.context().joined.load(Ordering::Acquire) {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            let slice = (deadline - now).min(Duration::from_millis(50));
            match tokio::time::timeout(slice, self.next()).await {
                Ok(Ok(record)) => self.early.push_back(record),
                Ok(Err(e)) => tracing::debug!(error = %e, "while joining the group"),
                Err(_) => {}
            }
        }
        true
    }

    /// The next record from librdkafka, skipping those below the floor.
    async fn next(&self) -> Result<Record, BusError> {
        loop {
            let message = self.consumer.recv().await.map_err(kafka)?;
            let key = (message.topic().to_owned(), message.partition());
            let offset = message.offset();
            if self.consumer.context().below_floor(&key, offset) {
                continue;
            }
            self.acker.in_hand(&key, offset);
            let record_key = message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default();
            let payload = message.payload().map(<[u8]>::to_vec).unwrap_or_default();
            drop(message);
            let position = Position {
                partition: key.1,
                offset,
            };
            let acker: Arc<dyn Acker> = self.acker.clone();
            return Ok(Record::new(key.0, record_key, payload, 1, position, acker));
        }
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn recv(&mut self) -> Result<Record, BusError> {
        match self.early.pop_front() {
            Some(record) => Ok(record),
            None => self.next().await,
        }
    }

    async fn recv_batch(&mut self, max: usize) -> Result<Vec<Record>, BusError> {
        let mut batch = vec![self.recv().await?];
        while batch.len() < max {
            // Only what librdkafka has already fetched: never wait for more.
            match self.recv().now_or_never() {
                Some(Ok(record)) => batch.push(record),
                Some(Err(_)) | None => break,
            }
        }
        Ok(batch)
    }
}

struct KafkaAcker {
    consumer: Arc<StreamConsumer<Rewind>>,
    offsets: OffsetBook,
}

impl KafkaAcker {
    fn in_hand(&self, key: &PartitionKey, offset: i64) {
        let mut book = self.offsets.lock().unwrap_or_else(|p| p.into_inner());
        book.entry(key.clone()).or_default().in_hand.insert(offset);
    }
}

#[async_trait]
impl Acker for KafkaAcker {
    async fn ack(&self, topic: &str, positions: &[Position]) -> Result<(), BusError> {
        let mut resume: HashMap<i32, i64> = HashMap::new();
        {
            let mut book = self.offsets.lock().unwrap_or_else(|p| p.into_inner());
            for position in positions {
                let offsets = book
                    .entry((topic.to_owned(), position.partition))
                    .or_default();
                if let Some(next) = offsets.done(position.offset) {
                    resume.insert(position.partition, next);
                }
            }
        }
        if resume.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (&partition, &next) in &resume {
            tpl.add_partition_offset(topic, partition, Offset::Offset(next))
                .map_err(kafka)?;
        }
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            // After a rebalance a partition may be someone else's; its new
            // owner handles the records again, which is safe.
            tracing::debug!(%topic, error = %e, "offsets not stored");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::PartitionOffsets;

    #[test]
    fn only_a_finished_prefix_of_offsets_is_committed() {
        let mut p = PartitionOffsets::default();
        p.in_hand.extend([10, 11, 12, 13]);
        assert_eq!(p.done(12), Some(10), "10 and 11 are still in hand");
        assert_eq!(p.done(10), Some(11));
        assert_eq!(p.done(13), Some(11));
        assert_eq!(p.done(11), Some(14), "all done: resume after the highest");
        p.in_hand.insert(14);
        assert_eq!(p.done(14), Some(15));
    }
}
