//! One run: start Herald, create the users, warm up, send while (with
//! `--kill-worker`) killing a worker, wait for every delivery, report.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use herald_domain::DeliveryId;
use herald_standins::smtp::SmtpSink;

use crate::arrivals::{self, Arrivals};
use crate::ceilings::{self, Ceiling};
use crate::cluster::{self, Backends, Cluster, Killed};
use crate::machine::{self, Machine};
use crate::process::Launcher;
use crate::record::Record;
use crate::report::{self, Figures};
use crate::resources::Sampler;
use crate::send::{self, Load, Sent};
use crate::states::Database;
use crate::{cpu, html, metrics, results, Cli, Mode, Via};

/// The SMTP stand-in waits this long after the last expected arrival, so a
/// late second copy is still counted.
const QUIET: Duration = Duration::from_secs(2);

/// The topic every user joins with `--topic`.
const TOPIC: &str = "loadtest-everyone";

pub async fn measure(
    cli: &Cli,
    herald: &Path,
    templates: &Path,
    dir: &Path,
) -> anyhow::Result<bool> {
    let ceilings = if cli.ceilings {
        measure_ceilings(cli, templates, dir).await?
    } else {
        Vec::new()
    };
    let smtp = SmtpSink::start()
        .await
        .context("starting the SMTP stand-in")?;
    if let Some(ms) = cli.slow_email_ms {
        smtp.set_answer_delay(Duration::from_millis(ms));
    }
    let mut launcher = Launcher::new(herald.canonicalize()?, dir.join("logs"))?;
    let started = launcher.started();
    launcher.set("HERALD_LISTEN", "127.0.0.1:0");
    launcher.set("HERALD_DATA_DIR", dir.join("data").display().to_string());
    launcher.set("HERALD_TEMPLATES_DIR", templates.display().to_string());
    launcher.set("HERALD_SMTP_URL", smtp.url());
    launcher.set("HERALD_LOG", "warn");
    for (key, value) in &cli.herald_env {
        launcher.set(key, value.clone());
    }
    eprintln!(
        "starting herald ({:?}); logs in {}",
        cli.mode,
        dir.join("logs").display()
    );
    let backends = Backends {
        postgres: cli.postgres.clone(),
        kafka: cli.kafka.clone(),
        redis: cli.redis.clone(),
    };
    let mut cluster = match cli.mode {
        Mode::Embedded => Cluster::embedded(launcher).await?,
        Mode::Services => {
            Cluster::services(launcher, &backends, cli.slow_email_ms.is_some()).await?
        }
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(cli.concurrency)
        .timeout(Duration::from_secs(60))
        .build()?;
    let users = send::user_ids(cli.users);
    eprintln!("creating {} users", users.len());
    send::create_users(&client, &cluster.api, &users).await?;
    if cli.topic {
        send::subscribe_all(&client, &cluster.api, TOPIC, &users).await?;
    }
    let api = cluster.api.clone();
    let events = cluster
        .services
        .as_ref()
        .map(|s| format!("{}events", s.topic_prefix));
    let load = Load {
        users: &users,
        notifications: cli.warmup,
        concurrency: cli.concurrency,
        rate: None,
        verbose: false,
        also_in_app: cli.slow_email_ms.is_some(),
    };
    let warmed_up = warm_up(cli, &client, &api, events.as_deref(), load, &smtp).await?;
    let skip = smtp.count();
    eprintln!(
        "{} users ready, {} warm-up notifications delivered; sending {} via {:?}, {}",
        users.len(),
        warmed_up.len(),
        cli.notifications,
        cli.via,
        cli.rate
            .map_or(format!("{} in flight", cli.concurrency), |r| {
                format!("{r}/s on schedule (open model)")
            })
    );

    let sampler = Sampler::start(started);
    let cpu_before = cpu::readings();
    let machine_before = cpu::MachineSnapshot::now();
    let deadline = Instant::now() + Duration::from_secs(cli.timeout);
    let load = Load {
        notifications: cli.notifications,
        rate: cli.rate,
        verbose: true,
        ..load
    };
    let work = async {
        let sent = if cli.topic {
            send::to_topic(&client, &api, TOPIC, &users).await?
        } else {
            send(cli, &client, &api, events.as_deref(), load).await?
        };
        eprintln!("waiting for {} deliveries", sent.expected.len());
        let from = Arrivals::after(skip, warmed_up);
        let arrivals = arrivals::wait_for_all(&smtp, &sent.expected, from, deadline, true).await;
        anyhow::Ok((sent, arrivals))
    };
    tokio::pin!(work);
    let mut kill = cli
        .kill_worker
        .then(|| Box::pin(kill_when(&mut cluster, &smtp, skip, cli.notifications / 3)));
    let mut killed = None;
    let (sent, arrivals) = loop {
        tokio::select! {
            result = &mut work => break result?,
            result = async { kill.as_mut().expect("guarded by the condition").await }, if kill.is_some() => {
                killed = Some(result?);
                kill = None;
            }
        }
    };
    drop(kill);
    let database = match &cluster.services {
        Some(s) => Database::Postgres(s.database_url.clone()),
        None => Database::Sqlite(dir.join("data").join("herald.db")),
    };
    eprintln!("waiting for herald to record an outcome for every delivery");
    let settle_by = Instant::now() + Duration::from_secs(cli.timeout);
    let states = database.wait_until_settled(settle_by).await?;
    let arrivals = arrivals::settle(&smtp, &sent.expected, arrivals, QUIET).await;
    let machine_busy = machine_before
        .zip(cpu::MachineSnapshot::now())
        .map(|(before, after)| after.busy_since(&before));
    let cpu = cpu::spent(&cpu_before, &cpu::readings());
    let usage = sampler.finish().await;
    let bases: Vec<String> = cluster.processes().map(|p| p.base.clone()).collect();
    let metrics = metrics::scrape(&client, &bases).await;

    let figures = Figures::measure(&sent, &arrivals);
    let context = report::Context {
        title: title(cli),
        command: crate::command_line(),
        paced: cli.rate.is_some() && !cli.topic,
        ceilings,
        cpu,
        usage,
        machine_busy,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        killed: describe_kill(cli, killed.as_ref()),
        metrics,
        states: states.describe(),
    };
    println!("{}", report::summary(&figures, &context));
    for id in arrivals.missing(&sent.expected).take(5) {
        println!("missing delivery {id}");
    }
    for error in &sent.first_errors {
        println!("send error: {error}");
    }
    let ok = verdict(cli, &figures, killed.is_some(), states.in_progress());
    let record = report::record(
        &figures,
        &context,
        Machine::here(machine_busy),
        std::env::current_dir()
            .ok()
            .and_then(|dir| machine::revision(&dir)),
        ok,
    );
    let services = cluster.services.clone();
    cluster.stop().await;
    match services {
        Some(s) if ok => {
            if let Err(e) = cluster::drop_database(&cli.postgres, &s.database).await {
                eprintln!("could not drop {}: {e:#}", s.database);
            }
        }
        Some(s) => eprintln!("database kept for inspection: {}", s.database_url),
        None => {}
    }
    write_outputs(cli, &record, &figures)?;
    Ok(ok)
}

/// `--json`, `--html` and `--results`, each when asked for.
fn write_outputs(cli: &Cli, record: &Record, figures: &Figures) -> anyhow::Result<()> {
    if let Some(path) = &cli.json {
        let json = serde_json::to_string_pretty(record)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("figures written to {}", path.display());
    }
    if let Some(path) = &cli.html {
        let page = html::page(record, &figures.api_latency, &figures.end_to_end);
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    if let Some(path) = &cli.results {
        results::append(path, record)?;
        eprintln!("row appended to {}", path.display());
    }
    Ok(())
}

/// Herald's default `HERALD_SMTP_CONNECTIONS`.
const SMTP_CONNECTIONS: u32 = 32;

/// The backends alone, with as many records as the run has deliveries.
async fn measure_ceilings(cli: &Cli, templates: &Path, dir: &Path) -> anyhow::Result<Vec<Ceiling>> {
    let n = if cli.topic {
        cli.users
    } else {
        cli.notifications
    };
    eprintln!("measuring the backends alone with {n} records");
    let mut found = Vec::new();
    let connections = cli
        .herald_env
        .iter()
        .rev()
        .find(|(key, _)| key == "HERALD_SMTP_CONNECTIONS")
        .map(|(_, value)| value.parse::<u32>())
        .transpose()
        .context("HERALD_SMTP_CONNECTIONS")?
        .unwrap_or(SMTP_CONNECTIONS);
    found.push(
        ceilings::smtp(
            templates,
            n,
            connections,
            cli.slow_email_ms.map(Duration::from_millis),
        )
        .await?,
    );
    match cli.mode {
        Mode::Embedded => found.push(ceilings::sqlite(dir, n).await?),
        Mode::Services => {
            found.push(ceilings::kafka(&cli.kafka, cli.users, n).await?);
            found.push(ceilings::postgres(&cli.postgres, n).await?);
        }
    }
    for c in &found {
        let busy = c
            .machine_busy
            .map(|b| format!(", machine {:.0} % busy", b * 100.0))
            .unwrap_or_default();
        eprintln!(
            "  {} alone: {:.0}/s ({} in {:.2} s{busy})",
            c.name, c.per_second, c.records, c.seconds
        );
    }
    Ok(found)
}

/// Over REST, or onto the events topic with `--via kafka`.
async fn send(
    cli: &Cli,
    client: &reqwest::Client,
    api: &str,
    events: Option<&str>,
    load: Load<'_>,
) -> anyhow::Result<Sent> {
    match (cli.via, events) {
        (Via::Kafka, Some(topic)) => send::over_kafka(&cli.kafka, topic, load).await,
        _ => send::over_rest(client, api, load).await,
    }
}

/// A few notifications through the whole path before measuring, so every
/// consumer has joined its group and every pool is warm. Returns their
/// deliveries, which the measurement then ignores.
async fn warm_up(
    cli: &Cli,
    client: &reqwest::Client,
    api: &str,
    events: Option<&str>,
    load: Load<'_>,
    smtp: &SmtpSink,
) -> anyhow::Result<HashSet<DeliveryId>> {
    if load.notifications == 0 {
        return Ok(HashSet::new());
    }
    let sent = send(cli, client, api, events, load).await?;
    if sent.failed > 0 {
        bail!(
            "warm-up: {} sends failed: {:?}",
            sent.failed,
            sent.first_errors
        );
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let arrivals =
        arrivals::wait_for_all(smtp, &sent.expected, Arrivals::default(), deadline, false).await;
    let missing = arrivals.missing(&sent.expected).count();
    if missing > 0 {
        bail!(
            "warm-up: {missing} of {} deliveries did not arrive within 2 minutes",
            load.notifications
        );
    }
    Ok(sent.expected.into_keys().collect())
}

/// Waits until `at` mails have arrived after the first `skip` (the
/// warm-up's), then kills a worker.
async fn kill_when(
    cluster: &mut Cluster,
    smtp: &SmtpSink,
    skip: usize,
    at: usize,
) -> anyhow::Result<Killed> {
    while smtp.count() < skip + at {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = cluster.kill_worker(smtp.count() - skip).await?;
    eprintln!(
        "  kill -9 {} at {} mails; {} started",
        killed.victim, killed.arrived_before, killed.replacement
    );
    Ok(killed)
}

fn verdict(cli: &Cli, f: &Figures, killed: bool, in_progress: i64) -> bool {
    let mut ok = true;
    let mut fail = |why: String| {
        println!("FAIL: {why}");
        ok = false;
    };
    if in_progress > 0 {
        fail(format!(
            "{in_progress} deliveries are still queued or sending in Herald's database"
        ));
    }
    if f.send_failures > 0 {
        fail(format!(
            "{} notifications were not accepted",
            f.send_failures
        ));
    }
    if f.missing > 0 {
        fail(format!("{} deliveries never arrived", f.missing));
    }
    if f.unexpected > 0 {
        fail(format!(
            "{} mails named no delivery of this run",
            f.unexpected
        ));
    }
    if f.duplicates > 0 && !cli.kill_worker {
        fail(format!(
            "{} deliveries arrived more than once",
            f.duplicated_deliveries
        ));
    }
    if cli.kill_worker && !killed {
        fail("no worker was killed".to_owned());
    }
    if ok && f.duplicates == 0 {
        println!("PASS: every notification arrived exactly once");
    } else if ok {
        println!(
            "PASS: every notification arrived; {} arrived twice after the kill (allowed with --kill-worker)",
            f.duplicated_deliveries
        );
    }
    ok
}

fn describe_kill(cli: &Cli, killed: Option<&Killed>) -> Option<String> {
    if !cli.kill_worker {
        return None;
    }
    Some(match killed {
        Some(k) => format!(
            "{} killed after {} of {} mails had arrived; {} replaced it (duplicates are reported, not failed, in this mode)",
            k.victim, k.arrived_before, cli.notifications, k.replacement
        ),
        None => "no worker was killed".to_owned(),
    })
}

fn title(cli: &Cli) -> String {
    let mode = match cli.mode {
        Mode::Embedded => "embedded: one `herald serve` (SQLite, embedded queue)",
        Mode::Services => {
            "services: api, 2 routers, 2 email workers, receipts on PostgreSQL + Kafka + Redis"
        }
    };
    if cli.topic {
        return format!(
            "Herald load test: {mode}\none notification to a topic of {} users (fan-out); {} warm-up notifications not counted",
            cli.users, cli.warmup
        );
    }
    let via = match cli.via {
        Via::Rest => "POST /v1/notifications",
        Via::Kafka => "events on Kafka",
    };
    let rate = cli.rate.map_or(
        format!("{} in flight, as fast as accepted", cli.concurrency),
        |r| format!("paced at {r}/s, each on schedule (open model)"),
    );
    format!(
        "Herald load test: {mode}\n{via}, {rate}; {} users; {} warm-up notifications not counted",
        cli.users, cli.warmup
    )
}
