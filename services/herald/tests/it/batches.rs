//! Events that arrive together are routed together (their notifications,
//! decisions and cap slots in one transaction), and each exactly as it
//! would be routed alone: a frequency cap holds across the events of one
//! batch, a duplicate inside a batch adds nothing, an event that can never
//! be routed is dead-lettered alone, and one that names a topic still
//! reaches its subscribers.

use super::support::Backend;

crate::on_both_backends!(events_that_arrive_together_are_each_routed_as_if_alone);

use herald_domain::NotificationEvent;
use serde_json::{json, Value};

use crate::judgement::{app_at, delivery_in, put_category, sleeper};
use crate::support::TestApp;

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
