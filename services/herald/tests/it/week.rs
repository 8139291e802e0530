//! The week end to end, with the clock moved by hand: quiet hours kept only
//! on some nights, and a weekly digest that collects the week and goes out
//! on its day at its local hour.

use super::support::Backend;

crate::on_both_backends!(
    quiet_hours_on_friday_and_saturday_nights_hold_the_weekend_but_not_a_thursday,
    a_weekly_digest_goes_out_on_monday_at_eight_local_time,
);

use chrono::Duration;
use serde_json::json;

use crate::judgement::{
    app_at, delivery_in, put_preferences, rules, step, user_delivery, welcome_to,
};

/// Ada in London, with an address for e-mail.
async fn ada(app: &crate::support::TestApp) {
    app.put_user(
        "ada",
        json!({"email": "ada@example.com", "time_zone": "Europe/London", "name": "Ada"}),
    )
    .await;
}

async fn quiet_hours_on_friday_and_saturday_nights_hold_the_weekend_but_not_a_thursday(
    backend: Backend,
) {
    // Thursday 3 December 2026, 23:00 in London.
    let app = app_at(backend, "2026-12-03T23:00:00Z").await;
    ada(&app).await;
    put_preferences(
        &app,
        "ada",
        json!({"quiet_hours": [{"start": "22:00", "end": "07:00", "days": ["fri", "sat"]}]}),
    )
    .await;
    let thursday = app.send(welcome_to(&["ada"], &["email"])).await;
    let d = delivery_in(&app, &thursday, "ada", "email", "sent").await;
    assert_eq!(step(&d, "quiet_hours")["outcome"], "pass", "{d:#}");

    // Friday 23:00: held until Saturday 07:00.
    app.advance(Duration::hours(24));
    let friday = app.send(welcome_to(&["ada"], &["email"])).await;
    let d = delivery_in(&app, &friday, "ada", "email", "deferred").await;
    assert_eq!(step(&d, "quiet_hours")["until"], "2026-12-05T07:00:00Z");
    // Sunday 23:00 is a weekday night again: the window starts only on Fri and Sat.
    app.advance(Duration::hours(48));
    let sunday = app.send(welcome_to(&["ada"], &["email"])).await;
    delivery_in(&app, &sunday, "ada", "email", "sent").await;
    // The Friday one went on Saturday morning, when the clock passed it.
    let d = delivery_in(&app, &friday, "ada", "email", "sent").await;
    assert_eq!(
        rules(&d)
            .iter()
            .filter(|(rule, _)| rule == "quiet_hours")
            .map(|(_, outcome)| outcome.as_str())
            .collect::<Vec<_>>(),
        vec!["deferred", "pass"]
    );
}

async fn a_weekly_digest_goes_out_on_monday_at_eight_local_time(backend: Backend) {
    // Saturday 5 December 2026, 12:00 in London.
    let app = app_at(backend, "2026-12-05T12:00:00Z").await;
    ada(&app).await;
    put_preferences(
        &app,
        "ada",
        json!({"digests": {"social": {"every": "weekly", "day": "mon", "at": "08:00"}}}),
    )
    .await;
    let comment = |who: &str| {
        json!({"template": "new_comment", "recipients": ["ada"], "channels": ["email"],
            "params": {"name": "Ada", "commenter": who, "post_title": "Notes on the Engine",
            "comment_excerpt": "hi", "url": "https://example.com/p/981"}})
    };
    let saturday = app.send(comment("Ana")).await;
    let d = delivery_in(&app, &saturday, "ada", "email", "deferred").await;
    assert_eq!(d["not_before"], "2026-12-07T08:00:00Z");
    let carrier = d["digest_id"].as_str().expect("in the digest").to_owned();
    app.advance(Duration::hours(24));
    let sunday = app.send(comment("Ben")).await;
    let d = delivery_in(&app, &sunday, "ada", "email", "deferred").await;
    assert_eq!(d["digest_id"], carrier.as_str(), "the same week's digest");

    // Monday 07:59: still waiting; 08:00: out.
    app.advance(Duration::hours(19) + Duration::minutes(59));
    let n = app.notification(&saturday).await;
    assert_eq!(user_delivery(&n, "ada", "email")["state"], "deferred");
    app.advance(Duration::minutes(1));
    for id in [&saturday, &sunday] {
        delivery_in(&app, id, "ada", "email", "sent").await;
    }
    let message = app
        .data_dir
        .join("outbox/email")
        .join(format!("{carrier}.eml"));
    let bytes = std::fs::read(&message).expect("the weekly digest went out");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("Ana and Ben"), "{text}");
}
