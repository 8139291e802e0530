//! `TestApp`: one Herald per test, on port 0, with its own data directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald::{Config, Running};
use herald_standins::smtp::SmtpSink;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(15);

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub running: Option<Running>,
    pub data_dir: PathBuf,
    pub smtp: Option<SmtpSink>,
    _dir: Option<tempfile::TempDir>,
    settings: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct Options {
    /// Send e-mail through a real SMTP stand-in instead of the file sink.
    pub smtp: bool,
    pub extra: Vec<(&'static str, String)>,
}

pub fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates")
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(Options::default()).await
    }

    pub async fn with_smtp() -> TestApp {
        TestApp::spawn_with(Options {
            smtp: true,
            ..Options::default()
        })
        .await
    }

    pub async fn spawn_with(options: Options) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().to_path_buf();
        let mut settings = BTreeMap::new();
        settings.insert("HERALD_LISTEN".into(), "127.0.0.1:0".into());
        settings.insert("HERALD_DATA_DIR".into(), data_dir.display().to_string());
        settings.insert(
            "HERALD_TEMPLATES_DIR".into(),
            templates_dir().display().to_string(),
        );
        settings.insert("HERALD_RETRY_BASE_MS".into(), "20".into());
        settings.insert("HERALD_RETRY_MAX_MS".into(), "200".into());
        let smtp = if options.smtp {
            let sink = SmtpSink::start().await.expect("smtp sink");
            settings.insert("HERALD_SMTP_URL".into(), sink.url());
            Some(sink)
        } else {
            None
        };
        for (key, value) in options.extra {
            settings.insert(key.into(), value);
        }
        let mut app = TestApp {
            base: String::new(),
            client: reqwest::Client::new(),
            running: None,
            data_dir,
            smtp,
            _dir: Some(dir),
            settings,
        };
        app.start().await;
        app
    }

    /// Starts (or restarts) Herald on the same data directory.
    pub async fn start(&mut self) {
        let config = Config::from_map(&self.settings).expect("config");
        let running = herald::serve(config, CancellationToken::new())
            .await
            .expect("herald starts");
        self.base = format!("http://{}", running.addr);
        self.running = Some(running);
    }

    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    pub fn store(&self) -> &herald_store::Store {
        &self.running.as_ref().expect("running").store
    }

    pub fn bus(&self) -> &std::sync::Arc<dyn herald_bus::Bus> {
        &self.running.as_ref().expect("running").bus
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("non-JSON answer {status}: {text}"));
        (status, json)
    }

    pub async fn put_user(&self, id: &str, body: Value) -> Value {
        let (status, json) = self
            .request(reqwest::Method::PUT, &format!("/v1/users/{id}"), Some(body))
            .await;
        assert!(status.is_success(), "{status} {json}");
        json
    }

    pub async fn send(&self, body: Value) -> String {
        let (status, json) = self
            .request(reqwest::Method::POST, "/v1/notifications", Some(body))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{json}");
        json["id"].as_str().expect("id").to_owned()
    }

    pub async fn send_with_key(&self, key: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/v1/notifications", self.base))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.expect("json"))
    }

    pub async fn notification(&self, id: &str) -> Value {
        let (status, json) = self
            .request(
                reqwest::Method::GET,
                &format!("/v1/notifications/{id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        json
    }

    /// Polls the notification until every delivery is in a final state.
    pub async fn settled(&self, id: &str, deliveries: usize) -> Value {
        let finals = [
            "suppressed",
            "sent",
            "delivered",
            "failed",
            "bounced",
            "read",
        ];
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let n = self.notification(id).await;
            let list = n["deliveries"].as_array().cloned().unwrap_or_default();
            if list.len() == deliveries
                && list
                    .iter()
                    .all(|d| finals.contains(&d["state"].as_str().unwrap_or("")))
            {
                return n;
            }
            assert!(tokio::time::Instant::now() < deadline, "not settled: {n:#}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until `check` holds for what `probe` returns.
    pub async fn eventually<T, F, Fut>(
        &self,
        what: &str,
        mut probe: F,
        check: impl Fn(&T) -> bool,
    ) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = T>,
        T: std::fmt::Debug,
    {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let value = probe().await;
            if check(&value) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {value:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn delivery<'a>(notification: &'a Value, channel: &str) -> &'a Value {
    notification["deliveries"]
        .as_array()
        .and_then(|list| list.iter().find(|d| d["channel"] == channel))
        .unwrap_or_else(|| panic!("no {channel} delivery in {notification:#}"))
}

pub fn welcome(users: &[&str], channels: &[&str]) -> Value {
    json!({
        "template": "welcome",
        "recipients": users,
        "params": {"name": "Ada", "app_name": "Acme"},
        "channels": channels,
    })
}

pub async fn ada(app: &TestApp) {
    app.put_user(
        "ada",
        json!({"email": "ada@example.com", "name": "Ada Lovelace", "phone": "+14155550100"}),
    )
    .await;
}
