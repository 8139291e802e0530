//! The worker's batch calls, checked identically on SQLite and PostgreSQL:
//! a batch claim takes each delivery at most once across racing workers,
//! says why it could not take the rest, and a batch of outcomes is recorded
//! only where the claim still holds.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use herald_domain::{
    Channel, DeliveryId, DeliveryState, NotificationEvent, Receipt, UserId, SCHEMA_VERSION,
};
use herald_store::{conformance, Claim, Finish, NewDelivery, Source, Store};

conformance!(
    racing_batch_claims_take_each_delivery_once,
    a_batch_claim_says_why_it_could_not_take_the_rest,
    a_batch_of_outcomes_is_recorded_only_where_the_claim_holds,
    an_outcome_recorded_with_its_receipt_is_not_applied_again,
);

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .to_utc()
}

/// `n` queued e-mail deliveries, one notification each.
async fn queued(store: &Store, n: usize) -> Vec<DeliveryId> {
    let mut ids = Vec::new();
    let mut deliveries = Vec::new();
    for i in 0..n {
        let event: NotificationEvent = serde_json::from_value(serde_json::json!({
            "event_id": format!("e-{i}"), "template": "welcome", "recipients": ["u1"]}))
        .unwrap();
        store
            .ensure_notification(&event, Source::Bus, t0())
            .await
            .unwrap();
        let user = UserId::parse("u1").unwrap();
        let id = DeliveryId::derive(event.notification_id(), &user, Channel::Email);
        deliveries.push(NewDelivery::new(
            id,
            event.notification_id(),
            user,
            Channel::Email,
            DeliveryState::Queued,
        ));
        ids.push(id);
    }
    store.insert_deliveries(&deliveries, t0()).await.unwrap();
    ids
}

async fn racing_batch_claims_take_each_delivery_once(store: Store) {
    let ids = queued(&store, 40).await;
    let lease = t0() + Duration::seconds(30);
    let racers: Vec<_> = (0..4)
        .map(|w| {
            let (store, ids) = (store.clone(), ids.clone());
            tokio::spawn(async move {
                let token = format!("w{w}");
                let claims = store
                    .claim_deliveries(&ids, &token, t0(), lease)
                    .await
                    .unwrap();
                (token, claims)
            })
        })
        .collect();
    let mut holders: HashMap<DeliveryId, String> = HashMap::new();
    for racer in racers {
        let (token, claims) = racer.await.unwrap();
        assert_eq!(claims.len(), ids.len(), "an answer for every delivery");
        for (id, claim) in claims {
            match claim {
                Claim::Claimed { attempt } => {
                    assert_eq!(attempt, 1);
                    let first = holders.insert(id, token.clone());
                    assert!(first.is_none(), "{id} claimed by {first:?} and {token}");
                }
                Claim::Busy { until } => assert_eq!(until, lease),
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(holders.len(), ids.len(), "every delivery claimed once");
}

async fn a_batch_claim_says_why_it_could_not_take_the_rest(store: Store) {
    let ids = queued(&store, 4).await;
    let lease = t0() + Duration::seconds(30);
    // 0: queued; 1: sent; 2: deferred to a retry; 3: held by another worker.
    store
        .claim_delivery(ids[1], "x", t0(), lease)
        .await
        .unwrap();
    let sent = Finish {
        id: ids[1],
        token: "x",
        state: DeliveryState::Sent,
        provider_message_id: Some("m-1"),
        error: None,
        carries_digest: false,
        receipt: None,
    };
    assert_eq!(
        store.finish_deliveries(&[sent], t0()).await.unwrap(),
        [true]
    );
    store
        .claim_delivery(ids[2], "x", t0(), lease)
        .await
        .unwrap();
    let retry_at = t0() + Duration::hours(1);
    assert!(store
        .defer_retry(ids[2], "x", "try later", retry_at, t0())
        .await
        .unwrap());
    store
        .claim_delivery(ids[3], "y", t0(), lease)
        .await
        .unwrap();
    let unknown = DeliveryId::derive(
        herald_domain::NotificationId::new(),
        &UserId::parse("u1").unwrap(),
        Channel::Email,
    );

    let mut asked = ids.clone();
    asked.push(unknown);
    let claims = store
        .claim_deliveries(&asked, "z", t0(), lease)
        .await
        .unwrap();
    assert_eq!(claims[&ids[0]], Claim::Claimed { attempt: 1 });
    assert_eq!(
        claims[&ids[1]],
        Claim::Done {
            state: DeliveryState::Sent,
            provider_message_id: Some("m-1".into())
        }
    );
    assert_eq!(
        claims[&ids[2]],
        Claim::Waiting {
            until: Some(retry_at)
        }
    );
    assert_eq!(claims[&ids[3]], Claim::Busy { until: lease });
    assert_eq!(claims[&unknown], Claim::Missing);
}

async fn a_batch_of_outcomes_is_recorded_only_where_the_claim_holds(store: Store) {
    let ids = queued(&store, 3).await;
    let lease = t0() + Duration::seconds(30);
    store
        .claim_deliveries(&ids, "a", t0(), lease)
        .await
        .unwrap();
    // The third's lease ran out and another worker took it over.
    let later = lease + Duration::seconds(1);
    let taken = store
        .claim_delivery(ids[2], "b", later, later + Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(taken, Claim::Claimed { attempt: 2 });
    let finish = |id, state, error| Finish {
        id,
        token: "a",
        state,
        provider_message_id: None,
        error,
        carries_digest: false,
        receipt: None,
    };
    let kept = store
        .finish_deliveries(
            &[
                Finish {
                    provider_message_id: Some("msg-0"),
                    ..finish(ids[0], DeliveryState::Sent, None)
                },
                finish(ids[1], DeliveryState::Failed, Some("refused")),
                finish(ids[2], DeliveryState::Sent, None),
                // A second outcome for one delivery finds it no longer
                // `sending`, as if recorded after the first.
                finish(ids[1], DeliveryState::Sent, None),
            ],
            later,
        )
        .await
        .unwrap();
    assert_eq!(kept, [true, true, false, false]);
    let first = store.get_delivery(ids[0]).await.unwrap().unwrap();
    assert_eq!(first.provider_message_id.as_deref(), Some("msg-0"));
    let states: Vec<_> = futures::future::join_all(ids.iter().map(|id| store.get_delivery(*id)))
        .await
        .into_iter()
        .map(|d| {
            let d = d.unwrap().unwrap();
            (d.state, d.last_error)
        })
        .collect();
    assert_eq!(
        states,
        [
            (DeliveryState::Sent, None),
            (DeliveryState::Failed, Some("refused".into())),
            (DeliveryState::Sending, None),
        ]
    );
}

async fn an_outcome_recorded_with_its_receipt_is_not_applied_again(store: Store) {
    let ids = queued(&store, 1).await;
    let lease = t0() + Duration::seconds(30);
    store
        .claim_deliveries(&ids, "a", t0(), lease)
        .await
        .unwrap();
    let sent = Finish {
        id: ids[0],
        token: "a",
        state: DeliveryState::Sent,
        provider_message_id: Some("m-1"),
        error: None,
        carries_digest: false,
        receipt: None,
    };
    assert_eq!(
        store.finish_deliveries(&[sent], t0()).await.unwrap(),
        [true]
    );
    let d = store.get_delivery(ids[0]).await.unwrap().unwrap();
    let receipt = |state| Receipt {
        schema_version: SCHEMA_VERSION,
        delivery_id: ids[0],
        notification_id: d.notification_id,
        user_id: d.user_id.clone(),
        channel: Channel::Email,
        state,
        reason: None,
        provider_message_id: Some("m-1".into()),
        at: t0(),
    };
    // The worker's own receipt alone finds its effect recorded.
    let moved = store
        .apply_receipts(&[receipt(DeliveryState::Sent)], t0())
        .await
        .unwrap();
    assert_eq!(moved, [false]);
    // With a later one from the provider, that one still moves the delivery
    // on.
    let moved = store
        .apply_receipts(
            &[
                receipt(DeliveryState::Sent),
                receipt(DeliveryState::Delivered),
            ],
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(moved, [false, true]);
    let d = store.get_delivery(ids[0]).await.unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::Delivered);
}
