//! Bad input to the judgement's endpoints: every mistake is a clear 4xx
//! JSON error naming what is wrong, never a 5xx and never a silent default.

use super::support::Backend;

crate::on_both_backends!(
    bad_preferences_categories_and_schedules_are_refused_with_the_reason,
    cancelling_and_opening_answer_for_what_they_find,
);

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{ada, welcome, TestApp};

async fn expect(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
    needle: &str,
) {
    let (got, answer) = app.request(method, path, body.clone()).await;
    assert_eq!(got.as_u16(), status, "{path} {body:?}: {answer}");
    let text = answer["error"].to_string();
    assert!(
        text.contains(needle),
        "{path} {body:?}: {answer} lacks {needle:?}"
    );
}

async fn bad_preferences_categories_and_schedules_are_refused_with_the_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    ada(&app).await;
    let prefs = "/v1/users/ada/preferences";
    for (body, needle) in [
        (json!({"quiet_hours": {"start": "22:00"}}), "end"),
        (
            json!({"quiet_hours": {"start": "22:00", "end": "22:00"}}),
            "must differ",
        ),
        (
            json!({"quiet_hours": {"start": "24:00", "end": "07:00"}}),
            "time of day",
        ),
        (
            json!({"quiet_hours": {"start": "7:00", "end": "08:00"}}),
            "time of day",
        ),
        (
            json!({"quiet_hours": {"start": "22:00", "end": "07:00", "days": ["mon", "mon"]}}),
            "repeat",
        ),
        (
            json!({"quiet_hours": {"start": "22:00", "end": "07:00", "days": ["funday"]}}),
            "unknown variant",
        ),
        (
            json!({"quiet_hours": {"start": "22:00", "end": "07:00", "tz": "UTC"}}),
            "unknown field",
        ),
        (
            json!({"digests": {"social": {"every": "weekly", "at": "08:00"}}}),
            "needs a day",
        ),
        (
            json!({"digests": {"social": {"every": "daily", "day": "mon", "at": "08:00"}}}),
            "takes no day",
        ),
        (
            json!({"digests": {"social": {"every": "hourly", "at": "08:00"}}}),
            "unknown variant",
        ),
        (
            json!({"digests": {"Social": {"every": "daily", "at": "08:00"}}}),
            "category",
        ),
    ] {
        expect(&app, Method::PUT, prefs, Some(body), 422, needle).await;
    }
    let windows: Vec<Value> = (0..15)
        .map(|_| json!({"start": "22:00", "end": "07:00"}))
        .collect();
    expect(
        &app,
        Method::PUT,
        prefs,
        Some(json!({"quiet_hours": windows})),
        422,
        "at most 14",
    )
    .await;
    // What was refused changed nothing.
    let (_, stored) = app.request(Method::GET, prefs, None).await;
    assert_eq!(stored, json!({"channels": {}, "categories": {}}));

    let category = "/v1/admin/categories/social";
    for (body, needle) in [
        (json!({"requierd": true}), "unknown field"),
        (json!({"expires_after": "2 hours"}), "duration"),
        (json!({"expires_after": "0m"}), "duration"),
        (
            json!({"caps": [{"channel": "push", "max": 0, "per": "1h"}]}),
            "1 to 1000",
        ),
        (
            json!({"caps": [{"channel": "pigeon", "max": 1, "per": "1h"}]}),
            "unknown variant",
        ),
        (json!({"caps": [{"channel": "push", "max": 3}]}), "per"),
        (json!({"description": "x".repeat(501)}), "500 characters"),
    ] {
        expect(&app, Method::PUT, category, Some(body), 422, needle).await;
    }
    expect(
        &app,
        Method::PUT,
        "/v1/admin/categories/Not%20Valid",
        Some(json!({})),
        400,
        "category",
    )
    .await;
    expect(
        &app,
        Method::GET,
        "/v1/admin/categories/social",
        None,
        404,
        "default policy",
    )
    .await;

    let effective = "/v1/users/ada/preferences/effective";
    expect(&app, Method::GET, effective, None, 400, "category").await;
    expect(
        &app,
        Method::GET,
        &format!("{effective}?category=Bad!"),
        None,
        400,
        "category",
    )
    .await;
    expect(
        &app,
        Method::GET,
        &format!("{effective}?category=social&priority=urgent"),
        None,
        400,
        "priority",
    )
    .await;
    expect(
        &app,
        Method::GET,
        "/v1/users/nobody/preferences/effective?category=social",
        None,
        404,
        "no user",
    )
    .await;

    let send = |extra: Value| {
        let mut body = welcome(&["ada"], &["email"]);
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (extra, status, needle) in [
        (json!({"send_at": "tomorrow"}), 422, "send_at"),
        (json!({"send_at": "2126-01-01T00:00:00Z"}), 422, "366 days"),
        (json!({"group_key": "has space"}), 422, "group key"),
        (
            json!({"recipients": [{"topic": "Bad Topic"}]}),
            422,
            "topic name",
        ),
        (json!({"recipients": [{"team": "x"}]}), 422, "unknown field"),
    ] {
        expect(
            &app,
            Method::POST,
            "/v1/notifications",
            Some(send(extra)),
            status,
            needle,
        )
        .await;
    }
}

async fn cancelling_and_opening_answer_for_what_they_find(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    ada(&app).await;
    expect(
        &app,
        Method::DELETE,
        "/v1/notifications/not-a-uuid",
        None,
        400,
        "notification id",
    )
    .await;
    expect(
        &app,
        Method::DELETE,
        "/v1/notifications/0190b7a2-6c3e-7d7a-8f00-000000000001",
        None,
        404,
        "no notification",
    )
    .await;
    expect(
        &app,
        Method::GET,
        "/v1/deliveries/nope",
        None,
        400,
        "delivery id",
    )
    .await;
    expect(
        &app,
        Method::POST,
        "/v1/deliveries/0190b7a2-6c3e-7d7a-8f00-000000000001/opened",
        None,
        404,
        "no delivery",
    )
    .await;
    // A suppressed delivery never reached the user: it cannot be opened.
    let id = app.send(welcome(&["ada"], &["push"])).await;
    let n = app.settled(&id, 1).await;
    let push = &n["deliveries"][0];
    assert_eq!(push["state"], "suppressed");
    expect(
        &app,
        Method::POST,
        &format!("/v1/deliveries/{}/opened", push["id"].as_str().unwrap()),
        None,
        409,
        "not_delivered",
    )
    .await;
    // A sent one can, twice.
    let id = app.send(welcome(&["ada"], &["email"])).await;
    let n = app.settled(&id, 1).await;
    let email = n["deliveries"][0]["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let (status, body) = app
            .request(
                Method::POST,
                &format!("/v1/deliveries/{email}/opened"),
                None,
            )
            .await;
        assert_eq!(
            (status.as_u16(), body["state"].as_str()),
            (200, Some("read")),
            "{body}"
        );
    }
    let path = format!("/v1/deliveries/{email}");
    app.eventually(
        "the open to be recorded",
        || app.request(Method::GET, &path, None),
        |(_, d)| d["state"] == "read",
    )
    .await;
}
