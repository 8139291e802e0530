//! The bus's behaviour, checked on each implementation.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use herald_bus::{Bus, EmbeddedBus, EmbeddedConfig, KafkaBus, KafkaConfig, Topics};
use tokio::time::timeout;

/// Covers a consumer group join, which tansu holds for about the session timeout.
const WAIT: Duration = Duration::from_secs(30);

async fn embedded(dir: &std::path::Path, config: EmbeddedConfig) -> EmbeddedBus {
    let store = herald_store::testing::sqlite_store(dir).await.unwrap();
    EmbeddedBus::open(
        store.db().clone(),
        Topics::new(format!("t{}.", std::process::id())),
        config,
    )
    .await
    .unwrap()
}

/// A Kafka bus on the test broker, with topics of its own.
async fn kafka(partitions: i32) -> KafkaBus {
    let brokers =
        std::env::var("HERALD_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let config = KafkaConfig {
        session_timeout: Duration::from_secs(6),
        partitions,
        // Batches of many records, so resuming inside one is exercised.
        batch_messages: 1000,
        ..KafkaConfig::new(brokers)
    };
    let prefix = format!("test.{}.", uuid::Uuid::new_v4().simple());
    let bus = KafkaBus::connect(config, Topics::new(prefix)).unwrap();
    bus.ensure_topics().await.unwrap();
    bus
}

/// Receives and acknowledges until nothing more comes (the first record may
/// wait for a group join); returns the payloads in order.
async fn drain(consumer: &mut dyn herald_bus::Consumer) -> Vec<String> {
    let mut seen = Vec::new();
    let mut wait = WAIT;
    while let Ok(Ok(record)) = timeout(wait, consumer.recv()).await {
        seen.push(String::from_utf8(record.payload.clone()).unwrap());
        record.ack().await.unwrap();
        wait = Duration::from_secs(2);
    }
    seen
}

async fn records_arrive_once_in_order_with_key_and_payload(bus: Arc<dyn Bus>) {
    let topic = bus.topics().events();
    for i in 0..5 {
        bus.publish(&topic, &format!("k{i}"), format!("p{i}").as_bytes())
            .await
            .unwrap();
    }
    let mut consumer = bus.subscribe(&topic, "g").await.unwrap();
    for i in 0..5 {
        let record = timeout(WAIT, consumer.recv()).await.unwrap().unwrap();
        assert_eq!(
            record.key,
            format!("k{i}"),
            "one key space, one partition: in order"
        );
        assert_eq!(
            (record.key.as_str(), record.payload.as_slice()),
            (format!("k{i}").as_str(), format!("p{i}").as_bytes())
        );
        assert_eq!(record.topic, topic.name());
        record.ack().await.unwrap();
    }
    assert!(
        timeout(Duration::from_millis(300), consumer.recv())
            .await
            .is_err(),
        "nothing more"
    );
}

/// One `publish_all` of more records than one statement writes (the
/// embedded bus writes 200 rows per `INSERT`): all of them, in order.
async fn a_large_publish_arrives_whole_and_in_order(bus: Arc<dyn Bus>) {
    let topic = bus.topics().events();
    let records: Vec<_> = (0..450)
        .map(|i| (topic.clone(), format!("k{i}"), format!("{i}").into_bytes()))
        .collect();
    bus.publish_all(&records).await.unwrap();
    let mut consumer = bus.subscribe(&topic, "large").await.unwrap();
    let seen = drain(consumer.as_mut()).await;
    let expected: Vec<String> = (0..450).map(|i| i.to_string()).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn embedded_a_large_publish_arrives_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    a_large_publish_arrives_whole_and_in_order(Arc::new(
        embedded(dir.path(), EmbeddedConfig::default()).await,
    ))
    .await;
}

#[tokio::test]
async fn kafka_a_large_publish_arrives_whole_and_in_order() {
    // One partition, so order holds across keys.
    a_large_publish_arrives_whole_and_in_order(Arc::new(kafka(1).await)).await;
}

async fn many_consumers_see_every_record_exactly_once(bus: Arc<dyn Bus>) {
    let topic = bus.topics().receipts();
    let messages: Vec<_> = (0..2000)
        .map(|i| (topic.clone(), format!("k{i}"), format!("{i}").into_bytes()))
        .collect();
    for chunk in messages.chunks(500) {
        bus.publish_all(chunk).await.unwrap();
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut consumer = bus.subscribe(&topic, "g").await.unwrap();
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            // The first wait covers the group's join; later ones end the run.
            let mut wait = WAIT;
            while let Ok(Ok(record)) = timeout(wait, consumer.recv()).await {
                wait = Duration::from_secs(2);
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8(record.payload.clone()).unwrap());
                record.ack().await.unwrap();
            }
        }));
    }
    futures::future::join_all(tasks).await;
    let seen = seen.lock().unwrap();
    let distinct: HashSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), distinct.len()), (2000, 2000));
}

/// A batch takes what is waiting and never waits to fill; acknowledging it
/// at once forgets every record in it, and only those.
async fn batches_take_what_is_waiting_and_are_acknowledged_together(bus: Arc<dyn Bus>) {
    let topic = bus.topics().receipts();
    let mut consumer = bus.subscribe(&topic, "batches").await.unwrap();
    bus.publish(&topic, "k", b"alone").await.unwrap();
    let alone = timeout(WAIT, consumer.recv_batch(64))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alone.len(), 1, "one record waiting: a batch of one");
    herald_bus::ack_all(alone).await.unwrap();

    let messages: Vec<_> = (0..10)
        .map(|i| (topic.clone(), "k".to_owned(), format!("{i}").into_bytes()))
        .collect();
    bus.publish_all(&messages).await.unwrap();
    let mut seen = Vec::new();
    let mut kept = None;
    while seen.len() < 10 {
        let batch = timeout(WAIT, consumer.recv_batch(4))
            .await
            .unwrap()
            .unwrap();
        assert!((1..=4).contains(&batch.len()), "at most 4: {}", batch.len());
        let mut batch = batch;
        for record in &batch {
            seen.push(String::from_utf8(record.payload.clone()).unwrap());
        }
        if kept.is_none() {
            // The first record of the first batch stays unacknowledged.
            kept = Some(batch.remove(0));
        }
        herald_bus::ack_all(batch).await.unwrap();
    }
    let expected: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    assert_eq!(seen, expected, "one key: in order, each once");
    assert!(
        timeout(Duration::from_millis(300), consumer.recv())
            .await
            .is_err(),
        "nothing acknowledged comes back"
    );
    kept.unwrap().ack().await.unwrap();
}

#[tokio::test]
async fn embedded_batches_take_what_is_waiting_and_are_acknowledged_together() {
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded(dir.path(), EmbeddedConfig::default()).await;
    batches_take_what_is_waiting_and_are_acknowledged_together(Arc::new(bus.clone())).await;
    assert_eq!(bus.len(&bus.topics().receipts()).await.unwrap(), 0);
}

#[tokio::test]
async fn kafka_batches_take_what_is_waiting_and_are_acknowledged_together() {
    batches_take_what_is_waiting_and_are_acknowledged_together(Arc::new(kafka(1).await)).await;
}

#[tokio::test]
async fn embedded_records_arrive_once_in_order_with_key_and_payload() {
    let dir = tempfile::tempdir().unwrap();
    records_arrive_once_in_order_with_key_and_payload(Arc::new(
        embedded(dir.path(), EmbeddedConfig::default()).await,
    ))
    .await;
}

#[tokio::test]
async fn embedded_many_consumers_see_every_record_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    many_consumers_see_every_record_exactly_once(Arc::new(
        embedded(dir.path(), EmbeddedConfig::default()).await,
    ))
    .await;
}

#[tokio::test]
async fn kafka_records_arrive_once_in_order_with_key_and_payload() {
    // One partition, so order holds across keys.
    records_arrive_once_in_order_with_key_and_payload(Arc::new(kafka(1).await)).await;
}

#[tokio::test]
async fn kafka_many_consumers_see_every_record_exactly_once() {
    many_consumers_see_every_record_exactly_once(Arc::new(kafka(8).await)).await;
}

#[tokio::test]
async fn kafka_commits_only_the_finished_prefix_so_a_new_member_resumes_at_the_first_unfinished() {
    let bus = kafka(1).await;
    let topic = bus.topics().events();
    for i in 0..5 {
        bus.publish(&topic, "same-key", format!("{i}").as_bytes())
            .await
            .unwrap();
    }
    let mut consumer = bus.subscribe(&topic, "resume").await.unwrap();
    let mut records = Vec::new();
    for _ in 0..5 {
        records.push(timeout(WAIT, consumer.recv()).await.unwrap().unwrap());
    }
    let unfinished = records.remove(2);
    for record in records {
        record.ack().await.unwrap();
    }
    drop(unfinished);
    drop(consumer);
    let mut consumer = bus.subscribe(&topic, "resume").await.unwrap();
    let again = drain(consumer.as_mut()).await;
    assert_eq!(
        again,
        vec!["2", "3", "4"],
        "resumes at the unfinished record; redelivers what followed it"
    );
}

/// tansu answers a fetch from an offset inside a record batch with the next
/// batch; without the rewind on assignment, a consumer resuming at record 20
/// of a 50-record batch would see nothing until record 50.
#[tokio::test]
async fn kafka_resuming_inside_a_batch_of_many_records_skips_nothing() {
    let bus = kafka(1).await;
    let topic = bus.topics().events();
    // One publish_all of 50 records: the producer sends them as one batch.
    let batch: Vec<_> = (0..50)
        .map(|i| {
            (
                topic.clone(),
                "same-key".to_owned(),
                format!("{i}").into_bytes(),
            )
        })
        .collect();
    bus.publish_all(&batch).await.unwrap();
    let mut consumer = bus.subscribe(&topic, "mid-batch").await.unwrap();
    let mut records = Vec::new();
    for _ in 0..50 {
        records.push(timeout(WAIT, consumer.recv()).await.unwrap().unwrap());
    }
    // 0..20 finished, 20 still in hand when the consumer dies, the rest done.
    let unfinished = records.remove(20);
    for record in records {
        record.ack().await.unwrap();
    }
    drop(unfinished);
    drop(consumer);

    let mut consumer = bus.subscribe(&topic, "mid-batch").await.unwrap();
    let again = drain(consumer.as_mut()).await;
    let expected: Vec<String> = (20..50).map(|i| i.to_string()).collect();
    assert_eq!(
        again, expected,
        "resumes at record 20, inside the batch, and nothing below it comes back"
    );
}

#[tokio::test]
async fn kafka_a_surviving_member_takes_over_a_lost_members_partitions() {
    let bus = kafka(4).await;
    let topic = bus.topics().events();
    let mut a = bus.subscribe(&topic, "takeover").await.unwrap();
    let mut b = bus.subscribe(&topic, "takeover").await.unwrap();
    let first: Vec<_> = (0..40)
        .map(|i| (topic.clone(), format!("k{i}"), format!("{i}").into_bytes()))
        .collect();
    bus.publish_all(&first).await.unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    // b acknowledges everything it gets, all along.
    let b_task = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Ok(Ok(record)) = timeout(Duration::from_secs(40), b.recv()).await {
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8(record.payload.clone()).unwrap());
                record.ack().await.unwrap();
            }
        })
    };
    // a acknowledges a few, keeps one unfinished, and dies.
    let mut unfinished = None;
    for n in 0..6 {
        let Ok(Ok(record)) = timeout(Duration::from_secs(20), a.recv()).await else {
            break;
        };
        if n == 3 {
            unfinished = Some(record);
        } else {
            seen.lock()
                .unwrap()
                .push(String::from_utf8(record.payload.clone()).unwrap());
            record.ack().await.unwrap();
        }
    }
    drop(unfinished);
    drop(a);
    let second: Vec<_> = (40..80)
        .map(|i| (topic.clone(), format!("k{i}"), format!("{i}").into_bytes()))
        .collect();
    bus.publish_all(&second).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let distinct: HashSet<String> = seen.lock().unwrap().iter().cloned().collect();
        if distinct.len() == 80 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b saw {} of 80: missing {:?}",
            distinct.len(),
            (0..80)
                .map(|i| i.to_string())
                .filter(|i| !distinct.contains(i))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b_task.abort();
}

/// A stage stopped as soon as it started (a restart, a crash loop) must
/// not leave a half-joined member in the group: tansu 0.6 never hands the
/// partitions such a member was given to anyone once it expires, so the
/// next consumer of the group would miss their records for good.
#[tokio::test]
async fn kafka_a_consumer_stopped_right_after_subscribing_leaves_every_partition_to_the_next() {
    let bus = kafka(4).await;
    let topic = bus.topics().events();
    // Stopped after various short lives, so one lands while the JoinGroup
    // would be in flight.
    for life in [5, 20, 50, 100, 200] {
        let mut short = bus.subscribe(&topic, "restarted").await.unwrap();
        let _ = timeout(Duration::from_millis(life), short.recv()).await;
    }
    let records: Vec<_> = (0..40)
        .map(|i| (topic.clone(), format!("k{i}"), format!("{i}").into_bytes()))
        .collect();
    bus.publish_all(&records).await.unwrap();
    let mut next = bus.subscribe(&topic, "restarted").await.unwrap();
    let seen: HashSet<String> = drain(next.as_mut()).await.into_iter().collect();
    let missing: Vec<_> = (0..40)
        .map(|i| i.to_string())
        .filter(|i| !seen.contains(i))
        .collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
}

#[tokio::test]
async fn kafka_backlog_counts_what_the_group_has_not_finished() {
    let bus = kafka(2).await;
    let topic = bus.topics().receipts();
    // One publish at a time, so each record is a batch of its own: tansu
    // 0.6 reports a partition's high watermark as its last batch's base
    // offset + 1, so behind a batch of many records the backlog it allows
    // us to compute is short by that batch's size less one.
    for i in 0..10 {
        bus.publish(&topic, &format!("k{i}"), b"x").await.unwrap();
    }
    assert_eq!(bus.backlog(&topic, "lagging").await.unwrap(), Some(10));
    let mut consumer = bus.subscribe(&topic, "lagging").await.unwrap();
    for _ in 0..10 {
        timeout(WAIT, consumer.recv())
            .await
            .unwrap()
            .unwrap()
            .ack()
            .await
            .unwrap();
    }
    drop(consumer);
    assert_eq!(bus.backlog(&topic, "lagging").await.unwrap(), Some(0));
    bus.ping().await.unwrap();
}

#[tokio::test]
async fn an_unacknowledged_record_comes_back_when_its_lease_ends() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        lease: Duration::from_millis(200),
        poll_interval: Duration::from_millis(20),
        batch: 8,
    };
    let bus = embedded(dir.path(), config).await;
    let topic = bus.topics().dlq();
    bus.publish(&topic, "k", b"once").await.unwrap();
    let mut consumer = bus.subscribe(&topic, "g").await.unwrap();
    let first = timeout(WAIT, consumer.recv()).await.unwrap().unwrap();
    assert_eq!(first.delivery_count, 1);
    drop(first);
    let again = timeout(WAIT, consumer.recv()).await.unwrap().unwrap();
    assert_eq!(
        (again.payload.as_slice(), again.delivery_count),
        (&b"once"[..], 2)
    );
    again.ack().await.unwrap();
    assert!(timeout(Duration::from_millis(500), consumer.recv())
        .await
        .is_err());
    assert_eq!(bus.len(&topic).await.unwrap(), 0);
}

#[tokio::test]
async fn a_message_whose_lease_ran_out_comes_back_before_newer_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        batch: 1,
        ..EmbeddedConfig::default()
    };
    let bus = embedded(dir.path(), config).await;
    let topic = bus.topics().events();
    bus.publish(&topic, "k", b"first").await.unwrap();
    let mut consumer = bus.subscribe(&topic, "g").await.unwrap();
    let first = timeout(WAIT, consumer.recv()).await.unwrap().unwrap();
    drop(first);
    for payload in [b"second", b"third!"] {
        bus.publish(&topic, "k", payload).await.unwrap();
    }
    // The lease of the unacknowledged first ends (set in the past rather
    // than waited for).
    let store = herald_store::testing::sqlite_store(dir.path())
        .await
        .unwrap();
    sqlx::query("UPDATE bus_messages SET lease_until = 1 WHERE lease_until > 1")
        .execute(&mut *store.db().writer().await.unwrap())
        .await
        .unwrap();
    let mut order = Vec::new();
    for _ in 0..3 {
        let record = timeout(WAIT, consumer.recv()).await.unwrap().unwrap();
        order.push((record.payload.clone(), record.delivery_count));
        record.ack().await.unwrap();
    }
    assert_eq!(
        order,
        [
            (b"first".to_vec(), 2),
            (b"second".to_vec(), 1),
            (b"third!".to_vec(), 1)
        ]
    );
}

#[tokio::test]
async fn reopening_the_embedded_bus_hands_out_what_a_dead_process_had_leased() {
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded(dir.path(), EmbeddedConfig::default()).await;
    let topic = bus.topics().events();
    bus.publish(&topic, "k", b"in flight").await.unwrap();
    let mut consumer = bus.subscribe(&topic, "g").await.unwrap();
    let _leased = timeout(WAIT, consumer.recv()).await.unwrap().unwrap();
    let store = herald_store::testing::sqlite_store(dir.path())
        .await
        .unwrap();
    let reopened = EmbeddedBus::open(
        store.db().clone(),
        bus.topics().clone(),
        EmbeddedConfig::default(),
    )
    .await
    .unwrap();
    let mut consumer = reopened.subscribe(&topic, "g").await.unwrap();
    let record = timeout(WAIT, consumer.recv()).await.unwrap().unwrap();
    assert_eq!(
        (record.payload.as_slice(), record.delivery_count),
        (&b"in flight"[..], 2)
    );
}

#[tokio::test]
async fn a_waiting_consumer_is_woken_by_a_publish_without_polling() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        poll_interval: Duration::from_secs(3600),
        ..EmbeddedConfig::default()
    };
    let bus = embedded(dir.path(), config).await;
    let topic = bus.topics().deliveries(herald_domain::Channel::Sms);
    let mut consumer = bus.subscribe(&topic, "g").await.unwrap();
    let waiting = tokio::spawn(async move { consumer.recv().await.map(|r| r.payload) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    bus.publish(&topic, "k", b"wake").await.unwrap();
    let payload = timeout(WAIT, waiting)
        .await
        .expect("woken without a poll")
        .unwrap()
        .unwrap();
    assert_eq!(payload, b"wake");
}

/// `HERALD_KAFKA_DEBUG` is handed to librdkafka as is: a context it does
/// not know is refused when the bus is made, not ignored.
#[test]
fn kafka_debug_contexts_are_checked_when_the_bus_is_made() {
    let with = |debug: &str| {
        let config = KafkaConfig {
            debug: Some(debug.to_owned()),
            ..KafkaConfig::new("127.0.0.1:9")
        };
        KafkaBus::connect(config, Topics::new("t."))
    };
    assert!(with("cgrp,fetch").is_ok());
    let refused = with("no-such-context").err().expect("refused");
    assert!(refused.to_string().contains("debug"), "{refused}");
}
