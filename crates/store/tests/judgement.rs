//! The store's half of the router's judgement — timers, categories, cap
//! slots, digests, topics, cancellation — checked identically on SQLite and
//! on PostgreSQL.

use chrono::{DateTime, Duration, Utc};
use herald_domain::{
    Category, CategoryPolicy, Channel, DeliveryId, DeliveryState, NotificationEvent,
    NotificationId, Outcome, Receipt, Rule, TemplateName, TopicName, TraceStep, UserId,
    SCHEMA_VERSION,
};
use herald_store::{
    conformance, digest_carrier, Cancelled, CapSlot, CreateNotification, Decided, DigestKind,
    NewDelivery, NewTimer, OutboxMessage, Store, TimerKind, UserProfile,
};

conformance!(
    a_due_timer_is_leased_to_one_runner_and_deleted_only_by_it,
    a_moved_timer_is_not_deleted_by_the_runner_that_fired_it,
    timers_fire_late_rather_than_never_and_in_due_order,
    a_timer_set_once_is_not_moved_by_setting_it_again,
    categories_are_stored_and_unknown_ones_get_the_default_policy,
    new_deliveries_are_recorded_with_their_timers_and_slots_and_existing_ones_left_alone,
    decisions_written_together_keep_the_first_of_two_with_one_id,
    a_deferred_delivery_is_decided_again_only_while_it_waits,
    cap_slots_are_read_without_the_deliverys_own_and_old_ones_forgotten,
    a_digest_collects_members_until_it_closes_and_the_next_one_opens_after,
    receipts_of_a_digest_carry_its_members_along_and_a_read_cancels_an_escalation,
    cancelling_withdraws_what_waits_and_keeps_what_was_sent,
    topics_take_subscribers_in_bulk_and_page_through_them_in_order,
    a_transient_failure_leaves_the_delivery_waiting_on_a_retry_timer,
    routers_deciding_at_once_never_both_take_the_last_cap_slot,
    cancelling_withdraws_a_member_of_an_open_digest_but_not_of_a_closed_one,
    a_carrier_decided_at_once_takes_its_members_along_in_the_same_transaction,
    a_decision_sees_a_cancellation_committed_before_it,
    a_retry_keeps_the_cap_slot_its_first_attempt_took,
    a_read_while_the_inbox_write_is_being_recorded_still_cancels_the_escalation,
    what_a_timer_that_can_never_fire_held_fails_instead_of_waiting_forever,
);

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn event(id: &str, recipients: &[&str]) -> NotificationEvent {
    serde_json::from_value(
        serde_json::json!({"event_id": id, "template": "new_comment",
        "recipients": recipients, "params": {"commenter": id}}),
    )
    .unwrap()
}

async fn notification(store: &Store, id: &str) -> NotificationEvent {
    let e = event(id, &["u1"]);
    store
        .create_notification(CreateNotification {
            event: &e,
            idempotency: None,
            announce: OutboxMessage::new("events", "u1", "{}"),
            now: t0(),
        })
        .await
        .unwrap();
    e
}

fn delivery(e: &NotificationEvent, user_id: &str, state: DeliveryState) -> NewDelivery {
    let id = DeliveryId::derive(e.notification_id(), &user(user_id), Channel::Push);
    NewDelivery::new(id, e.notification_id(), user(user_id), Channel::Push, state)
}

fn decided(delivery: NewDelivery) -> Decided {
    Decided {
        delivery,
        timers: Vec::new(),
        cap_slot: CapSlot::Release,
    }
}

async fn state_of(store: &Store, id: DeliveryId) -> DeliveryState {
    store.get_delivery(id).await.unwrap().unwrap().state
}

async fn a_due_timer_is_leased_to_one_runner_and_deleted_only_by_it(store: Store) {
    let timer = NewTimer::new(TimerKind::Release, "d1", t0());
    store.schedule_timer(&timer, t0()).await.unwrap();
    let lease = t0() + Duration::seconds(30);
    let early = store
        .lease_due_timers("a", 10, t0() - Duration::seconds(1), lease)
        .await
        .unwrap();
    assert!(early.is_empty(), "not due yet");
    let leased = store.lease_due_timers("a", 10, t0(), lease).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!((leased[0].kind, leased[0].fired), (TimerKind::Release, 1));
    assert!(
        store
            .lease_due_timers("b", 10, t0(), lease)
            .await
            .unwrap()
            .is_empty(),
        "a leased timer is nobody else's"
    );
    assert!(!store.complete_timer(&timer.id(), "b").await.unwrap());
    // The holder died: after its lease another runner fires it again.
    let again = store
        .lease_due_timers(
            "b",
            10,
            lease + Duration::seconds(1),
            lease + Duration::minutes(1),
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].fired, 2);
    assert!(
        !store.complete_timer(&timer.id(), "a").await.unwrap(),
        "a's lease is gone"
    );
    assert!(store.complete_timer(&timer.id(), "b").await.unwrap());
    assert!(store
        .get_timer(TimerKind::Release, "d1")
        .await
        .unwrap()
        .is_none());
}

async fn a_moved_timer_is_not_deleted_by_the_runner_that_fired_it(store: Store) {
    let timer = NewTimer::new(TimerKind::Release, "d1", t0());
    store.schedule_timer(&timer, t0()).await.unwrap();
    let leased = store
        .lease_due_timers("a", 10, t0(), t0() + Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    // While firing, the runner deferred the delivery again: the same timer, later.
    let later = NewTimer::new(TimerKind::Release, "d1", t0() + Duration::hours(1));
    store.schedule_timer(&later, t0()).await.unwrap();
    assert!(!store.complete_timer(&timer.id(), "a").await.unwrap());
    let kept = store
        .get_timer(TimerKind::Release, "d1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.due_at, t0() + Duration::hours(1));
    // Advancing (a topic's next page) and retrying are the holder's too.
    let leased = store
        .lease_due_timers(
            "b",
            10,
            t0() + Duration::hours(1),
            t0() + Duration::hours(2),
        )
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert!(!store
        .advance_timer(&timer.id(), "a", t0(), "{}")
        .await
        .unwrap());
    assert!(store
        .advance_timer(
            &timer.id(),
            "b",
            t0() + Duration::hours(3),
            r#"{"after":"x"}"#
        )
        .await
        .unwrap());
    let moved = store
        .get_timer(TimerKind::Release, "d1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (moved.payload.as_str(), moved.fired),
        (r#"{"after":"x"}"#, 0)
    );
    assert_eq!(
        store.next_timer_due(t0()).await.unwrap(),
        Some(t0() + Duration::hours(3))
    );
}

async fn timers_fire_late_rather_than_never_and_in_due_order(store: Store) {
    for (subject, minutes) in [("late", 30), ("early", 10), ("future", 120)] {
        let timer = NewTimer::new(TimerKind::Retry, subject, t0() + Duration::minutes(minutes));
        store.schedule_timer(&timer, t0()).await.unwrap();
    }
    // The runner was down for an hour: both overdue timers fire, oldest first.
    let now = t0() + Duration::minutes(60);
    let leased = store
        .lease_due_timers("a", 10, now, now + Duration::seconds(30))
        .await
        .unwrap();
    let subjects: Vec<&str> = leased.iter().map(|t| t.subject.as_str()).collect();
    assert_eq!(subjects, vec!["early", "late"]);
    assert_eq!(store.timers_pending().await.unwrap(), 3);
    assert_eq!(
        store.next_timer_due(now).await.unwrap(),
        Some(t0() + Duration::minutes(120))
    );
    let limited = store
        .lease_due_timers("b", 1, t0() + Duration::hours(5), t0() + Duration::hours(6))
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
}

async fn a_timer_set_once_is_not_moved_by_setting_it_again(store: Store) {
    let first = NewTimer::new(TimerKind::Expand, "n/t", t0()).with_payload(r#"{"after":"u5"}"#);
    assert!(store.schedule_timer_once(&first, t0()).await.unwrap());
    let again = NewTimer::new(TimerKind::Expand, "n/t", t0() + Duration::hours(1));
    assert!(!store.schedule_timer_once(&again, t0()).await.unwrap());
    let kept = store
        .get_timer(TimerKind::Expand, "n/t")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (kept.due_at, kept.payload.as_str()),
        (t0(), r#"{"after":"u5"}"#)
    );
}

async fn categories_are_stored_and_unknown_ones_get_the_default_policy(store: Store) {
    let social = Category::parse("social").unwrap();
    let policy: CategoryPolicy = serde_json::from_str(
        r#"{"default_enabled": false, "expires_after": "2h", "caps": [{"channel": "push", "max": 3, "per": "1h"}]}"#,
    )
    .unwrap();
    let (record, created) = store.put_category(&social, &policy, t0()).await.unwrap();
    assert!(created);
    assert_eq!(record.policy, policy);
    let required = CategoryPolicy {
        required: true,
        ..CategoryPolicy::default()
    };
    let (record, created) = store
        .put_category(&social, &required, t0() + Duration::seconds(1))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(record.created_at, t0());
    let other = Category::parse("other").unwrap();
    let policies = store
        .policies(&[social.clone(), other.clone(), social.clone()])
        .await
        .unwrap();
    assert_eq!(policies.len(), 2);
    assert_eq!(policies[&social], required);
    assert_eq!(policies[&other], CategoryPolicy::default());
    assert_eq!(store.list_categories().await.unwrap().len(), 1);
    assert!(store.get_category(&other).await.unwrap().is_none());
}

/// The cap slots u1's push deliveries hold under `category`, as another
/// delivery's decision would see them.
async fn u1_push_slots(store: &Store, category: &Category) -> Vec<DateTime<Utc>> {
    let mut tx = store.begin_decisions().await.unwrap();
    tx.cap_taken(
        &user("u1"),
        category,
        Channel::Push,
        DeliveryId::derive(NotificationId::new(), &user("u1"), Channel::Push),
        t0(),
    )
    .await
    .unwrap()
}

async fn new_deliveries_are_recorded_with_their_timers_and_slots_and_existing_ones_left_alone(
    store: Store,
) {
    let e = notification(&store, "n1").await;
    let social = Category::parse("social").unwrap();
    let mut deferred = delivery(&e, "u1", DeliveryState::Deferred);
    deferred.not_before = Some(t0() + Duration::hours(7));
    deferred.trace = vec![TraceStep::new(Rule::QuietHours, Outcome::Deferred, t0())];
    let timer = NewTimer::new(
        TimerKind::Release,
        deferred.id.to_string(),
        t0() + Duration::hours(7),
    );
    let first = Decided {
        delivery: deferred.clone(),
        timers: vec![timer.clone()],
        cap_slot: CapSlot::Hold(social.clone(), t0() + Duration::hours(7)),
    };
    let mut tx = store.begin_decisions().await.unwrap();
    assert_eq!(
        tx.insert(std::slice::from_ref(&first), t0()).await.unwrap(),
        vec![deferred.id]
    );
    tx.commit().await.unwrap();

    // Decided again (the event came twice) with another outcome: nothing moves.
    let mut queued = deferred.clone();
    queued.state = DeliveryState::Queued;
    let mut tx = store.begin_decisions().await.unwrap();
    let states = tx.states(&[deferred.id]).await.unwrap();
    assert_eq!(states[&deferred.id], DeliveryState::Deferred);
    assert!(tx
        .insert(&[decided(queued)], t0())
        .await
        .unwrap()
        .is_empty());
    tx.commit().await.unwrap();

    let record = store.get_delivery(deferred.id).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Deferred);
    assert_eq!(record.not_before, Some(t0() + Duration::hours(7)));
    assert_eq!(record.trace, deferred.trace);
    let kept = store
        .get_timer(TimerKind::Release, &deferred.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.due_at, t0() + Duration::hours(7));
    let taken = u1_push_slots(&store, &social).await;
    assert_eq!(taken, vec![t0() + Duration::hours(7)]);
}

async fn decisions_written_together_keep_the_first_of_two_with_one_id(store: Store) {
    let e = notification(&store, "n1").await;
    let social = Category::parse("social").unwrap();
    let mut deferred = delivery(&e, "u1", DeliveryState::Deferred);
    deferred.not_before = Some(t0() + Duration::hours(7));
    let release = |id: DeliveryId, hours| {
        NewTimer::new(
            TimerKind::Release,
            id.to_string(),
            t0() + Duration::hours(hours),
        )
    };
    let first = Decided {
        delivery: deferred.clone(),
        timers: vec![release(deferred.id, 7)],
        cap_slot: CapSlot::Hold(social.clone(), t0() + Duration::hours(7)),
    };
    // The same delivery decided twice in one batch (the event came twice).
    let mut again = deferred.clone();
    again.not_before = Some(t0() + Duration::hours(9));
    let second = Decided {
        delivery: again,
        timers: vec![release(deferred.id, 9)],
        cap_slot: CapSlot::Hold(social.clone(), t0() + Duration::hours(9)),
    };
    // Many in one call: more than one statement's worth of rows.
    let others: Vec<Decided> = (0..150)
        .map(|i| decided(delivery(&e, &format!("v{i}"), DeliveryState::Queued)))
        .collect();
    let mut batch = vec![first, second];
    batch.extend(others.iter().cloned());
    let mut tx = store.begin_decisions().await.unwrap();
    let new = tx.insert(&batch, t0()).await.unwrap();
    tx.commit().await.unwrap();

    let mut expected = vec![deferred.id];
    expected.extend(others.iter().map(|d| d.delivery.id));
    assert_eq!(new, expected);
    let record = store.get_delivery(deferred.id).await.unwrap().unwrap();
    assert_eq!(record.not_before, Some(t0() + Duration::hours(7)));
    let timer = store
        .get_timer(TimerKind::Release, &deferred.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(timer.due_at, t0() + Duration::hours(7));
    let taken = u1_push_slots(&store, &social).await;
    assert_eq!(taken, vec![t0() + Duration::hours(7)]);
    for other in &others {
        let d = store
            .get_delivery(other.delivery.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.state, DeliveryState::Queued);
    }
}

async fn a_deferred_delivery_is_decided_again_only_while_it_waits(store: Store) {
    let e = notification(&store, "n1").await;
    let mut d = delivery(&e, "u1", DeliveryState::Deferred);
    d.not_before = Some(t0());
    d.trace = vec![TraceStep::new(Rule::QuietHours, Outcome::Deferred, t0())];
    let mut tx = store.begin_decisions().await.unwrap();
    tx.insert(&[decided(d.clone())], t0()).await.unwrap();
    tx.commit().await.unwrap();

    let mut released = d.clone();
    released.state = DeliveryState::Queued;
    released.not_before = None;
    released.trace = vec![TraceStep::new(Rule::Queue, Outcome::Queued, t0())];
    let mut tx = store.begin_decisions().await.unwrap();
    assert!(tx
        .redecide(&decided(released.clone()), t0(), t0())
        .await
        .unwrap());
    tx.commit().await.unwrap();
    let record = store.get_delivery(d.id).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.not_before),
        (DeliveryState::Queued, None)
    );
    let rules: Vec<Rule> = record.trace.iter().map(|t| t.rule).collect();
    assert_eq!(
        rules,
        vec![Rule::QuietHours, Rule::Queue],
        "the trace is appended to"
    );

    let mut tx = store.begin_decisions().await.unwrap();
    assert!(
        !tx.redecide(&decided(released.clone()), t0(), t0())
            .await
            .unwrap(),
        "not waiting any more"
    );
    drop(tx);
    // Deferred again, until later: a timer that saw the earlier wait is stale.
    let mut again = d.clone();
    again.id = DeliveryId::derive(e.notification_id(), &user("u9"), Channel::Push);
    again.user_id = user("u9");
    again.not_before = Some(t0() + Duration::hours(1));
    let mut tx = store.begin_decisions().await.unwrap();
    tx.insert(&[decided(again.clone())], t0()).await.unwrap();
    let mut stale = again.clone();
    stale.state = DeliveryState::Queued;
    assert!(!tx
        .redecide(&decided(stale.clone()), t0(), t0())
        .await
        .unwrap());
    assert!(tx
        .redecide(&decided(stale), t0() + Duration::hours(1), t0())
        .await
        .unwrap());
}

async fn cap_slots_are_read_without_the_deliverys_own_and_old_ones_forgotten(store: Store) {
    let social = Category::parse("social").unwrap();
    let mut ids = Vec::new();
    for (i, minutes) in [(0, -120), (1, -30), (2, 10)] {
        let e = notification(&store, &format!("n{i}")).await;
        let d = delivery(&e, "u1", DeliveryState::Queued);
        ids.push(d.id);
        let mut tx = store.begin_decisions().await.unwrap();
        tx.lock_caps(&[&user("u1")]).await.unwrap();
        tx.insert(
            &[Decided {
                delivery: d,
                timers: Vec::new(),
                cap_slot: CapSlot::Hold(social.clone(), t0() + Duration::minutes(minutes)),
            }],
            t0(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let mut tx = store.begin_decisions().await.unwrap();
    tx.lock_caps(&[&user("u1"), &user("u1")]).await.unwrap();
    let taken = tx
        .cap_taken(
            &user("u1"),
            &social,
            Channel::Push,
            ids[2],
            t0() - Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(
        taken,
        vec![t0() - Duration::minutes(30)],
        "own slot and the two-hour-old one left out"
    );
    let other = tx
        .cap_taken(
            &user("u1"),
            &social,
            Channel::Email,
            ids[2],
            t0() - Duration::hours(1),
        )
        .await
        .unwrap();
    assert!(other.is_empty());
    tx.commit().await.unwrap();
}

async fn a_digest_collects_members_until_it_closes_and_the_next_one_opens_after(store: Store) {
    let template = TemplateName::parse("new_comment").unwrap();
    let u = user("u1");
    let closes = t0() + Duration::minutes(10);
    let mut carriers = Vec::new();
    let mut digest_ids = Vec::new();
    for i in 0..3 {
        let e = notification(&store, &format!("c{i}")).await;
        let mut tx = store.begin_decisions().await.unwrap();
        let joined = tx
            .join_digest(
                &u,
                Channel::Push,
                DigestKind::Group,
                "post-1",
                &template,
                closes,
                t0() + Duration::minutes(i),
            )
            .await
            .unwrap();
        assert_eq!(joined.closes_at, closes, "the first member's window");
        assert_eq!(joined.carrier, digest_carrier(joined.id, &u, Channel::Push));
        carriers.push(joined.carrier);
        digest_ids.push(joined.id);
        let mut d = delivery(&e, "u1", DeliveryState::Deferred);
        d.digest_id = Some(joined.carrier);
        d.not_before = Some(closes);
        tx.insert(&[decided(d)], t0() + Duration::minutes(i))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    assert!(carriers.iter().all(|c| *c == carriers[0]));
    // Another key or channel is another digest.
    let mut tx = store.begin_decisions().await.unwrap();
    let other = tx
        .join_digest(
            &u,
            Channel::Email,
            DigestKind::Group,
            "post-1",
            &template,
            closes,
            t0(),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_ne!(other.carrier, carriers[0]);

    assert!(digest_ids.iter().all(|d| *d == digest_ids[0]));
    let digest_id = digest_ids[0];
    assert_eq!(
        store
            .get_timer(TimerKind::DigestClose, &digest_id.to_string())
            .await
            .unwrap()
            .map(|t| t.due_at),
        Some(closes),
        "the window's close is a timer"
    );
    let closed = store
        .close_digest(digest_id, closes)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closed.carrier, carriers[0]);
    let commenters: Vec<&str> = closed
        .members
        .iter()
        .map(|m| m.event.request.params["commenter"].as_str().unwrap())
        .collect();
    assert_eq!(commenters, vec!["c0", "c1", "c2"], "oldest first");
    // Closing again (a timer fired twice) gives the same digest.
    let again = store
        .close_digest(digest_id, closes)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.members.len(), 3);
    let member = store
        .get_delivery(closed.members[0].delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(member.digest_id, Some(closed.carrier));
    assert_eq!(member.not_before, None, "no longer waiting on the window");
    assert_eq!(
        member
            .trace
            .iter()
            .filter(|t| t.rule == Rule::Digest)
            .count(),
        1,
        "the close is traced once"
    );

    // After the close a new member opens the next digest.
    let mut tx = store.begin_decisions().await.unwrap();
    let next = tx
        .join_digest(
            &u,
            Channel::Push,
            DigestKind::Group,
            "post-1",
            &template,
            closes + Duration::minutes(10),
            closes,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_ne!(next.carrier, closed.carrier);
    assert_eq!(next.closes_at, closes + Duration::minutes(10));
    assert_eq!(
        store
            .get_timer(TimerKind::DigestClose, &next.id.to_string())
            .await
            .unwrap()
            .map(|t| t.due_at),
        Some(closes + Duration::minutes(10))
    );
}

async fn receipts_of_a_digest_carry_its_members_along_and_a_read_cancels_an_escalation(
    store: Store,
) {
    let e = notification(&store, "n1").await;
    let carrier_event = notification(&store, "carrier").await;
    let carrier = delivery(&carrier_event, "u1", DeliveryState::Queued);
    let mut member = delivery(&e, "u1", DeliveryState::Deferred);
    member.digest_id = Some(carrier.id);
    let mut tx = store.begin_decisions().await.unwrap();
    tx.insert(
        &[
            decided(member.clone()),
            Decided {
                delivery: carrier.clone(),
                timers: vec![NewTimer::new(
                    TimerKind::Escalate,
                    carrier.id.to_string(),
                    t0(),
                )],
                cap_slot: CapSlot::Release,
            },
        ],
        t0(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let receipt = |state| Receipt {
        schema_version: SCHEMA_VERSION,
        delivery_id: carrier.id,
        notification_id: carrier.notification_id,
        user_id: user("u1"),
        channel: Channel::Push,
        state,
        reason: None,
        provider_message_id: None,
        at: t0(),
    };
    // The worker records `sent` itself; the receipt carries the members along.
    let claimed = store
        .claim_delivery(carrier.id, "w", t0(), t0() + Duration::minutes(1))
        .await
        .unwrap();
    assert!(matches!(claimed, herald_store::Claim::Claimed { .. }));
    store
        .finish_delivery(
            carrier.id,
            "w",
            DeliveryState::Sent,
            Some("m"),
            None,
            true,
            t0(),
        )
        .await
        .unwrap();
    store
        .apply_receipt(&receipt(DeliveryState::Sent), t0())
        .await
        .unwrap();
    assert_eq!(state_of(&store, member.id).await, DeliveryState::Sent);
    // A deferral echo moves nothing.
    store
        .apply_receipt(&receipt(DeliveryState::Deferred), t0())
        .await
        .unwrap();
    assert_eq!(state_of(&store, carrier.id).await, DeliveryState::Sent);

    assert!(store
        .apply_receipt(&receipt(DeliveryState::Read), t0())
        .await
        .unwrap());
    assert_eq!(state_of(&store, member.id).await, DeliveryState::Read);
    assert!(store
        .get_timer(TimerKind::Escalate, &carrier.id.to_string())
        .await
        .unwrap()
        .is_none());
    let traced = store.get_delivery(carrier.id).await.unwrap().unwrap().trace;
    assert_eq!(
        traced.last().map(|t| (t.rule, t.outcome)),
        Some((Rule::Escalation, Outcome::Cancelled))
    );
}

async fn cancelling_withdraws_what_waits_and_keeps_what_was_sent(store: Store) {
    let e = notification(&store, "n1").await;
    let waiting = delivery(&e, "u1", DeliveryState::Deferred);
    let queued = delivery(&e, "u2", DeliveryState::Queued);
    let sent = delivery(&e, "u3", DeliveryState::Queued);
    let mut tx = store.begin_decisions().await.unwrap();
    tx.insert(
        &[
            Decided {
                delivery: waiting.clone(),
                timers: vec![NewTimer::new(
                    TimerKind::Release,
                    waiting.id.to_string(),
                    t0() + Duration::hours(1),
                )],
                cap_slot: CapSlot::Hold(
                    Category::parse("social").unwrap(),
                    t0() + Duration::hours(1),
                ),
            },
            decided(queued.clone()),
            decided(sent.clone()),
        ],
        t0(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    store
        .claim_delivery(sent.id, "w", t0(), t0() + Duration::minutes(1))
        .await
        .unwrap();
    store
        .finish_delivery(
            sent.id,
            "w",
            DeliveryState::Sent,
            Some("m"),
            None,
            false,
            t0(),
        )
        .await
        .unwrap();
    let outbox_before = store.outbox_len().await.unwrap();

    let cancelled = store
        .cancel_notification(e.notification_id(), t0())
        .await
        .unwrap();
    let Cancelled::Withdrawn(mut ids) = cancelled else {
        panic!("found nothing")
    };
    ids.sort();
    let mut expected = vec![waiting.id, queued.id];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(state_of(&store, waiting.id).await, DeliveryState::Cancelled);
    assert_eq!(state_of(&store, queued.id).await, DeliveryState::Cancelled);
    assert_eq!(state_of(&store, sent.id).await, DeliveryState::Sent);
    assert!(store
        .get_timer(TimerKind::Release, &waiting.id.to_string())
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.outbox_len().await.unwrap(),
        outbox_before + 2,
        "a receipt each"
    );
    let record = store
        .get_notification(e.notification_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.cancelled_at, Some(t0()));
    // A job still in a queue finds nothing to send.
    assert!(matches!(
        store
            .claim_delivery(queued.id, "w", t0(), t0() + Duration::minutes(1))
            .await
            .unwrap(),
        herald_store::Claim::Done {
            state: DeliveryState::Cancelled,
            ..
        }
    ));
    // Twice is fine; an unknown notification is not found.
    assert_eq!(
        store
            .cancel_notification(e.notification_id(), t0())
            .await
            .unwrap(),
        Cancelled::Withdrawn(Vec::new())
    );
    assert_eq!(
        store
            .cancel_notification(NotificationId::new(), t0())
            .await
            .unwrap(),
        Cancelled::NotFound
    );
}

async fn topics_take_subscribers_in_bulk_and_page_through_them_in_order(store: Store) {
    let topic = TopicName::parse("release-notes").unwrap();
    let users: Vec<UserId> = (0..1250).map(|i| user(&format!("u{i:05}"))).collect();
    for u in &users {
        store
            .put_user(u, &UserProfile::default(), t0())
            .await
            .unwrap();
    }
    assert!(store
        .put_topic(&topic, Some("What shipped"), t0())
        .await
        .unwrap());
    assert!(!store
        .put_topic(&topic, None, t0() + Duration::seconds(1))
        .await
        .unwrap());
    let gone = TopicName::parse("gone").unwrap();
    assert_eq!(
        store
            .change_subscribers(&gone, &users[..2], &[], t0())
            .await
            .unwrap(),
        None,
        "a topic deleted meanwhile: nothing changes, no error"
    );
    let change = store
        .change_subscribers(&topic, &users, &[], t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.added, 1250);
    let change = store
        .change_subscribers(
            &topic,
            &users[..10],
            &[user("u00003"), user("nobody")],
            t0(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((change.added, change.removed), (0, 1));
    assert_eq!(
        store.get_topic(&topic).await.unwrap().unwrap().subscribers,
        1249
    );

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .topic_subscribers(&topic, after.as_ref(), 500)
            .await
            .unwrap();
        seen.extend(page.iter().cloned());
        if page.len() < 500 {
            break;
        }
        after = page.last().cloned();
    }
    let mut expected: Vec<UserId> = users
        .iter()
        .filter(|u| u.as_str() != "u00003")
        .cloned()
        .collect();
    expected.sort();
    assert_eq!(seen, expected, "every subscriber once, in order");
    assert!(store.delete_topic(&topic).await.unwrap());
    assert!(store.get_topic(&topic).await.unwrap().is_none());
    assert!(!store.delete_topic(&topic).await.unwrap());
}

async fn a_transient_failure_leaves_the_delivery_waiting_on_a_retry_timer(store: Store) {
    let e = notification(&store, "n1").await;
    let d = delivery(&e, "u1", DeliveryState::Queued);
    store
        .insert_deliveries(std::slice::from_ref(&d), t0())
        .await
        .unwrap();
    store
        .claim_delivery(d.id, "w", t0(), t0() + Duration::minutes(1))
        .await
        .unwrap();
    let until = t0() + Duration::seconds(30);
    assert!(!store
        .defer_retry(d.id, "other", "503", until, t0())
        .await
        .unwrap());
    assert!(store
        .defer_retry(d.id, "w", "503 busy", until, t0())
        .await
        .unwrap());
    let record = store.get_delivery(d.id).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Deferred);
    assert_eq!(record.not_before, Some(until));
    assert_eq!(record.last_error.as_deref(), Some("503 busy"));
    assert_eq!(record.trace.last().map(|t| t.rule), Some(Rule::Retry));
    let timer = store
        .get_timer(TimerKind::Retry, &d.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(timer.due_at, until);
    // While it waits, a stale job for it is told so, and claims nothing.
    assert_eq!(
        store
            .claim_delivery(d.id, "w2", t0(), t0() + Duration::minutes(1))
            .await
            .unwrap(),
        herald_store::Claim::Waiting { until: Some(until) }
    );
}

async fn routers_deciding_at_once_never_both_take_the_last_cap_slot(store: Store) {
    // Eight "routers" decide a push for the same user at the same moment
    // under a cap of one an hour: exactly one gets now, the others later.
    let social = Category::parse("social").unwrap();
    let cap = herald_domain::FrequencyCap {
        channel: Channel::Push,
        max: 1,
        per: herald_domain::Span::parse("1h").unwrap(),
    };
    let mut events = Vec::new();
    for i in 0..8 {
        events.push(notification(&store, &format!("race-{i}")).await);
    }
    let tasks: Vec<_> = events
        .into_iter()
        .map(|e| {
            let (store, social, cap) = (store.clone(), social.clone(), cap.clone());
            tokio::spawn(async move {
                let d = delivery(&e, "u1", DeliveryState::Queued);
                let mut tx = store.begin_decisions().await.unwrap();
                tx.lock_caps(&[&user("u1")]).await.unwrap();
                let taken = tx
                    .cap_taken(
                        &user("u1"),
                        &social,
                        Channel::Push,
                        d.id,
                        t0() - Duration::hours(1),
                    )
                    .await
                    .unwrap();
                let slot = herald_domain::next_slot(&[&cap], &taken, t0());
                tx.insert(
                    &[Decided {
                        delivery: d,
                        timers: Vec::new(),
                        cap_slot: CapSlot::Hold(social, slot),
                    }],
                    t0(),
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
                slot
            })
        })
        .collect();
    let mut slots: Vec<DateTime<Utc>> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    slots.sort();
    let expected: Vec<DateTime<Utc>> = (0..8).map(|h| t0() + Duration::hours(h)).collect();
    assert_eq!(slots, expected, "one slot an hour, none shared");
}

/// A member of a digest (`u1`'s push delivery of `event`), waiting in it.
async fn member_of_digest(
    store: &Store,
    event: &NotificationEvent,
    closes: DateTime<Utc>,
) -> (DeliveryId, NewDelivery) {
    let template = TemplateName::parse("new_comment").unwrap();
    let mut tx = store.begin_decisions().await.unwrap();
    let joined = tx
        .join_digest(
            &user("u1"),
            Channel::Push,
            DigestKind::Group,
            "k",
            &template,
            closes,
            t0(),
        )
        .await
        .unwrap();
    let mut d = delivery(event, "u1", DeliveryState::Deferred);
    d.digest_id = Some(joined.carrier);
    d.not_before = Some(closes);
    tx.insert(&[decided(d.clone())], t0()).await.unwrap();
    tx.commit().await.unwrap();
    (joined.id, d)
}

async fn cancelling_withdraws_a_member_of_an_open_digest_but_not_of_a_closed_one(store: Store) {
    let open = notification(&store, "open").await;
    let closing = notification(&store, "closing").await;
    let closes = t0() + Duration::minutes(10);
    let (digest, waiting) = member_of_digest(&store, &open, closes).await;
    let (same_digest, carried) = member_of_digest(&store, &closing, closes).await;
    assert_eq!(digest, same_digest);
    let cancelled = store
        .cancel_notification(open.notification_id(), t0())
        .await
        .unwrap();
    assert_eq!(cancelled, Cancelled::Withdrawn(vec![waiting.id]));
    let closed = store.close_digest(digest, closes).await.unwrap().unwrap();
    assert_eq!(
        closed
            .members
            .iter()
            .map(|m| m.delivery_id)
            .collect::<Vec<_>>(),
        vec![carried.id],
        "the cancelled member is not carried"
    );
    // Once the window closed, the digest is on its way: nothing to withdraw.
    let cancelled = store
        .cancel_notification(closing.notification_id(), closes)
        .await
        .unwrap();
    assert_eq!(cancelled, Cancelled::Withdrawn(Vec::new()));
    assert_eq!(state_of(&store, carried.id).await, DeliveryState::Deferred);
}

async fn a_carrier_decided_at_once_takes_its_members_along_in_the_same_transaction(store: Store) {
    let e = notification(&store, "n1").await;
    let closes = t0() + Duration::minutes(10);
    let (digest, member) = member_of_digest(&store, &e, closes).await;
    let closed = store.close_digest(digest, closes).await.unwrap().unwrap();
    // The user lost their last device meanwhile: the carrier is suppressed.
    let carrier_event = notification(&store, "carrier").await;
    let mut carrier = NewDelivery::new(
        closed.carrier,
        carrier_event.notification_id(),
        user("u1"),
        Channel::Push,
        DeliveryState::Suppressed,
    );
    carrier.reason = Some("no_push_device".into());
    let mut tx = store.begin_decisions().await.unwrap();
    tx.insert(&[decided(carrier)], closes).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(state_of(&store, member.id).await, DeliveryState::Suppressed);
}

async fn a_decision_sees_a_cancellation_committed_before_it(store: Store) {
    let e = notification(&store, "n1").await;
    let mut tx = store.begin_decisions().await.unwrap();
    let live = tx.notification(e.notification_id()).await.unwrap().unwrap();
    assert_eq!(
        (live.created_at, live.cancelled, live.has_deliveries),
        (t0(), false, false)
    );
    assert!(tx
        .notification(NotificationId::new())
        .await
        .unwrap()
        .is_none());
    tx.insert(&[decided(delivery(&e, "u1", DeliveryState::Queued))], t0())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    store
        .cancel_notification(e.notification_id(), t0() + Duration::seconds(1))
        .await
        .unwrap();
    let mut tx = store.begin_decisions().await.unwrap();
    let live = tx.notification(e.notification_id()).await.unwrap().unwrap();
    assert!(live.cancelled && live.has_deliveries);
}

async fn a_retry_keeps_the_cap_slot_its_first_attempt_took(store: Store) {
    let e = notification(&store, "n1").await;
    let social = Category::parse("social").unwrap();
    let mut d = delivery(&e, "u1", DeliveryState::Deferred);
    d.not_before = Some(t0());
    let mut tx = store.begin_decisions().await.unwrap();
    tx.insert(
        &[Decided {
            delivery: d.clone(),
            timers: Vec::new(),
            cap_slot: CapSlot::Hold(social.clone(), t0()),
        }],
        t0(),
    )
    .await
    .unwrap();
    let mut requeued = d.clone();
    requeued.state = DeliveryState::Queued;
    let moved = tx
        .redecide(
            &Decided {
                delivery: requeued,
                timers: Vec::new(),
                cap_slot: CapSlot::Keep,
            },
            t0(),
            t0(),
        )
        .await
        .unwrap();
    assert!(moved);
    let other = DeliveryId::derive(NotificationId::new(), &user("u1"), Channel::Push);
    let taken = tx
        .cap_taken(
            &user("u1"),
            &social,
            Channel::Push,
            other,
            t0() - Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(taken, vec![t0()], "still counted against the cap");
}

async fn a_read_while_the_inbox_write_is_being_recorded_still_cancels_the_escalation(store: Store) {
    let e = notification(&store, "n1").await;
    let mut d = delivery(&e, "u1", DeliveryState::Queued);
    d.channel = Channel::InApp;
    d.id = DeliveryId::derive(e.notification_id(), &user("u1"), Channel::InApp);
    let mut tx = store.begin_decisions().await.unwrap();
    tx.insert(
        &[Decided {
            delivery: d.clone(),
            timers: vec![NewTimer::new(
                TimerKind::Escalate,
                d.id.to_string(),
                t0() + Duration::minutes(15),
            )],
            cap_slot: CapSlot::Release,
        }],
        t0(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    store
        .claim_delivery(d.id, "w", t0(), t0() + Duration::minutes(1))
        .await
        .unwrap();
    // The inbox item is written, the user reads it, the worker has not yet
    // recorded `sent`.
    let read = Receipt {
        schema_version: SCHEMA_VERSION,
        delivery_id: d.id,
        notification_id: e.notification_id(),
        user_id: user("u1"),
        channel: Channel::InApp,
        state: DeliveryState::Read,
        reason: None,
        provider_message_id: None,
        at: t0(),
    };
    assert!(store.apply_receipt(&read, t0()).await.unwrap());
    assert_eq!(state_of(&store, d.id).await, DeliveryState::Read);
    assert!(store
        .get_timer(TimerKind::Escalate, &d.id.to_string())
        .await
        .unwrap()
        .is_none());
    // The worker's late `sent` finds its claim gone and changes nothing.
    assert!(!store
        .finish_delivery(
            d.id,
            "w",
            DeliveryState::Sent,
            Some("inbox"),
            None,
            false,
            t0()
        )
        .await
        .unwrap());
    assert_eq!(state_of(&store, d.id).await, DeliveryState::Read);
}

async fn what_a_timer_that_can_never_fire_held_fails_instead_of_waiting_forever(store: Store) {
    let e = notification(&store, "n1").await;
    let mut waiting = delivery(&e, "u2", DeliveryState::Deferred);
    waiting.not_before = Some(t0());
    store
        .insert_deliveries(std::slice::from_ref(&waiting), t0())
        .await
        .unwrap();
    let failed = store
        .fail_waiting(
            TimerKind::Release,
            &waiting.id.to_string(),
            "unknown template gone",
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(failed, 1);
    let record = store.get_delivery(waiting.id).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Failed);
    assert_eq!(record.last_error.as_deref(), Some("unknown template gone"));
    // A digest's waiting members fail with it.
    let closes = t0() + Duration::minutes(10);
    let (digest, member) = member_of_digest(&store, &e, closes).await;
    let failed = store
        .fail_waiting(TimerKind::DigestClose, &digest.to_string(), "gone", t0())
        .await
        .unwrap();
    assert_eq!(failed, 1);
    assert_eq!(state_of(&store, member.id).await, DeliveryState::Failed);
    assert_eq!(
        store
            .fail_waiting(TimerKind::Expand, "x", "gone", t0())
            .await
            .unwrap(),
        0
    );
}
