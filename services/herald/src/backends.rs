//! The stateful parts and the providers, picked from configuration: the one
//! place that chooses SQLite or PostgreSQL, the embedded bus or Kafka,
//! in-process or Redis claims and limits, the file sink or SMTP, and the
//! inbox for in-app messages.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use herald_bus::{Bus, EmbeddedBus, EmbeddedConfig, KafkaBus, KafkaConfig, Topics};
use herald_domain::{Channel, Clock};
use herald_providers::{EmailIdentity, FileSink, InboxProvider, Provider, SmtpProvider};
use herald_store::{Db, Dialect, Store};
use herald_workers::{
    ClaimCache, LocalClaimCache, LocalRateLimiter, RateLimiter, RedisClaimCache, RedisLink,
    RedisRateLimiter,
};

use crate::Config;

/// The stateful parts, chosen from configuration.
pub struct Backends {
    pub store: Store,
    pub bus: Arc<dyn Bus>,
    pub claims: Arc<dyn ClaimCache>,
    pub limiter: Arc<dyn RateLimiter>,
}

/// Opens the database; applies migrations when `migrate`, else checks they were.
pub async fn open_store(config: &Config, migrate: bool) -> anyhow::Result<Store> {
    let db = Db::connect(&config.database_url, config.db_max_connections)
        .await
        .context("connecting to the database")?;
    if migrate {
        db.migrate().await.context("applying migrations")?;
    } else {
        db.check_migrated()
            .await
            .context("checking the schema (run `herald migrate`)")?;
    }
    Ok(Store::new(db))
}

pub(crate) fn topics(config: &Config) -> Topics {
    Topics::new(config.topic_prefix.clone())
}

/// The Kafka bus, if configured; creating topics when `create_topics`.
pub async fn kafka_bus(config: &Config, create_topics: bool) -> anyhow::Result<Option<KafkaBus>> {
    let Some(brokers) = &config.kafka_brokers else {
        return Ok(None);
    };
    let kafka = KafkaConfig {
        session_timeout: config.kafka_session_timeout,
        partitions: config.kafka_partitions,
        batch_messages: config.kafka_batch_messages,
        resume_window: config.kafka_resume_window,
        replication: config.kafka_replication,
        debug: config.kafka_debug.clone(),
        ..KafkaConfig::new(brokers.clone())
    };
    let bus = KafkaBus::connect(kafka, topics(config)).context("connecting to Kafka")?;
    if create_topics {
        bus.ensure_topics().await.context("creating Kafka topics")?;
    }
    Ok(Some(bus))
}

impl Backends {
    /// `setup` (serve, migrate) may create schema and topics; a service on
    /// its own only checks they exist.
    pub async fn open(config: &Config, setup: bool) -> anyhow::Result<Backends> {
        let mut store =
            open_store(config, setup || config.database_url.starts_with("sqlite")).await?;
        let bus: Arc<dyn Bus> = match kafka_bus(config, setup).await? {
            Some(kafka) => Arc::new(kafka),
            None if store.db().dialect() == Dialect::Sqlite => {
                let embedded = Arc::new(
                    EmbeddedBus::open(store.db().clone(), topics(config), EmbeddedConfig::default())
                        .await
                        .context("opening the embedded bus")?,
                );
                // The queue is in the store's file: what the API announces
                // goes onto it in the same transaction, with no outbox hop.
                store = store.with_queue(embedded.clone());
                embedded
            }
            None => bail!("the embedded bus lives in the SQLite file; with PostgreSQL set HERALD_KAFKA_BROKERS"),
        };
        bus.ping().await.context("reaching the bus")?;
        let rates = config
            .rate_limits
            .iter()
            .map(|(c, r)| (c.as_str().to_owned(), *r));
        let (claims, limiter): (Arc<dyn ClaimCache>, Arc<dyn RateLimiter>) = match &config.redis_url
        {
            Some(url) => {
                let link =
                    RedisLink::new(url, Duration::from_secs(1)).context("HERALD_REDIS_URL")?;
                (
                    Arc::new(
                        RedisClaimCache::new(link.clone(), config.redis_prefix.clone())
                            .remembering(config.claim_memory),
                    ),
                    Arc::new(RedisRateLimiter::new(
                        link,
                        config.redis_prefix.clone(),
                        rates,
                    )),
                )
            }
            None => (
                Arc::new(LocalClaimCache::default()),
                Arc::new(LocalRateLimiter::new(rates)),
            ),
        };
        Ok(Backends {
            store,
            bus,
            claims,
            limiter,
        })
    }
}

/// The provider for a channel: the inbox (in `store`) for in-app, SMTP for
/// e-mail when configured, the file sink otherwise.
pub(crate) fn provider_for(
    config: &Config,
    channel: Channel,
    store: &Store,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<Arc<dyn Provider>> {
    let identity = EmailIdentity::parse(&config.email_from).context("HERALD_EMAIL_FROM")?;
    let sink = || {
        Arc::new(FileSink::new(
            config.data_dir.join("outbox"),
            identity.clone(),
        ))
    };
    Ok(match channel {
        Channel::InApp => Arc::new(InboxProvider::new(store.clone(), clock.clone())),
        Channel::Email => match &config.smtp_url {
            Some(url) => {
                let roots = match &config.smtp_ca_file {
                    Some(path) => Some(std::fs::read(path).with_context(|| {
                        format!("HERALD_SMTP_CA_FILE: cannot read {}", path.display())
                    })?),
                    None => None,
                };
                Arc::new(
                    SmtpProvider::trusting(
                        url,
                        roots.as_deref(),
                        identity.clone(),
                        Duration::from_secs(30),
                        config.smtp_connections,
                    )
                    .context("HERALD_SMTP_URL")?,
                )
            }
            None => sink(),
        },
        Channel::Push | Channel::Sms => sink(),
    })
}
