//! The receipt consumer applies a batch in one go, and a bad record in the
//! batch spoils nothing but itself.

use std::sync::Arc;

use herald_bus::{Bus, EmbeddedBus, EmbeddedConfig, HandleError, Handler, Topics};
use herald_domain::{
    Channel, DeliveryId, DeliveryState, NotificationEvent, Receipt, SystemClock, UserId,
    SCHEMA_VERSION,
};
use herald_store::{CreateNotification, NewDelivery, OutboxMessage, Store};
use herald_workers::ReceiptConsumer;

async fn delivery(store: &Store, user: &str) -> (NotificationEvent, DeliveryId) {
    let event: NotificationEvent = serde_json::from_value(serde_json::json!({
        "event_id": format!("e-{user}"), "template": "welcome", "recipients": [user]}))
    .unwrap();
    let now = chrono::Utc::now();
    store
        .create_notification(CreateNotification {
            event: &event,
            idempotency: None,
            announce: OutboxMessage::new("events", user, "{}".to_owned()),
            now,
        })
        .await
        .unwrap();
    let user = UserId::parse(user).unwrap();
    let id = DeliveryId::derive(event.notification_id(), &user, Channel::Email);
    let new = NewDelivery::new(
        id,
        event.notification_id(),
        user,
        Channel::Email,
        DeliveryState::Queued,
    );
    store.insert_deliveries(&[new], now).await.unwrap();
    (event, id)
}

fn receipt(event: &NotificationEvent, id: DeliveryId, user: &str) -> Vec<u8> {
    serde_json::to_vec(&Receipt {
        schema_version: SCHEMA_VERSION,
        delivery_id: id,
        notification_id: event.notification_id(),
        user_id: UserId::parse(user).unwrap(),
        channel: Channel::Email,
        state: DeliveryState::Sent,
        reason: None,
        provider_message_id: Some(format!("m-{user}")),
        at: chrono::Utc::now(),
    })
    .unwrap()
}

#[tokio::test]
async fn a_batch_of_receipts_is_applied_and_a_bad_one_is_poison_alone() {
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
    let (ada_event, ada) = delivery(&store, "ada").await;
    let (bob_event, bob) = delivery(&store, "bob").await;
    let topic = bus.topics().receipts();
    bus.publish_all(&[
        (topic.clone(), "ada".into(), receipt(&ada_event, ada, "ada")),
        (
            topic.clone(),
            "x".into(),
            b"{\"not\": \"a receipt\"}".to_vec(),
        ),
        (topic.clone(), "bob".into(), receipt(&bob_event, bob, "bob")),
    ])
    .await
    .unwrap();
    let mut consumer = bus.subscribe(&topic, "receipts").await.unwrap();
    let records = consumer.recv_batch(10).await.unwrap();
    assert_eq!(records.len(), 3);

    let receipts = ReceiptConsumer::new(store.clone(), Arc::new(SystemClock));
    let results = receipts.handle_batch(&records).await;
    assert!(
        matches!(
            results.as_slice(),
            [Ok(()), Err(HandleError::Poison(reason)), Ok(())] if reason.starts_with("not a receipt")
        ),
        "{results:?}"
    );
    for id in [ada, bob] {
        let record = store.get_delivery(id).await.unwrap().unwrap();
        assert_eq!(record.state, DeliveryState::Sent);
    }
}
