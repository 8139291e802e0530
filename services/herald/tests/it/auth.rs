//! API keys and scopes, and the refusal to serve an open API to the network.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{templates_dir, Backend, Options, TestApp};

const SEND_KEY: &str = "send-key-0123456789abcdef";
const INBOX_KEY: &str = "inbox-key-0123456789abcdef";
const ADMIN_KEY: &str = "admin-key-0123456789abcdef";

async fn app_with_keys() -> TestApp {
    let keys = format!(
        "{SEND_KEY}:send, sha256:{}:inbox, {ADMIN_KEY}:admin",
        herald_api::hash_key(INBOX_KEY)
    );
    TestApp::spawn_with(Options {
        extra: vec![("HERALD_API_KEYS", keys)],
        ..Options::on(Backend::Embedded)
    })
    .await
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let mut request = app.client.request(method, format!("{}{path}", app.base));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

#[tokio::test]
async fn keys_are_required_and_their_scopes_decide_what_they_reach() {
    let app = app_with_keys().await;
    let user = json!({"email": "ada@example.com"});
    let (status, body) = call(&app, Method::PUT, "/v1/users/ada", None, Some(user.clone())).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = call(
        &app,
        Method::PUT,
        "/v1/users/ada",
        Some("not-a-key-0123456789"),
        Some(user.clone()),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = call(
        &app,
        Method::PUT,
        "/v1/users/ada",
        Some(SEND_KEY),
        Some(user.clone()),
    )
    .await;
    assert!(status.is_success(), "{status}");

    let send = json!({"template": "welcome", "recipients": ["ada"], "channels": ["in_app"],
        "params": {"name": "Ada", "app_name": "Acme"}});
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/notifications",
        Some(INBOX_KEY),
        Some(send.clone()),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, accepted) = call(
        &app,
        Method::POST,
        "/v1/notifications",
        Some(SEND_KEY),
        Some(send.clone()),
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = call(
        &app,
        Method::POST,
        "/v1/notifications",
        Some(ADMIN_KEY),
        Some(send),
    )
    .await;
    assert_eq!(status, 202, "admin reaches everything");

    let id = accepted["id"].as_str().unwrap();
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/v1/notifications/{id}"),
        Some(INBOX_KEY),
        None,
    )
    .await;
    assert_eq!(status, 403);
    for key in [INBOX_KEY, SEND_KEY] {
        let (status, _) = call(&app, Method::GET, "/v1/users/ada/inbox", Some(key), None).await;
        assert_eq!(status, 200, "{key}");
        let (status, _) = call(
            &app,
            Method::PUT,
            "/v1/users/ada/preferences",
            Some(key),
            Some(json!({})),
        )
        .await;
        assert_eq!(status, 200, "{key}");
    }
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let (status, _) = call(&app, Method::GET, open, None, None).await;
        assert_eq!(status, 200, "{open} needs no key");
    }
}

fn exposed(keys: Option<&str>) -> herald::Config {
    let dir =
        std::env::temp_dir().join(format!("herald-exposed-{}", uuid::Uuid::new_v4().simple()));
    let mut settings = BTreeMap::new();
    settings.insert("HERALD_LISTEN".to_owned(), "0.0.0.0:0".to_owned());
    settings.insert("HERALD_DATA_DIR".to_owned(), dir.display().to_string());
    settings.insert(
        "HERALD_TEMPLATES_DIR".to_owned(),
        templates_dir().display().to_string(),
    );
    if let Some(keys) = keys {
        settings.insert("HERALD_API_KEYS".to_owned(), keys.to_owned());
    }
    herald::Config::from_map(&settings).unwrap()
}

#[tokio::test]
async fn a_service_on_a_non_loopback_address_refuses_to_start_without_keys() {
    let refused = herald::serve(exposed(None), CancellationToken::new()).await;
    let message = format!("{:#}", refused.err().expect("refused"));
    assert!(
        message.contains("refusing to listen on 0.0.0.0:0 without API keys"),
        "{message}"
    );

    let started = herald::serve(
        exposed(Some(&format!("{ADMIN_KEY}:admin"))),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    started.stop().await;
}

#[tokio::test]
async fn metrics_are_exported_in_prometheus_text_with_the_documented_names() {
    let app = TestApp::spawn(Backend::Embedded).await;
    crate::support::ada(&app).await;
    let id = app
        .send(crate::support::welcome(&["ada"], &["email", "in_app"]))
        .await;
    app.settled(&id, 2).await;
    // A worker counts a delivery just after recording it: wait for the count.
    let sent = r#"herald_deliveries_total{channel="email",outcome="sent"}"#;
    let text = app
        .eventually(
            "the e-mail to be counted",
            || async {
                app.client
                    .get(format!("{}/metrics", app.base))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            },
            |text| text.contains(sent),
        )
        .await;
    for name in [
        "herald_records_consumed_total",
        "herald_deliveries_total",
        "herald_jobs_routed_total",
        "herald_provider_request_seconds_bucket",
        "herald_outbox_relayed_total",
        "herald_http_requests_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    assert!(!text.contains("ada"), "no user ids in labels");
}
