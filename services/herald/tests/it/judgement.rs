//! The router's judgement end to end, with the clock moved by hand: quiet
//! hours in four zones, a critical alert at 03:00 (caps: `caps.rs`),
//! scheduled sends and their cancellation (escalations: `escalation.rs`).
//! Every deferral, suppression and cancellation must be explained by
//! `GET /v1/notifications/{id}` alone.

use super::support::Backend;

crate::on_both_backends!(
    quiet_hours_hold_each_user_until_their_own_morning_and_say_so,
    a_critical_security_alert_at_three_in_the_morning_goes_through_where_the_category_allows,
    a_scheduled_send_waits_for_its_time_and_a_cancelled_one_never_goes,
    a_delivery_deferred_overnight_is_decided_again_in_the_morning,
    categories_and_effective_preferences_say_which_rule_decides,
    in_real_time_a_quiet_window_ending_a_minute_from_now_releases_the_message_then,
    categories_declared_in_a_file_are_in_force_from_the_start,
);

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::support::{Options, TestApp};

/// 18:00 UTC on 1 December 2026: 03:00 in Tokyo, 23:30 in Kolkata, 18:00 in
/// London, 10:00 in Los Angeles.
const EVENING: &str = "2026-12-01T18:00:00Z";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

pub(crate) async fn app_at(backend: Backend, now: &str) -> TestApp {
    TestApp::spawn_with(Options {
        clock: Some(at(now)),
        ..Options::on(backend)
    })
    .await
}

/// A user with an e-mail address, a push device, a zone and quiet hours
/// from 22:00 to 07:00.
pub(crate) async fn sleeper(app: &TestApp, id: &str, zone: &str) {
    app.put_user(
        id,
        json!({"email": format!("{id}@example.com"), "time_zone": zone, "name": id}),
    )
    .await;
    let (status, body) = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/users/{id}/devices"),
            Some(json!({"platform": "fcm", "token": format!("fcm-{id}-{}", "x".repeat(40))})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    put_preferences(
        app,
        id,
        json!({"quiet_hours": {"start": "22:00", "end": "07:00"}}),
    )
    .await;
}

pub(crate) async fn put_preferences(app: &TestApp, id: &str, preferences: Value) {
    put_ok(
        app,
        &format!("/v1/users/{id}/preferences"),
        preferences,
        &[200],
    )
    .await;
}

pub(crate) async fn put_category(app: &TestApp, name: &str, policy: Value) {
    put_ok(
        app,
        &format!("/v1/admin/categories/{name}"),
        policy,
        &[200, 201],
    )
    .await;
}

/// A `PUT` that must answer one of `expected`.
async fn put_ok(app: &TestApp, path: &str, body: Value, expected: &[u16]) {
    let (status, answer) = app.request(reqwest::Method::PUT, path, Some(body)).await;
    assert!(
        expected.contains(&status.as_u16()),
        "{path}: {status} {answer}"
    );
}

pub(crate) fn welcome_to(users: &[&str], channels: &[&str]) -> Value {
    json!({"template": "welcome", "recipients": users, "channels": channels,
        "params": {"name": "Ada", "app_name": "Acme"}})
}

/// Waits until `user`'s delivery on `channel` is in `state`; returns it.
pub(crate) async fn delivery_in(
    app: &TestApp,
    id: &str,
    user: &str,
    channel: &str,
    state: &str,
) -> Value {
    let found = app
        .eventually(
            &format!("{user}'s {channel} delivery to be {state}"),
            || async {
                let n = app.notification(id).await;
                n["deliveries"]
                    .as_array()
                    .and_then(|list| {
                        list.iter()
                            .find(|d| d["user_id"] == user && d["channel"] == channel)
                            .cloned()
                    })
                    .unwrap_or(Value::Null)
            },
            |d| d["state"] == state,
        )
        .await;
    found
}

/// The (rule, outcome) pairs of a delivery's trace.
pub(crate) fn rules(d: &Value) -> Vec<(String, String)> {
    d["trace"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    (
                        s["rule"].as_str().unwrap_or_default().to_owned(),
                        s["outcome"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn step<'a>(d: &'a Value, rule: &str) -> &'a Value {
    d["trace"]
        .as_array()
        .and_then(|steps| steps.iter().rev().find(|s| s["rule"] == rule))
        .unwrap_or_else(|| panic!("no {rule} step in {d:#}"))
}

async fn quiet_hours_hold_each_user_until_their_own_morning_and_say_so(backend: Backend) {
    let app = app_at(backend, EVENING).await;
    for (user, zone) in [
        ("tokyo", "Asia/Tokyo"),
        ("kolkata", "Asia/Kolkata"),
        ("london", "Europe/London"),
        ("la", "America/Los_Angeles"),
    ] {
        sleeper(&app, user, zone).await;
    }
    let id = app
        .send(welcome_to(
            &["tokyo", "kolkata", "london", "la"],
            &["email", "in_app"],
        ))
        .await;

    // Awake: London (18:00) and Los Angeles (10:00) get it now.
    for user in ["london", "la"] {
        let d = delivery_in(&app, &id, user, "email", "sent").await;
        assert_eq!(step(&d, "quiet_hours")["outcome"], "pass", "{d:#}");
    }
    // Asleep: Tokyo (03:00) until 07:00 JST, Kolkata (23:30) until 07:00 IST.
    let tokyo = delivery_in(&app, &id, "tokyo", "email", "deferred").await;
    let quiet = step(&tokyo, "quiet_hours");
    assert_eq!(quiet["outcome"], "deferred");
    assert_eq!(quiet["until"], "2026-12-02T07:00:00+09:00");
    assert_eq!(tokyo["not_before"], "2026-12-01T22:00:00Z");
    assert_eq!(
        app.receipt_reason(&tokyo, "deferred").await.as_deref(),
        Some("quiet_hours")
    );
    let kolkata = delivery_in(&app, &id, "kolkata", "email", "deferred").await;
    assert_eq!(
        step(&kolkata, "quiet_hours")["until"],
        "2026-12-02T07:00:00+05:30"
    );
    // In-app is silent: everyone has it now.
    for user in ["tokyo", "kolkata"] {
        let d = delivery_in(&app, &id, user, "in_app", "sent").await;
        assert_eq!(step(&d, "quiet_hours")["reason"], "in_app_is_silent");
    }

    // 07:00 in Tokyo.
    app.advance(Duration::hours(4));
    let tokyo = delivery_in(&app, &id, "tokyo", "email", "sent").await;
    assert_eq!(
        rules(&tokyo),
        vec![
            ("preferences".into(), "pass".into()),
            ("quiet_hours".into(), "deferred".into()),
            ("preferences".into(), "pass".into()),
            ("quiet_hours".into(), "pass".into()),
            ("queue".into(), "queued".into()),
        ]
    );
    let kolkata = app.notification(&id).await;
    assert_eq!(
        user_delivery(&kolkata, "kolkata", "email")["state"],
        "deferred",
        "still 03:30 in Kolkata"
    );
    // 07:00 in Kolkata.
    app.advance(Duration::minutes(210));
    delivery_in(&app, &id, "kolkata", "email", "sent").await;
    let eml = |user: &str, n: &Value| {
        app.data_dir.join("outbox/email").join(format!(
            "{}.eml",
            user_delivery(n, user, "email")["id"].as_str().unwrap()
        ))
    };
    let n = app.notification(&id).await;
    for user in ["tokyo", "kolkata", "london", "la"] {
        assert!(eml(user, &n).exists(), "{user}'s e-mail was written");
    }
}

pub(crate) fn user_delivery<'a>(n: &'a Value, user: &str, channel: &str) -> &'a Value {
    n["deliveries"]
        .as_array()
        .and_then(|list| {
            list.iter()
                .find(|d| d["user_id"] == user && d["channel"] == channel)
        })
        .unwrap_or_else(|| panic!("no {user} {channel} delivery in {n:#}"))
}

async fn a_critical_security_alert_at_three_in_the_morning_goes_through_where_the_category_allows(
    backend: Backend,
) {
    // 03:00 in Los Angeles.
    let app = app_at(backend, "2026-12-01T11:00:00Z").await;
    sleeper(&app, "ada", "America/Los_Angeles").await;
    put_category(
        &app,
        "security",
        json!({"required": true, "critical_bypasses_quiet_hours": true}),
    )
    .await;
    // Ada tried to opt out of security e-mail: the category is required.
    put_preferences(
        &app,
        "ada",
        json!({"quiet_hours": {"start": "22:00", "end": "07:00"},
               "categories": {"security": {"email": false}}}),
    )
    .await;
    let alert = |priority: &str| {
        json!({"template": "security_alert", "recipients": ["ada"], "channels": ["email", "push"],
            "priority": priority, "params": {"name": "Ada", "device": "Firefox on Linux",
            "location": "Lyon, France", "time": "03:00", "secure_url": "https://example.com/s"}})
    };
    let critical = app.send(alert("critical")).await;
    let high = app.send(alert("high")).await;

    for channel in ["email", "push"] {
        let d = delivery_in(&app, &critical, "ada", channel, "sent").await;
        assert_eq!(step(&d, "preferences")["reason"], "required_category");
        assert_eq!(step(&d, "quiet_hours")["outcome"], "bypassed");
        assert_eq!(step(&d, "quiet_hours")["reason"], "critical");
        let d = delivery_in(&app, &high, "ada", channel, "deferred").await;
        assert_eq!(
            step(&d, "quiet_hours")["until"],
            "2026-12-01T07:00:00-08:00"
        );
    }
}

async fn a_scheduled_send_waits_for_its_time_and_a_cancelled_one_never_goes(backend: Backend) {
    let app = app_at(backend, "2026-12-01T09:00:00Z").await;
    app.put_user("ada", json!({"email": "ada@example.com"}))
        .await;
    let scheduled = |send_at: &str| {
        let mut body = welcome_to(&["ada"], &["email", "in_app"]);
        body["send_at"] = json!(send_at);
        body
    };
    let kept = app.send(scheduled("2026-12-01T10:00:00+00:00")).await;
    let withdrawn = app.send(scheduled("2026-12-01T10:00:00Z")).await;
    let past = app.send(scheduled("2026-11-30T10:00:00Z")).await;
    delivery_in(&app, &past, "ada", "email", "sent").await;
    for id in [&kept, &withdrawn] {
        for channel in ["email", "in_app"] {
            let d = delivery_in(&app, id, "ada", channel, "deferred").await;
            assert_eq!(d["not_before"], "2026-12-01T10:00:00Z");
            assert_eq!(step(&d, "send_at")["outcome"], "deferred");
            assert_eq!(
                app.receipt_reason(&d, "deferred").await.as_deref(),
                Some("send_at")
            );
        }
    }
    let n = app.notification(&kept).await;
    assert_eq!(n["send_at"], "2026-12-01T10:00:00Z");

    let (status, body) = app
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/notifications/{withdrawn}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cancelled"].as_array().map(Vec::len), Some(2));
    for channel in ["email", "in_app"] {
        let d = delivery_in(&app, &withdrawn, "ada", channel, "cancelled").await;
        assert_eq!(step(&d, "cancellation")["outcome"], "cancelled");
        assert_eq!(
            app.receipt_reason(&d, "cancelled").await.as_deref(),
            Some("cancelled")
        );
    }
    assert!(app.notification(&withdrawn).await["cancelled_at"].is_string());

    app.advance(Duration::hours(1));
    delivery_in(&app, &kept, "ada", "email", "sent").await;
    delivery_in(&app, &kept, "ada", "in_app", "sent").await;
    // The cancelled one stays cancelled; cancelling after the send recalls nothing.
    let n = app.settled(&withdrawn, 2).await;
    assert!(n["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["state"] == "cancelled"));
    let (status, body) = app
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/notifications/{kept}"),
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["cancelled"].clone()),
        (200, json!([]))
    );
    let (_, inbox) = app
        .request(reqwest::Method::GET, "/v1/users/ada/inbox", None)
        .await;
    assert_eq!(
        inbox["items"].as_array().map(Vec::len),
        Some(2),
        "past + kept"
    );
}

async fn a_delivery_deferred_overnight_is_decided_again_in_the_morning(backend: Backend) {
    // 23:00 in London: e-mail waits for 07:00.
    let app = app_at(backend, "2026-12-01T23:00:00Z").await;
    sleeper(&app, "ada", "Europe/London").await;
    let opted_out = app.send(welcome_to(&["ada"], &["email"])).await;
    let expiring = app
        .send(
            json!({"template": "welcome", "recipients": ["ada"], "channels": ["email"],
            "category": "rides", "params": {"name": "Ada", "app_name": "Acme"}}),
        )
        .await;
    delivery_in(&app, &opted_out, "ada", "email", "deferred").await;
    delivery_in(&app, &expiring, "ada", "email", "deferred").await;
    // Overnight Ada turned e-mail off, and the operator made rides expire.
    put_preferences(
        &app,
        "ada",
        json!({"quiet_hours": {"start": "22:00", "end": "07:00"}, "channels": {"email": false}}),
    )
    .await;
    put_category(
        &app,
        "rides",
        json!({"required": true, "expires_after": "2h"}),
    )
    .await;
    app.advance(Duration::hours(8));
    let d = delivery_in(&app, &opted_out, "ada", "email", "suppressed").await;
    assert_eq!(d["last_error"], "opted_out_channel");
    let d = delivery_in(&app, &expiring, "ada", "email", "suppressed").await;
    assert_eq!(d["last_error"], "expired");
    assert_eq!(step(&d, "expiry")["outcome"], "suppressed");
    assert_eq!(
        app.receipt_reason(&d, "suppressed").await.as_deref(),
        Some("expired")
    );
    // 07:00 now, but a ride booked at 23:00 would wait eight hours for a
    // window that lets it through: it is suppressed at once.
    app.advance(Duration::hours(16));
    let late = app
        .send(
            json!({"template": "welcome", "recipients": ["ada"], "channels": ["email"],
            "category": "rides", "params": {"name": "Ada", "app_name": "Acme"}}),
        )
        .await;
    let d = delivery_in(&app, &late, "ada", "email", "suppressed").await;
    assert_eq!(d["last_error"], "expired");
    assert_eq!(
        rules(&d).last(),
        Some(&("quiet_hours".to_owned(), "suppressed".to_owned())),
        "{d:#}"
    );
    assert_eq!(
        app.receipt_reason(&d, "suppressed").await.as_deref(),
        Some("expired")
    );
}

async fn categories_and_effective_preferences_say_which_rule_decides(backend: Backend) {
    // 03:00 in Tokyo.
    let app = app_at(backend, EVENING).await;
    sleeper(&app, "ada", "Asia/Tokyo").await;
    put_category(
        &app,
        "marketing",
        json!({"default_enabled": false, "description": "Offers"}),
    )
    .await;
    put_preferences(
        &app,
        "ada",
        json!({"quiet_hours": {"start": "22:00", "end": "07:00"},
               "channels": {"sms": false},
               "categories": {"marketing": {"push": true}},
               "digests": {"marketing": {"every": "weekly", "day": "mon", "at": "08:00"}}}),
    )
    .await;
    let (status, view) = app
        .request(
            reqwest::Method::GET,
            "/v1/users/ada/preferences/effective?category=marketing",
            None,
        )
        .await;
    assert_eq!(status, 200, "{view}");
    let decided = |channel: &str| {
        (
            view["channels"][channel]["enabled"].as_bool().unwrap(),
            view["channels"][channel]["decided_by"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    };
    assert_eq!(decided("push"), (true, "user_category_switch".into()));
    assert_eq!(decided("email"), (false, "category_default".into()));
    assert_eq!(decided("sms"), (false, "category_default".into()));
    assert_eq!(view["time_zone"], "Asia/Tokyo");
    assert_eq!(view["quiet_until"], "2026-12-02T07:00:00+09:00");
    // Wednesday 2 December in Tokyo: the next Monday 08:00 is the 7th.
    assert_eq!(view["next_digest_at"], "2026-12-07T08:00:00+09:00");

    let (_, view) = app
        .request(
            reqwest::Method::GET,
            "/v1/users/ada/preferences/effective?category=social",
            None,
        )
        .await;
    assert_eq!(view["channels"]["sms"]["decided_by"], "user_channel_switch");
    assert_eq!(view["channels"]["email"]["decided_by"], "default");

    let (status, listed) = app
        .request(reqwest::Method::GET, "/v1/admin/categories", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["name"], "marketing");
    assert_eq!(listed[0]["default_enabled"], false);
    let (status, _) = app
        .request(reqwest::Method::GET, "/v1/admin/categories/social", None)
        .await;
    assert_eq!(status, 404);
}

async fn in_real_time_a_quiet_window_ending_a_minute_from_now_releases_the_message_then(
    backend: Backend,
) {
    use chrono::{Timelike, Utc};
    // No hand on the clock: the scheduler's own sleep must wake it.
    let app = TestApp::spawn(backend).await;
    app.put_user(
        "ada",
        json!({"email": "ada@example.com", "time_zone": "UTC"}),
    )
    .await;
    // The window ends at the first whole minute at least 30 s away.
    let end = Utc::now() + Duration::seconds(90);
    let end = end
        - Duration::seconds(i64::from(end.second()))
        - Duration::nanoseconds(i64::from(end.nanosecond()));
    let start = end - Duration::hours(2);
    put_preferences(
        &app,
        "ada",
        json!({"quiet_hours": {"start": start.format("%H:%M").to_string(),
                               "end": end.format("%H:%M").to_string()}}),
    )
    .await;
    let id = app.send(welcome_to(&["ada"], &["email"])).await;
    let d = delivery_in(&app, &id, "ada", "email", "deferred").await;
    assert_eq!(
        d["not_before"],
        end.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(150);
    let sent = loop {
        let n = app.notification(&id).await;
        let d = user_delivery(&n, "ada", "email").clone();
        if d["state"] == "sent" {
            break d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not released: {d:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let released = step(&sent, "queue")["at"].as_str().unwrap().to_owned();
    let released = DateTime::parse_from_rfc3339(&released).unwrap().to_utc();
    assert!(released >= end, "released at {released}, before {end}");
    assert!(
        released - end < Duration::seconds(5),
        "released {} late",
        released - end
    );
}

async fn categories_declared_in_a_file_are_in_force_from_the_start(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("categories.toml");
    std::fs::write(
        &file,
        "[account]\nrequired = true\n\n[marketing]\ndefault_enabled = false\n\
         caps = [{ channel = \"email\", max = 2, per = \"1d\" }]\n",
    )
    .unwrap();
    let app = TestApp::spawn_with(Options {
        extra: vec![("HERALD_CATEGORIES_FILE", file.display().to_string())],
        clock: Some(at(EVENING)),
        ..Options::on(backend)
    })
    .await;
    let (status, marketing) = app
        .request(reqwest::Method::GET, "/v1/admin/categories/marketing", None)
        .await;
    assert_eq!(status, 200, "{marketing}");
    assert_eq!(marketing["default_enabled"], false);
    assert_eq!(marketing["caps"][0]["per"], "1d");
    // Ada turned e-mail off, but `account` is required.
    app.put_user("ada", json!({"email": "ada@example.com"}))
        .await;
    put_preferences(&app, "ada", json!({"channels": {"email": false}})).await;
    let id = app.send(welcome_to(&["ada"], &["email"])).await;
    let d = delivery_in(&app, &id, "ada", "email", "sent").await;
    assert_eq!(step(&d, "preferences")["reason"], "required_category");
}
