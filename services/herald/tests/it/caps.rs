//! Frequency caps end to end, with the clock moved by hand: over the cap a
//! delivery waits for the first free slot, or, where the user has a digest
//! schedule for the category, goes into that digest; its receipt says which.

use super::support::Backend;

crate::on_both_backends!(
    a_capped_push_channel_defers_the_fourth_to_when_the_cap_allows,
    over_the_cap_a_delivery_folds_into_the_users_digest_and_its_receipt_says_so,
);

use chrono::Duration;
use serde_json::json;

use crate::judgement::{
    app_at, delivery_in, put_category, put_preferences, sleeper, step, welcome_to,
};

async fn a_capped_push_channel_defers_the_fourth_to_when_the_cap_allows(backend: Backend) {
    let app = app_at(backend, "2026-12-01T12:00:00Z").await;
    sleeper(&app, "ada", "Europe/London").await;
    put_category(
        &app,
        "account",
        json!({"caps": [{"channel": "push", "max": 3, "per": "1h"}]}),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = app.send(welcome_to(&["ada"], &["push", "email"])).await;
        let d = delivery_in(&app, &id, "ada", "push", "sent").await;
        assert_eq!(step(&d, "frequency_cap")["outcome"], "pass");
        ids.push(id);
        // Routed; one minute later comes the next, so the fourth's slot is exact.
        app.advance(Duration::minutes(1));
    }
    ids.push(app.send(welcome_to(&["ada"], &["push", "email"])).await);
    let fourth = delivery_in(&app, &ids[3], "ada", "push", "deferred").await;
    let cap = step(&fourth, "frequency_cap");
    assert_eq!(cap["outcome"], "deferred");
    // The first push went at 12:00, so the fourth may go at 13:00.
    assert_eq!(cap["until"], "2026-12-01T13:00:00Z");
    assert_eq!(fourth["not_before"], "2026-12-01T13:00:00Z");
    assert_eq!(
        app.receipt_reason(&fourth, "deferred").await.as_deref(),
        Some("frequency_cap")
    );
    // E-mail is not capped.
    delivery_in(&app, &ids[3], "ada", "email", "sent").await;
    // A critical one is not capped either.
    let critical = app
        .send(
            json!({"template": "welcome", "recipients": ["ada"], "channels": ["push"],
            "priority": "critical", "params": {"name": "Ada", "app_name": "Acme"}}),
        )
        .await;
    let d = delivery_in(&app, &critical, "ada", "push", "sent").await;
    assert_eq!(step(&d, "frequency_cap")["outcome"], "bypassed");

    app.advance(Duration::minutes(57));
    let fourth = delivery_in(&app, &ids[3], "ada", "push", "sent").await;
    assert_eq!(step(&fourth, "frequency_cap")["outcome"], "pass");
}

async fn over_the_cap_a_delivery_folds_into_the_users_digest_and_its_receipt_says_so(
    backend: Backend,
) {
    // 12:00 in Tokyo.
    let app = app_at(backend, "2026-12-01T03:00:00Z").await;
    sleeper(&app, "ada", "Asia/Tokyo").await;
    put_category(
        &app,
        "social",
        json!({"caps": [{"channel": "email", "max": 1, "per": "1h"}]}),
    )
    .await;
    put_preferences(
        &app,
        "ada",
        json!({"quiet_hours": {"start": "22:00", "end": "07:00"},
               "digests": {"social": {"every": "daily", "at": "08:00"}}}),
    )
    .await;
    // High priority: the daily digest does not collect these up front, so
    // they meet the cap.
    let comment = |who: &str| {
        json!({"template": "new_comment", "recipients": ["ada"], "channels": ["email"],
            "priority": "high", "params": {"name": "Ada", "commenter": who,
            "post_title": "Notes on the Engine", "comment_excerpt": "hi",
            "url": "https://example.com/p/981"}})
    };
    let first = app.send(comment("Ana")).await;
    let d = delivery_in(&app, &first, "ada", "email", "sent").await;
    assert_eq!(step(&d, "frequency_cap")["outcome"], "pass");
    let second = app.send(comment("Ben")).await;
    let d = delivery_in(&app, &second, "ada", "email", "deferred").await;
    let cap = step(&d, "frequency_cap");
    assert_eq!(cap["outcome"], "grouped", "{d:#}");
    assert_eq!(cap["until"], "2026-12-02T08:00:00+09:00");
    assert!(
        cap["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("folded_into_digest")),
        "{d:#}"
    );
    let carrier = d["digest_id"].as_str().expect("in a digest").to_owned();
    assert_eq!(
        app.receipt_reason(&d, "deferred").await.as_deref(),
        Some("frequency_cap_folded")
    );

    // 08:00 the next morning in Tokyo.
    app.advance(Duration::hours(20));
    let d = delivery_in(&app, &second, "ada", "email", "sent").await;
    assert_eq!(d["digest_id"], carrier.as_str());
    let message = app
        .data_dir
        .join("outbox/email")
        .join(format!("{carrier}.eml"));
    assert!(message.exists(), "the digest went out as its own e-mail");
}
