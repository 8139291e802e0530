//! Topics end to end: subscribers added in bulk, a notification to a topic
//! reaches each of them once with their own rules applied, and a crash in
//! the middle of the expansion neither skips nor repeats anyone.

use super::support::Backend;

crate::on_both_backends!(
    a_topic_reaches_every_subscriber_once_through_a_crash_mid_expansion,
    topics_are_managed_in_bulk_and_listed_a_page_at_a_time,
    an_event_handled_again_after_its_topic_was_reached_does_not_start_over,
);

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::support::{Options, TestApp, WAIT};

pub(crate) async fn subscribe(app: &TestApp, topic: &str, users: &[String]) {
    for chunk in users.chunks(5000) {
        let (status, body) = app
            .request(
                reqwest::Method::POST,
                &format!("/v1/topics/{topic}/subscribers"),
                Some(json!({"add": chunk})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

pub(crate) async fn create_topic(app: &TestApp, topic: &str) {
    let (status, body) = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/topics/{topic}"),
            Some(json!({"description": "What shipped this week"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn a_topic_reaches_every_subscriber_once_through_a_crash_mid_expansion(backend: Backend) {
    let _turn = crate::support::heavy_turn().await;
    let mut app = TestApp::spawn_with(Options {
        smtp: true,
        extra: crate::support::short_leases(),
        ..Options::on(backend)
    })
    .await;
    let smtp = app.smtp.clone().unwrap();
    let users: Vec<String> = (0..1300).map(|i| format!("reader-{i:04}")).collect();
    for user in &users {
        app.put_user(user, json!({"email": format!("{user}@example.com")}))
            .await;
    }
    // One subscriber opted out of e-mail: their own preferences apply.
    let (status, _) = app
        .request(
            reqwest::Method::PUT,
            "/v1/users/reader-0007/preferences",
            Some(json!({"channels": {"email": false}})),
        )
        .await;
    assert_eq!(status, 200);
    create_topic(&app, "release-notes").await;
    subscribe(&app, "release-notes", &users).await;

    let id = app
        .send(
            json!({"template": "welcome", "recipients": [{"topic": "release-notes"}, "reader-0001"],
            "channels": ["email"], "params": {"name": "reader", "app_name": "Acme"}}),
        )
        .await;
    // Crash once the first pages are out, before the expansion is done.
    app.eventually(
        "the first page to go out",
        || async { smtp.count() },
        |n| *n >= 300,
    )
    .await;
    app.running.take().expect("running").abort().await;
    let sent_before_crash = smtp.count();
    app.start().await;

    let n = app.settled(&id, users.len()).await;
    let deliveries = n["deliveries"].as_array().unwrap();
    assert_eq!(
        deliveries.len(),
        users.len(),
        "one each, the direct recipient too"
    );
    let opted_out: Vec<&Value> = deliveries
        .iter()
        .filter(|d| d["state"] == "suppressed")
        .collect();
    assert_eq!(opted_out.len(), 1);
    assert_eq!(opted_out[0]["user_id"], "reader-0007");
    // Every delivery is final, so nothing is left to send: what arrived is all.
    let mails = smtp.wait_for(users.len() - 1, WAIT).await;
    let recipients: HashSet<String> = mails.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    assert_eq!(
        recipients.len(),
        users.len() - 1,
        "everyone but the opted-out reader"
    );
    assert_eq!(
        mails.len(),
        users.len() - 1,
        "nobody twice (crash after {sent_before_crash})"
    );
}

async fn topics_are_managed_in_bulk_and_listed_a_page_at_a_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let users: Vec<String> = (0..25).map(|i| format!("u{i:02}")).collect();
    for user in &users {
        app.put_user(user, json!({})).await;
    }
    create_topic(&app, "team.alpha").await;
    let (status, again) = app
        .request(
            reqwest::Method::PUT,
            "/v1/topics/team.alpha",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), again["description"].clone()),
        (200, Value::Null)
    );
    subscribe(&app, "team.alpha", &users).await;
    let (status, changed) = app
        .request(
            reqwest::Method::POST,
            "/v1/topics/team.alpha/subscribers",
            Some(json!({"add": ["u00"], "remove": ["u01", "u02", "nobody"]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        changed,
        json!({"added": 0, "removed": 2, "subscribers": 23})
    );

    let mut seen = Vec::new();
    let mut path = "/v1/topics/team.alpha/subscribers?limit=10".to_owned();
    loop {
        let (status, page) = app.request(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["subscribers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u.as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/topics/team.alpha/subscribers?limit=10&after={next}"),
            None => break,
        }
    }
    let expected: Vec<String> = users
        .iter()
        .filter(|u| *u != "u01" && *u != "u02")
        .cloned()
        .collect();
    assert_eq!(seen, expected);

    // Bad input: unknown users, an unknown topic, a bad name, a bad limit.
    let cases = [
        (
            reqwest::Method::POST,
            "/v1/topics/team.alpha/subscribers",
            Some(json!({"add": ["ghost"]})),
            422,
            "unknown_user",
        ),
        (
            reqwest::Method::POST,
            "/v1/topics/nope/subscribers",
            Some(json!({"add": ["u00"]})),
            404,
            "topic_not_found",
        ),
        (
            reqwest::Method::PUT,
            "/v1/topics/Bad%20Name",
            Some(json!({})),
            400,
            "invalid_topic",
        ),
        (
            reqwest::Method::GET,
            "/v1/topics/team.alpha/subscribers?limit=0",
            None,
            400,
            "invalid_query",
        ),
        (
            reqwest::Method::POST,
            "/v1/topics/team.alpha/subscribers",
            Some(json!({"add": ["a b"]})),
            422,
            "invalid_body",
        ),
        (
            reqwest::Method::POST,
            "/v1/notifications",
            Some(json!({"template": "welcome",
            "recipients": [{"topic": "nope"}], "params": {"name": "A", "app_name": "B"}})),
            422,
            "unknown_topic",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got, answer) = app.request(method, path, body).await;
        assert_eq!(
            (got.as_u16(), answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {answer}"
        );
    }
    let deleted = app
        .client
        .delete(format!("{}/v1/topics/team.alpha", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let (status, _) = app
        .request(reqwest::Method::GET, "/v1/topics/team.alpha", None)
        .await;
    assert_eq!(status, 404);
}

async fn an_event_handled_again_after_its_topic_was_reached_does_not_start_over(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let early: Vec<String> = (0..3).map(|i| format!("early-{i}")).collect();
    for user in early.iter().chain(std::iter::once(&"late".to_owned())) {
        app.put_user(user, json!({})).await;
    }
    create_topic(&app, "news").await;
    subscribe(&app, "news", &early).await;
    let event = json!({"event_id": "news-1", "template": "welcome", "recipients": [{"topic": "news"}],
        "channels": ["in_app"], "params": {"name": "reader", "app_name": "Acme"}});
    let topic = app.bus().topics().events();
    app.bus()
        .publish(&topic, "news", event.to_string().as_bytes())
        .await
        .unwrap();
    let id = herald_domain::NotificationId::from_event_id("news-1");
    let path = format!("/v1/notifications/{id}");
    app.eventually(
        "the notification",
        || app.request(reqwest::Method::GET, &path, None),
        |(s, _)| *s == 200,
    )
    .await;
    app.settled(&id.to_string(), 3).await;
    let subject = format!("{id}/news");
    let finished = app
        .eventually(
            "the expansion to finish",
            || async {
                app.store()
                    .get_timer(herald_store::TimerKind::Expand, &subject)
                    .await
                    .unwrap()
            },
            |t| {
                t.as_ref()
                    .is_some_and(|t| t.payload.contains(r#""done":true"#))
            },
        )
        .await
        .unwrap();

    // Someone joins later; the same event comes again (a consumer rebalance).
    subscribe(&app, "news", &["late".to_owned()]).await;
    let before = app.handled("router");
    app.bus()
        .publish(&topic, "news", event.to_string().as_bytes())
        .await
        .unwrap();
    app.handled_at_least("router", before + 1).await;
    let kept = app
        .store()
        .get_timer(herald_store::TimerKind::Expand, &subject)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept, finished, "the finished expansion was not restarted");
    let n = app.notification(&id.to_string()).await;
    assert_eq!(n["deliveries"].as_array().map(Vec::len), Some(3), "{n:#}");
}
