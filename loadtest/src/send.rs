//! The load: the users first, then one `welcome` e-mail notification per
//! request, recipients taking turns, either through the REST API or straight
//! onto the events topic, as another producer would publish them.
//!
//! Unpaced, a fixed number of sends is in flight (a closed model: it
//! measures throughput). Paced with a rate, arrivals are an open model:
//! send *i* leaves at `start + i / rate` whether or not earlier ones have
//! been answered, and its latencies count from that intended instant, so a
//! stall in Herald shows in the figures instead of slowing the load down
//! (no coordinated omission).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{Stream, StreamExt};
use herald_domain::{Channel, DeliveryId, NotificationId, UserId};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

use crate::latency::Latencies;
use crate::progress::Progress;

/// What was sent, and when.
#[derive(Debug)]
pub struct Sent {
    /// Every delivery the run expects, with the instant its notification
    /// was due: its slot in the schedule when paced, else just before the
    /// request or publish.
    pub expected: HashMap<DeliveryId, Instant>,
    /// From each accepted send's due instant to Herald's answer (the `202`,
    /// or the broker's acknowledgement).
    pub api_latency: Latencies,
    /// How late, at worst, a send left after its due instant: the load
    /// generator's own lag, which a paced run's latencies include.
    pub max_lag: Duration,
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
            api_latency: Latencies::default(),
            max_lag: Duration::ZERO,
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
        mut answers: impl Stream<Item = Answer<'u>> + Unpin,
        mut progress: Progress,
    ) {
        while let Some(answer) = answers.next().await {
            self.max_lag = self
                .max_lag
                .max(answer.left.saturating_duration_since(answer.due));
            match answer.result {
                Ok(id) => {
                    self.api_latency
                        .record(answer.answered.saturating_duration_since(answer.due));
                    self.expect(id, answer.user, answer.due);
                }
                Err(e) => self.fail(e),
            }
            progress.tick();
        }
        progress.finish();
        self.finished = Instant::now();
    }

    fn expect(&mut self, notification: NotificationId, user: &UserId, at: Instant) {
        let delivery = DeliveryId::derive(notification, user, Channel::Email);
        self.expected.insert(delivery, at);
    }
}

/// One send's outcome and its three instants.
struct Answer<'u> {
    user: &'u UserId,
    /// When it should have left: its slot in the schedule, or when it left.
    due: Instant,
    /// When it left.
    left: Instant,
    answered: Instant,
    result: Result<NotificationId, String>,
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
fn notification(i: usize, user: &UserId, also_in_app: bool) -> Value {
    let channels = if also_in_app {
        json!(["email", "in_app"])
    } else {
        json!(["email"])
    };
    json!({
        "template": "welcome",
        "recipients": [user],
        "channels": channels,
        "params": {"name": format!("Reader {i}"), "app_name": "Herald load test"},
    })
}

/// How much to send, to whom, and how fast.
#[derive(Debug, Clone, Copy)]
pub struct Load<'a> {
    pub users: &'a [UserId],
    pub notifications: usize,
    /// Sends in flight at once when unpaced; paced sends are never held back.
    pub concurrency: usize,
    /// Notifications per second; as fast as Herald takes them when `None`.
    pub rate: Option<f64>,
    /// Whether to print progress lines.
    pub verbose: bool,
    /// Send each notification in-app too (the mixed-channel scenario).
    pub also_in_app: bool,
}

impl Load<'_> {
    fn user(&self, i: usize) -> &UserId {
        &self.users[i % self.users.len()]
    }

    /// Paced, every due send leaves at once (an open model); unpaced,
    /// `concurrency` at a time.
    fn in_flight(&self) -> usize {
        if self.rate.is_some() {
            usize::MAX
        } else {
            self.concurrency
        }
    }

    /// Each notification's index when it is due, with its due instant.
    /// The schedule never waits for answers: a late tick is caught up at
    /// once and the lag is charged to the sends' latencies.
    fn schedule(&self, started: Instant) -> impl Stream<Item = (usize, Option<Instant>)> {
        let rate = self.rate;
        futures::stream::iter(0..self.notifications).then(move |i| async move {
            // Notification `i` is due at `started + i / rate`.
            let due = rate.map(|rate| started + Duration::from_secs_f64(i as f64 / rate));
            if let Some(due) = due {
                tokio::time::sleep_until(due.into()).await;
            }
            (i, due)
        })
    }

    fn progress(&self, what: &'static str) -> Progress {
        Progress::new(what, self.notifications, self.verbose)
    }
}

/// One request per notification, `concurrency` of them in flight, or on
/// schedule when paced.
pub async fn over_rest(
    client: &reqwest::Client,
    api: &str,
    load: Load<'_>,
) -> anyhow::Result<Sent> {
    let mut sent = Sent::new(load.notifications);
    let started = sent.started;
    let url = format!("{api}/v1/notifications");
    let requests = load.schedule(started).map(|(i, due)| {
        let user = load.user(i);
        let request = client
            .post(&url)
            .json(&notification(i, user, load.also_in_app));
        async move {
            let left = Instant::now();
            let result = accepted_id(request.send().await).await;
            Answer {
                user,
                due: due.unwrap_or(left),
                left,
                answered: Instant::now(),
                result,
            }
        }
    });
    sent.collect(
        Box::pin(requests.buffer_unordered(load.in_flight())),
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
            sent.api_latency.record(at.elapsed());
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

/// A producer as an outside one would be: idempotent, acknowledged by all
/// replicas, batched. Herald's consumers rewind on assignment, so a broker
/// that skips to the next batch on a mid-batch fetch loses nothing
/// (KafkaConfig::resume_window).
pub fn kafka_producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .context("creating a Kafka producer")
}

/// One event per notification on `<prefix>events`, keyed by user as
/// Herald's own producer does; `event_id` is a UUID, so it is also the
/// notification id.
pub async fn over_kafka(brokers: &str, topic: &str, load: Load<'_>) -> anyhow::Result<Sent> {
    let producer = kafka_producer(brokers)?;
    let mut sent = Sent::new(load.notifications);
    let started = sent.started;
    let publishes = load.schedule(started).map(|(i, due)| {
        let user = load.user(i);
        let event_id = uuid::Uuid::new_v4().to_string();
        let mut event = notification(i, user, load.also_in_app);
        event["event_id"] = Value::String(event_id.clone());
        let producer = &producer;
        async move {
            let payload = event.to_string();
            let left = Instant::now();
            let record = FutureRecord::to(topic).key(user.as_str()).payload(&payload);
            let result = producer
                .send(record, Duration::from_secs(30))
                .await
                .map(|_| NotificationId::from_event_id(&event_id))
                .map_err(|(e, _)| format!("publish failed: {e}"));
            Answer {
                user,
                due: due.unwrap_or(left),
                left,
                answered: Instant::now(),
                result,
            }
        }
    });
    sent.collect(
        Box::pin(publishes.buffer_unordered(load.in_flight())),
        load.progress("published"),
    )
    .await;
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends that each take a second to answer, paced at 100/s: every one
    /// leaves in its own slot, none waits for an earlier answer.
    #[tokio::test]
    async fn paced_sends_leave_on_schedule_however_slow_the_answers() {
        let load = Load {
            users: &[],
            notifications: 20,
            concurrency: 2,
            rate: Some(100.0),
            verbose: false,
            also_in_app: false,
        };
        let started = Instant::now();
        let sends = load.schedule(started).map(|(i, due)| async move {
            let left = Instant::now();
            tokio::time::sleep(Duration::from_secs(1)).await;
            (i, due, left)
        });
        let answers: Vec<_> = sends.buffer_unordered(load.in_flight()).collect().await;
        assert_eq!(answers.len(), 20);
        for (i, due, left) in answers {
            let due = due.expect("a paced send has a due instant");
            assert_eq!(due - started, Duration::from_millis(10) * i as u32);
            let lag = left.saturating_duration_since(due);
            assert!(
                lag < Duration::from_millis(100),
                "send {i} left {lag:?} late"
            );
        }
        assert!(started.elapsed() < Duration::from_millis(1500));
    }

    #[tokio::test]
    async fn unpaced_sends_keep_the_concurrency_and_have_no_due_instant() {
        let load = Load {
            users: &[],
            notifications: 6,
            concurrency: 2,
            rate: None,
            verbose: false,
            also_in_app: false,
        };
        let started = Instant::now();
        let sends = load.schedule(started).map(|(_, due)| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            due
        });
        let dues: Vec<_> = sends.buffer_unordered(load.in_flight()).collect().await;
        assert!(dues.iter().all(Option::is_none));
        // Three rounds of two.
        assert!(started.elapsed() >= Duration::from_millis(150));
    }
}
