//! The `herald` binary itself: starts with no configuration beyond where to
//! keep data, serves, and shuts down cleanly on a signal without losing work.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::{templates_dir, WAIT};

struct Herald {
    child: Child,
    base: String,
}

fn start(data_dir: &std::path::Path) -> Herald {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .current_dir(data_dir)
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env("HERALD_TEMPLATES_DIR", templates_dir())
        .env("HERALD_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("herald starts");
    let base = crate::support::listening_base(&mut child);
    Herald { child, base }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "herald did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn herald_serve_runs_on_defaults_and_a_signal_stops_it_without_losing_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut herald = start(dir.path());
    let client = reqwest::Client::new();
    let ok = client
        .get(format!("{}/healthz", herald.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    client
        .put(format!("{}/v1/users/ada", herald.base))
        .json(&json!({"email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..20 {
        let answer: serde_json::Value = client
            .post(format!("{}/v1/notifications", herald.base))
            .json(&json!({"template": "welcome", "recipients": ["ada"], "channels": ["email", "in_app"],
                "params": {"name": format!("Ada {i}"), "app_name": "Acme"}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(answer["id"].as_str().unwrap().to_owned());
    }
    // Stop at once, with work in flight; Ctrl-C is SIGINT.
    signal(&herald.child, "INT");
    assert!(wait_exit(&mut herald.child).success());
    assert!(
        dir.path().join("data/herald.db").exists(),
        "data in ./data by default"
    );

    let mut herald = start(dir.path());
    let deadline = tokio::time::Instant::now() + WAIT;
    for id in &ids {
        loop {
            let n: serde_json::Value = client
                .get(format!("{}/v1/notifications/{id}", herald.base))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let states: Vec<&str> = n["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|d| d["state"].as_str())
                .collect();
            if states == ["sent", "sent"] {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{n:#}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let emails = std::fs::read_dir(dir.path().join("data/outbox/email"))
        .unwrap()
        .count();
    assert_eq!(emails, 20, "each e-mail written once");
    signal(&herald.child, "TERM");
    assert!(wait_exit(&mut herald.child).success());
}
