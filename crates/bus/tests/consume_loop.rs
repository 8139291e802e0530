//! The consuming loop on the embedded bus: every record finished once,
//! poison dead-lettered, retriable failures tried again, batches handed to
//! handlers that take them, and everything acknowledged before it returns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herald_bus::{
    consume, Bus, ConsumeOptions, ConsumeStats, EmbeddedBus, EmbeddedConfig, HandleError, Handler,
    Record, Topics,
};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Recorder {
    /// Times each payload was handled.
    seen: Mutex<HashMap<String, usize>>,
    /// Sizes of the batches handed to `handle_batch`.
    batches: Mutex<Vec<usize>>,
    max_batch: usize,
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        let payload = String::from_utf8_lossy(&record.payload).into_owned();
        let times = {
            let mut seen = self.seen.lock().unwrap();
            let times = seen.entry(payload.clone()).or_default();
            *times += 1;
            *times
        };
        match payload.as_str() {
            "bad" => Err(HandleError::Poison("bad by design".into())),
            "flaky" if times == 1 => Err(HandleError::Retry("first try fails".into())),
            "busy" if times == 1 => Err(HandleError::Alone("held elsewhere at first".into())),
            _ => Ok(()),
        }
    }

    async fn handle_batch(&self, records: &[Record]) -> Vec<Result<(), HandleError>> {
        self.batches.lock().unwrap().push(records.len());
        let mut results = Vec::new();
        for record in records {
            results.push(self.handle(record).await);
        }
        results
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }
}

async fn run(
    max_batch: usize,
) -> (
    Arc<Recorder>,
    EmbeddedBus,
    Arc<ConsumeStats>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = herald_store::testing::sqlite_store(dir.path())
        .await
        .unwrap();
    let bus = EmbeddedBus::open(
        store.db().clone(),
        Topics::new("t."),
        EmbeddedConfig::default(),
    )
    .await
    .unwrap();
    let topic = bus.topics().events();
    let mut messages: Vec<_> = (0..100)
        .map(|i| (topic.clone(), "k".to_owned(), format!("{i}").into_bytes()))
        .collect();
    messages.push((topic.clone(), "k".into(), b"bad".to_vec()));
    messages.push((topic.clone(), "k".into(), b"flaky".to_vec()));
    messages.push((topic.clone(), "k".into(), b"busy".to_vec()));
    // Waiting before the loop starts, so batches can form.
    bus.publish_all(&messages).await.unwrap();

    let handler = Arc::new(Recorder {
        max_batch,
        ..Recorder::default()
    });
    let mut options = ConsumeOptions::new("test", "g", 16);
    options.retry_initial = Duration::from_millis(10);
    let stats = options.stats.clone();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(consume(
        Arc::new(bus.clone()),
        topic,
        handler.clone(),
        options,
        shutdown.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stats.handled() < 103 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "handled {}",
            stats.handled()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    running.await.unwrap().unwrap();
    (handler, bus, stats, dir)
}

async fn every_record_is_finished_once_and_acknowledged(max_batch: usize) -> Vec<usize> {
    let (handler, bus, stats, _dir) = run(max_batch).await;
    let seen = handler.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 103);
    assert_eq!(seen["flaky"], 2, "tried again after a retriable failure");
    assert_eq!(
        seen["busy"], 2,
        "handled again on its own, not dead-lettered"
    );
    assert!(
        seen.iter()
            .filter(|(p, _)| !["flaky", "busy"].contains(&p.as_str()))
            .all(|(_, n)| *n == 1),
        "{seen:?}"
    );
    assert_eq!(
        bus.len(&bus.topics().events()).await.unwrap(),
        0,
        "all acknowledged"
    );
    let letters = bus.peek(&bus.topics().dlq(), 10).await.unwrap();
    assert_eq!(letters.len(), 1, "the poison record is dead-lettered");
    assert_eq!(stats.dead_lettered(), 1, "and counted as such");
    assert_eq!(stats.handled(), 103, "among the records finished");
    let batches = handler.batches.lock().unwrap().clone();
    assert_eq!(
        stats.largest_batch() as usize,
        batches.iter().copied().max().unwrap_or(1),
        "the stats know the largest batch handed over"
    );
    batches
}

#[tokio::test]
async fn a_handler_of_single_records_gets_one_at_a_time() {
    let batches = every_record_is_finished_once_and_acknowledged(1).await;
    assert!(batches.is_empty(), "handle_batch never called: {batches:?}");
}

#[tokio::test]
async fn a_batching_handler_gets_what_is_waiting_up_to_its_batch() {
    let batches = every_record_is_finished_once_and_acknowledged(8).await;
    assert!(!batches.is_empty());
    assert!(batches.iter().all(|&n| (2..=8).contains(&n)), "{batches:?}");
}
