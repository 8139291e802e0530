//! Digests end to end: a burst of comments on one post becomes one message
//! when the template's window closes, a restart in the middle neither sends
//! it twice nor drops a member, and a user's daily digest goes out at 08:00
//! in their own zone.

use super::support::Backend;

crate::on_both_backends!(
    a_burst_of_comments_becomes_one_digest_when_the_window_closes_even_across_a_restart,
    a_daily_digest_collects_the_day_and_goes_out_at_eight_local_time,
    a_group_key_on_a_template_without_a_digest_window_is_refused,
);

use chrono::Duration;
use serde_json::{json, Value};

use crate::judgement::{app_at, delivery_in, put_preferences, rules, user_delivery};
use crate::support::TestApp;

fn comment(commenter: &str, group_key: Option<&str>, channels: &[&str]) -> Value {
    let mut body = json!({"template": "new_comment", "recipients": ["ada"], "channels": channels,
        "params": {"name": "Ada", "commenter": commenter, "post_title": "Notes on the Engine",
        "comment_excerpt": format!("{commenter} says hi"), "url": "https://example.com/p/981"}});
    if let Some(key) = group_key {
        body["group_key"] = json!(key);
    }
    body
}

async fn ada(app: &TestApp, zone: &str) {
    app.put_user(
        "ada",
        json!({"email": "ada@example.com", "time_zone": zone, "name": "Ada"}),
    )
    .await;
}

fn eml(app: &TestApp, delivery_id: &str) -> Option<mail_parser::Message<'static>> {
    let path = app
        .data_dir
        .join("outbox/email")
        .join(format!("{delivery_id}.eml"));
    let bytes = std::fs::read(path).ok()?;
    mail_parser::MessageParser::default()
        .parse(&bytes)
        .map(|m| m.into_owned())
}

/// A delivery by id; `null` until it exists (a digest's before its window closes).
async fn get_delivery(app: &TestApp, id: &str) -> Value {
    let (status, body) = app
        .request(reqwest::Method::GET, &format!("/v1/deliveries/{id}"), None)
        .await;
    match status.as_u16() {
        200 => body,
        404 => Value::Null,
        other => panic!("{other} {body}"),
    }
}

async fn a_burst_of_comments_becomes_one_digest_when_the_window_closes_even_across_a_restart(
    backend: Backend,
) {
    let mut app = app_at(backend, "2026-12-01T12:00:00Z").await;
    ada(&app, "Europe/London").await;
    let commenters = ["Ana", "Ben", "Cy", "Dee", "Eve"];
    let mut ids = Vec::new();
    let mut carriers = Vec::new();
    for (i, commenter) in commenters.iter().enumerate() {
        let id = app
            .send(comment(commenter, Some("post-981"), &["email", "in_app"]))
            .await;
        for channel in ["email", "in_app"] {
            let d = delivery_in(&app, &id, "ada", channel, "deferred").await;
            assert_eq!(
                rules(&d).last(),
                Some(&("digest".to_owned(), "grouped".to_owned()))
            );
            assert_eq!(
                d["not_before"], "2026-12-01T12:10:00Z",
                "the first one's window"
            );
            carriers.push((channel, d["digest_id"].as_str().unwrap().to_owned()));
        }
        ids.push(id);
        if i == 2 {
            // A restart with the window open loses nothing.
            app.stop().await;
            app.start().await;
        }
        app.advance(Duration::minutes(1));
    }
    let carrier = |channel: &str| {
        let all: Vec<&String> = carriers
            .iter()
            .filter(|(c, _)| *c == channel)
            .map(|(_, id)| id)
            .collect();
        assert!(
            all.iter().all(|id| *id == all[0]),
            "one digest per channel: {all:?}"
        );
        all[0].clone()
    };
    let (email, in_app) = (carrier("email"), carrier("in_app"));
    assert_ne!(email, in_app);

    // 12:10: the window closes.
    app.advance(Duration::minutes(5));
    let digest = app
        .eventually(
            "the e-mail digest to be sent",
            || get_delivery(&app, &email),
            |d| d["state"] == "sent",
        )
        .await;
    assert_eq!(
        rules(&digest)[0],
        ("digest".to_owned(), "pass".to_owned()),
        "{digest:#}"
    );
    assert_eq!(digest["trace"][0]["reason"], "carries 5 notifications");
    let message = eml(&app, &email).expect("one e-mail for the digest");
    assert_eq!(
        message.subject(),
        Some("Ana, Ben and 3 others commented on \"Notes on the Engine\"")
    );
    let text = message.body_text(0).unwrap().into_owned();
    for commenter in commenters {
        assert!(text.contains(&format!("{commenter} says hi")), "{text}");
    }
    // Each notification points at the digest that carried it, and follows its state.
    for id in &ids {
        let d = delivery_in(&app, id, "ada", "email", "sent").await;
        assert_eq!(d["digest_id"], email.as_str());
        assert!(
            eml(&app, d["id"].as_str().unwrap()).is_none(),
            "no e-mail of its own"
        );
    }
    app.eventually(
        "the in-app digest",
        || get_delivery(&app, &in_app),
        |d| d["state"] == "sent",
    )
    .await;
    let (_, inbox) = app
        .request(reqwest::Method::GET, "/v1/users/ada/inbox", None)
        .await;
    let items = inbox["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{inbox:#}");
    assert_eq!(
        items[0]["title"],
        "5 new comments on \"Notes on the Engine\""
    );
    // The digest is a notification of its own, with one delivery.
    let digest_notification = app
        .notification(digest["notification_id"].as_str().unwrap())
        .await;
    assert_eq!(digest_notification["source"], "digest");
    assert_eq!(
        digest_notification["params"]["items"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );

    // A comment after the close opens the next digest.
    let later = app.send(comment("Fay", Some("post-981"), &["email"])).await;
    let d = delivery_in(&app, &later, "ada", "email", "deferred").await;
    assert_ne!(d["digest_id"], email.as_str());
    app.advance(Duration::minutes(10));
    let d = delivery_in(&app, &later, "ada", "email", "sent").await;
    let single = eml(&app, d["digest_id"].as_str().unwrap()).unwrap();
    assert_eq!(
        single.subject(),
        Some("Fay commented on \"Notes on the Engine\"")
    );
}

async fn a_daily_digest_collects_the_day_and_goes_out_at_eight_local_time(backend: Backend) {
    // 12:00 in Tokyo.
    let app = app_at(backend, "2026-12-01T03:00:00Z").await;
    ada(&app, "Asia/Tokyo").await;
    put_preferences(
        &app,
        "ada",
        json!({"digests": {"social": {"every": "daily", "at": "08:00"}}}),
    )
    .await;
    let mut ids = Vec::new();
    for commenter in ["Ana", "Ben", "Cy"] {
        let id = app
            .send(comment(commenter, None, &["email", "in_app"]))
            .await;
        delivery_in(&app, &id, "ada", "email", "deferred").await;
        ids.push(id);
        app.advance(Duration::hours(2));
    }
    let urgent = app
        .send(
            json!({"template": "new_comment", "recipients": ["ada"], "channels": ["email"],
            "priority": "high", "params": {"name": "Ada", "commenter": "Zed", "post_title": "T",
            "comment_excerpt": "now", "url": "https://example.com"}}),
        )
        .await;
    delivery_in(&app, &urgent, "ada", "email", "sent").await;
    let mut carrier = None;
    for id in &ids {
        let d = delivery_in(&app, id, "ada", "email", "deferred").await;
        let grouped = d["trace"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            grouped["reason"]
                .as_str()
                .map(|r| r.starts_with("scheduled")),
            Some(true)
        );
        assert_eq!(grouped["until"], "2026-12-02T08:00:00+09:00");
        carrier.get_or_insert(d["digest_id"].as_str().unwrap().to_owned());
        assert_eq!(carrier.as_deref(), d["digest_id"].as_str());
        // In-app is not collected: it is silent and already there.
        delivery_in(&app, id, "ada", "in_app", "sent").await;
    }
    // 07:59 the next morning: still waiting.
    app.advance(Duration::hours(13) + Duration::minutes(59));
    let n = app.notification(&ids[0]).await;
    assert_eq!(user_delivery(&n, "ada", "email")["state"], "deferred");
    app.advance(Duration::minutes(1));
    for id in &ids {
        delivery_in(&app, id, "ada", "email", "sent").await;
    }
    let carrier = carrier.unwrap();
    let message = eml(&app, &carrier).expect("the daily digest");
    assert_eq!(
        message.subject(),
        Some("Ana, Ben and Cy commented on \"Notes on the Engine\"")
    );
}

async fn a_group_key_on_a_template_without_a_digest_window_is_refused(backend: Backend) {
    let app = app_at(backend, "2026-12-01T12:00:00Z").await;
    ada(&app, "Europe/London").await;
    let (status, body) = app
        .request(
            reqwest::Method::POST,
            "/v1/notifications",
            Some(
                json!({"template": "welcome", "recipients": ["ada"], "group_key": "x",
                "params": {"name": "Ada", "app_name": "Acme"}}),
            ),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "group_key_without_digest");
}
