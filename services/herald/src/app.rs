//! Wiring: build every part from the configuration and run them together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use herald_api::{ApiConfig, AppState, OutboxRelay, RelayConfig};
use herald_bus::{consume, Bus, ConsumeOptions, EmbeddedBus, EmbeddedConfig, Handler, Topics};
use herald_domain::{Channel, Clock, RetryPolicy, SystemClock};
use herald_providers::{EmailIdentity, FileSink, Provider, SmtpProvider};
use herald_router::Router;
use herald_store::{Db, Store};
use herald_templates::TemplateStore;
use herald_workers::{
    ChannelWorker, LocalClaimCache, LocalRateLimiter, ReceiptConsumer, WorkerConfig,
};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Config;

/// A started Herald: its address, its parts, and the handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub store: Store,
    pub bus: Arc<dyn Bus>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops taking work, finishes what is in hand, and returns.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.store.db().close().await;
    }

    /// Waits until every part has stopped (after `shutdown` is cancelled).
    pub async fn wait(mut self) {
        while let Some(result) = self.tasks.join_next().await {
            if let Err(e) = result {
                tracing::error!(error = %e, "a task failed");
            }
        }
        self.store.db().close().await;
    }
}

/// Opens the database and applies migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let db = Db::connect(&config.database_url, 16)
        .await
        .context("connecting to the database")?;
    db.migrate().await.context("applying migrations")?;
    Ok(Store::new(db))
}

/// Runs everything in one process: API, outbox relay, router, the four
/// channel workers and the receipt consumer, until `shutdown`.
pub async fn serve(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let templates = TemplateStore::load(&config.templates_dir)
        .with_context(|| format!("loading templates from {}", config.templates_dir.display()))?;
    let store = open_store(&config).await?;
    let topics = Topics::new(config.topic_prefix.clone());
    let bus: Arc<dyn Bus> = Arc::new(
        EmbeddedBus::open(store.db().clone(), topics, EmbeddedConfig::default())
            .await
            .context("opening the embedded bus")?,
    );

    let mut tasks = JoinSet::new();
    let relay_wake = Arc::new(Notify::new());
    let state = AppState {
        store: store.clone(),
        bus: bus.clone(),
        templates: templates.clone(),
        clock: clock.clone(),
        relay_wake: relay_wake.clone(),
    };
    let api = herald_api::router(
        state,
        &ApiConfig {
            max_body_bytes: config.max_body_bytes,
        },
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let http_shutdown = shutdown.clone();
    tasks.spawn(async move {
        let served = axum::serve(listener, api)
            .with_graceful_shutdown(http_shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    let relay = OutboxRelay::new(
        store.clone(),
        bus.clone(),
        clock.clone(),
        relay_wake,
        RelayConfig::default(),
    );
    tasks.spawn(relay.run(shutdown.clone()));

    let router = Router::new(store.clone(), bus.clone(), templates.clone(), clock.clone());
    spawn_consumer(
        &mut tasks,
        &bus,
        bus.topics().events(),
        Arc::new(router),
        "router",
        config.router_concurrency,
        &shutdown,
    );

    let claims = Arc::new(LocalClaimCache::default());
    let limiter = Arc::new(LocalRateLimiter::new(
        config
            .rate_limits
            .iter()
            .map(|(channel, rate)| (channel.as_str().to_owned(), *rate)),
    ));
    let worker_config = WorkerConfig {
        retry: RetryPolicy {
            max_attempts: config.max_attempts,
            base_delay: config.retry_base,
            max_delay: config.retry_max,
        },
        ..WorkerConfig::default()
    };
    for channel in Channel::ALL {
        let worker = ChannelWorker::new(
            channel,
            store.clone(),
            bus.clone(),
            templates.clone(),
            provider_for(&config, channel)?,
            claims.clone(),
            limiter.clone(),
            clock.clone(),
            worker_config.clone(),
        );
        let stage = format!("worker.{channel}");
        spawn_consumer(
            &mut tasks,
            &bus,
            bus.topics().deliveries(channel),
            Arc::new(worker),
            &stage,
            config.worker_concurrency,
            &shutdown,
        );
    }
    let receipts = ReceiptConsumer::new(store.clone(), clock.clone());
    spawn_consumer(
        &mut tasks,
        &bus,
        bus.topics().receipts(),
        Arc::new(receipts),
        "receipts",
        config.router_concurrency,
        &shutdown,
    );

    tracing::info!(%addr, database = %herald_store::redact_url(&config.database_url), "herald is serving");
    Ok(Running {
        addr,
        store,
        bus,
        shutdown,
        tasks,
    })
}

fn spawn_consumer(
    tasks: &mut JoinSet<()>,
    bus: &Arc<dyn Bus>,
    topic: herald_bus::Topic,
    handler: Arc<dyn Handler>,
    stage: &str,
    concurrency: usize,
    shutdown: &CancellationToken,
) {
    let options = ConsumeOptions::new(stage, format!("herald.{stage}"), concurrency);
    let (bus, shutdown) = (bus.clone(), shutdown.clone());
    tasks.spawn(async move {
        let stage = options.stage.clone();
        if let Err(e) = consume(bus, topic, handler, options, shutdown).await {
            tracing::error!(%stage, error = %e, "consumer stopped");
        }
    });
}

/// The provider for a channel: SMTP for e-mail when configured, the file
/// sink otherwise; none for in-app, which writes the inbox itself.
fn provider_for(config: &Config, channel: Channel) -> anyhow::Result<Option<Arc<dyn Provider>>> {
    let identity = EmailIdentity::parse(&config.email_from).context("HERALD_EMAIL_FROM")?;
    let sink = || {
        Arc::new(FileSink::new(
            config.data_dir.join("outbox"),
            identity.clone(),
        ))
    };
    Ok(match channel {
        Channel::InApp => None,
        Channel::Email => match &config.smtp_url {
            Some(url) => Some(Arc::new(
                SmtpProvider::from_url(url, identity.clone(), Duration::from_secs(30))
                    .context("HERALD_SMTP_URL")?,
            )),
            None => Some(sink()),
        },
        Channel::Push | Channel::Sms => Some(sink()),
    })
}
