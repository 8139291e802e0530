//! The store's behaviour, checked identically on SQLite and on PostgreSQL.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use herald_domain::{
    Category, Channel, DeliveryId, DeliveryState, Device, EmailAddress, NotificationEvent,
    NotificationId, Preferences, PushPlatform, Receipt, UserId, SCHEMA_VERSION,
};
use herald_store::{
    Claim, CreateNotification, Created, MarkRead, NewDelivery, NewInboxItem, OutboxMessage, Store,
    UserProfile,
};

use herald_store::conformance;

conformance!(
    users_are_created_then_replaced_keeping_preferences_and_devices,
    unknown_users_are_reported,
    an_idempotency_key_replays_the_same_request_and_refuses_another,
    concurrent_requests_with_one_key_create_one_notification,
    a_delivery_is_claimed_by_one_worker_until_its_lease_ends,
    concurrent_claims_let_exactly_one_worker_through,
    receipts_move_deliveries_forward_only_and_once,
    a_batch_of_receipts_applies_each_in_order_as_alone,
    the_outbox_leases_rows_to_one_relay_at_a_time,
    inbox_messages_are_written_once_and_read_once,
);

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn event(id: &str, recipients: &[&str]) -> NotificationEvent {
    let json = serde_json::json!({"event_id": id, "template": "welcome", "recipients": recipients,
        "params": {"name": "Ada"}});
    serde_json::from_value(json).unwrap()
}

fn create<'a>(
    event: &'a NotificationEvent,
    key: Option<(&'a str, &'a str)>,
) -> CreateNotification<'a> {
    CreateNotification {
        event,
        idempotency: key,
        announce: OutboxMessage::new(
            "events",
            event.event_id.clone(),
            serde_json::to_string(event).unwrap(),
        ),
        now: t0(),
    }
}

async fn seeded_delivery(store: &Store) -> DeliveryId {
    let e = event("e-delivery", &["u1"]);
    store.create_notification(create(&e, None)).await.unwrap();
    let id = DeliveryId::derive(e.notification_id(), &user("u1"), Channel::Email);
    let d = NewDelivery::new(
        id,
        e.notification_id(),
        user("u1"),
        Channel::Email,
        DeliveryState::Queued,
    );
    store
        .insert_deliveries(std::slice::from_ref(&d), t0())
        .await
        .unwrap();
    store.insert_deliveries(&[d], t0()).await.unwrap();
    id
}

async fn users_are_created_then_replaced_keeping_preferences_and_devices(store: Store) {
    let u = user("42");
    let profile = UserProfile {
        email: Some(EmailAddress::parse("ada@example.com").unwrap()),
        name: Some("Ada".into()),
        ..Default::default()
    };
    let (record, created) = store.put_user(&u, &profile, t0()).await.unwrap();
    assert!(created);
    assert_eq!(record.profile, profile);

    let prefs: Preferences = serde_json::from_str(r#"{"channels":{"sms":false}}"#).unwrap();
    assert!(store.put_preferences(&u, &prefs, t0()).await.unwrap());
    assert!(!store
        .put_preferences(&user("nobody"), &prefs, t0())
        .await
        .unwrap());
    let device = Device::new(PushPlatform::Apns, &"ab".repeat(32)).unwrap();
    assert!(store.add_device(&u, &device, t0()).await.unwrap());
    assert!(
        store.add_device(&u, &device, t0()).await.unwrap(),
        "re-registering is fine"
    );
    assert!(!store
        .add_device(&user("nobody"), &device, t0())
        .await
        .unwrap());

    let replaced = UserProfile {
        name: Some("Ada L.".into()),
        ..Default::default()
    };
    let (record, created) = store
        .put_user(&u, &replaced, t0() + Duration::seconds(1))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(record.profile, replaced, "absent fields are cleared");
    assert_eq!(
        record.preferences, prefs,
        "preferences survive a profile update"
    );
    assert_eq!(store.devices(&u).await.unwrap(), vec![device]);
    assert_eq!(
        store
            .get_user(&u)
            .await
            .unwrap()
            .unwrap()
            .profile
            .name
            .as_deref(),
        Some("Ada L.")
    );
    assert!(store.get_user(&user("nobody")).await.unwrap().is_none());
}

async fn unknown_users_are_reported(store: Store) {
    store
        .put_user(&user("a"), &UserProfile::default(), t0())
        .await
        .unwrap();
    let ids: Vec<UserId> = ["a", "b", "c"].into_iter().map(user).collect();
    assert_eq!(
        store.unknown_users(&ids).await.unwrap(),
        vec![user("b"), user("c")]
    );
    let many: Vec<UserId> = (0..1200).map(|i| user(&format!("x{i}"))).collect();
    assert_eq!(store.unknown_users(&many).await.unwrap().len(), 1200);
}

async fn an_idempotency_key_replays_the_same_request_and_refuses_another(store: Store) {
    let first = event("e1", &["u1"]);
    let id = first.notification_id();
    assert_eq!(
        store
            .create_notification(create(&first, Some(("k1", "h1"))))
            .await
            .unwrap(),
        Created::New(id)
    );
    let again = event("e2", &["u1"]);
    assert_eq!(
        store
            .create_notification(create(&again, Some(("k1", "h1"))))
            .await
            .unwrap(),
        Created::Replayed(id)
    );
    assert_eq!(
        store
            .create_notification(create(&again, Some(("k1", "h2"))))
            .await
            .unwrap(),
        Created::KeyConflict
    );
    assert_eq!(
        store.outbox_len().await.unwrap(),
        1,
        "replays and conflicts publish nothing"
    );
    let record = store.get_notification(id).await.unwrap().unwrap();
    assert_eq!(record.event, first);
    assert!(store
        .get_notification(again.notification_id())
        .await
        .unwrap()
        .is_none());
}

async fn concurrent_requests_with_one_key_create_one_notification(store: Store) {
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let e = event(&format!("{}", NotificationId::new()), &["u1"]);
                store
                    .create_notification(create(&e, Some(("shared", "same"))))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let outcomes: Vec<Created> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let new: Vec<_> = outcomes
        .iter()
        .filter_map(|o| {
            if let Created::New(id) = o {
                Some(*id)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(new.len(), 1, "{outcomes:?}");
    for o in &outcomes {
        assert!(
            matches!(o, Created::New(id) | Created::Replayed(id) if *id == new[0]),
            "{o:?}"
        );
    }
    assert_eq!(store.outbox_len().await.unwrap(), 1);
}

async fn a_delivery_is_claimed_by_one_worker_until_its_lease_ends(store: Store) {
    let id = seeded_delivery(&store).await;
    let lease = t0() + Duration::seconds(30);
    assert_eq!(
        store.claim_delivery(id, "w1", t0(), lease).await.unwrap(),
        Claim::Claimed { attempt: 1 }
    );
    assert_eq!(
        store.claim_delivery(id, "w2", t0(), lease).await.unwrap(),
        Claim::Busy { until: lease }
    );
    assert_eq!(
        store.claim_delivery(id, "w1", t0(), lease).await.unwrap(),
        Claim::Claimed { attempt: 2 }
    );
    let later = lease + Duration::seconds(1);
    assert_eq!(
        store
            .claim_delivery(id, "w2", later, later + Duration::seconds(30))
            .await
            .unwrap(),
        Claim::Claimed { attempt: 3 },
        "an expired lease is taken over"
    );
    assert!(!store
        .finish_delivery(
            id,
            "w1",
            DeliveryState::Sent,
            Some("m1"),
            None,
            false,
            later
        )
        .await
        .unwrap());
    assert!(store
        .finish_delivery(
            id,
            "w2",
            DeliveryState::Sent,
            Some("m2"),
            None,
            false,
            later
        )
        .await
        .unwrap());
    assert_eq!(
        store.claim_delivery(id, "w3", later, lease).await.unwrap(),
        Claim::Done {
            state: DeliveryState::Sent,
            provider_message_id: Some("m2".into())
        }
    );
    let unknown = DeliveryId::derive(NotificationId::new(), &user("u1"), Channel::Sms);
    assert_eq!(
        store
            .claim_delivery(unknown, "w1", t0(), lease)
            .await
            .unwrap(),
        Claim::Missing
    );
    let record = store.get_delivery(id).await.unwrap().unwrap();
    assert_eq!((record.state, record.attempts), (DeliveryState::Sent, 3));
}

async fn concurrent_claims_let_exactly_one_worker_through(store: Store) {
    let id = seeded_delivery(&store).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .claim_delivery(id, &format!("w{i}"), t0(), t0() + Duration::seconds(30))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let claims: Vec<Claim> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let winners = claims
        .iter()
        .filter(|c| matches!(c, Claim::Claimed { .. }))
        .count();
    assert_eq!(winners, 1, "{claims:?}");
}

async fn receipts_move_deliveries_forward_only_and_once(store: Store) {
    let id = seeded_delivery(&store).await;
    let e = event("e-delivery", &["u1"]);
    let receipt = |state, pmid: Option<&str>| Receipt {
        schema_version: SCHEMA_VERSION,
        delivery_id: id,
        notification_id: e.notification_id(),
        user_id: user("u1"),
        channel: Channel::Email,
        state,
        reason: None,
        provider_message_id: pmid.map(str::to_owned),
        at: t0(),
    };
    assert!(store
        .apply_receipt(&receipt(DeliveryState::Sent, Some("m1")), t0())
        .await
        .unwrap());
    assert!(!store
        .apply_receipt(&receipt(DeliveryState::Sent, Some("m1")), t0())
        .await
        .unwrap());
    assert!(store
        .apply_receipt(&receipt(DeliveryState::Delivered, None), t0())
        .await
        .unwrap());
    assert!(
        !store
            .apply_receipt(&receipt(DeliveryState::Sent, None), t0())
            .await
            .unwrap(),
        "late sent"
    );
    let record = store.get_delivery(id).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Delivered);
    assert_eq!(record.provider_message_id.as_deref(), Some("m1"));
    assert_eq!(store.receipt_states(id).await.unwrap().len(), 2);
    let stray = Receipt {
        delivery_id: DeliveryId::derive(NotificationId::new(), &user("x"), Channel::Sms),
        ..receipt(DeliveryState::Sent, None)
    };
    assert!(!store.apply_receipt(&stray, t0()).await.unwrap());
}

async fn a_batch_of_receipts_applies_each_in_order_as_alone(store: Store) {
    let id = seeded_delivery(&store).await;
    let e = event("e-delivery", &["u1"]);
    let receipt = |id: DeliveryId, state, pmid: Option<&str>| Receipt {
        schema_version: SCHEMA_VERSION,
        delivery_id: id,
        notification_id: e.notification_id(),
        user_id: user("u1"),
        channel: Channel::Email,
        state,
        reason: None,
        provider_message_id: pmid.map(str::to_owned),
        at: t0(),
    };
    let stray = DeliveryId::derive(NotificationId::new(), &user("x"), Channel::Sms);
    let batch = [
        receipt(id, DeliveryState::Sent, Some("m1")),
        receipt(stray, DeliveryState::Sent, None),
        receipt(id, DeliveryState::Sent, Some("m1")),
        receipt(id, DeliveryState::Delivered, None),
        receipt(id, DeliveryState::Sent, None),
    ];
    assert_eq!(
        store.apply_receipts(&batch, t0()).await.unwrap(),
        vec![true, false, false, true, false],
        "sent moves it, the stray and the repeat do nothing, delivered moves it, a late sent does not"
    );
    let record = store.get_delivery(id).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Delivered);
    assert_eq!(record.provider_message_id.as_deref(), Some("m1"));
    assert_eq!(store.receipt_states(id).await.unwrap().len(), 2);
    assert_eq!(
        store.apply_receipts(&batch, t0()).await.unwrap(),
        vec![false; 5],
        "the same batch again changes nothing"
    );
    assert!(store.apply_receipts(&[], t0()).await.unwrap().is_empty());
}

async fn the_outbox_leases_rows_to_one_relay_at_a_time(store: Store) {
    for i in 0..3 {
        let e = event(&format!("o{i}"), &["u1"]);
        store.create_notification(create(&e, None)).await.unwrap();
    }
    let lease = t0() + Duration::seconds(10);
    let first = store.lease_outbox(2, t0(), lease).await.unwrap();
    assert_eq!(
        first.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
        vec!["o0", "o1"]
    );
    let second = store.lease_outbox(10, t0(), lease).await.unwrap();
    assert_eq!(
        second.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
        vec!["o2"]
    );
    assert!(store
        .lease_outbox(10, t0(), lease)
        .await
        .unwrap()
        .is_empty());
    // A failed publish hands its rows back: leasable again before the lease ends.
    store.release_outbox(&[second[0].id]).await.unwrap();
    let released = store.lease_outbox(10, t0(), lease).await.unwrap();
    assert_eq!(
        released.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
        vec!["o2"]
    );
    store.delete_outbox(&[first[0].id]).await.unwrap();
    let after = lease + Duration::seconds(1);
    let again = store
        .lease_outbox(10, after, after + Duration::seconds(10))
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
        vec!["o1", "o2"]
    );
}

async fn inbox_messages_are_written_once_and_read_once(store: Store) {
    let u = user("u1");
    let n = NotificationId::new();
    let mut ids = HashSet::new();
    for channel_user in ["u1", "u1-other"] {
        let id = DeliveryId::derive(n, &user(channel_user), Channel::InApp);
        ids.insert(id);
        let item = NewInboxItem {
            id,
            user_id: user(channel_user),
            notification_id: n,
            category: Category::parse("account").unwrap(),
            title: "Hi".into(),
            body: "Welcome".into(),
        };
        assert!(store.insert_inbox(&item, t0()).await.unwrap());
        assert!(!store.insert_inbox(&item, t0()).await.unwrap());
    }
    let page = store.inbox(&u, 50).await.unwrap();
    assert_eq!((page.items.len(), page.unread_count), (1, 1));
    let mine = page.items[0].id;
    let receipt =
        |k: &herald_store::InboxItemKey| OutboxMessage::new("receipts", k.id.to_string(), "read");
    assert_eq!(
        store
            .mark_inbox_read(&u, mine, receipt, t0())
            .await
            .unwrap(),
        MarkRead::Marked
    );
    assert_eq!(
        store
            .mark_inbox_read(&u, mine, receipt, t0())
            .await
            .unwrap(),
        MarkRead::AlreadyRead
    );
    let theirs = *ids.iter().find(|id| **id != mine).unwrap();
    assert_eq!(
        store
            .mark_inbox_read(&u, theirs, receipt, t0())
            .await
            .unwrap(),
        MarkRead::NotFound
    );
    let page = store.inbox(&u, 50).await.unwrap();
    assert_eq!(page.unread_count, 0);
    assert_eq!(page.items[0].read_at, Some(t0()));
    assert_eq!(
        store.outbox_len().await.unwrap(),
        1,
        "one read receipt queued"
    );
}
