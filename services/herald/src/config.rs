//! Configuration: environment variables, and optionally a TOML file with the
//! same keys (`HERALD_LISTEN = "0.0.0.0:8080"`). The environment wins.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use herald_domain::{Category, CategoryPolicy, Channel};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
}

/// Every setting, with its default. The README's table lists the same keys.
/// Its `Debug` hides the API keys and the passwords in URLs.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub templates_dir: PathBuf,
    pub smtp_url: Option<String>,
    /// SMTP connections open at once at most (`HERALD_SMTP_CONNECTIONS`).
    pub smtp_connections: u32,
    /// Extra certificates (PEM) to trust for the relay's TLS
    /// (`HERALD_SMTP_CA_FILE`).
    pub smtp_ca_file: Option<PathBuf>,
    pub email_from: String,
    pub topic_prefix: String,
    pub worker_concurrency: usize,
    pub router_concurrency: usize,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub rate_limits: Vec<(Channel, NonZeroU32)>,
    pub max_body_bytes: usize,
    pub log_format: LogFormat,
    /// Unset: the embedded bus in the SQLite file.
    pub kafka_brokers: Option<String>,
    pub kafka_session_timeout: Duration,
    pub kafka_partitions: i32,
    pub kafka_batch_messages: u32,
    /// Records re-read before the committed offset on assignment; 0: none.
    pub kafka_resume_window: i64,
    pub kafka_replication: i32,
    /// librdkafka debug contexts to log (`HERALD_KAFKA_DEBUG`).
    pub kafka_debug: Option<String>,
    pub receipts_concurrency: usize,
    /// Unset: claims and rate limits in this process.
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    /// `HERALD_API_KEYS` as given; parsed by the API.
    pub api_keys: Option<String>,
    pub claim_lease: Duration,
    /// How long Redis remembers a delivery as sent or done
    /// (`HERALD_CLAIM_MEMORY_MS`); longer than the lease.
    pub claim_memory: Duration,
    pub db_max_connections: u32,
    pub worker_id: String,
    /// A TOML file of category policies, written to the store at start.
    pub categories_file: Option<PathBuf>,
    /// The longest the scheduler sleeps before looking for due timers.
    pub timer_poll: Duration,
    /// How long a fired timer is kept from other schedulers; one whose
    /// scheduler died fires again after this.
    pub timer_lease: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &herald_store::redact_url(&self.database_url),
            )
            .field("templates_dir", &self.templates_dir)
            .field(
                "smtp_url",
                &self.smtp_url.as_deref().map(herald_store::redact_url),
            )
            .field("smtp_connections", &self.smtp_connections)
            .field("smtp_ca_file", &self.smtp_ca_file)
            .field("email_from", &self.email_from)
            .field("topic_prefix", &self.topic_prefix)
            .field("worker_concurrency", &self.worker_concurrency)
            .field("router_concurrency", &self.router_concurrency)
            .field("max_attempts", &self.max_attempts)
            .field("retry_base", &self.retry_base)
            .field("retry_max", &self.retry_max)
            .field("rate_limits", &self.rate_limits)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("log_format", &self.log_format)
            .field("kafka_brokers", &self.kafka_brokers)
            .field("kafka_session_timeout", &self.kafka_session_timeout)
            .field("kafka_partitions", &self.kafka_partitions)
            .field("kafka_batch_messages", &self.kafka_batch_messages)
            .field("kafka_resume_window", &self.kafka_resume_window)
            .field("kafka_replication", &self.kafka_replication)
            .field("kafka_debug", &self.kafka_debug)
            .field("receipts_concurrency", &self.receipts_concurrency)
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(herald_store::redact_url),
            )
            .field("redis_prefix", &self.redis_prefix)
            .field("api_keys", &self.api_keys.as_ref().map(|_| "<redacted>"))
            .field("claim_lease", &self.claim_lease)
            .field("claim_memory", &self.claim_memory)
            .field("db_max_connections", &self.db_max_connections)
            .field("worker_id", &self.worker_id)
            .field("categories_file", &self.categories_file)
            .field("timer_poll", &self.timer_poll)
            .field("timer_lease", &self.timer_lease)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The keys Herald reads; anything else starting with `HERALD_` in a config
/// file is a typo and refused.
pub const KEYS: &[&str] = &[
    "HERALD_LISTEN",
    "HERALD_DATA_DIR",
    "HERALD_DATABASE_URL",
    "HERALD_TEMPLATES_DIR",
    "HERALD_SMTP_URL",
    "HERALD_SMTP_CONNECTIONS",
    "HERALD_SMTP_CA_FILE",
    "HERALD_EMAIL_FROM",
    "HERALD_TOPIC_PREFIX",
    "HERALD_WORKER_CONCURRENCY",
    "HERALD_ROUTER_CONCURRENCY",
    "HERALD_MAX_ATTEMPTS",
    "HERALD_RETRY_BASE_MS",
    "HERALD_RETRY_MAX_MS",
    "HERALD_RATE_LIMIT_EMAIL",
    "HERALD_RATE_LIMIT_PUSH",
    "HERALD_RATE_LIMIT_SMS",
    "HERALD_MAX_BODY_BYTES",
    "HERALD_LOG_FORMAT",
    "HERALD_KAFKA_BROKERS",
    "HERALD_KAFKA_SESSION_TIMEOUT_MS",
    "HERALD_KAFKA_PARTITIONS",
    "HERALD_KAFKA_BATCH_MESSAGES",
    "HERALD_KAFKA_RESUME_WINDOW",
    "HERALD_KAFKA_REPLICATION",
    "HERALD_KAFKA_DEBUG",
    "HERALD_RECEIPTS_CONCURRENCY",
    "HERALD_REDIS_URL",
    "HERALD_REDIS_PREFIX",
    "HERALD_API_KEYS",
    "HERALD_CLAIM_LEASE_MS",
    "HERALD_CLAIM_MEMORY_MS",
    "HERALD_DB_MAX_CONNECTIONS",
    "HERALD_WORKER_ID",
    "HERALD_CATEGORIES_FILE",
    "HERALD_TIMER_POLL_MS",
    "HERALD_TIMER_LEASE_MS",
];

impl Config {
    /// Reads the process environment, then `file` for keys the environment
    /// does not set.
    pub fn load(file: Option<&std::path::Path>) -> Result<Config, ConfigError> {
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        if let Some(path) = file {
            values.extend(read_file(path)?);
        }
        for key in KEYS {
            if let Ok(value) = std::env::var(key) {
                values.insert((*key).to_owned(), value);
            }
        }
        Config::from_map(&values)
    }

    /// Builds a configuration from explicit values; missing keys take defaults.
    pub fn from_map(values: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let get = |key: &str| values.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let data_dir = PathBuf::from(get("HERALD_DATA_DIR").unwrap_or("./data"));
        let database_url = get("HERALD_DATABASE_URL")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("herald.db").display()));
        let mut rate_limits = Vec::new();
        for channel in [Channel::Email, Channel::Push, Channel::Sms] {
            let key = format!("HERALD_RATE_LIMIT_{}", channel.as_str().to_uppercase());
            if let Some(rate) = parse::<u32>(&key, get(&key))? {
                let rate = NonZeroU32::new(rate)
                    .ok_or_else(|| invalid(&key, "must be at least 1 (per second)"))?;
                rate_limits.push((channel, rate));
            }
        }
        let log_format = match get("HERALD_LOG_FORMAT").unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(invalid("HERALD_LOG_FORMAT", "expected text or json")),
        };
        let kafka_batch_messages = positive(
            "HERALD_KAFKA_BATCH_MESSAGES",
            get("HERALD_KAFKA_BATCH_MESSAGES"),
            1000u32,
        )?;
        let kafka_resume_window = parse::<i64>(
            "HERALD_KAFKA_RESUME_WINDOW",
            get("HERALD_KAFKA_RESUME_WINDOW"),
        )?
        .unwrap_or(10_000);
        if kafka_resume_window < 0 {
            return Err(invalid(
                "HERALD_KAFKA_RESUME_WINDOW",
                "must be 0 (no rewind) or more",
            ));
        }
        if kafka_resume_window > 0 && i64::from(kafka_batch_messages) > kafka_resume_window {
            return Err(invalid(
                "HERALD_KAFKA_BATCH_MESSAGES",
                format!(
                    "{kafka_batch_messages} records per batch is more than \
                     HERALD_KAFKA_RESUME_WINDOW ({kafka_resume_window}): a consumer resuming \
                     inside such a batch on tansu could skip records"
                ),
            ));
        }
        let claim_lease = Duration::from_millis(positive(
            "HERALD_CLAIM_LEASE_MS",
            get("HERALD_CLAIM_LEASE_MS"),
            120_000,
        )?);
        let claim_memory = Duration::from_millis(positive(
            "HERALD_CLAIM_MEMORY_MS",
            get("HERALD_CLAIM_MEMORY_MS"),
            3_600_000,
        )?);
        if claim_memory <= claim_lease {
            // A dead worker's "sent" must still be known when its lease ends
            // and the job comes back, or the message goes out twice.
            return Err(invalid(
                "HERALD_CLAIM_MEMORY_MS",
                "must be longer than HERALD_CLAIM_LEASE_MS",
            ));
        }
        let config = Config {
            listen: parse("HERALD_LISTEN", get("HERALD_LISTEN"))?
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir,
            database_url,
            templates_dir: PathBuf::from(get("HERALD_TEMPLATES_DIR").unwrap_or("./templates")),
            smtp_url: get("HERALD_SMTP_URL").map(str::to_owned),
            smtp_ca_file: get("HERALD_SMTP_CA_FILE").map(PathBuf::from),
            smtp_connections: positive(
                "HERALD_SMTP_CONNECTIONS",
                get("HERALD_SMTP_CONNECTIONS"),
                32,
            )?,
            email_from: get("HERALD_EMAIL_FROM")
                .unwrap_or("Herald <herald@localhost.localdomain>")
                .to_owned(),
            topic_prefix: get("HERALD_TOPIC_PREFIX").unwrap_or("herald.").to_owned(),
            worker_concurrency: positive(
                "HERALD_WORKER_CONCURRENCY",
                get("HERALD_WORKER_CONCURRENCY"),
                256,
            )?,
            router_concurrency: positive(
                "HERALD_ROUTER_CONCURRENCY",
                get("HERALD_ROUTER_CONCURRENCY"),
                256,
            )?,
            max_attempts: positive("HERALD_MAX_ATTEMPTS", get("HERALD_MAX_ATTEMPTS"), 5)?,
            retry_base: Duration::from_millis(positive(
                "HERALD_RETRY_BASE_MS",
                get("HERALD_RETRY_BASE_MS"),
                500,
            )?),
            retry_max: Duration::from_millis(positive(
                "HERALD_RETRY_MAX_MS",
                get("HERALD_RETRY_MAX_MS"),
                60_000,
            )?),
            rate_limits,
            max_body_bytes: positive(
                "HERALD_MAX_BODY_BYTES",
                get("HERALD_MAX_BODY_BYTES"),
                256 * 1024,
            )?,
            log_format,
            kafka_brokers: get("HERALD_KAFKA_BROKERS").map(str::to_owned),
            kafka_session_timeout: Duration::from_millis(positive(
                "HERALD_KAFKA_SESSION_TIMEOUT_MS",
                get("HERALD_KAFKA_SESSION_TIMEOUT_MS"),
                10_000,
            )?),
            kafka_partitions: positive(
                "HERALD_KAFKA_PARTITIONS",
                get("HERALD_KAFKA_PARTITIONS"),
                8,
            )?,
            kafka_replication: positive(
                "HERALD_KAFKA_REPLICATION",
                get("HERALD_KAFKA_REPLICATION"),
                1,
            )?,
            receipts_concurrency: positive(
                "HERALD_RECEIPTS_CONCURRENCY",
                get("HERALD_RECEIPTS_CONCURRENCY"),
                256,
            )?,
            kafka_batch_messages,
            kafka_resume_window,
            kafka_debug: get("HERALD_KAFKA_DEBUG").map(str::to_owned),
            redis_url: get("HERALD_REDIS_URL").map(str::to_owned),
            redis_prefix: get("HERALD_REDIS_PREFIX").unwrap_or("herald:").to_owned(),
            api_keys: get("HERALD_API_KEYS").map(str::to_owned),
            claim_lease,
            claim_memory,
            db_max_connections: positive(
                "HERALD_DB_MAX_CONNECTIONS",
                get("HERALD_DB_MAX_CONNECTIONS"),
                16,
            )?,
            worker_id: get("HERALD_WORKER_ID")
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id())),
            categories_file: get("HERALD_CATEGORIES_FILE").map(PathBuf::from),
            timer_poll: Duration::from_millis(positive(
                "HERALD_TIMER_POLL_MS",
                get("HERALD_TIMER_POLL_MS"),
                500,
            )?),
            timer_lease: Duration::from_millis(positive(
                "HERALD_TIMER_LEASE_MS",
                get("HERALD_TIMER_LEASE_MS"),
                60_000,
            )?),
        };
        Ok(config)
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "herald".to_owned())
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: Option<&str>) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .map(|v| {
            v.parse::<T>()
                .map_err(|e| invalid(key, format!("{v:?}: {e}")))
        })
        .transpose()
}

fn positive<T>(key: &str, value: Option<&str>, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Default + Copy,
    T::Err: std::fmt::Display,
{
    let parsed = parse::<T>(key, value)?.unwrap_or(default);
    if parsed <= T::default() {
        return Err(invalid(key, "must be greater than zero"));
    }
    Ok(parsed)
}

/// Reads a categories file: one TOML table per category, with the keys of
/// `PUT /v1/admin/categories/{name}`.
///
/// ```toml
/// [security]
/// required = true
/// critical_bypasses_quiet_hours = true
///
/// [social]
/// expires_after = "2d"
/// caps = [{ channel = "push", max = 3, per = "1h" }]
/// ```
pub fn read_categories(
    path: &std::path::Path,
) -> Result<BTreeMap<Category, CategoryPolicy>, ConfigError> {
    let fail = |message: String| ConfigError::File {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let table: BTreeMap<Category, CategoryPolicy> =
        toml::from_str(&text).map_err(|e: toml::de::Error| fail(e.message().to_owned()))?;
    table
        .into_iter()
        .map(|(name, policy)| {
            policy
                .validate()
                .map(|p| (name.clone(), p))
                .map_err(|e| fail(format!("[{name}]: {e}")))
        })
        .collect()
}

fn read_file(path: &std::path::Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let fail = |message: String| ConfigError::File {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| fail(e.to_string()))?;
    let mut values = BTreeMap::new();
    for (key, value) in table {
        if !KEYS.contains(&key.as_str()) {
            return Err(fail(format!("unknown key {key}")));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            other => {
                return Err(fail(format!(
                    "{key}: expected a string or a number, got {other}"
                )))
            }
        };
        values.insert(key, value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_map(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_need_no_configuration() {
        let c = config(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://./data/herald.db");
        assert_eq!(c.smtp_url, None);
        assert_eq!(c.smtp_connections, 32);
        assert_eq!(c.smtp_ca_file, None);
        assert!(c.rate_limits.is_empty());
    }

    #[test]
    fn the_database_follows_the_data_dir_unless_set() {
        assert_eq!(
            config(&[("HERALD_DATA_DIR", "/var/lib/herald")])
                .unwrap()
                .database_url,
            "sqlite:///var/lib/herald/herald.db"
        );
        let c = config(&[("HERALD_DATABASE_URL", "postgres://h@db/herald")]).unwrap();
        assert_eq!(c.database_url, "postgres://h@db/herald");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            ("HERALD_LISTEN", "localhost"),
            ("HERALD_WORKER_CONCURRENCY", "0"),
            ("HERALD_MAX_ATTEMPTS", "many"),
            ("HERALD_RATE_LIMIT_SMS", "0"),
            ("HERALD_LOG_FORMAT", "xml"),
            ("HERALD_TIMER_POLL_MS", "0"),
        ] {
            let err = config(&[(key, value)]).unwrap_err().to_string();
            assert!(err.starts_with(key), "{err}");
        }
    }

    #[test]
    fn debug_output_hides_keys_and_passwords() {
        let c = config(&[
            ("HERALD_API_KEYS", "admin:s3cret-key"),
            ("HERALD_DATABASE_URL", "postgres://herald:db-pass@db/herald"),
            ("HERALD_REDIS_URL", "redis://:redis-pass@cache:6379"),
            ("HERALD_SMTP_URL", "smtp://mailer:smtp-pass@mail:587"),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        for secret in ["s3cret-key", "db-pass", "redis-pass", "smtp-pass"] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
        assert!(shown.contains("postgres://herald:***@db/herald"), "{shown}");
    }

    #[test]
    fn redis_remembers_a_send_longer_than_a_claim_lasts() {
        let c = config(&[]).unwrap();
        assert_eq!(
            (c.claim_lease.as_secs(), c.claim_memory.as_secs()),
            (120, 3600)
        );
        for (lease, memory, ok) in [
            ("120000", "600000", true),
            ("120000", "120000", false),
            ("600000", "300000", false),
            ("1000", "0", false),
        ] {
            let result = config(&[
                ("HERALD_CLAIM_LEASE_MS", lease),
                ("HERALD_CLAIM_MEMORY_MS", memory),
            ]);
            assert_eq!(
                result.is_ok(),
                ok,
                "lease {lease}, memory {memory}: {:?}",
                result.err()
            );
        }
    }

    #[test]
    fn kafka_batches_must_fit_the_resume_window_unless_it_is_off() {
        let c = config(&[]).unwrap();
        assert_eq!(
            (c.kafka_batch_messages, c.kafka_resume_window),
            (1000, 10_000)
        );
        for (batch, window, ok) in [
            ("10000", "10000", true),
            ("10001", "10000", false),
            ("50000", "0", true),
            ("1", "-1", false),
        ] {
            let result = config(&[
                ("HERALD_KAFKA_BATCH_MESSAGES", batch),
                ("HERALD_KAFKA_RESUME_WINDOW", window),
            ]);
            assert_eq!(
                result.is_ok(),
                ok,
                "{batch} in {window}: {:?}",
                result.err()
            );
        }
    }

    #[test]
    fn a_categories_file_declares_policies_and_refuses_mistakes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("categories.toml");
        std::fs::write(
            &path,
            "[security]\nrequired = true\ncritical_bypasses_quiet_hours = true\n\n\
             [social]\nexpires_after = \"2d\"\ncaps = [{ channel = \"push\", max = 3, per = \"1h\" }]\n",
        )
        .unwrap();
        let categories = read_categories(&path).unwrap();
        let security = &categories[&Category::parse("security").unwrap()];
        assert!(security.required && security.critical_bypasses_quiet_hours);
        let social = &categories[&Category::parse("social").unwrap()];
        assert_eq!(social.caps.len(), 1);
        for (bad, needle) in [
            ("[Social]\n", "category"),
            ("[social]\nrequierd = true\n", "unknown field"),
            (
                "[social]\ncaps = [{ channel = \"push\", max = 0, per = \"1h\" }]\n",
                "1 to 1000",
            ),
            ("[social]\nexpires_after = \"soon\"\n", "duration"),
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = read_categories(&path).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn a_config_file_uses_the_same_keys_and_refuses_unknown_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.toml");
        std::fs::write(
            &path,
            "HERALD_LISTEN = \"0.0.0.0:9000\"\nHERALD_RATE_LIMIT_EMAIL = 50\n",
        )
        .unwrap();
        let values = read_file(&path).unwrap();
        let c = Config::from_map(&values).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(
            c.rate_limits,
            vec![(Channel::Email, NonZeroU32::new(50).unwrap())]
        );
        std::fs::write(&path, "HERALD_LISTN = \"x\"\n").unwrap();
        assert!(read_file(&path)
            .unwrap_err()
            .to_string()
            .contains("unknown key HERALD_LISTN"));
    }
}
