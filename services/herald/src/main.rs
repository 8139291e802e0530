//! `herald`: the command line.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use herald::app::Role;
use herald::config::LogFormat;
use herald::Config;
use herald_domain::Channel;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Multi-channel notifications: e-mail, push, SMS and in-app."
)]
struct Cli {
    /// A TOML file with the same keys as the environment (HERALD_LISTEN = "…").
    #[arg(long, global = true, env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs everything in one process: API, router, workers, receipts.
    Serve,
    /// The HTTP API and the outbox relay.
    Api,
    /// Routes notification events to per-channel delivery jobs.
    Router,
    /// Per-channel workers.
    Workers {
        /// Channels to work on (email, push, sms, in_app); repeat or separate
        /// with commas. All when left out.
        #[arg(long = "channel", value_delimiter = ',')]
        channels: Vec<String>,
    },
    /// Applies receipts to delivery states.
    Receipts,
    /// Applies database migrations and creates Kafka topics, then exits.
    Migrate,
    /// Prints the SHA-256 form of an API key, for HERALD_API_KEYS.
    HashKey { key: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    init_logging(config.log_format);
    let role = match cli.command {
        Command::Serve => Role::All,
        Command::Api => Role::Api,
        Command::Router => Role::Router,
        Command::Receipts => Role::Receipts,
        Command::Workers { channels } => {
            let channels: Vec<Channel> = if channels.is_empty() {
                Channel::ALL.to_vec()
            } else {
                channels
                    .iter()
                    .map(|c| c.trim().parse())
                    .collect::<Result<_, _>>()?
            };
            Role::Workers(channels)
        }
        Command::Migrate => {
            herald::app::open_store(&config, true)
                .await
                .context("migrating")?;
            if herald::app::kafka_bus(&config, true).await?.is_some() {
                println!("kafka topics ready");
            }
            println!("migrations applied");
            return Ok(());
        }
        Command::HashKey { key } => {
            println!("sha256:{}", herald_api::hash_key(&key));
            return Ok(());
        }
    };
    let shutdown = CancellationToken::new();
    let running = herald::app::start(config, role, shutdown.clone()).await?;
    // The one line on stdout, for scripts that start Herald on port 0; logs
    // go to stderr. A closed stdout must not bring the server down.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "herald is listening on http://{}", running.addr)
        .and_then(|()| stdout.flush());
    wait_for_signal().await;
    tracing::info!("shutting down: finishing work in hand");
    shutdown.cancel();
    running.wait().await;
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
