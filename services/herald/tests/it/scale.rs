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
    let _turn = crate::support::heavy_turn().await;
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

/// A copy of the shipped templates with `new_comment`'s digest window cut to
/// two seconds, so digests close within a test.
fn quick_digest_templates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = crate::support::templates_dir();
    for template in std::fs::read_dir(&source).unwrap() {
        let template = template.unwrap();
        if !template.file_type().unwrap().is_dir() {
            continue;
        }
        let target = dir.path().join(template.file_name());
        std::fs::create_dir(&target).unwrap();
        for file in std::fs::read_dir(template.path()).unwrap() {
            let file = file.unwrap();
            let mut text = std::fs::read_to_string(file.path()).unwrap();
            if file.file_name() == "template.toml" {
                text = text.replace(r#"window = "10m""#, r#"window = "2s""#);
            }
            std::fs::write(target.join(file.file_name()), text).unwrap();
        }
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deferrals_digests_and_a_topic_survive_every_router_replica_being_killed_once() {
    const USERS: usize = 600;
    const SCHEDULED: usize = 300;
    const COMMENTERS: usize = 5;
    const POSTS: usize = 60;
    let _turn = crate::support::heavy_turn().await;
    let smtp = SmtpSink::start().await.unwrap();
    let templates = quick_digest_templates();
    let mut settings = cluster_settings(&smtp, 5000).await;
    settings.insert(
        "HERALD_TEMPLATES_DIR".into(),
        templates.path().display().to_string(),
    );
    // A dead router's timers are fired by another soon.
    settings.insert("HERALD_TIMER_LEASE_MS".into(), "3000".into());
    let config = Config::from_map(&settings).unwrap();
    herald::app::open_store(&config, true).await.unwrap();
    herald::app::kafka_bus(&config, true).await.unwrap();

    let api = replica(&settings, Role::Api, "api-1").await;
    let mut router_1 = Some(replica(&settings, Role::Router, "router-1").await);
    let mut router_2 = Some(replica(&settings, Role::Router, "router-2").await);
    let worker = replica(
        &settings,
        Role::Workers(vec![Channel::Email, Channel::InApp]),
        "worker-1",
    )
    .await;
    let receipts = replica(&settings, Role::Receipts, "receipts-1").await;

    let client = reqwest::Client::new();
    let base = format!("http://{}", api.addr);
    let users: Vec<String> = (0..USERS).map(|u| format!("r{u:04}")).collect();
    for user in &users {
        let answer = client
            .put(format!("{base}/v1/users/{user}"))
            .json(&json!({"email": format!("{user}@example.com")}))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
    }
    let answer = client
        .put(format!("{base}/v1/topics/everyone"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let answer = client
        .post(format!("{base}/v1/topics/everyone/subscribers"))
        .json(&json!({"add": users}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);

    // Scheduled sends three seconds out, bursts of comments grouped per post,
    // and one notification to a 1,000-subscriber topic, all on the bus.
    let bus = api.bus.clone();
    let events = bus.topics().events();
    let send_at = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let mut batch = Vec::new();
    for i in 0..SCHEDULED {
        let user = &users[i % USERS];
        let event = json!({"event_id": format!("later-{i}"), "template": "welcome", "recipients": [user],
            "channels": ["email"], "send_at": send_at, "params": {"name": format!("later {i}"), "app_name": "Acme"}});
        batch.push((events.clone(), user.clone(), event.to_string().into_bytes()));
    }
    for (post, user) in users.iter().enumerate().take(POSTS) {
        for c in 0..COMMENTERS {
            let event = json!({"event_id": format!("comment-{post}-{c}"), "template": "new_comment",
                "recipients": [user], "channels": ["email"], "group_key": format!("post-{post}"),
                "params": {"name": user, "commenter": format!("c{c}"), "post_title": format!("post {post}"),
                    "comment_excerpt": "hi", "url": "https://example.com"}});
            batch.push((events.clone(), user.clone(), event.to_string().into_bytes()));
        }
    }
    let everyone = json!({"event_id": "everyone-1", "template": "welcome",
        "recipients": [{"topic": "everyone"}], "channels": ["email"],
        "params": {"name": "all", "app_name": "Acme"}});
    batch.push((
        events.clone(),
        "everyone".into(),
        everyone.to_string().into_bytes(),
    ));
    for chunk in batch.chunks(500) {
        bus.publish_all(chunk).await.unwrap();
    }

    // Each router dies once, mid-run, without a goodbye; a third takes over.
    let expected_singles = SCHEDULED + USERS;
    let wait_for = |n: usize| {
        let smtp = smtp.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            while smtp.count() < n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "stuck at {}",
                    smtp.count()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(150).await;
    router_1.take().unwrap().abort().await;
    let router_3 = replica(&settings, Role::Router, "router-3").await;
    // Early enough that the run is not over when it dies: the workers alone
    // can send several hundred of what the routers decided in the time an
    // abort takes on a busy machine.
    wait_for(350).await;
    router_2.take().unwrap().abort().await;
    let killed_at = smtp.count();

    // Every single notification once, plus one digest per post (or more,
    // should a comment arrive after its post's window closed: the members are
    // counted below).
    smtp.wait_for(expected_singles + POSTS, Duration::from_secs(120))
        .await;
    let store = &api.store;
    let settled = || async {
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE state IN ('queued', 'deferred', 'sending')",
        )
        .fetch_one(store.db().read())
        .await
        .unwrap();
        pending
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while settled().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries still waiting"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every delivery has an outcome: nothing more will be sent.
    let mails = smtp.messages();
    let ids: HashSet<String> = mails
        .iter()
        .filter_map(|m| m.header("X-Herald-Delivery-Id"))
        .collect();
    assert_eq!(
        ids.len(),
        mails.len(),
        "nothing sent twice (killed at {killed_at})"
    );
    let digest_items: Vec<String> =
        sqlx::query_scalar("SELECT event FROM notifications WHERE source = 'digest'")
            .fetch_all(store.db().read())
            .await
            .unwrap();
    let mut members = HashSet::new();
    for event in &digest_items {
        let event: serde_json::Value = serde_json::from_str(event).unwrap();
        for item in event["params"]["items"].as_array().unwrap() {
            let member = format!("{}/{}", item["post_title"], item["commenter"]);
            assert!(members.insert(member.clone()), "{member} in two digests");
        }
    }
    assert_eq!(
        members.len(),
        POSTS * COMMENTERS,
        "every comment in a digest"
    );
    assert_eq!(
        mails.len(),
        expected_singles + digest_items.len(),
        "one e-mail per scheduled send, per subscriber and per digest"
    );
    let subscribers: HashSet<String> = mails
        .iter()
        .filter(|m| {
            m.subject()
                .is_some_and(|s| s.contains("Welcome to Acme, all"))
        })
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    assert_eq!(subscribers.len(), USERS, "the topic reached everyone once");
    assert!(
        killed_at < expected_singles + POSTS,
        "the second router died mid-run, not after the last e-mail ({killed_at} sent)"
    );

    router_3.stop().await;
    worker.stop().await;
    receipts.stop().await;
    api.stop().await;
}
