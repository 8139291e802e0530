//! The Herald under test, as an operator would run it: `herald serve` on
//! its embedded backends, or separate services (`api`, 2 × `router`,
//! 2 × `workers --channel email`, `receipts`, and `workers --channel in_app`
//! for the mixed-channel scenario) on PostgreSQL, Kafka and Redis, each its
//! own process on its own port.

use std::net::ToSocketAddrs;
use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::Connection;

use crate::process::{Launcher, Process};

/// Where the production backends are.
#[derive(Debug, Clone)]
pub struct Backends {
    /// A PostgreSQL database the load test may `CREATE DATABASE` from.
    pub postgres: String,
    pub kafka: String,
    pub redis: String,
}

/// What a services run set up, so it can be inspected or cleaned up.
#[derive(Debug, Clone)]
pub struct ServicesSetup {
    pub database_url: String,
    pub database: String,
    pub topic_prefix: String,
}

/// The running processes. Dropping it kills every one of them.
pub struct Cluster {
    /// Base URL of the HTTP API.
    pub api: String,
    pub services: Option<ServicesSetup>,
    processes: Vec<Process>,
    workers: Vec<Process>,
    launcher: Launcher,
    started_workers: usize,
}

/// What `--kill-worker` did.
#[derive(Debug, Clone)]
pub struct Killed {
    pub victim: String,
    pub replacement: String,
    /// Mails the SMTP stand-in had accepted when the worker died.
    pub arrived_before: usize,
}

impl Cluster {
    /// `herald serve`: API, router, workers and receipts in one process.
    pub async fn embedded(launcher: Launcher) -> anyhow::Result<Cluster> {
        let serve = launcher.start("serve", &["serve"], &[]).await?;
        Ok(Cluster {
            api: serve.base.clone(),
            services: None,
            processes: vec![serve],
            workers: Vec::new(),
            launcher,
            started_workers: 0,
        })
    }

    /// `herald migrate` on a fresh database and topic prefix, then every
    /// service as its own process; with `in_app`, an in-app worker as well.
    pub async fn services(
        mut launcher: Launcher,
        backends: &Backends,
        in_app: bool,
    ) -> anyhow::Result<Cluster> {
        reachable("Kafka", &backends.kafka)?;
        reachable("Redis", redis_address(&backends.redis))?;
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("loadtest_{unique}");
        let database_url = create_database(&backends.postgres, &database).await?;
        let topic_prefix = format!("loadtest{}.", &unique[..12]);
        launcher.set("HERALD_DATABASE_URL", database_url.clone());
        launcher.set("HERALD_KAFKA_BROKERS", backends.kafka.clone());
        // tansu, the broker used here, needs a session timeout it accepts.
        launcher.set("HERALD_KAFKA_SESSION_TIMEOUT_MS", "6000");
        launcher.set("HERALD_TOPIC_PREFIX", topic_prefix.clone());
        launcher.set("HERALD_REDIS_URL", backends.redis.clone());
        launcher.set("HERALD_REDIS_PREFIX", format!("loadtest{}:", &unique[..12]));
        launcher.run("migrate", &["migrate"]).await?;

        let id = |name: &str| [("HERALD_WORKER_ID", name.to_owned())];
        let api = launcher.start("api", &["api"], &id("api")).await?;
        let mut processes = Vec::new();
        for name in ["router-1", "router-2"] {
            processes.push(launcher.start(name, &["router"], &id(name)).await?);
        }
        processes.push(
            launcher
                .start("receipts", &["receipts"], &id("receipts"))
                .await?,
        );
        if in_app {
            let name = "worker-in-app";
            processes.push(
                launcher
                    .start(name, &["workers", "--channel", "in_app"], &id(name))
                    .await?,
            );
        }
        let mut cluster = Cluster {
            api: api.base.clone(),
            services: Some(ServicesSetup {
                database_url,
                database,
                topic_prefix,
            }),
            processes,
            workers: Vec::new(),
            launcher,
            started_workers: 0,
        };
        cluster.processes.insert(0, api);
        for _ in 0..2 {
            let worker = cluster.start_worker().await?;
            cluster.workers.push(worker);
        }
        Ok(cluster)
    }

    async fn start_worker(&mut self) -> anyhow::Result<Process> {
        self.started_workers += 1;
        let name = format!("worker-{}", self.started_workers);
        self.launcher
            .start(
                &name,
                &["workers", "--channel", "email"],
                &[("HERALD_WORKER_ID", name.clone())],
            )
            .await
    }

    /// `kill -9` the first e-mail worker, then start a replacement.
    pub async fn kill_worker(&mut self, arrived_before: usize) -> anyhow::Result<Killed> {
        if self.workers.is_empty() {
            bail!("there is no separate worker process to kill (use --mode services)");
        }
        let victim = self.workers.remove(0);
        let victim_name = victim.name.clone();
        victim.kill().await?;
        let replacement = self.start_worker().await?;
        let killed = Killed {
            victim: victim_name,
            replacement: replacement.name.clone(),
            arrived_before,
        };
        self.workers.push(replacement);
        Ok(killed)
    }

    /// Every live process, API first.
    pub fn processes(&self) -> impl Iterator<Item = &Process> {
        self.processes.iter().chain(&self.workers)
    }

    /// Stops every process gracefully (SIGTERM), routers before the API.
    pub async fn stop(mut self) {
        let mut all: Vec<Process> = self.workers.drain(..).collect();
        all.extend(self.processes.drain(..).rev());
        futures::future::join_all(all.into_iter().map(Process::stop)).await;
    }
}

/// Creates an empty database next to `admin_url`'s and returns its URL.
async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {admin_url} (is it running? `pg_isready -h 127.0.0.1`)"))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .with_context(|| format!("creating database {name}"))?;
    admin.close().await?;
    Ok(replace_database(admin_url, name))
}

/// Drops a database the run created; it may be kept instead, for inspection.
pub async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(())
}

/// `postgres://u@h:5432/postgres?x=y` with `name` in place of `postgres`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    match query {
        Some(query) => format!("{}/{name}?{query}", &base[..path]),
        None => format!("{}/{name}", &base[..path]),
    }
}

/// `redis://[user:pass@]host:port[/db]` to `host:port`.
fn redis_address(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split('/').next().unwrap_or(rest)
}

/// Fails early, with a hint, when a backend is not listening at all.
fn reachable(what: &str, address: &str) -> anyhow::Result<()> {
    let first = address.split(',').next().unwrap_or(address);
    let addr = first
        .to_socket_addrs()
        .with_context(|| format!("{what} address {first}"))?
        .next()
        .with_context(|| format!("{what} address {first} resolves to nothing"))?;
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).with_context(|| {
        format!("{what} is not reachable at {first}; start it (see loadtest/README.md)")
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_database_replaces_the_admin_one_and_keeps_the_query() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/postgres", "lt"),
            "postgres://postgres@127.0.0.1:5432/lt"
        );
        assert_eq!(
            replace_database("postgres://u:p@db/postgres?sslmode=disable", "lt"),
            "postgres://u:p@db/lt?sslmode=disable"
        );
        assert_eq!(
            replace_database("postgres://u@db:5432", "lt"),
            "postgres://u@db:5432/lt"
        );
    }

    #[test]
    fn redis_urls_give_their_host_and_port() {
        assert_eq!(redis_address("redis://127.0.0.1:6379"), "127.0.0.1:6379");
        assert_eq!(redis_address("redis://u:p@cache:6380/2"), "cache:6380");
    }
}
