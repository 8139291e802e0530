//! E-mail through a relay that asks for STARTTLS and a login, as a
//! submission server on port 587 does: `HERALD_SMTP_URL` with
//! `?tls=required` and a user, and `HERALD_SMTP_CA_FILE` trusting the
//! relay's own certificate. The whole app, on both backend sets.

use super::support::Backend;

crate::on_both_backends!(
    mail_goes_to_a_relay_that_asks_for_starttls_and_a_login,
    a_relay_certificate_herald_does_not_trust_gets_nothing,
);

use herald_standins::smtp::{SmtpOptions, SmtpSink, SmtpTls};

use crate::support::{ada, welcome, Options, TestApp, WAIT};

async fn relay() -> SmtpSink {
    SmtpSink::start_with(SmtpOptions {
        tls: SmtpTls::StartTls,
        credentials: Some(("herald".into(), "relay-pass".into())),
    })
    .await
    .expect("the relay stand-in")
}

async fn mail_goes_to_a_relay_that_asks_for_starttls_and_a_login(backend: Backend) {
    let relay = relay().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("relay-ca.pem");
    std::fs::write(&ca, relay.ca_pem().unwrap()).unwrap();
    let app = TestApp::spawn_with(Options {
        extra: vec![
            ("HERALD_SMTP_URL", relay.url()),
            ("HERALD_SMTP_CA_FILE", ca.display().to_string()),
        ],
        ..Options::on(backend)
    })
    .await;
    ada(&app).await;
    let id = app.send(welcome(&["ada"], &["email"])).await;
    let n = app.settled(&id, 1).await;
    assert_eq!(n["deliveries"][0]["state"], "sent", "{n:#}");
    let mails = relay.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].encrypted, "sent after STARTTLS");
    assert_eq!(mails[0].authenticated_as.as_deref(), Some("herald"));
    assert_eq!(mails[0].rcpt_to, vec!["ada@example.com".to_owned()]);
}

async fn a_relay_certificate_herald_does_not_trust_gets_nothing(backend: Backend) {
    let relay = relay().await;
    let app = TestApp::spawn_with(Options {
        extra: vec![
            ("HERALD_SMTP_URL", relay.url()),
            ("HERALD_MAX_ATTEMPTS", "2".into()),
        ],
        ..Options::on(backend)
    })
    .await;
    ada(&app).await;
    let id = app.send(welcome(&["ada"], &["email"])).await;
    let n = app.settled(&id, 1).await;
    let d = &n["deliveries"][0];
    assert_eq!(d["state"], "failed", "{n:#}");
    assert!(
        d["last_error"]
            .as_str()
            .is_some_and(|e| e.to_lowercase().contains("certificate")),
        "{d:#}"
    );
    assert_eq!(relay.count(), 0);
}
