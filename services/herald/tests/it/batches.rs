//! Events that arrive together are routed together (their notifications,
//! decisions and cap slots in one transaction), and each exactly as it
//! would be routed alone: a frequency cap holds across the events of one
//! batch, a duplicate inside a batch adds nothing, an event that can never
//! be routed is dead-lettered alone, and one that names a topic still
//! reaches its subscribers. A worker handed a batch of jobs claims them in
//! one statement and records their outcomes in one transaction, and each
//! job still ends as it would alone. Concurrent API requests share
//! transactions (group commit) and, on PostgreSQL, recipient checks; each
//! is answered (and delivered) once, as if alone.

use super::support::Backend;

crate::on_both_backends!(
    events_that_arrive_together_are_each_routed_as_if_alone,
    a_batch_of_jobs_ends_each_as_it_would_alone,
    concurrent_sends_share_commits_and_each_is_delivered_once,
    concurrent_sends_share_recipient_checks_and_each_names_its_own_unknown_users,
);

use std::sync::Arc;
use std::time::Duration;

use herald_domain::NotificationEvent;
use herald_workers::{LocalClaimCache, Outcome, WorkerError};
use serde_json::{json, Value};

use crate::judgement::{app_at, delivery_in, put_category, sleeper};
use crate::resilience::{email_worker, routed_email_job_to};
use crate::support::{ada, TestApp, WAIT};

fn event(id: &str, body: Value) -> (String, Value) {
    let mut body = body;
    body["event_id"] = json!(id);
    (id.to_owned(), body)
}

fn notification_id(body: &Value) -> String {
    let event: NotificationEvent = serde_json::from_value(body.clone()).expect("an event");
    event.notification_id().to_string()
}

/// Waits until the router has recorded the event's notification.
async fn routed(app: &TestApp, body: &Value) -> String {
    let id = notification_id(body);
    app.eventually(
        &format!("notification {id} to be recorded"),
        || async {
            app.request(
                reqwest::Method::GET,
                &format!("/v1/notifications/{id}"),
                None,
            )
            .await
            .0
        },
        |status| *status == 200,
    )
    .await;
    id
}

async fn events_that_arrive_together_are_each_routed_as_if_alone(backend: Backend) {
    let app = app_at(backend, "2026-12-01T12:00:00Z").await;
    // 12:00 in London: outside both users' quiet hours.
    sleeper(&app, "ada", "Europe/London").await;
    sleeper(&app, "bob", "Europe/London").await;
    put_category(
        &app,
        "account",
        json!({"caps": [{"channel": "push", "max": 3, "per": "1h"}]}),
    )
    .await;
    let (status, body) = app
        .request(reqwest::Method::PUT, "/v1/topics/team", Some(json!({})))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .request(
            reqwest::Method::POST,
            "/v1/topics/team/subscribers",
            Some(json!({"add": ["bob"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let welcome = |to: Value, channels: Value| {
        json!({"template": "welcome", "recipients": to, "channels": channels,
            "params": {"name": "Ada", "app_name": "Acme"}})
    };
    let mut events = Vec::new();
    // Five pushes to Ada in one batch: the cap lets three through.
    for i in 0..5 {
        events.push(event(
            &format!("ada-{i}"),
            welcome(json!(["ada"]), json!(["push", "email"])),
        ));
    }
    // The first again, inside the same batch.
    events.push(event(
        "ada-0",
        welcome(json!(["ada"]), json!(["push", "email"])),
    ));
    // Bob through a topic: routed on its own, beside the batch.
    events.push(event(
        "team-1",
        welcome(json!([{"topic": "team"}]), json!(["email"])),
    ));
    // Two that can never be routed.
    events.push(event(
        "no-template",
        json!({"template": "no_such_template", "recipients": ["ada"], "params": {}}),
    ));
    events.push(event(
        "no-channel",
        json!({"template": "security_alert", "recipients": ["bob"], "channels": ["sms"], "params": {}}),
    ));
    let bus = app.bus();
    let topic = bus.topics().events();
    let messages: Vec<_> = events
        .iter()
        .map(|(_, body)| (topic.clone(), "k".to_owned(), body.to_string().into_bytes()))
        .collect();
    bus.publish_all(&messages).await.unwrap();

    let mut pushed = Vec::new();
    for (id, body) in &events[..5] {
        let n = routed(&app, body).await;
        delivery_in(&app, &n, "ada", "email", "sent").await;
        let push = app
            .eventually(
                &format!("{id}'s push to be decided"),
                || async {
                    let n = app.notification(&n).await;
                    n["deliveries"]
                        .as_array()
                        .and_then(|list| list.iter().find(|d| d["channel"] == "push").cloned())
                        .unwrap_or(Value::Null)
                },
                |d| d["state"] == "sent" || d["state"] == "deferred",
            )
            .await;
        pushed.push(push["state"].as_str().unwrap_or_default().to_owned());
        assert_eq!(
            app.notification(&n).await["deliveries"]
                .as_array()
                .map(Vec::len),
            Some(2),
            "{id}: one delivery per channel, the duplicate added none"
        );
    }
    let sent = pushed.iter().filter(|s| *s == "sent").count();
    let deferred = pushed.iter().filter(|s| *s == "deferred").count();
    assert_eq!(
        (sent, deferred),
        (3, 2),
        "the cap held inside the batch: {pushed:?}"
    );

    let team = routed(&app, &events[6].1).await;
    delivery_in(&app, &team, "bob", "email", "sent").await;

    let mut reasons: Vec<String> = app
        .dead_letters(2)
        .await
        .into_iter()
        .map(|letter| letter.reason)
        .collect();
    reasons.sort();
    assert!(
        reasons[0].contains("channel sms is not offered by template security_alert"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("unknown template no_such_template"),
        "{reasons:?}"
    );
    assert!(
        app.largest_batch("router") > 1,
        "the events were handed to the router together"
    );
}

async fn a_batch_of_jobs_ends_each_as_it_would_alone(backend: Backend) {
    let app = TestApp::with_smtp(backend).await;
    let smtp = app.smtp.clone().unwrap();
    ada(&app).await;
    let store = app.store();
    let now = chrono::Utc::now();
    let mut fresh = Vec::new();
    for i in 0..4 {
        fresh.push(routed_email_job_to(&app, &format!("batch-{i}"), "ada").await);
    }
    // Routed to someone who has since been deleted.
    let ghost = routed_email_job_to(&app, "batch-ghost", "ghost").await;
    // Sent already, by another worker with a claim cache of its own.
    let done = routed_email_job_to(&app, "batch-done", "ada").await;
    let earlier = email_worker(&app, &smtp, Arc::new(LocalClaimCache::default()));
    let sent = earlier.handle(&serde_json::to_vec(&done).unwrap()).await;
    assert!(matches!(sent, Ok(Outcome::Finished(_))), "{sent:?}");
    // Waiting on a retry timer.
    let waiting = routed_email_job_to(&app, "batch-waiting", "ada").await;
    store
        .claim_delivery(
            waiting.delivery_id,
            "t",
            now,
            now + chrono::Duration::minutes(2),
        )
        .await
        .unwrap();
    assert!(store
        .defer_retry(
            waiting.delivery_id,
            "t",
            "busy",
            now + chrono::Duration::hours(1),
            now
        )
        .await
        .unwrap());
    // Being sent by a worker that is still alive.
    let busy = routed_email_job_to(&app, "batch-busy", "ada").await;
    store
        .claim_delivery(
            busy.delivery_id,
            "alive",
            now,
            now + chrono::Duration::minutes(2),
        )
        .await
        .unwrap();

    let payload = |job: &herald_domain::DeliveryJob| serde_json::to_vec(job).unwrap();
    let payloads = vec![
        payload(&fresh[0]),
        payload(&fresh[1]),
        payload(&fresh[0]),
        payload(&ghost),
        payload(&done),
        b"not a job".to_vec(),
        payload(&waiting),
        payload(&busy),
        payload(&fresh[2]),
        payload(&fresh[3]),
    ];
    let worker = email_worker(&app, &smtp, Arc::new(LocalClaimCache::default()));
    let results = worker.handle_many(&payloads).await;
    let sent = herald_domain::DeliveryState::Sent;
    let failed = herald_domain::DeliveryState::Failed;
    assert!(
        matches!(results[0], Ok(Outcome::Finished(s)) if s == sent),
        "{results:?}"
    );
    assert!(
        matches!(results[1], Ok(Outcome::Finished(s)) if s == sent),
        "{results:?}"
    );
    assert!(
        matches!(results[2], Ok(Outcome::Skipped)),
        "the echo: {results:?}"
    );
    assert!(
        matches!(results[3], Ok(Outcome::Finished(s)) if s == failed),
        "{results:?}"
    );
    assert!(
        matches!(results[4], Ok(Outcome::AlreadyDone(s)) if s == sent),
        "{results:?}"
    );
    assert!(
        matches!(results[5], Err(WorkerError::Poison(_))),
        "{results:?}"
    );
    assert!(matches!(results[6], Ok(Outcome::Waiting)), "{results:?}");
    assert!(
        matches!(&results[7], Err(WorkerError::HeldElsewhere(id)) if *id == busy.delivery_id),
        "handed back to wait alone: {results:?}"
    );
    assert!(
        matches!(results[8], Ok(Outcome::Finished(s)) if s == sent),
        "{results:?}"
    );
    assert!(
        matches!(results[9], Ok(Outcome::Finished(s)) if s == sent),
        "{results:?}"
    );

    // One e-mail before, four now; none for the ghost, the echo or the rest.
    assert_eq!(smtp.wait_for(5, WAIT).await.len(), 5);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(smtp.count(), 5);
    for job in &fresh {
        let n = app.notification(&job.notification_id.to_string()).await;
        let d = &n["deliveries"][0];
        assert_eq!(
            (d["state"].as_str(), d["attempts"].as_i64()),
            (Some("sent"), Some(1)),
            "{n:#}"
        );
    }
    let n = app.notification(&ghost.notification_id.to_string()).await;
    assert_eq!(n["deliveries"][0]["state"], "failed", "{n:#}");
    assert_eq!(
        n["deliveries"][0]["last_error"], "the user no longer exists",
        "{n:#}"
    );
    let n = app.notification(&busy.notification_id.to_string()).await;
    assert_eq!(
        n["deliveries"][0]["state"], "sending",
        "still the other worker's: {n:#}"
    );
}

async fn concurrent_sends_share_commits_and_each_is_delivered_once(backend: Backend) {
    let app = TestApp::with_smtp(backend).await;
    let smtp = app.smtp.clone().unwrap();
    ada(&app).await;
    let sends = (0..64).map(|i| {
        let client = app.client.clone();
        let url = format!("{}/v1/notifications", app.base);
        let body = json!({"template": "welcome", "recipients": ["ada"], "channels": ["email"],
            "params": {"name": format!("Ada {i}"), "app_name": "Acme"}});
        async move {
            let answer = client.post(url).json(&body).send().await.unwrap();
            let status = answer.status().as_u16();
            let body: Value = answer.json().await.unwrap();
            assert_eq!(status, 202, "{body}");
            body["id"].as_str().unwrap().to_owned()
        }
    });
    let ids: std::collections::HashSet<String> =
        futures::future::join_all(sends).await.into_iter().collect();
    assert_eq!(ids.len(), 64, "one notification per request");
    for id in &ids {
        app.settled(id, 1).await;
    }
    assert_eq!(smtp.wait_for(64, WAIT).await.len(), 64);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(smtp.count(), 64, "each delivered once");
}

async fn concurrent_sends_share_recipient_checks_and_each_names_its_own_unknown_users(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    ada(&app).await;
    // Every third request names a stranger of its own beside ada.
    let sends = (0..60).map(|i| {
        let client = app.client.clone();
        let url = format!("{}/v1/notifications", app.base);
        let recipients = if i % 3 == 0 {
            json!(["ada", format!("stranger-{i}")])
        } else {
            json!(["ada"])
        };
        let body = json!({"template": "welcome", "recipients": recipients, "channels": ["in_app"],
            "params": {"name": "Ada", "app_name": "Acme"}});
        async move {
            let answer = client.post(url).json(&body).send().await.unwrap();
            let status = answer.status().as_u16();
            let body: Value = answer.json().await.unwrap();
            (i, status, body)
        }
    });
    for (i, status, body) in futures::future::join_all(sends).await {
        if i % 3 == 0 {
            assert_eq!(status, 422, "{i}: {body}");
            assert_eq!(body["error"]["code"], "unknown_user", "{i}: {body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                message.starts_with(&format!("1 unknown recipient(s): stranger-{i};")),
                "{i}: only its own stranger: {message}"
            );
        } else {
            assert_eq!(status, 202, "{i}: {body}");
        }
    }
}
