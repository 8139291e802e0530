//! Wiring: start the parts a process's role asks for on the backends
//! [`Backends`] picked, supervise them, and stop them.
//!
//! [`start`] is the one sequence that builds a process; the consumer stages
//! it spawns are supervised in `stages`, and the [`Running`] it returns is
//! how a caller watches and stops it.

mod running;
mod stages;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, Context};
use herald_api::{ApiConfig, ApiKeys, AppState, OutboxRelay, RelayConfig};
use herald_domain::{Channel, Clock, RetryPolicy, SystemClock};
use herald_router::{Router, Scheduler, SchedulerConfig};
use herald_templates::TemplateStore;
use herald_workers::{ChannelWorker, ReceiptConsumer, WorkerConfig};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backends::provider_for;
pub use crate::backends::{kafka_bus, open_store, Backends};
use crate::Config;
pub use running::Running;
use stages::{watch_backlog, Consumers};

/// Which parts a process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Everything in one process: `herald serve`.
    All,
    /// The HTTP API and the outbox relay.
    Api,
    /// Events to delivery jobs.
    Router,
    /// The workers of these channels.
    Workers(Vec<Channel>),
    /// The receipt consumer.
    Receipts,
}

/// Runs everything in one process until `shutdown`: `herald serve`.
pub async fn serve(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    start(config, Role::All, shutdown).await
}

/// Starts the parts `role` asks for, plus an HTTP server: the API for
/// `All` and `Api`, only probes and metrics for the others.
pub async fn start(
    config: Config,
    role: Role,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    start_with_clock(config, role, shutdown, Arc::new(SystemClock)).await
}

/// [`start`] on a given clock: tests move time forward by hand to see quiet
/// hours end, digests close and escalations fall due.
pub async fn start_with_clock(
    config: Config,
    role: Role,
    shutdown: CancellationToken,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Running> {
    check_exposure(&config)?;
    let keys = ApiKeys::parse(config.api_keys.as_deref().unwrap_or_default())?;
    herald_telemetry::prometheus();
    let categories = match &config.categories_file {
        Some(path) => crate::config::read_categories(path)?,
        None => Default::default(),
    };
    let templates = TemplateStore::load(&config.templates_dir)
        .with_context(|| format!("loading templates from {}", config.templates_dir.display()))?;
    let backends = Backends::open(&config, role == Role::All).await?;
    let Backends {
        store,
        bus,
        claims,
        limiter,
    } = backends;
    if matches!(role, Role::All | Role::Api | Role::Router) {
        // The file is the truth for the categories it names: what the API
        // changed about them is set back at every start.
        for (name, policy) in &categories {
            store
                .put_category(name, policy, clock.now())
                .await
                .with_context(|| format!("writing category {name} from the categories file"))?;
        }
    }

    let mut tasks = JoinSet::new();
    let relay_wake = Arc::new(Notify::new());
    // The API's writes each have a request waiting on them: on SQLite they
    // go ahead of the pipeline's (`Store::for_requests`).
    let requests = store.for_requests();
    let state = AppState {
        store: requests.clone(),
        bus: bus.clone(),
        templates: templates.clone(),
        clock: clock.clone(),
        relay_wake: relay_wake.clone(),
        notifications: herald_api::NotificationWriter::start(requests.clone()),
        recipients: herald_api::RecipientCheck::start(requests),
    };
    let serves_api = matches!(role, Role::All | Role::Api);
    let http = if serves_api {
        herald_api::router(
            state,
            &ApiConfig {
                max_body_bytes: config.max_body_bytes,
                keys,
            },
        )
    } else {
        herald_api::ops::standalone(state)
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let http_shutdown = shutdown.clone();
    tasks.spawn(async move {
        let served = axum::serve(listener, http)
            .with_graceful_shutdown(http_shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });

    let mut scheduler_wake = None;
    let mut consumers = Consumers {
        tasks: &mut tasks,
        bus: &bus,
        shutdown: &shutdown,
        prefix: &config.topic_prefix,
        watched: Vec::new(),
        stats: HashMap::new(),
    };
    if serves_api {
        let relay = OutboxRelay::new(
            store.clone(),
            bus.clone(),
            clock.clone(),
            relay_wake,
            RelayConfig::default(),
        );
        if store.announces_in_place() {
            consumers.tasks.spawn(relay.drain(shutdown.clone()));
        } else {
            consumers.tasks.spawn(relay.run(shutdown.clone()));
        }
    }
    if matches!(role, Role::All | Role::Router) {
        let wake = Arc::new(Notify::new());
        let router = Router::new(
            store.clone(),
            bus.clone(),
            templates.clone(),
            clock.clone(),
            wake.clone(),
        );
        consumers.spawn(
            bus.topics().events(),
            Arc::new(router),
            "router",
            config.router_concurrency,
        );
        let scheduler = Scheduler::new(
            store.clone(),
            bus.clone(),
            templates.clone(),
            clock.clone(),
            wake.clone(),
            SchedulerConfig {
                poll_interval: config.timer_poll,
                lease: config.timer_lease,
                runner_id: config.worker_id.clone(),
                ..SchedulerConfig::default()
            },
        );
        consumers.tasks.spawn(scheduler.run(shutdown.clone()));
        scheduler_wake = Some(wake);
    }
    let channels = match &role {
        Role::All => Channel::ALL.to_vec(),
        Role::Workers(channels) => channels.clone(),
        _ => Vec::new(),
    };
    let worker_config = WorkerConfig {
        retry: RetryPolicy {
            max_attempts: config.max_attempts,
            base_delay: config.retry_base,
            max_delay: config.retry_max,
        },
        lease: config.claim_lease,
        worker_id: config.worker_id.clone(),
    };
    for channel in channels {
        let worker = ChannelWorker::new(
            channel,
            store.clone(),
            bus.clone(),
            templates.clone(),
            Some(provider_for(&config, channel, &store, &clock)?),
            claims.clone(),
            limiter.clone(),
            clock.clone(),
            worker_config.clone(),
        )
        .with_shutdown(shutdown.clone());
        let stage = format!("worker.{channel}");
        consumers.spawn(
            bus.topics().deliveries(channel),
            Arc::new(worker),
            &stage,
            config.worker_concurrency,
        );
    }
    if matches!(role, Role::All | Role::Receipts) {
        let receipts = ReceiptConsumer::new(store.clone(), clock.clone());
        consumers.spawn(
            bus.topics().receipts(),
            Arc::new(receipts),
            "receipts",
            config.receipts_concurrency,
        );
    }
    let watched = std::mem::take(&mut consumers.watched);
    let stats = std::mem::take(&mut consumers.stats);
    tasks.spawn(watch_backlog(bus.clone(), watched, shutdown.clone()));

    tracing::info!(%addr, ?role, database = %herald_store::redact_url(&config.database_url),
        kafka = config.kafka_brokers.is_some(), redis = config.redis_url.is_some(), "herald is running");
    Ok(Running {
        addr,
        store,
        bus,
        stats,
        shutdown,
        tasks,
        scheduler_wake,
    })
}

/// Refuses to serve an open API beyond this machine.
fn check_exposure(config: &Config) -> anyhow::Result<()> {
    let has_keys = config
        .api_keys
        .as_deref()
        .is_some_and(|k| !k.trim().is_empty());
    if !config.listen.ip().is_loopback() && !has_keys {
        bail!(
            "refusing to listen on {} without API keys: set HERALD_API_KEYS, or listen on 127.0.0.1",
            config.listen
        );
    }
    Ok(())
}
