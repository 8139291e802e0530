//! The separate services as real processes on PostgreSQL, Kafka and Redis,
//! fed by an outside Kafka client (Python's confluent-kafka), with a worker
//! killed by SIGKILL mid-run and restarted.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_standins::smtp::SmtpSink;
use serde_json::json;

use crate::support::{cluster_settings, kafka_brokers};

const EVENTS: usize = 300;
const USERS: usize = 20;

/// A `herald` process, killed when dropped.
struct Service {
    child: Child,
    base: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn herald(settings: &BTreeMap<String, String>, args: &[&str], id: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (key, value) in settings {
        command.env(key, value);
    }
    command
        .env("HERALD_WORKER_ID", id)
        .env("HERALD_LOG", "warn");
    command
}

fn start(settings: &BTreeMap<String, String>, args: &[&str], id: &str) -> Service {
    let mut child = herald(settings, args, id)
        .stdout(Stdio::piped())
        .spawn()
        .expect("herald starts");
    let base = crate::support::listening_base(&mut child);
    Service { child, base }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_deliver_an_outside_producers_events_once_through_a_killed_worker() {
    // The stand-in gets a runtime of its own, so this test's own waiting
    // never delays its replies (which would widen the window below).
    let (smtp, sink_runtime) = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        (runtime.block_on(SmtpSink::start()).unwrap(), runtime)
    })
    .join()
    .unwrap();
    let settings = cluster_settings(&smtp, 15000).await;
    let prefix = settings["HERALD_TOPIC_PREFIX"].clone();

    let migrated = herald(&settings, &["migrate"], "migrate")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(migrated.success(), "herald migrate");
    let api = start(&settings, &["api"], "api");
    let _router = start(&settings, &["router"], "router");
    let _receipts = start(&settings, &["receipts"], "receipts");
    let mut worker_one = start(&settings, &["workers", "--channel", "email"], "worker-1");
    let _worker_two = start(
        &settings,
        &["workers", "--channel", "email,in_app"],
        "worker-2",
    );

    let client = reqwest::Client::new();
    for u in 0..USERS {
        let answer = client
            .put(format!("{}/v1/users/u{u}", api.base))
            .json(&json!({"email": format!("u{u}@example.com")}))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
    }

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/outside_client.py");
    let mut outside = Command::new("python3")
        .arg(script)
        .args([
            kafka_brokers(),
            prefix,
            EVENTS.to_string(),
            USERS.to_string(),
            "120".into(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test installs confluent-kafka)");
    let mut lines = BufReader::new(outside.stdout.take().unwrap()).lines();
    let published: serde_json::Value =
        serde_json::from_str(&lines.next().expect("a line").unwrap()).unwrap();
    assert_eq!(
        published,
        json!({"published": EVENTS}),
        "the outside client published"
    );

    // Kill -9 one worker a third of the way in, then start it again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while smtp.count() < EVENTS / 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stuck at {}",
            smtp.count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = worker_one.child.id().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-s", "KILL", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let killed_at = smtp.count();
    worker_one = {
        let settings = settings.clone();
        let mut dead = worker_one;
        tokio::task::spawn_blocking(move || {
            let _ = dead.child.wait();
            start(
                &settings,
                &["workers", "--channel", "email"],
                "worker-1-again",
            )
        })
        .await
        .unwrap()
    };

    let summary = tokio::task::spawn_blocking(move || {
        let line = lines.next().expect("a summary").unwrap();
        let _ = outside.wait();
        line
    })
    .await
    .unwrap();
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(
        summary,
        json!({"sent": EVENTS, "foreign": 0}),
        "the outside reader saw a sent receipt for each event"
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    let mails = smtp.messages();
    let distinct: HashSet<String> = mails
        .iter()
        .filter_map(|m| m.header("X-Herald-Delivery-Id"))
        .collect();
    assert_eq!(
        distinct.len(),
        EVENTS,
        "every event delivered (worker killed at {killed_at})"
    );
    // A send the provider accepted in the instant before SIGKILL, before its
    // outcome was written, is sent again by the replacement: that is the one
    // window at-least-once leaves, and the Message-ID stays the same so the
    // receiving side can drop it.
    let again = mails.len() - distinct.len();
    eprintln!("killed at {killed_at}; {again} message(s) sent twice across the SIGKILL");
    if again > 0 {
        let mut seen = HashSet::new();
        let twice: Vec<(usize, String)> = mails
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let id = m.header("X-Herald-Delivery-Id")?;
                (!seen.insert(id.clone())).then_some((i, id))
            })
            .collect();
        let store = herald::app::open_store(&herald::Config::from_map(&settings).unwrap(), false)
            .await
            .unwrap();
        for (i, id) in twice.iter().take(4) {
            let first = mails
                .iter()
                .position(|m| m.header("X-Herald-Delivery-Id").as_deref() == Some(id))
                .unwrap();
            let d = store
                .get_delivery(herald_domain::DeliveryId::parse(id).unwrap())
                .await
                .unwrap()
                .unwrap();
            eprintln!(
                "dup {id}: positions {first} and {i}; attempts {} state {} error {:?}",
                d.attempts, d.state, d.last_error
            );
        }
    }
    assert!(
        again <= 32,
        "at most one per send in flight at the kill: {again}"
    );
    drop(worker_one);
    drop(smtp);
    sink_runtime.shutdown_background();
}
