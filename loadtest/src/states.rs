//! Herald's own record of the deliveries, read from its database.
//!
//! Every mail having arrived is not the end of a run: a worker killed after
//! its SMTP send but before recording the outcome leaves the delivery in
//! `sending` until its claim's lease runs out, and then it is sent again.
//! So the run also waits until no delivery is queued or being sent, and only
//! then counts duplicates.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::{Connection, Row};

/// The states that are not an outcome yet.
const IN_PROGRESS: &[&str] = &["queued", "deferred", "sending"];
const COUNTS: &str = "SELECT state, COUNT(*) AS n, \
     SUM(CASE WHEN attempts > 1 THEN 1 ELSE 0 END) AS retried \
     FROM deliveries GROUP BY state ORDER BY state";

/// Where Herald keeps its deliveries.
#[derive(Debug, Clone)]
pub enum Database {
    Postgres(String),
    /// The `herald.db` of `herald serve`, read while it runs (WAL mode).
    Sqlite(PathBuf),
}

/// Per channel: deliveries sent, and the seconds from the first one's
/// routing to the last one's outcome.
const CHANNELS: &str = "SELECT channel, COUNT(*) AS n, MIN(created_at) AS first, \
     MAX(updated_at) AS last FROM deliveries WHERE state = 'sent' GROUP BY channel ORDER BY channel";

/// How many deliveries are in each state, and how many of those were
/// claimed more than once (`attempts > 1`); and per channel, how many were
/// sent over how long.
#[derive(Debug, Clone, Default)]
pub struct States {
    pub counts: Vec<(String, i64, i64)>,
    pub channels: Vec<(String, i64, f64)>,
}

impl States {
    pub fn in_progress(&self) -> i64 {
        self.counts
            .iter()
            .filter(|(s, _, _)| IN_PROGRESS.contains(&s.as_str()))
            .map(|(_, n, _)| n)
            .sum()
    }

    pub fn describe(&self) -> String {
        let states = self
            .counts
            .iter()
            .map(|(state, n, retried)| format!("{state} {n} ({retried} claimed more than once)"))
            .collect::<Vec<_>>()
            .join(", ");
        if self.channels.len() < 2 {
            return states;
        }
        let channels = self
            .channels
            .iter()
            .map(|(channel, n, seconds)| format!("{channel} {n} within {seconds:.1} s"))
            .collect::<Vec<_>>()
            .join(", ");
        format!("{states}; sent per channel, from the first routed to the last sent: {channels}")
    }
}

impl Database {
    pub async fn states(&self) -> anyhow::Result<States> {
        // The same two reads on either database's own connection type.
        macro_rules! read {
            ($conn:expr) => {{
                let mut conn = $conn;
                let counts = sqlx::query(COUNTS).fetch_all(&mut conn).await?;
                let channels = sqlx::query(CHANNELS).fetch_all(&mut conn).await?;
                let counts = counts
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                    .collect::<Result<Vec<(String, i64, i64)>, sqlx::Error>>()?;
                let channels = channels
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
                    .collect::<Result<Vec<(String, i64, i64, i64)>, sqlx::Error>>()?;
                (counts, channels)
            }};
        }
        let (counts, channels) = match self {
            Database::Postgres(url) => read!(sqlx::PgConnection::connect(url).await?),
            Database::Sqlite(path) => {
                let url = format!("sqlite://{}?mode=ro", path.display());
                read!(sqlx::SqliteConnection::connect(&url).await?)
            }
        };
        let channels = channels
            .into_iter()
            .map(|(channel, n, first, last)| (channel, n, (last - first) as f64 / 1000.0))
            .collect();
        Ok(States { counts, channels })
    }

    /// Waits until no delivery is queued or being sent, or `deadline`.
    pub async fn wait_until_settled(&self, deadline: Instant) -> anyhow::Result<States> {
        let mut last_print = Instant::now();
        loop {
            let states = self
                .states()
                .await
                .context("reading Herald's delivery states")?;
            let open = states.in_progress();
            if open == 0 || Instant::now() >= deadline {
                return Ok(states);
            }
            if last_print.elapsed() >= Duration::from_secs(10) {
                eprintln!(
                    "  herald still has {open} deliveries in progress: {}",
                    states.describe()
                );
                last_print = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
