//! The embedded bus as the store's same-database queue: what the store
//! announces goes onto the bus in the announcing transaction, with no
//! outbox row and no relay.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use herald_bus::{Bus, EmbeddedBus, EmbeddedConfig, Topics};
use herald_domain::NotificationEvent;
use herald_store::{CreateNotification, Created, OutboxMessage, Store};
use tokio::time::timeout;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
}

async fn store_on_its_bus(dir: &std::path::Path) -> (Store, EmbeddedBus) {
    let store = herald_store::testing::sqlite_store(dir).await.unwrap();
    // No poll worth the name: a consumer here gets a message only because
    // the commit that enqueued it woke it.
    let config = EmbeddedConfig {
        poll_interval: Duration::from_secs(3600),
        ..EmbeddedConfig::default()
    };
    let bus = EmbeddedBus::open(store.db().clone(), Topics::new("herald."), config)
        .await
        .unwrap();
    (store.with_queue(Arc::new(bus.clone())), bus)
}

fn event(id: &str) -> NotificationEvent {
    let json = serde_json::json!({"event_id": id, "template": "welcome", "recipients": ["ada"],
        "params": {"name": "Ada"}});
    serde_json::from_value(json).unwrap()
}

fn create<'a>(event: &'a NotificationEvent, payload: &str) -> CreateNotification<'a> {
    CreateNotification {
        event,
        idempotency: Some(("key-1", "hash-1")),
        announce: OutboxMessage::new("events", "ada", payload),
        now: t0(),
    }
}

#[tokio::test]
async fn a_new_notification_is_on_the_bus_when_its_transaction_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (store, bus) = store_on_its_bus(dir.path()).await;
    let events = bus.topics().events();
    let mut consumer = bus.subscribe(&events, "router").await.unwrap();

    let e = event("e1");
    let created = store
        .create_notification(create(&e, "first"))
        .await
        .unwrap();
    assert_eq!(created, Created::New(e.notification_id()));
    assert_eq!(store.outbox_len().await.unwrap(), 0, "no outbox hop");
    assert_eq!(
        bus.peek(&events, 10).await.unwrap(),
        vec![("ada".to_owned(), b"first".to_vec())]
    );
    let record = timeout(Duration::from_secs(10), consumer.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.key.as_str(), record.payload.as_slice()),
        ("ada", &b"first"[..])
    );

    // A replay of the same request announces nothing more.
    let again = store
        .create_notification(create(&e, "second"))
        .await
        .unwrap();
    assert_eq!(again, Created::Replayed(e.notification_id()));
    assert_eq!(bus.len(&events).await.unwrap(), 1);
}

#[tokio::test]
async fn announcements_go_to_their_topic_and_one_naming_no_topic_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (store, bus) = store_on_its_bus(dir.path()).await;
    store
        .enqueue_outbox(&OutboxMessage::new("receipts", "ada", "read"), t0())
        .await
        .unwrap();
    store
        .enqueue_outbox(&OutboxMessage::new("no-such-topic", "ada", "lost"), t0())
        .await
        .unwrap();
    assert_eq!(
        bus.peek(&bus.topics().receipts(), 10).await.unwrap(),
        vec![("ada".to_owned(), b"read".to_vec())]
    );
    assert_eq!(bus.len(&bus.topics().events()).await.unwrap(), 0);
    assert_eq!(store.outbox_len().await.unwrap(), 0);
}

#[tokio::test]
async fn a_store_without_the_queue_still_uses_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let (with_queue, bus) = store_on_its_bus(dir.path()).await;
    let plain = Store::new(with_queue.db().clone());
    let e = event("e2");
    plain
        .create_notification(create(&e, "outboxed"))
        .await
        .unwrap();
    assert_eq!(plain.outbox_len().await.unwrap(), 1);
    assert_eq!(bus.len(&bus.topics().events()).await.unwrap(), 0);
}

#[tokio::test]
async fn the_queue_brings_its_own_table_to_a_database_without_the_stores() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bare.db").display());
    let db = herald_store::Db::connect(&url, 2).await.unwrap();
    let bus = EmbeddedBus::open(
        db.clone(),
        Topics::new("herald."),
        EmbeddedConfig::default(),
    )
    .await
    .unwrap();
    let events = bus.topics().events();
    let mut consumer = bus.subscribe(&events, "router").await.unwrap();
    bus.publish(&events, "ada", b"hello").await.unwrap();
    let record = timeout(Duration::from_secs(10), consumer.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.payload, b"hello");
    record.ack().await.unwrap();
    assert_eq!(bus.len(&events).await.unwrap(), 0);
    // Opening again (the next start) keeps what is there.
    bus.publish(&events, "ada", b"kept").await.unwrap();
    let again = EmbeddedBus::open(db, Topics::new("herald."), EmbeddedConfig::default())
        .await
        .unwrap();
    assert_eq!(again.len(&events).await.unwrap(), 1);
}

/// A queued delivery to Ada on `channel`, decided for `event`.
fn decided(event: &NotificationEvent, channel: herald_domain::Channel) -> herald_store::Decided {
    let ada = herald_domain::UserId::parse("ada").unwrap();
    herald_store::Decided {
        delivery: herald_store::NewDelivery::new(
            herald_domain::DeliveryId::derive(event.notification_id(), &ada, channel),
            event.notification_id(),
            ada,
            channel,
            herald_domain::DeliveryState::Queued,
        ),
        timers: Vec::new(),
        cap_slot: herald_store::CapSlot::Release,
    }
}

#[tokio::test]
async fn decisions_and_their_jobs_commit_together() {
    let dir = tempfile::tempdir().unwrap();
    let (store, bus) = store_on_its_bus(dir.path()).await;
    let jobs = bus.topics().deliveries(herald_domain::Channel::Email);
    let mut worker = bus.subscribe(&jobs, "workers").await.unwrap();
    let e = event("e1");
    store
        .create_notification(create(&e, "event"))
        .await
        .unwrap();

    // Dropped before its commit: neither the delivery nor its job.
    let lost = decided(&e, herald_domain::Channel::Email);
    let mut tx = store.begin_decisions().await.unwrap();
    tx.insert(std::slice::from_ref(&lost), t0()).await.unwrap();
    drop(tx);
    let lost = lost.delivery.id;

    let kept = decided(&e, herald_domain::Channel::Sms);
    let job = OutboxMessage::new("deliveries.email", "ada", kept.delivery.id.to_string());
    // The worker looks first (it takes the writer before the decisions
    // can), finds nothing and waits: only the commit's wake-up brings it
    // the job.
    let (record, ()) = tokio::join!(timeout(Duration::from_secs(10), worker.recv()), async {
        let mut tx = store.begin_decisions().await.unwrap();
        tx.insert(std::slice::from_ref(&kept), t0()).await.unwrap();
        store
            .commit_decisions_enqueuing(tx, &[job], t0())
            .await
            .unwrap();
    });
    let kept = kept.delivery.id;

    assert!(store.get_delivery(lost).await.unwrap().is_none());
    assert!(store.get_delivery(kept).await.unwrap().is_some());
    assert_eq!(store.outbox_len().await.unwrap(), 0, "no outbox hop");
    let record = record.unwrap().unwrap();
    assert_eq!(record.payload, kept.to_string().into_bytes());
    assert_eq!(bus.len(&jobs).await.unwrap(), 1, "only the committed job");
}

#[tokio::test]
async fn a_store_without_the_queue_refuses_to_enqueue_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = herald_store::testing::sqlite_store(dir.path())
        .await
        .unwrap();
    assert!(!store.announces_in_place());
    let tx = store.begin_decisions().await.unwrap();
    let job = OutboxMessage::new("deliveries.email", "ada", "{}");
    let refused = store.commit_decisions_enqueuing(tx, &[job], t0()).await;
    assert!(matches!(refused, Err(herald_store::StoreError::NoQueue)));
    assert_eq!(store.outbox_len().await.unwrap(), 0);
}

#[tokio::test]
async fn a_recorded_outcome_and_its_receipt_commit_together() {
    let dir = tempfile::tempdir().unwrap();
    let (store, bus) = store_on_its_bus(dir.path()).await;
    let receipts = bus.topics().receipts();
    let mut consumer = bus.subscribe(&receipts, "receipts").await.unwrap();
    let e = event("e1");
    store
        .create_notification(create(&e, "event"))
        .await
        .unwrap();
    let queued = decided(&e, herald_domain::Channel::Email);
    let mut tx = store.begin_decisions().await.unwrap();
    tx.insert(std::slice::from_ref(&queued), t0())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let id = queued.delivery.id;
    store
        .claim_deliveries(&[id], "worker-1", t0(), t0() + chrono::Duration::minutes(1))
        .await
        .unwrap();

    let finish = |token, receipt| herald_store::Finish {
        id,
        token,
        state: herald_domain::DeliveryState::Sent,
        provider_message_id: Some("m-1"),
        error: None,
        carries_digest: false,
        receipt,
    };
    // Another worker's token: nothing recorded, so no receipt either.
    let stale = OutboxMessage::new("receipts", "ada", "stale");
    let kept = store
        .finish_deliveries(&[finish("worker-2", Some(&stale))], t0())
        .await
        .unwrap();
    assert_eq!(kept, [false]);
    assert_eq!(bus.len(&receipts).await.unwrap(), 0);

    let sent = OutboxMessage::new("receipts", "ada", "sent");
    // The consumer looks first, finds nothing and waits: only the commit's
    // wake-up brings it the receipt.
    let outcome = [finish("worker-1", Some(&sent))];
    let (record, kept) = tokio::join!(
        timeout(Duration::from_secs(10), consumer.recv()),
        store.finish_deliveries(&outcome, t0())
    );
    assert_eq!(kept.unwrap(), [true]);
    assert_eq!(store.outbox_len().await.unwrap(), 0, "no outbox hop");
    let record = record.unwrap().unwrap();
    assert_eq!(record.payload, b"sent".to_vec());
    assert_eq!(bus.len(&receipts).await.unwrap(), 1);
}
