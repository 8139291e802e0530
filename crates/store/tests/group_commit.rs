//! Group commit, checked identically on SQLite and PostgreSQL: requests
//! written in one transaction are each answered as if alone, idempotency
//! keys included, and each new one gets its notification and its outbox
//! message.

use chrono::{DateTime, Utc};
use herald_domain::NotificationEvent;
use herald_store::{conformance, CreateNotification, Created, OutboxMessage, Store};

conformance!(
    a_group_of_requests_is_answered_each_as_if_alone,
    a_group_larger_than_one_statement_records_every_request,
);

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn event(id: &str) -> NotificationEvent {
    serde_json::from_value(serde_json::json!({"event_id": id, "template": "welcome",
        "recipients": ["u1"], "params": {"name": "Ada"}}))
    .unwrap()
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

async fn a_group_of_requests_is_answered_each_as_if_alone(store: Store) {
    // A key used before the group, with the same request.
    let earlier = event("earlier");
    let first = store
        .create_notification(create(&earlier, Some(("k0", "h0"))))
        .await
        .unwrap();
    assert_eq!(first, Created::New(earlier.notification_id()));

    let (a, b, c, d, e, f) = (
        event("a"),
        event("b"),
        event("c"),
        event("d"),
        event("e"),
        event("f"),
    );
    let answers = store
        .create_notifications(&[
            create(&a, Some(("k1", "h1"))),
            // The same key and request again, inside the group: a replay of a.
            create(&b, Some(("k1", "h1"))),
            // The same key with another request: a conflict.
            create(&c, Some(("k1", "h2"))),
            create(&d, None),
            create(&e, Some(("k0", "h0"))),
            create(&f, Some(("k2", "h1"))),
        ])
        .await
        .unwrap();
    assert_eq!(
        answers,
        [
            Created::New(a.notification_id()),
            Created::Replayed(a.notification_id()),
            Created::KeyConflict,
            Created::New(d.notification_id()),
            Created::Replayed(earlier.notification_id()),
            Created::New(f.notification_id()),
        ]
    );
    for (event, exists) in [(&a, true), (&b, false), (&c, false), (&d, true), (&f, true)] {
        let found = store
            .get_notification_only(event.notification_id())
            .await
            .unwrap();
        assert_eq!(found.is_some(), exists, "{}", event.event_id);
    }
    assert_eq!(
        store.outbox_len().await.unwrap(),
        4,
        "earlier, a, d and f announced"
    );
}

async fn a_group_larger_than_one_statement_records_every_request(store: Store) {
    let events: Vec<NotificationEvent> = (0..250).map(|i| event(&format!("e{i}"))).collect();
    let creates: Vec<CreateNotification> = events.iter().map(|e| create(e, None)).collect();
    let answers = store.create_notifications(&creates).await.unwrap();
    assert!(answers
        .iter()
        .zip(&events)
        .all(|(answer, e)| *answer == Created::New(e.notification_id())));
    assert_eq!(store.outbox_len().await.unwrap(), 250);
    let leased = store
        .lease_outbox(300, t0(), t0() + chrono::Duration::seconds(30))
        .await
        .unwrap();
    let order: Vec<String> = leased.iter().map(|m| m.key.clone()).collect();
    let expected: Vec<String> = (0..250).map(|i| format!("e{i}")).collect();
    assert_eq!(order, expected, "announced in the order requested");
}
