//! Idempotency-Key: same key and body, same answer and no second message.

use crate::support::Backend;

crate::on_both_backends!(
    the_same_key_and_body_replay_the_answer_without_a_second_email,
    the_same_key_with_another_body_is_a_conflict,
    concurrent_requests_with_one_key_create_one_notification,
);

use std::time::Duration;

use serde_json::json;

use crate::support::{ada, welcome, TestApp, WAIT};

async fn the_same_key_and_body_replay_the_answer_without_a_second_email(backend: Backend) {
    let app = TestApp::with_smtp(backend).await;
    let smtp = app.smtp.clone().unwrap();
    ada(&app).await;
    let body = welcome(&["ada"], &["email"]);
    let (status, first) = app.send_with_key("signup-ada", &body).await;
    assert_eq!(status, 202);
    let id = first["id"].as_str().unwrap();
    app.settled(id, 1).await;
    assert_eq!(smtp.wait_for(1, WAIT).await.len(), 1);

    // Same meaning, keys in another order: still the same request.
    let reordered = json!({"channels": ["email"], "params": {"app_name": "Acme", "name": "Ada"},
        "recipients": ["ada"], "template": "welcome"});
    let (status, again) = app.send_with_key("signup-ada", &reordered).await;
    assert_eq!((status.as_u16(), again["id"].as_str()), (202, Some(id)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.count(), 1, "no second e-mail");
    assert_eq!(app.store().outbox_len().await.unwrap(), 0);
}

async fn the_same_key_with_another_body_is_a_conflict(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    ada(&app).await;
    let (status, _) = app.send_with_key("k", &welcome(&["ada"], &["email"])).await;
    assert_eq!(status, 202);
    let (status, body) = app
        .send_with_key("k", &welcome(&["ada"], &["in_app"]))
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
}

async fn concurrent_requests_with_one_key_create_one_notification(backend: Backend) {
    let app = TestApp::with_smtp(backend).await;
    ada(&app).await;
    let body = welcome(&["ada"], &["email"]);
    let answers = futures_join(&app, &body).await;
    let ids: std::collections::HashSet<_> = answers
        .iter()
        .map(|(s, b)| {
            assert_eq!(*s, 202, "{b}");
            b["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    let id = ids.into_iter().next().unwrap();
    app.settled(&id, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.smtp.as_ref().unwrap().count(), 1);
}

async fn futures_join(app: &TestApp, body: &serde_json::Value) -> Vec<(u16, serde_json::Value)> {
    let mut handles = Vec::new();
    for _ in 0..8 {
        let client = app.client.clone();
        let url = format!("{}/v1/notifications", app.base);
        let body = body.clone();
        handles.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("Idempotency-Key", "race")
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
