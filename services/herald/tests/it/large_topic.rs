//! A notification to a topic of 20,000 subscribers: the router expands it
//! forty pages at a time, a crash in the middle neither skips nor repeats
//! anyone, each subscriber's own preferences apply, the API pages through
//! the deliveries, and one `DELETE` withdraws them all. The send is
//! scheduled for tomorrow, so nothing reaches a provider: this is about the
//! router and the store at scale. 20,000 keeps the suite's debug build
//! within a minute per backend; the load test (`--topic`, in
//! loadtest/RESULTS.md) sends to 100,000 and checks each got one e-mail.

use super::support::Backend;

crate::on_both_backends!(
    twenty_thousand_subscribers_get_one_delivery_each_through_a_crash_and_one_cancel_withdraws_them,
);

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::fanout::{create_topic, subscribe};
use crate::support::{Options, TestApp};

const SUBSCRIBERS: usize = 20_000;

fn reader(i: usize) -> String {
    format!("fan-{i:06}")
}

async fn counts(app: &TestApp, id: &str) -> (u64, BTreeMap<String, u64>) {
    let n = app.notification(id).await;
    let counts = serde_json::from_value(n["delivery_counts"].clone()).unwrap_or_default();
    (n["deliveries_total"].as_u64().unwrap_or_default(), counts)
}

/// Every delivery of the notification, read a page at a time.
async fn every_delivery(app: &TestApp, id: &str, state: Option<&str>) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/v1/notifications/{id}/deliveries?limit=1000");
        if let Some(state) = state {
            path.push_str(&format!("&state={state}"));
        }
        if let Some(after) = &after {
            path.push_str(&format!("&after={after}"));
        }
        let (status, page) = app.request(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        all.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return all,
        }
    }
}

async fn twenty_thousand_subscribers_get_one_delivery_each_through_a_crash_and_one_cancel_withdraws_them(
    backend: Backend,
) {
    let _turn = crate::support::heavy_turn().await;
    let noon = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
        .unwrap()
        .to_utc();
    let mut app = TestApp::spawn_with(Options {
        clock: Some(noon),
        extra: crate::support::short_leases(),
        ..Options::on(backend)
    })
    .await;
    let readers: Vec<String> = (0..SUBSCRIBERS).map(reader).collect();
    futures::stream::iter(readers.iter())
        .for_each_concurrent(64, |user| {
            let app = &app;
            async move {
                app.put_user(user, json!({"email": format!("{user}@example.com")}))
                    .await;
            }
        })
        .await;
    let opted_out = [reader(7), reader(SUBSCRIBERS - 1)];
    for user in &opted_out {
        let (status, body) = app
            .request(
                reqwest::Method::PUT,
                &format!("/v1/users/{user}/preferences"),
                Some(json!({"channels": {"email": false}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    create_topic(&app, "everyone").await;
    subscribe(&app, "everyone", &readers).await;

    let id = app
        .send(
            json!({"template": "welcome", "recipients": [{"topic": "everyone"}],
            "channels": ["email"], "send_at": "2026-12-02T12:00:00Z",
            "params": {"name": "reader", "app_name": "Acme"}}),
        )
        .await;
    // Killed a fifth of the way through the expansion.
    app.eventually(
        "a fifth of the topic to be routed",
        || counts(&app, &id),
        |(total, _)| *total >= (SUBSCRIBERS / 5) as u64,
    )
    .await;
    app.running.take().expect("running").abort().await;
    app.start().await;
    let routed_at_restart = counts(&app, &id).await.0;
    // A minute on, the dead process's leases have ended.
    app.advance(Duration::minutes(1));
    let (total, by_state) = app
        .eventually(
            "every subscriber to be routed",
            || counts(&app, &id),
            |(total, _)| *total >= SUBSCRIBERS as u64,
        )
        .await;
    assert_eq!(total, SUBSCRIBERS as u64, "nobody twice");
    assert_eq!(
        by_state,
        BTreeMap::from([
            ("deferred".to_owned(), (SUBSCRIBERS - 2) as u64),
            ("suppressed".to_owned(), 2),
        ]),
        "restarted with {routed_at_restart} routed"
    );

    // The notification itself shows the first 2,000; the rest are paged.
    let n = app.notification(&id).await;
    assert_eq!(n["deliveries"].as_array().map(Vec::len), Some(2000));
    let suppressed = every_delivery(&app, &id, Some("suppressed")).await;
    let mut who: Vec<&str> = suppressed
        .iter()
        .filter_map(|d| d["user_id"].as_str())
        .collect();
    who.sort_unstable();
    assert_eq!(
        who,
        opted_out.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(suppressed
        .iter()
        .all(|d| d["last_error"] == "opted_out_channel"));
    let all = every_delivery(&app, &id, None).await;
    let users: HashSet<&str> = all.iter().filter_map(|d| d["user_id"].as_str()).collect();
    assert_eq!((all.len(), users.len()), (SUBSCRIBERS, SUBSCRIBERS));
    let deferred = all
        .iter()
        .find(|d| d["state"] == "deferred")
        .expect("a deferred one");
    assert_eq!(deferred["not_before"], "2026-12-02T12:00:00Z");

    // One DELETE withdraws every one still waiting.
    let (status, body) = app
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/notifications/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["cancelled"].as_array().map(Vec::len),
        Some(SUBSCRIBERS - 2)
    );
    assert_eq!(
        counts(&app, &id).await.1,
        BTreeMap::from([
            ("cancelled".to_owned(), (SUBSCRIBERS - 2) as u64),
            ("suppressed".to_owned(), 2),
        ])
    );
}
