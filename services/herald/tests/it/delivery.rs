//! A notification travels the whole pipeline.

use crate::support::Backend;

crate::on_both_backends!(
    a_welcome_email_lands_in_the_outbox_folder_and_the_inbox,
    every_outcome_is_a_receipt_recorded_against_its_delivery,
    email_goes_out_through_real_smtp_when_configured,
    transient_smtp_failures_are_retried_until_the_mail_goes_out,
    a_permanent_smtp_refusal_fails_the_delivery_without_retrying,
    transient_failures_give_up_after_the_configured_attempts,
    a_retry_waits_on_a_durable_timer_holding_nothing_across_a_restart,
    opted_out_channels_are_suppressed_with_the_reason_and_others_still_go,
    push_and_sms_reach_the_file_sink_with_the_users_devices_and_number,
    the_users_locale_picks_the_template_variant,
);

use std::time::Duration;

use herald_standins::smtp::SmtpMode;
use serde_json::json;

use crate::support::{ada, delivery, welcome, TestApp, WAIT};

async fn a_welcome_email_lands_in_the_outbox_folder_and_the_inbox(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    ada(&app).await;
    let id = app.send(welcome(&["ada"], &["email", "in_app"])).await;
    let n = app.settled(&id, 2).await;
    let email = delivery(&n, "email");
    assert_eq!(
        (email["state"].as_str(), email["attempts"].as_i64()),
        (Some("sent"), Some(1)),
        "{n:#}"
    );
    assert_eq!(delivery(&n, "in_app")["state"], "sent");

    let eml = app
        .data_dir
        .join("outbox/email")
        .join(format!("{}.eml", email["id"].as_str().unwrap()));
    let bytes = std::fs::read(&eml).expect("the .eml file exists");
    let message = mail_parser::MessageParser::default()
        .parse(&bytes)
        .expect("RFC 5322");
    assert_eq!(message.subject(), Some("Welcome to Acme, Ada!"));
    assert_eq!(
        message
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("ada@example.com")
    );
    assert!(message.body_text(0).is_some_and(|t| t.contains("Ada")));
    assert!(message.body_html(0).is_some_and(|h| h.contains("<html")));

    let (_, inbox) = app
        .request(reqwest::Method::GET, "/v1/users/ada/inbox", None)
        .await;
    assert_eq!(inbox["unread_count"], 1);
    assert_eq!(inbox["items"][0]["title"], "Welcome, Ada!");
}

async fn every_outcome_is_a_receipt_recorded_against_its_delivery(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    ada(&app).await;
    app.put_user("bob", json!({})).await;
    let id = app.send(welcome(&["ada", "bob"], &["email", "sms"])).await;
    let n = app.settled(&id, 4).await;
    for d in n["deliveries"].as_array().unwrap() {
        let delivery_id = herald_domain::DeliveryId::parse(d["id"].as_str().unwrap()).unwrap();
        let expected = d["state"].as_str().unwrap().to_owned();
        let states = app
            .eventually(
                "the receipt",
                || app.store().receipt_states(delivery_id),
                |s| s.as_ref().is_ok_and(|s| s.len() == 1),
            )
            .await
            .unwrap();
        assert_eq!(states[0].as_str(), expected, "{d}");
    }
    let bob_email = n["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["user_id"] == "bob" && d["channel"] == "email")
        .unwrap();
    assert_eq!(
        (
            bob_email["state"].as_str(),
            bob_email["last_error"].as_str()
        ),
        (Some("suppressed"), Some("no_email_address"))
    );
}

async fn email_goes_out_through_real_smtp_when_configured(backend: Backend) {
    let app = TestApp::with_smtp(backend).await;
    let smtp = app.smtp.clone().unwrap();
    ada(&app).await;
    let id = app
        .send(json!({"template": "order_shipped", "recipients": ["ada"], "channels": ["email"],
            "params": {"name": "Ada", "order_id": "981", "carrier": "DHL & Co", "tracking_url": "https://t.example/981"}}))
        .await;
    let n = app.settled(&id, 1).await;
    assert_eq!(delivery(&n, "email")["state"], "sent", "{n:#}");
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.rcpt_to, vec!["ada@example.com".to_owned()]);
    assert!(
        mail.subject().unwrap().contains("981"),
        "{:?}",
        mail.subject()
    );
    assert!(
        mail.text_body().unwrap().contains("DHL & Co"),
        "plain text is not HTML-escaped"
    );
    assert!(
        mail.html_body().unwrap().contains("DHL &amp; Co"),
        "HTML is escaped"
    );
    assert_eq!(
        mail.header("X-Herald-Delivery-Id").as_deref(),
        delivery(&n, "email")["id"].as_str()
    );
    assert_eq!(
        delivery(&n, "email")["provider_message_id"]
            .as_str()
            .map(|s| s.to_owned()),
        mail.header("Message-ID").map(|m| if m.starts_with('<') {
            m
        } else {
            format!("<{m}>")
        })
    );
}

async fn transient_smtp_failures_are_retried_until_the_mail_goes_out(backend: Backend) {
    let app = TestApp::with_smtp(backend).await;
    let smtp = app.smtp.clone().unwrap();
    smtp.set_mode(SmtpMode::TempFail);
    ada(&app).await;
    let id = app.send(welcome(&["ada"], &["email"])).await;
    app.eventually(
        "two refused attempts",
        || async { smtp.attempts() },
        |n| *n >= 2,
    )
    .await;
    smtp.set_mode(SmtpMode::Accept);
    let n = app.settled(&id, 1).await;
    let email = delivery(&n, "email");
    assert_eq!(email["state"], "sent", "{n:#}");
    assert!(email["attempts"].as_i64().unwrap() >= 3, "{email}");
    assert_eq!(smtp.wait_for(1, WAIT).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(smtp.count(), 1, "sent exactly once");
}

async fn a_permanent_smtp_refusal_fails_the_delivery_without_retrying(backend: Backend) {
    let app = TestApp::with_smtp(backend).await;
    let smtp = app.smtp.clone().unwrap();
    smtp.set_mode(SmtpMode::PermFail);
    ada(&app).await;
    let id = app.send(welcome(&["ada"], &["email"])).await;
    let n = app.settled(&id, 1).await;
    let email = delivery(&n, "email");
    assert_eq!(
        (email["state"].as_str(), email["attempts"].as_i64()),
        (Some("failed"), Some(1)),
        "{n:#}"
    );
    assert!(
        email["last_error"].as_str().unwrap().contains("permanent"),
        "{email}"
    );
    assert_eq!(smtp.count(), 0);
}

async fn transient_failures_give_up_after_the_configured_attempts(backend: Backend) {
    let app = TestApp::spawn_with(crate::support::Options {
        backend,
        smtp: true,
        extra: vec![("HERALD_MAX_ATTEMPTS", "3".into())],
        ..crate::support::Options::on(backend)
    })
    .await;
    app.smtp.as_ref().unwrap().set_mode(SmtpMode::TempFail);
    ada(&app).await;
    let id = app.send(welcome(&["ada"], &["email"])).await;
    let n = app.settled(&id, 1).await;
    let email = delivery(&n, "email");
    assert_eq!(
        (email["state"].as_str(), email["attempts"].as_i64()),
        (Some("failed"), Some(3)),
        "{n:#}"
    );
    assert!(
        email["last_error"].as_str().unwrap().contains("temporary"),
        "{email}"
    );
}

async fn opted_out_channels_are_suppressed_with_the_reason_and_others_still_go(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    ada(&app).await;
    let (status, _) = app
        .request(
            reqwest::Method::PUT,
            "/v1/users/ada/preferences",
            Some(json!({"channels": {"email": false},
            "categories": {"account": {"sms": false}}})),
        )
        .await;
    assert_eq!(status, 200);
    let id = app
        .send(welcome(&["ada"], &["email", "sms", "in_app"]))
        .await;
    let n = app.settled(&id, 3).await;
    assert_eq!(
        (
            delivery(&n, "email")["state"].as_str(),
            delivery(&n, "email")["last_error"].as_str()
        ),
        (Some("suppressed"), Some("opted_out_channel"))
    );
    assert_eq!(
        (
            delivery(&n, "sms")["state"].as_str(),
            delivery(&n, "sms")["last_error"].as_str()
        ),
        (Some("suppressed"), Some("opted_out_category"))
    );
    assert_eq!(delivery(&n, "in_app")["state"], "sent");
    assert!(
        !app.data_dir.join("outbox/email").exists(),
        "no e-mail written"
    );
}

async fn push_and_sms_reach_the_file_sink_with_the_users_devices_and_number(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    ada(&app).await;
    let token = "ab".repeat(32);
    let (status, _) = app
        .request(
            reqwest::Method::POST,
            "/v1/users/ada/devices",
            Some(json!({"platform": "apns", "token": token})),
        )
        .await;
    assert_eq!(status, 201);
    let id = app.send(welcome(&["ada"], &["push", "sms"])).await;
    let n = app.settled(&id, 2).await;
    let push_id = delivery(&n, "push")["id"].as_str().unwrap().to_owned();
    let push: serde_json::Value = serde_json::from_slice(
        &std::fs::read(app.data_dir.join(format!("outbox/push/{push_id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(push["devices"][0]["token"], token);
    let sms_id = delivery(&n, "sms")["id"].as_str().unwrap().to_owned();
    let sms: serde_json::Value = serde_json::from_slice(
        &std::fs::read(app.data_dir.join(format!("outbox/sms/{sms_id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(sms["to"], "+14155550100");
    assert!(sms["body"].as_str().unwrap().contains("Acme"));
}

async fn the_users_locale_picks_the_template_variant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_user(
        "amelie",
        json!({"email": "amelie@example.fr", "locale": "fr-CA"}),
    )
    .await;
    let id = app.send(welcome(&["amelie"], &["in_app"])).await;
    app.settled(&id, 1).await;
    let (_, inbox) = app
        .request(reqwest::Method::GET, "/v1/users/amelie/inbox", None)
        .await;
    assert_eq!(inbox["items"][0]["title"], "Bienvenue, Ada !", "{inbox}");
}

async fn a_retry_waits_on_a_durable_timer_holding_nothing_across_a_restart(backend: Backend) {
    let mut app = TestApp::spawn_with(crate::support::Options {
        backend,
        smtp: true,
        extra: vec![
            ("HERALD_RETRY_BASE_MS", "60000".into()),
            ("HERALD_RETRY_MAX_MS", "60000".into()),
        ],
        clock: Some(chrono::Utc::now()),
    })
    .await;
    let smtp = app.smtp.clone().unwrap();
    smtp.set_mode(SmtpMode::TempFail);
    ada(&app).await;
    let id = app.send(welcome(&["ada"], &["email"])).await;
    // The refused attempt leaves the delivery waiting, visibly, on a timer
    // 30 to 60 s away; no worker holds it.
    let waiting = app
        .eventually(
            "the delivery to wait for its retry",
            || async { app.notification(&id).await },
            |n| n["deliveries"][0]["state"] == "deferred",
        )
        .await;
    let email = delivery(&waiting, "email");
    let not_before = chrono::DateTime::parse_from_rfc3339(email["not_before"].as_str().unwrap())
        .unwrap()
        .to_utc();
    let wait = not_before - app.now();
    assert!(
        wait >= chrono::Duration::seconds(30) && wait <= chrono::Duration::seconds(60),
        "{wait}"
    );
    let retry = email["trace"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (retry["rule"].as_str(), retry["outcome"].as_str()),
        (Some("retry"), Some("deferred"))
    );
    assert!(
        retry["reason"].as_str().unwrap().contains("temporary"),
        "{retry}"
    );
    // Stopping does not wait for it: nothing is in hand.
    let stopping = std::time::Instant::now();
    app.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(20),
        "stop took {:?}",
        stopping.elapsed()
    );

    smtp.set_mode(SmtpMode::Accept);
    app.start().await;
    app.advance(chrono::Duration::seconds(61));
    let n = app.settled(&id, 1).await;
    let email = delivery(&n, "email");
    assert_eq!(
        (email["state"].as_str(), email["attempts"].as_i64()),
        (Some("sent"), Some(2)),
        "{n:#}"
    );
    assert_eq!(smtp.wait_for(1, WAIT).await.len(), 1);
}
