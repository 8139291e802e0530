//! `TestApp`: one Herald per test, on port 0, with its own data directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_domain::ManualClock;

use herald::{Config, Running};
use herald_standins::smtp::SmtpSink;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// The heaviest tests (thousands of records through the shared broker) take
/// turns: two at once overload the test broker until its producers time out.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Holds the heavy-test turn until dropped.
pub async fn heavy_turn() -> tokio::sync::MutexGuard<'static, ()> {
    HEAVY.lock().await
}

/// Generous: a restarted service rejoins its consumer groups, which tansu can
/// hold for several session timeouts when the machine is busy.
pub const WAIT: Duration = Duration::from_secs(60);

/// Which set of backends a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file, embedded queue, in-process claims and limits.
    Embedded,
    /// PostgreSQL, Kafka (tansu), Redis: each test with its own database,
    /// topic prefix and key prefix.
    Production,
}

/// Runs each listed test once per backend set.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($crate::support::Backend::Embedded).await
            })*
        }
        mod production {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($crate::support::Backend::Production).await
            })*
        }
    };
}

/// With `HERALD_TEST_LOG` set (a tracing filter such as
/// `herald=debug,herald_bus=debug`), the test process logs to stderr; run
/// one test with `--nocapture` to read what Herald did.
fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("HERALD_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::stderr)
                .try_init();
        }
    });
}

pub fn kafka_brokers() -> String {
    std::env::var("HERALD_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn redis_url() -> String {
    std::env::var("HERALD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Settings that put a Herald on the production backends, isolated from
/// every other test.
pub async fn production_settings() -> Vec<(&'static str, String)> {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    vec![
        (
            "HERALD_DATABASE_URL",
            herald_store::testing::postgres_database()
                .await
                .expect("a test database"),
        ),
        // Tests run side by side against one server (max_connections 100).
        ("HERALD_DB_MAX_CONNECTIONS", "4".into()),
        ("HERALD_KAFKA_BROKERS", kafka_brokers()),
        ("HERALD_KAFKA_SESSION_TIMEOUT_MS", "6000".into()),
        ("HERALD_KAFKA_PARTITIONS", "4".into()),
        ("HERALD_TOPIC_PREFIX", format!("t{unique}.")),
        ("HERALD_REDIS_URL", redis_url()),
        ("HERALD_REDIS_PREFIX", format!("t{unique}:")),
    ]
    .into_iter()
    // librdkafka's own debug logging, for reading a failure (see init_logs).
    .chain(
        std::env::var("HERALD_KAFKA_DEBUG")
            .ok()
            .map(|debug| ("HERALD_KAFKA_DEBUG", debug)),
    )
    .collect()
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub running: Option<Running>,
    pub data_dir: PathBuf,
    pub smtp: Option<SmtpSink>,
    /// The app's clock, when the test moves time by hand.
    pub clock: Option<Arc<ManualClock>>,
    _dir: Option<tempfile::TempDir>,
    settings: BTreeMap<String, String>,
}

pub struct Options {
    pub backend: Backend,
    /// Send e-mail through a real SMTP stand-in instead of the file sink.
    pub smtp: bool,
    pub extra: Vec<(&'static str, String)>,
    /// Run on a clock that moves only when the test says so.
    pub clock: Option<DateTime<Utc>>,
}

pub fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates")
}

/// Settings under which a killed process's timers and claims are taken
/// over 5 s (on the app's clock) after it leased them, not the default
/// minutes: for tests that crash Herald on purpose.
pub fn short_leases() -> Vec<(&'static str, String)> {
    vec![
        ("HERALD_TIMER_LEASE_MS", "5000".into()),
        ("HERALD_CLAIM_LEASE_MS", "5000".into()),
    ]
}

impl Options {
    pub fn on(backend: Backend) -> Options {
        Options {
            backend,
            smtp: false,
            extra: Vec::new(),
            clock: None,
        }
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(Options::on(backend)).await
    }

    pub async fn with_smtp(backend: Backend) -> TestApp {
        TestApp::spawn_with(Options {
            smtp: true,
            ..Options::on(backend)
        })
        .await
    }

    pub async fn spawn_with(options: Options) -> TestApp {
        init_logs();
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
        if options.backend == Backend::Production {
            for (key, value) in production_settings().await {
                settings.insert(key.into(), value);
            }
        }
        for (key, value) in options.extra {
            settings.insert(key.into(), value);
        }
        let mut app = TestApp {
            base: String::new(),
            client: reqwest::Client::new(),
            running: None,
            data_dir,
            smtp,
            clock: options.clock.map(|at| Arc::new(ManualClock::new(at))),
            _dir: Some(dir),
            settings,
        };
        app.start().await;
        app
    }

    /// Starts (or restarts) Herald on the same data directory.
    pub async fn start(&mut self) {
        let config = Config::from_map(&self.settings).expect("config");
        let running = match &self.clock {
            Some(clock) => herald::start_with_clock(
                config,
                herald::Role::All,
                CancellationToken::new(),
                clock.clone(),
            )
            .await
            .expect("herald starts"),
            None => herald::serve(config, CancellationToken::new())
                .await
                .expect("herald starts"),
        };
        self.base = format!("http://{}", running.addr);
        self.running = Some(running);
    }

    /// Moves the app's clock forward and lets its scheduler look at once.
    pub fn advance(&self, by: chrono::Duration) {
        self.clock
            .as_ref()
            .expect("the app runs on a manual clock")
            .advance(by);
        if let Some(running) = &self.running {
            running.wake_scheduler();
        }
    }

    /// The app's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock
            .as_ref()
            .map_or_else(Utc::now, |c| herald_domain::Clock::now(c.as_ref()))
    }

    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    pub fn config(&self) -> Config {
        Config::from_map(&self.settings).expect("config")
    }

    /// Records a stage of this Herald has finished so far.
    pub fn handled(&self, stage: &str) -> u64 {
        self.running.as_ref().expect("running").handled(stage)
    }

    /// The most records `stage` of this Herald handled at once so far.
    pub fn largest_batch(&self, stage: &str) -> u64 {
        self.running.as_ref().expect("running").largest_batch(stage)
    }

    /// Records of `stage` this Herald dead-lettered so far.
    pub fn dead_lettered(&self, stage: &str) -> u64 {
        self.running.as_ref().expect("running").dead_lettered(stage)
    }

    /// Waits until `stage` has finished `n` more records than `before`.
    pub async fn handled_at_least(&self, stage: &str, n: u64) {
        self.eventually(
            &format!("{stage} to handle {n}"),
            || async { self.handled(stage) },
            |h| *h >= n,
        )
        .await;
    }

    /// Reads `n` dead letters off the DLQ (as a consumer of its own).
    pub async fn dead_letters(&self, n: usize) -> Vec<herald_bus::DeadLetter> {
        let bus = self.bus();
        let mut consumer = bus
            .subscribe(&bus.topics().dlq(), "test-dlq-reader")
            .await
            .expect("subscribe");
        let mut letters = Vec::new();
        while letters.len() < n {
            let record = tokio::time::timeout(WAIT, consumer.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} dead letters: {letters:#?}", letters.len()))
                .expect("record");
            letters.push(serde_json::from_slice(&record.payload).expect("a dead letter"));
            record.ack().await.expect("ack");
        }
        letters
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
            "cancelled",
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

    /// Waits for the receipt of `state` recorded against the delivery `d`
    /// (as `GET /v1/notifications/{id}` shows it) and returns its reason.
    pub async fn receipt_reason(&self, d: &Value, state: &str) -> Option<String> {
        let id = herald_domain::DeliveryId::parse(d["id"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{d}: {e}"));
        let receipts = self
            .eventually(
                &format!("a {state} receipt for {id}"),
                || self.store().receipts_of(id),
                |r| {
                    r.as_ref()
                        .is_ok_and(|r| r.iter().any(|(s, _)| s.as_str() == state))
                },
            )
            .await
            .unwrap_or_default();
        receipts
            .into_iter()
            .find(|(s, _)| s.as_str() == state)
            .and_then(|(_, reason)| reason)
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

/// Reads a started `herald` process's stdout up to its listening line and
/// returns the base URL; the rest of stdout is drained so the process never
/// writes into a closed pipe.
pub fn listening_base(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let base = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(base) = line.trim().strip_prefix("herald is listening on ") {
                    break base.to_owned();
                }
            }
            _ => panic!("herald exited before listening (see its stderr above)"),
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    base
}

/// Settings for a cluster of separate services on the production backends,
/// sending e-mail to `smtp` and taking over dead workers' claims after `lease_ms`.
pub async fn cluster_settings(smtp: &SmtpSink, lease_ms: u64) -> BTreeMap<String, String> {
    let mut settings: BTreeMap<String, String> = production_settings()
        .await
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    settings.insert("HERALD_LISTEN".into(), "127.0.0.1:0".into());
    settings.insert(
        "HERALD_TEMPLATES_DIR".into(),
        templates_dir().display().to_string(),
    );
    settings.insert("HERALD_SMTP_URL".into(), smtp.url());
    settings.insert("HERALD_CLAIM_LEASE_MS".into(), lease_ms.to_string());
    settings
}
