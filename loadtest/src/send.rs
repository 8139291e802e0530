//! The load: the users first, then one `welcome` e-mail notification per
//! request, recipients taking turns, either through the REST API (a fixed
//! number of requests in flight) or straight onto the events topic, as
//! another producer would publish them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use herald_domain::{Channel, DeliveryId, NotificationId, UserId};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

/// What was sent, and when.
#[derive(Debug)]
pub struct Sent {
    /// Every delivery the run expects, with the instant its notification
    /// was handed to Herald (just before the request or publish).
    pub expected: HashMap<DeliveryId, Instant>,
    /// Just before the first notification was sent.
    pub started: Instant,
    /// When the last notification was acknowledged.
    pub finished: Instant,
    /// Sends Herald refused or that failed in transit; each one makes the run fail.
    pub failed: usize,
    pub first_errors: Vec<String>,
}

impl Sent {
    fn new(capacity: usize) -> Sent {
        let now = Instant::now();
        Sent {
            expected: HashMap::with_capacity(capacity),
            started: now,
            finished: now,
            failed: 0,
            first_errors: Vec::new(),
        }
    }

    fn fail(&mut self, error: String) {
        self.failed += 1;
        if self.first_errors.len() < 5 {
            self.first_errors.push(error);
        }
    }

    /// Records each send's answer as it comes, until the last.
    async fn collect<'u>(
        &mut self,
        mut answers: impl futures::Stream<Item = (&'u UserId, Instant, Result<NotificationId, String>)>
            + Unpin,
        mut progress: Progress,
    ) {
        while let Some((user, at, result)) = answers.next().await {
            match result {
                Ok(id) => self.expect(id, user, at),
                Err(e) => self.fail(e),
            }
            progress.tick();
        }
        self.finished = Instant::now();
    }

    fn expect(&mut self, notification: NotificationId, user: &UserId, at: Instant) {
        let delivery = DeliveryId::derive(notification, user, Channel::Email);
        self.expected.insert(delivery, at);
    }
}

pub fn user_ids(n: usize) -> Vec<UserId> {
    (0..n)
        .map(|i| UserId::parse(format!("loadtest-{i}")).expect("a valid user id"))
        .collect()
}

/// `PUT /v1/users/{id}` with an e-mail address, for each user.
pub async fn create_users(
    client: &reqwest::Client,
    api: &str,
    users: &[UserId],
) -> anyhow::Result<()> {
    let puts = futures::stream::iter(users).map(|user| async move {
        let answer = client
            .put(format!("{api}/v1/users/{user}"))
            .json(&json!({"email": format!("{user}@loadtest.example.com"), "name": format!("User {user}")}))
            .send()
            .await
            .with_context(|| format!("creating user {user}"))?;
        if !answer.status().is_success() {
            let status = answer.status();
            bail!("creating user {user}: {status} {}", answer.text().await.unwrap_or_default());
        }
        Ok(())
    });
    let results: Vec<anyhow::Result<()>> = puts.buffer_unordered(16).collect().await;
    results.into_iter().collect()
}

/// The `POST /v1/notifications` body, and the event body without `event_id`.
fn notification(i: usize, user: &UserId) -> Value {
    json!({
        "template": "welcome",
        "recipients": [user],
        "channels": ["email"],
        "params": {"name": format!("Reader {i}"), "app_name": "Herald load test"},
    })
}

/// How much to send, to whom, and how fast.
#[derive(Debug, Clone, Copy)]
pub struct Load<'a> {
    pub users: &'a [UserId],
    pub notifications: usize,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// Notifications per second; as fast as Herald takes them when `None`.
    pub rate: Option<f64>,
    /// Whether to print progress lines.
    pub verbose: bool,
}

impl Load<'_> {
    fn user(&self, i: usize) -> &UserId {
        &self.users[i % self.users.len()]
    }

    /// Waits for notification `i`'s turn when the rate is capped.
    async fn pace(&self, started: Instant, i: usize) {
        if let Some(rate) = self.rate {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
    }

    fn progress(&self, what: &'static str) -> Progress {
        Progress::new(what, self.notifications, self.verbose)
    }
}

/// One request per notification, `concurrency` of them in flight.
pub async fn over_rest(
    client: &reqwest::Client,
    api: &str,
    load: Load<'_>,
) -> anyhow::Result<Sent> {
    let mut sent = Sent::new(load.notifications);
    let started = sent.started;
    let url = format!("{api}/v1/notifications");
    let requests = futures::stream::iter(0..load.notifications).map(|i| {
        let user = load.user(i);
        let request = client.post(&url).json(&notification(i, user));
        async move {
            load.pace(started, i).await;
            let at = Instant::now();
            let result = accepted_id(request.send().await).await;
            (user, at, result)
        }
    });
    sent.collect(
        requests.buffer_unordered(load.concurrency),
        load.progress("sent"),
    )
    .await;
    Ok(sent)
}

/// Subscribes every user to `topic` (created first), 10,000 per request.
pub async fn subscribe_all(
    client: &reqwest::Client,
    api: &str,
    topic: &str,
    users: &[UserId],
) -> anyhow::Result<()> {
    let answer = client
        .put(format!("{api}/v1/topics/{topic}"))
        .json(&json!({"description": "every load-test user"}))
        .send()
        .await
        .context("creating the topic")?;
    if !answer.status().is_success() {
        bail!("creating the topic: {}", answer.status());
    }
    for chunk in users.chunks(10_000) {
        let answer = client
            .post(format!("{api}/v1/topics/{topic}/subscribers"))
            .json(&json!({"add": chunk}))
            .send()
            .await
            .context("subscribing users")?;
        if !answer.status().is_success() {
            let status = answer.status();
            bail!(
                "subscribing users: {status} {}",
                answer.text().await.unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// One notification to `topic`: a delivery expected for every subscriber,
/// all handed to Herald at the same instant.
pub async fn to_topic(
    client: &reqwest::Client,
    api: &str,
    topic: &str,
    users: &[UserId],
) -> anyhow::Result<Sent> {
    let mut sent = Sent::new(users.len());
    let body = json!({
        "template": "welcome",
        "recipients": [{"topic": topic}],
        "channels": ["email"],
        "params": {"name": "Reader", "app_name": "Herald load test"},
    });
    let at = Instant::now();
    let answer = client
        .post(format!("{api}/v1/notifications"))
        .json(&body)
        .send()
        .await;
    match accepted_id(answer).await {
        Ok(id) => {
            for user in users {
                sent.expect(id, user, at);
            }
        }
        Err(e) => sent.fail(e),
    }
    sent.finished = Instant::now();
    Ok(sent)
}

/// The notification id of a `202`, or why there is none.
async fn accepted_id(answer: reqwest::Result<reqwest::Response>) -> Result<NotificationId, String> {
    let answer = answer.map_err(|e| format!("request failed: {e}"))?;
    let status = answer.status();
    let body = answer.text().await.map_err(|e| format!("{status}: {e}"))?;
    if status != reqwest::StatusCode::ACCEPTED {
        return Err(format!("{status}: {body}"));
    }
    let body: Value = serde_json::from_str(&body).map_err(|e| format!("202 body: {e}"))?;
    let id = body["id"].as_str().ok_or("202 without an id")?;
    NotificationId::parse(id).map_err(|e| e.to_string())
}

/// One event per notification on `<prefix>events`, keyed by user as
/// Herald's own producer does; `event_id` is a UUID, so it is also the
/// notification id.
pub async fn over_kafka(brokers: &str, topic: &str, load: Load<'_>) -> anyhow::Result<Sent> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Batched as any outside producer would; Herald's consumers rewind
        // on assignment, so a broker that skips to the next batch on a
        // mid-batch fetch loses nothing (KafkaConfig::resume_window).
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .context("creating a Kafka producer")?;
    let mut sent = Sent::new(load.notifications);
    let started = sent.started;
    let publishes = futures::stream::iter(0..load.notifications).map(|i| {
        let user = load.user(i);
        let event_id = uuid::Uuid::new_v4().to_string();
        let mut event = notification(i, user);
        event["event_id"] = Value::String(event_id.clone());
        let producer = &producer;
        async move {
            let payload = event.to_string();
            load.pace(started, i).await;
            let at = Instant::now();
            let record = FutureRecord::to(topic).key(user.as_str()).payload(&payload);
            let result = producer
                .send(record, Duration::from_secs(30))
                .await
                .map(|_| NotificationId::from_event_id(&event_id))
                .map_err(|(e, _)| format!("publish failed: {e}"));
            (user, at, result)
        }
    });
    sent.collect(
        publishes.buffer_unordered(load.concurrency),
        load.progress("published"),
    )
    .await;
    Ok(sent)
}

/// A line every tenth of the way, so a slow run shows it is alive.
struct Progress {
    what: &'static str,
    total: usize,
    done: usize,
    started: Instant,
    verbose: bool,
    /// `done` at the last line printed.
    printed: usize,
}

impl Progress {
    fn new(what: &'static str, total: usize, verbose: bool) -> Progress {
        Progress {
            what,
            total,
            done: 0,
            started: Instant::now(),
            verbose,
            printed: 0,
        }
    }

    fn tick(&mut self) {
        self.done += 1;
        if !self.verbose {
            return;
        }
        let step = (self.total / 10).max(1);
        if self.done >= self.printed + step || self.done == self.total {
            self.printed = self.done;
            let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            eprintln!("  {} {}/{} ({rate:.0}/s)", self.what, self.done, self.total);
        }
    }
}
