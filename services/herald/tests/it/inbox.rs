//! The in-app inbox.

use crate::support::Backend;

crate::on_both_backends!(
    reading_an_inbox_message_lowers_the_unread_count_and_marks_the_delivery_read,
    another_users_message_cannot_be_marked_read,
);

use reqwest::Method;

use crate::support::{ada, welcome, TestApp};

async fn reading_an_inbox_message_lowers_the_unread_count_and_marks_the_delivery_read(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    ada(&app).await;
    let first = app.send(welcome(&["ada"], &["in_app"])).await;
    let second = app.send(welcome(&["ada"], &["in_app"])).await;
    app.settled(&first, 1).await;
    app.settled(&second, 1).await;
    let (_, inbox) = app.request(Method::GET, "/v1/users/ada/inbox", None).await;
    assert_eq!(
        (
            inbox["items"].as_array().unwrap().len(),
            inbox["unread_count"].as_i64()
        ),
        (2, Some(2))
    );

    let message = inbox["items"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/users/ada/inbox/{message}/read");
    let (status, body) = app.request(Method::POST, &path, None).await;
    assert_eq!((status.as_u16(), body["read"].as_bool()), (200, Some(true)));
    let (status, _) = app.request(Method::POST, &path, None).await;
    assert_eq!(status, 200, "marking twice is fine");

    let (_, inbox) = app.request(Method::GET, "/v1/users/ada/inbox", None).await;
    assert_eq!(inbox["unread_count"], 1);
    assert_eq!(inbox["items"][0]["read"], true);

    let notification = inbox["items"][0]["notification_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.eventually(
        "the read receipt",
        || app.notification(&notification),
        |n| n["deliveries"][0]["state"] == "read",
    )
    .await;
}

async fn another_users_message_cannot_be_marked_read(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    ada(&app).await;
    app.put_user("eve", serde_json::json!({})).await;
    let id = app.send(welcome(&["ada"], &["in_app"])).await;
    let n = app.settled(&id, 1).await;
    let message = n["deliveries"][0]["id"].as_str().unwrap();
    let (status, body) = app
        .request(
            Method::POST,
            &format!("/v1/users/eve/inbox/{message}/read"),
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (404, Some("message_not_found"))
    );
    let (_, inbox) = app.request(Method::GET, "/v1/users/ada/inbox", None).await;
    assert_eq!(inbox["unread_count"], 1);
}
