//! `loadtest`: pushes notifications through the real `herald` binary —
//! `herald serve` on its embedded backends, or separate services on Kafka,
//! PostgreSQL and Redis — into a real SMTP stand-in, checks that each
//! arrived exactly once, and prints deliveries per second and end-to-end
//! latency. See loadtest/README.md.

mod arrivals;
mod ceilings;
mod cluster;
mod cpu;
mod html;
mod latency;
mod machine;
mod metrics;
mod process;
mod progress;
mod record;
mod report;
mod resources;
mod results;
mod run;
mod send;
mod states;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// `herald serve`: one process, SQLite and its embedded queue.
    Embedded,
    /// `herald api | router ×2 | workers ×2 | receipts` on Kafka, PostgreSQL and Redis.
    Services,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Via {
    /// `POST /v1/notifications`, one notification per request.
    Rest,
    /// Events published straight to `<prefix>events` (services mode only).
    Kafka,
}

#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    about = "Pushes notifications through herald and measures deliveries/s and end-to-end latency."
)]
struct Cli {
    #[arg(long, value_enum, default_value = "embedded")]
    mode: Mode,
    #[arg(long, default_value_t = 20_000)]
    notifications: usize,
    /// Recipients take turns over this many users.
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Requests (or publishes) in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, value_enum, default_value = "rest")]
    via: Via,
    /// The herald binary (build it with `cargo build --release -p herald`).
    #[arg(long, default_value = "target/release/herald")]
    herald: PathBuf,
    #[arg(long, default_value = "templates")]
    templates: PathBuf,
    /// Notifications per second, on a fixed schedule whatever Herald's
    /// answers (an open model; `--concurrency` then does not apply); as fast
    /// as Herald accepts them, `--concurrency` at a time, when left out.
    #[arg(long)]
    rate: Option<f64>,
    /// Notifications sent, and waited for, before measuring (not counted).
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Seconds to wait for every delivery, from the first send; then as long
    /// again, at most, for Herald to record an outcome for each.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Services mode: `kill -9` one e-mail worker when a third of the mails
    /// have arrived, and start a replacement.
    #[arg(long)]
    kill_worker: bool,
    /// Fan-out: subscribe all `--users` users to one topic and send a single
    /// notification to it (instead of `--notifications` single sends).
    #[arg(long, conflicts_with_all = ["rate", "kill_worker"])]
    topic: bool,
    /// Mixed channels with a slow provider: every notification goes in-app
    /// too, and the SMTP stand-in answers each e-mail this many milliseconds
    /// late. E-mail backs up; in-app must not (see the per-channel line).
    #[arg(long, value_name = "MS", conflicts_with = "topic")]
    slow_email_ms: Option<u64>,
    #[arg(
        long,
        env = "HERALD_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    #[arg(
        long,
        env = "HERALD_TEST_KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    kafka: String,
    #[arg(
        long,
        env = "HERALD_TEST_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis: String,
    /// Before Herald starts, measure what the backends alone manage with as
    /// many records (Kafka produced and consumed, database rows committed
    /// 100 to a transaction) and report Herald as a share of the slowest.
    #[arg(long)]
    ceilings: bool,
    /// Write every figure of the run to this file as JSON.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write a self-contained HTML report (figures, latency histograms,
    /// deliveries per second over the run) to this file.
    #[arg(long, value_name = "PATH")]
    html: Option<PathBuf>,
    /// Append the run as one Markdown table row (date, revision, machine,
    /// command, every figure) to this file, under a header when it does not
    /// end with that table already.
    #[arg(long, value_name = "PATH")]
    results: Option<PathBuf>,
    /// An extra setting for every herald process, e.g. HERALD_WORKER_CONCURRENCY=64.
    #[arg(long = "herald-env", value_name = "KEY=VALUE", value_parser = key_value)]
    herald_env: Vec<(String, String)>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if k.starts_with("HERALD_") => Ok((k.to_owned(), v.to_owned())),
        _ => Err("expected HERALD_KEY=VALUE".to_owned()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Dropping the run on Ctrl-C drops its processes, which kills them.
    let result = tokio::select! {
        result = execute(cli) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Checks the flags and the binary, then runs in a temporary folder that is
/// kept when the run fails.
async fn execute(cli: Cli) -> anyhow::Result<bool> {
    if cli.notifications == 0 || cli.users == 0 || cli.concurrency == 0 {
        bail!("--notifications, --users and --concurrency must be at least 1");
    }
    if cli.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        bail!("--rate must be above 0");
    }
    if cli.mode == Mode::Embedded && (cli.kill_worker || cli.via == Via::Kafka) {
        bail!("--kill-worker and --via kafka need --mode services");
    }
    let herald = resolve(&cli.herald);
    if !herald.is_file() {
        bail!(
            "no herald binary at {}: build it first with `cargo build --release -p herald`",
            herald.display()
        );
    }
    let templates = resolve(&cli.templates);
    if !templates.join("welcome").is_dir() {
        bail!("no welcome template under {}", templates.display());
    }
    let run_dir = tempfile::Builder::new()
        .prefix("herald-loadtest-")
        .tempdir()?;
    let result = run::measure(&cli, &herald, &templates, run_dir.path()).await;
    if !matches!(result, Ok(true)) {
        eprintln!("logs and data kept in {}", run_dir.keep().display());
    }
    result
}

/// A relative path as given, or else relative to the repository root, so
/// the defaults work from anywhere in the repository.
fn resolve(path: &Path) -> PathBuf {
    if path.is_absolute() || path.exists() {
        return path.to_owned();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
