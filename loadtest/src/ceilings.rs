//! `--ceilings`: what the backends alone manage on this machine, measured in
//! the same run before Herald starts, so Herald's deliveries/s can be read as
//! a share of the slowest one instead of as a bare number.
//!
//! * Kafka (services mode): as many records as the run has deliveries,
//!   produced with ordinary batching (`linger.ms=5`, idempotent, `acks=all`)
//!   to a fresh topic with Herald's partition count and consumed back, from
//!   the first send to the last record read (after one warm-up record).
//! * The database: as many rows inserted and committed, 100 to a transaction,
//!   into a fresh table of a SQLite file in the run's folder (embedded mode,
//!   with Herald's own pragmas) or of the `--postgres` database (services
//!   mode), from the first `BEGIN` to the last `COMMIT`.
//! * E-mail: as many messages (the `welcome` template, rendered as Herald
//!   renders it) sent through Herald's own SMTP client and connection pool,
//!   as many connections wide as Herald's (`HERALD_SMTP_CONNECTIONS`), into
//!   an SMTP stand-in of its own, from the first send to the last message
//!   received. This is the e-mail channel without the pipeline: what the
//!   client and the stand-in cost on this machine.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use futures::StreamExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sqlx::{Connection, Executor};

use crate::cpu::MachineSnapshot;

use herald_domain::{
    Category, Channel, DeliveryId, EmailAddress, NotificationId, TemplateName, UserId,
};
use herald_providers::{EmailIdentity, Outbound, Provider, Recipient, SmtpProvider};
use herald_standins::smtp::SmtpSink;
use herald_templates::TemplateStore;

/// Herald's default partition count per topic (`HERALD_KAFKA_PARTITIONS`).
const PARTITIONS: i32 = 8;
/// Rows per transaction.
const BATCH: usize = 100;
/// How long one ceiling may take.
const TIMEOUT: Duration = Duration::from_secs(300);
/// About the size of a notification event.
const PAYLOAD: &str = r#"{"template":"welcome","recipients":["loadtest-0"],"channels":["email"],"params":{"name":"Reader 0","app_name":"Herald load test"},"event_id":"00000000-0000-0000-0000-000000000000"}"#;

/// What one backend alone did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Ceiling {
    pub name: String,
    pub records: usize,
    pub seconds: f64,
    pub per_second: f64,
    /// The share of all cores busy while it ran (0-1), whoever used them:
    /// how much of the machine this rate takes.
    pub machine_busy: Option<f64>,
}

impl Ceiling {
    fn new(name: &str, records: usize, took: Duration) -> Ceiling {
        let seconds = took.as_secs_f64();
        Ceiling {
            name: name.to_owned(),
            records,
            seconds,
            per_second: if seconds > 0.0 {
                records as f64 / seconds
            } else {
                0.0
            },
            machine_busy: None,
        }
    }

    /// `smtp 12714/s (machine 97 % busy)`.
    pub fn rate(&self) -> String {
        match self.machine_busy {
            Some(busy) => format!(
                "{} {:.0}/s (machine {:.0} % busy)",
                self.name,
                self.per_second,
                busy * 100.0
            ),
            None => format!("{} {:.0}/s", self.name, self.per_second),
        }
    }
}

/// A ceiling's clock: wall time and the machine's CPU counters from its first
/// record.
struct Stopwatch {
    started: Instant,
    machine: Option<MachineSnapshot>,
}

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch {
            started: Instant::now(),
            machine: MachineSnapshot::now(),
        }
    }

    /// `records` done, the last at `finished`.
    fn stop(&self, name: &str, records: usize, finished: Instant) -> Ceiling {
        let mut ceiling = Ceiling::new(name, records, finished - self.started);
        ceiling.machine_busy = self
            .machine
            .zip(MachineSnapshot::now())
            .map(|(before, after)| after.busy_since(&before));
        ceiling
    }
}

/// The slowest ceiling, and `deliveries_per_second` as a share of it.
pub fn share_of_slowest(
    ceilings: &[Ceiling],
    deliveries_per_second: f64,
) -> Option<(&Ceiling, f64)> {
    let slowest = ceilings
        .iter()
        .filter(|c| c.per_second > 0.0)
        .min_by(|a, b| a.per_second.total_cmp(&b.per_second))?;
    Some((slowest, deliveries_per_second / slowest.per_second))
}

/// `n` records through a fresh topic on `brokers`, produced and consumed.
pub async fn kafka(brokers: &str, users: usize, n: usize) -> anyhow::Result<Ceiling> {
    let topic = format!(
        "loadtest-ceiling-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating a Kafka admin client")?;
    let created = admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new(),
        )
        .await
        .context("creating the ceiling topic")?;
    for result in created {
        result.map_err(|(t, e)| anyhow!("creating topic {t}: {e}"))?;
    }
    let result = produce_and_consume(brokers, &topic, users.max(1), n).await;
    // The broker keeps what it is given; the topic goes as soon as it is done.
    let _ = admin.delete_topics(&[&topic], &AdminOptions::new()).await;
    result
}

async fn produce_and_consume(
    brokers: &str,
    topic: &str,
    users: usize,
    n: usize,
) -> anyhow::Result<Ceiling> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", topic)
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .context("creating a Kafka consumer")?;
    let mut partitions = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        partitions.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&partitions)?;
    let producer = crate::send::kafka_producer(brokers)?;
    let mut records = consumer.stream();
    // One record through first, so both clients have their connections and
    // metadata before the clock starts.
    producer
        .send(
            FutureRecord::to(topic).key("warm-up").payload(PAYLOAD),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| anyhow!("producing the warm-up record: {e}"))?;
    match tokio::time::timeout(TIMEOUT, records.next()).await {
        Ok(Some(Ok(_))) => {}
        Ok(Some(Err(e))) => bail!("consuming the warm-up record: {e}"),
        _ => bail!("the warm-up record did not come back within {TIMEOUT:?}"),
    }
    let clock = Stopwatch::start();
    let deadline = tokio::time::Instant::from_std(clock.started + TIMEOUT);
    let consume = async {
        for seen in 0..n {
            match tokio::time::timeout_at(deadline, records.next()).await {
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => bail!("consuming the ceiling topic: {e}"),
                Ok(None) => bail!("the ceiling topic's stream ended"),
                Err(_) => bail!("only {seen} of {n} ceiling records came back within {TIMEOUT:?}"),
            }
        }
        Ok(Instant::now())
    };
    let produce = async {
        let sends = futures::stream::iter(0..n).map(|i| {
            let producer = &producer;
            async move {
                let key = format!("loadtest-{}", i % users);
                let record = FutureRecord::to(topic).key(&key).payload(PAYLOAD);
                producer
                    .send(record, Duration::from_secs(30))
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| anyhow!("producing a ceiling record: {e}"))
            }
        });
        let results: Vec<anyhow::Result<()>> = sends.buffer_unordered(10_000).collect().await;
        results.into_iter().collect::<anyhow::Result<()>>()
    };
    let (consumed, produced) = tokio::join!(consume, produce);
    produced?;
    let finished = consumed?;
    Ok(clock.stop("kafka", n, finished))
}

/// `n` rows into a fresh table of a SQLite file in `dir`, with Herald's pragmas.
pub async fn sqlite(dir: &Path, n: usize) -> anyhow::Result<Ceiling> {
    let url = format!("sqlite://{}?mode=rwc", dir.join("ceiling.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .context("opening the ceiling's SQLite file")?;
    conn.execute(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         CREATE TABLE ceiling (id TEXT PRIMARY KEY, body TEXT NOT NULL, created_at BIGINT NOT NULL)",
    )
    .await?;
    let clock = Stopwatch::start();
    for batch in batches(n) {
        let mut tx = conn.begin().await?;
        for i in batch {
            sqlx::query("INSERT INTO ceiling (id, body, created_at) VALUES (?, ?, ?)")
                .bind(row_id(i))
                .bind(PAYLOAD)
                .bind(i64::try_from(i).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    let finished = Instant::now();
    conn.close().await?;
    Ok(clock.stop("sqlite", n, finished))
}

/// `n` rows into a fresh table of the database at `url`, dropped afterwards.
pub async fn postgres(url: &str, n: usize) -> anyhow::Result<Ceiling> {
    let table = format!(
        "loadtest_ceiling_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {url}"))?;
    conn.execute(
        format!(
            "CREATE TABLE {table} (id TEXT PRIMARY KEY, body TEXT NOT NULL, created_at BIGINT NOT NULL)"
        )
        .as_str(),
    )
    .await?;
    let insert = format!("INSERT INTO {table} (id, body, created_at) VALUES ($1, $2, $3)");
    let clock = Stopwatch::start();
    let mut inserted: anyhow::Result<()> = Ok(());
    for batch in batches(n) {
        let mut tx = conn.begin().await?;
        for i in batch {
            let done = sqlx::query(&insert)
                .bind(row_id(i))
                .bind(PAYLOAD)
                .bind(i64::try_from(i).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await;
            if let Err(e) = done {
                inserted = Err(e.into());
                break;
            }
        }
        if inserted.is_err() {
            break;
        }
        tx.commit().await?;
    }
    let finished = Instant::now();
    conn.execute(format!("DROP TABLE IF EXISTS {table}").as_str())
        .await?;
    conn.close().await?;
    inserted?;
    Ok(clock.stop("postgres", n, finished))
}

/// `0..n` in runs of `BATCH`.
fn batches(n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n)
        .step_by(BATCH)
        .map(move |start| start..(start + BATCH).min(n))
}

fn row_id(i: usize) -> String {
    format!("ceiling-{i:08}")
}

/// `n` e-mails through Herald's SMTP client, `connections` at once, into a
/// stand-in of its own (answering after `answer_delay`, as Herald's does).
pub async fn smtp(
    templates: &Path,
    n: usize,
    connections: u32,
    answer_delay: Option<Duration>,
) -> anyhow::Result<Ceiling> {
    let sink = SmtpSink::start()
        .await
        .context("starting the ceiling's SMTP stand-in")?;
    if let Some(delay) = answer_delay {
        sink.set_answer_delay(delay);
    }
    let identity = EmailIdentity::parse("Herald <herald@localhost.localdomain>")?;
    let provider =
        SmtpProvider::from_url(&sink.url(), identity, Duration::from_secs(30), connections)?;
    let templates = TemplateStore::load(templates).context("loading the templates")?;
    let welcome = TemplateName::parse("welcome").map_err(|e| anyhow!("{e}"))?;
    let content = |i: usize| {
        let params =
            serde_json::json!({"name": format!("Reader {i}"), "app_name": "Herald load test"});
        let params = params.as_object().cloned().unwrap_or_default();
        templates
            .render(&welcome, Channel::Email, None, &params)
            .context("rendering welcome for e-mail")
    };
    let message = |i: usize| -> anyhow::Result<Outbound> {
        let notification = NotificationId::from_event_id(&format!("ceiling-{i}"));
        let user = UserId::parse(format!("loadtest-{i}")).map_err(|e| anyhow!("{e}"))?;
        Ok(Outbound {
            delivery_id: DeliveryId::derive(notification, &user, Channel::Email),
            notification_id: notification,
            category: Category::parse("account").map_err(|e| anyhow!("{e}"))?,
            channel: Channel::Email,
            to: Recipient::Email {
                address: EmailAddress::parse(&format!("loadtest-{i}@example.test"))
                    .map_err(|e| anyhow!("{e}"))?,
                name: Some(format!("Reader {i}")),
            },
            content: content(i)?,
        })
    };
    // Rendered before the clock starts (Herald's workers render, too): this
    // measures the SMTP exchange alone, client and stand-in.
    let messages = (0..=n).map(message).collect::<anyhow::Result<Vec<_>>>()?;
    // One message first, so the clock starts with a connection open, as the
    // Kafka ceiling starts after a warm-up record.
    provider.send(&messages[n]).await?;
    let clock = Stopwatch::start();
    let sent: Vec<anyhow::Result<()>> = futures::stream::iter(&messages[..n])
        .map(|m| async {
            provider
                .send(m)
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from)
        })
        .buffer_unordered(connections.max(1) as usize)
        .collect()
        .await;
    sent.into_iter().collect::<anyhow::Result<()>>()?;
    // Each send returned on the stand-in's `250` to the message, which it
    // gives once it holds the message.
    let finished = Instant::now();
    let received = sink.count();
    if received < n + 1 {
        bail!(
            "the SMTP ceiling's stand-in received {received} of {} messages",
            n + 1
        );
    }
    Ok(clock.stop("smtp", n, finished))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_go_in_transactions_of_a_hundred_and_a_last_shorter_one() {
        let runs: Vec<_> = batches(250).collect();
        assert_eq!(runs, vec![0..100, 100..200, 200..250]);
        assert_eq!(batches(0).count(), 0);
    }

    #[test]
    fn herald_is_read_against_the_slowest_ceiling() {
        let ceilings = vec![
            Ceiling::new("kafka", 2000, Duration::from_millis(500)),
            Ceiling::new("postgres", 2000, Duration::from_secs(2)),
        ];
        let (slowest, share) = share_of_slowest(&ceilings, 250.0).expect("two ceilings");
        assert_eq!(slowest.name, "postgres");
        assert_eq!(slowest.per_second, 1000.0);
        assert_eq!(share, 0.25);
        assert_eq!(share_of_slowest(&[], 250.0), None);
    }

    #[tokio::test]
    async fn every_ceiling_email_reaches_the_stand_in() {
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
        let ceiling = smtp(&templates, 40, 4, None).await.expect("smtp works");
        assert_eq!(ceiling.name, "smtp");
        assert_eq!(ceiling.records, 40);
        assert!(ceiling.per_second > 0.0, "{ceiling:?}");
    }

    #[tokio::test]
    async fn a_sqlite_file_takes_every_row_and_counts_them() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let ceiling = sqlite(dir.path(), 250).await.expect("sqlite works");
        assert_eq!(ceiling.records, 250);
        assert!(ceiling.per_second > 0.0, "{ceiling:?}");
        let url = format!("sqlite://{}", dir.path().join("ceiling.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("the file is there");
        let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ceiling")
            .fetch_one(&mut conn)
            .await
            .expect("the table is there");
        assert_eq!(rows, 250);
    }
}
