//! Escalation end to end, with the clock moved by hand: a first channel
//! left unread for the template's window brings the second; reading the
//! in-app message, or a client reporting a push opened, cancels it.

use super::support::Backend;

crate::on_both_backends!(
    an_unread_alert_escalates_to_email_and_a_read_one_does_not,
    an_unopened_push_escalates_to_email_and_an_opened_one_does_not,
);

use chrono::Duration;
use serde_json::json;

use crate::judgement::{app_at, delivery_in, rules, sleeper, step, user_delivery};
use crate::support::TestApp;

/// No e-mail delivery was made for notification `id`.
async fn no_email(app: &TestApp, id: &str) {
    let n = app.notification(id).await;
    assert!(
        n["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["channel"] != "email"),
        "{n:#}"
    );
}

async fn an_unread_alert_escalates_to_email_and_a_read_one_does_not(backend: Backend) {
    let app = app_at(backend, "2026-12-01T12:00:00Z").await;
    app.put_user(
        "ada",
        json!({"email": "ada@example.com", "time_zone": "Europe/London"}),
    )
    .await;
    let alert = json!({"template": "security_alert", "recipients": ["ada"],
        "params": {"name": "Ada", "device": "Firefox", "location": "Lyon", "time": "12:00",
        "secure_url": "https://example.com/s"}});
    let read = app.send(alert.clone()).await;
    let unread = app.send(alert.clone()).await;
    // Naming the channels asks for exactly those: nothing is held back to escalate.
    let mut in_app_only = alert;
    in_app_only["channels"] = json!(["in_app"]);
    let restricted = app.send(in_app_only).await;
    delivery_in(&app, &restricted, "ada", "in_app", "sent").await;
    let read_in_app = delivery_in(&app, &read, "ada", "in_app", "sent").await;
    delivery_in(&app, &unread, "ada", "in_app", "sent").await;
    // Only the first channel goes now (push has no device: suppressed).
    no_email(&app, &read).await;

    let message = read_in_app["id"].as_str().unwrap();
    let (status, body) = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/users/ada/inbox/{message}/read"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let d = delivery_in(&app, &read, "ada", "in_app", "read").await;
    app.eventually(
        "the escalation to be cancelled",
        || async { app.notification(&read).await },
        |n| {
            rules(user_delivery(n, "ada", "in_app"))
                .contains(&("escalation".into(), "cancelled".into()))
        },
    )
    .await;
    drop(d);

    app.advance(Duration::minutes(15));
    let email = delivery_in(&app, &unread, "ada", "email", "sent").await;
    assert_eq!(
        rules(&email)[0],
        ("escalation".to_owned(), "escalated".to_owned())
    );
    assert_eq!(
        step(&email, "escalation")["reason"],
        "in_app not read within 15m"
    );
    let n = app.notification(&unread).await;
    assert!(rules(user_delivery(&n, "ada", "in_app"))
        .contains(&("escalation".into(), "escalated".into())));
    // The read one never escalates, nor the one restricted to in-app.
    for id in [&read, &restricted] {
        no_email(&app, id).await;
    }
}

async fn an_unopened_push_escalates_to_email_and_an_opened_one_does_not(backend: Backend) {
    // Noon in London: no quiet hours in the way.
    let app = app_at(backend, "2026-12-01T12:00:00Z").await;
    sleeper(&app, "ada", "Europe/London").await;
    let failed = json!({"template": "payment_failed", "recipients": ["ada"],
        "params": {"name": "Ada", "amount": "€12.00", "update_url": "https://example.com/billing"}});
    let opened = app.send(failed.clone()).await;
    let ignored = app.send(failed).await;
    let push = delivery_in(&app, &opened, "ada", "push", "sent").await;
    delivery_in(&app, &ignored, "ada", "push", "sent").await;
    // In-app goes at once; e-mail waits for the push to go unopened.
    delivery_in(&app, &opened, "ada", "in_app", "sent").await;
    for id in [&opened, &ignored] {
        no_email(&app, id).await;
    }

    // Ada taps the push on her phone; her app reports it.
    let (status, body) = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/deliveries/{}/opened", push["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["state"].clone()),
        (200, json!("read")),
        "{body}"
    );
    let push = delivery_in(&app, &opened, "ada", "push", "read").await;
    assert_eq!(
        app.receipt_reason(&push, "read").await.as_deref(),
        Some("opened")
    );
    app.eventually(
        "the push's escalation to be cancelled",
        || async { app.notification(&opened).await },
        |n| {
            rules(user_delivery(n, "ada", "push"))
                .contains(&("escalation".into(), "cancelled".into()))
        },
    )
    .await;

    app.advance(Duration::minutes(30));
    let email = delivery_in(&app, &ignored, "ada", "email", "sent").await;
    assert_eq!(
        rules(&email)[0],
        ("escalation".to_owned(), "escalated".to_owned())
    );
    assert_eq!(
        step(&email, "escalation")["reason"],
        "push not read within 30m"
    );
    let n = app.notification(&ignored).await;
    assert_eq!(
        step(user_delivery(&n, "ada", "push"), "escalation")["reason"],
        "push not read within 30m; sent by email"
    );
    // Its timer fell due with the other's: the opened one never escalates.
    no_email(&app, &opened).await;
}
