//! Herald scaled out: separate services, replicated, on PostgreSQL, Kafka
//! and Redis. Replicas share the partitions; losing one mid-run loses
//! nothing and sends nothing twice.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use herald::app::{Role, Running};
use herald::Config;
use herald_domain::Channel;
use herald_standins::smtp::SmtpSink;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::cluster_settings;

const NOTIFICATIONS: usize = 5000;
const USERS: usize = 100;

async fn replica(settings: &BTreeMap<String, String>, role: Role, id: &str) -> Running {
    let mut settings = settings.clone();
    settings.insert("HERALD_WORKER_ID".into(), id.into());
    let config = Config::from_map(&settings).unwrap();
    herald::app::start(config, role, CancellationToken::new())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicated_services_deliver_5000_notifications_exactly_once_through_the_loss_of_a_replica()
{
    let smtp = SmtpSink::start().await.unwrap();
    let settings = cluster_settings(&smtp, 5000).await;
    let config = Config::from_map(&settings).unwrap();
    // What `herald migrate` does: schema and topics, once.
    herald::app::open_store(&config, true).await.unwrap();
    herald::app::kafka_bus(&config, true).await.unwrap();

    let api = replica(&settings, Role::Api, "api-1").await;
    let routers = vec![
        replica(&settings, Role::Router, "router-1").await,
        replica(&settings, Role::Router, "router-2").await,
    ];
    let workers = vec![
        replica(
            &settings,
            Role::Workers(vec![Channel::Email, Channel::InApp]),
            "worker-1",
        )
        .await,
        replica(
            &settings,
            Role::Workers(vec![Channel::Email, Channel::InApp]),
            "worker-2",
        )
        .await,
    ];
    let receipts = replica(&settings, Role::Receipts, "receipts-1").await;

    let client = reqwest::Client::new();
    let base = format!("http://{}", api.addr);
    for u in 0..USERS {
        let answer = client
            .put(format!("{base}/v1/users/u{u}"))
            .json(&json!({"email": format!("u{u}@example.com")}))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
    }

    // Most notifications come straight onto the bus, as a producer's events;
    // a tenth through the REST API, at the same time.
    let bus = api.bus.clone();
    let events = bus.topics().events();
    let by_rest = NOTIFICATIONS / 10;
    let rest = {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            for i in 0..by_rest {
                let answer = client
                    .post(format!("{base}/v1/notifications"))
                    .json(&json!({"template": "welcome", "recipients": [format!("u{}", i % USERS)], "channels": ["email"],
                        "params": {"name": format!("rest {i}"), "app_name": "Acme"}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), 202);
            }
        })
    };
    let mut batch = Vec::new();
    for i in by_rest..NOTIFICATIONS {
        let user = format!("u{}", i % USERS);
        let event = json!({"event_id": format!("scale-{i}"), "template": "welcome", "recipients": [user],
            "channels": ["email"], "params": {"name": format!("bus {i}"), "app_name": "Acme"}});
        batch.push((events.clone(), user, event.to_string().into_bytes()));
        if batch.len() == 500 {
            bus.publish_all(&batch).await.unwrap();
            batch.clear();
        }
    }
    bus.publish_all(&batch).await.unwrap();
    rest.await.unwrap();

    // Mid-run, one router and one worker replica die without a goodbye.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while smtp.count() < NOTIFICATIONS / 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stuck at {}",
            smtp.count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut routers = routers.into_iter();
    let mut workers = workers.into_iter();
    routers.next().unwrap().abort().await;
    workers.next().unwrap().abort().await;
    let killed_at = smtp.count();

    let mails = smtp.wait_for(NOTIFICATIONS, Duration::from_secs(60)).await;
    if mails.len() != NOTIFICATIONS {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM deliveries GROUP BY state")
            .fetch_all(api.store.db().read())
            .await
            .unwrap();
        let states: Vec<(String, i64)> = rows
            .iter()
            .map(|r| {
                use sqlx::Row;
                (r.try_get("state").unwrap(), r.try_get("n").unwrap())
            })
            .collect();
        let notifications: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notifications")
            .fetch_one(api.store.db().read())
            .await
            .unwrap();
        let mut consumer = bus.subscribe(&events, "debug-reader").await.unwrap();
        let mut seen = HashSet::new();
        let mut wait = Duration::from_secs(30);
        while let Ok(Ok(record)) = tokio::time::timeout(wait, consumer.recv()).await {
            wait = Duration::from_secs(5);
            let v: serde_json::Value = serde_json::from_slice(&record.payload).unwrap();
            seen.insert(v["event_id"].as_str().unwrap().to_owned());
        }
        let missing: Vec<String> = (by_rest..NOTIFICATIONS)
            .map(|i| format!("scale-{i}"))
            .filter(|e| !seen.contains(e))
            .take(20)
            .collect();
        eprintln!(
            "events on the topic: {} distinct; missing bus events e.g. {missing:?}",
            seen.len()
        );
        panic!("{} of {NOTIFICATIONS} delivered (replica lost at {killed_at}); notifications {notifications}, deliveries {states:?}", mails.len());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mails = smtp.messages();
    let ids: HashSet<String> = mails
        .iter()
        .filter_map(|m| m.header("X-Herald-Delivery-Id"))
        .collect();
    assert_eq!(
        (mails.len(), ids.len()),
        (NOTIFICATIONS, NOTIFICATIONS),
        "each exactly once"
    );
    assert!(killed_at < NOTIFICATIONS, "the replica died mid-run");

    for running in routers.chain(workers) {
        running.stop().await;
    }
    receipts.stop().await;
    api.stop().await;
}
