//! The SMTP provider against the SMTP stand-in: plain, STARTTLS and TLS from
//! the first byte, each with `AUTH`; a pool that reuses its connections; and
//! the failures a relay's settings can cause, each with the right kind.

use std::sync::Arc;
use std::time::Duration;

use herald_domain::{Category, Channel, DeliveryId, EmailAddress, NotificationId, UserId};
use herald_providers::{EmailIdentity, Outbound, Provider, ProviderError, Recipient, SmtpProvider};
use herald_standins::smtp::{SmtpOptions, SmtpSink, SmtpTls};
use herald_templates::Rendered;

const TIMEOUT: Duration = Duration::from_secs(5);

fn message(i: usize) -> Outbound {
    let notification = NotificationId::from_event_id(&format!("smtp-test-{i}"));
    Outbound {
        delivery_id: DeliveryId::derive(
            notification,
            &UserId::parse("ada").unwrap(),
            Channel::Email,
        ),
        notification_id: notification,
        category: Category::parse("account").unwrap(),
        channel: Channel::Email,
        to: Recipient::Email {
            address: EmailAddress::parse("ada@example.test").unwrap(),
            name: Some("Ada".into()),
        },
        content: Rendered::Email {
            subject: format!("Message {i}"),
            html: Some(format!("<p>Message {i}</p>")),
            text: Some(format!("Message {i}")),
        },
    }
}

fn identity() -> EmailIdentity {
    EmailIdentity::parse("Herald <noreply@herald.test>").unwrap()
}

fn secured(tls: SmtpTls) -> SmtpOptions {
    SmtpOptions {
        tls,
        credentials: Some(("mailer".into(), "s3cret".into())),
    }
}

/// `n` messages arrived, every one over TLS from the logged-in `mailer`.
fn assert_secured(mails: &[herald_standins::smtp::ReceivedMail], n: usize) {
    assert_eq!(mails.len(), n);
    assert!(mails
        .iter()
        .all(|m| m.encrypted && m.authenticated_as.as_deref() == Some("mailer")));
}

/// A provider for `sink` at `url`, trusting the sink's certificate.
fn provider_for(sink: &SmtpSink, url: &str, connections: u32) -> SmtpProvider {
    let roots = sink.ca_pem();
    SmtpProvider::trusting(
        url,
        roots.as_deref().map(str::as_bytes),
        identity(),
        TIMEOUT,
        connections,
    )
    .unwrap()
}

#[tokio::test]
async fn sequential_messages_share_one_connection_and_arrive_in_order() {
    let sink = SmtpSink::start().await.unwrap();
    let provider = provider_for(&sink, &sink.url(), 4);
    for i in 0..20 {
        let accepted = provider.send(&message(i)).await.unwrap();
        assert!(accepted.provider_message_id.ends_with("@herald.test>"));
    }
    let mails = sink.messages();
    let subjects: Vec<String> = mails.iter().filter_map(|m| m.subject()).collect();
    let expected: Vec<String> = (0..20).map(|i| format!("Message {i}")).collect();
    assert_eq!(subjects, expected);
    assert_eq!(sink.connections(), 1, "one connection, reused");
    assert!(mails
        .iter()
        .all(|m| !m.encrypted && m.authenticated_as.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_messages_use_at_most_the_configured_connections() {
    let sink = SmtpSink::start().await.unwrap();
    let provider = Arc::new(provider_for(&sink, &sink.url(), 3));
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..30 {
        let provider = Arc::clone(&provider);
        sends.spawn(async move { provider.send(&message(i)).await });
    }
    while let Some(sent) = sends.join_next().await {
        sent.unwrap().unwrap();
    }
    assert_eq!(sink.count(), 30);
    assert!(
        sink.connections() <= 3,
        "{} connections",
        sink.connections()
    );
}

#[tokio::test]
async fn starttls_then_auth_carries_the_message_encrypted_and_logged_in() {
    let sink = SmtpSink::start_with(secured(SmtpTls::StartTls))
        .await
        .unwrap();
    let provider = provider_for(&sink, &sink.url(), 2);
    for i in 0..3 {
        provider.send(&message(i)).await.unwrap();
    }
    let mails = sink.messages();
    assert_secured(&mails, 3);
    assert_eq!(sink.connections(), 1);
}

#[tokio::test]
async fn tls_from_the_first_byte_then_auth_carries_the_message() {
    let sink = SmtpSink::start_with(secured(SmtpTls::Implicit))
        .await
        .unwrap();
    assert!(sink.url().starts_with("smtps://mailer:s3cret@127.0.0.1:"));
    let provider = provider_for(&sink, &sink.url(), 2);
    for i in 0..3 {
        provider.send(&message(i)).await.unwrap();
    }
    let mails = sink.messages();
    assert_secured(&mails, 3);
    assert_eq!(mails[2].subject().as_deref(), Some("Message 2"));
    assert_eq!(sink.connections(), 1);
}

#[tokio::test]
async fn a_wrong_password_is_permanent_and_nothing_is_sent() {
    let sink = SmtpSink::start_with(secured(SmtpTls::StartTls))
        .await
        .unwrap();
    let url = sink.url().replace("s3cret", "guess");
    let provider = provider_for(&sink, &url, 1);
    let error = provider.send(&message(0)).await.unwrap_err();
    assert!(matches!(error, ProviderError::Permanent { .. }), "{error}");
    assert_eq!(sink.count(), 0);
}

#[tokio::test]
async fn a_relay_without_starttls_is_refused_when_the_url_requires_it_and_used_when_optional() {
    let sink = SmtpSink::start().await.unwrap();
    let port = sink.addr().port();
    let required = provider_for(&sink, &format!("smtp://127.0.0.1:{port}?tls=required"), 1);
    let error = required.send(&message(0)).await.unwrap_err();
    assert!(matches!(error, ProviderError::Permanent { .. }), "{error}");
    assert!(error.to_string().contains("STARTTLS"), "{error}");
    assert_eq!(sink.count(), 0);
    let optional = provider_for(
        &sink,
        &format!("smtp://127.0.0.1:{port}?tls=opportunistic"),
        1,
    );
    optional.send(&message(1)).await.unwrap();
    assert!(!sink.messages()[0].encrypted);
}

#[tokio::test]
async fn a_certificate_nobody_vouches_for_is_refused_and_nothing_is_sent() {
    let sink = SmtpSink::start_with(secured(SmtpTls::Implicit))
        .await
        .unwrap();
    let untrusting = SmtpProvider::from_url(&sink.url(), identity(), TIMEOUT, 1).unwrap();
    let error = untrusting.send(&message(0)).await.unwrap_err();
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
    assert_eq!(sink.count(), 0);
}

#[tokio::test]
async fn a_relay_that_is_not_there_is_a_transient_failure() {
    let sink = SmtpSink::start().await.unwrap();
    let url = sink.url();
    drop(sink);
    let provider = SmtpProvider::from_url(&url, identity(), TIMEOUT, 1).unwrap();
    let error = provider.send(&message(0)).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
}
