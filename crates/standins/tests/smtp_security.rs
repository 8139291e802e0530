//! The SMTP stand-in asking what a submission server asks: STARTTLS before
//! mail, `AUTH` only once encrypted, and the right user and password. Checked
//! by hand on the wire; lettre's side of TLS and AUTH is tested in
//! herald-providers against this same stand-in.

mod raw;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use herald_standins::smtp::{SmtpOptions, SmtpSink, SmtpTls};
use raw::RawClient;

fn options(tls: SmtpTls) -> SmtpOptions {
    SmtpOptions {
        tls,
        credentials: Some(("mailer".into(), "s3cret".into())),
    }
}

#[tokio::test]
async fn a_starttls_server_takes_no_mail_and_no_password_in_the_clear() {
    let sink = SmtpSink::start_with(options(SmtpTls::StartTls))
        .await
        .unwrap();
    assert_eq!(
        sink.url(),
        format!(
            "smtp://mailer:s3cret@127.0.0.1:{}?tls=required",
            sink.addr().port()
        )
    );
    assert!(sink
        .ca_pem()
        .is_some_and(|pem| pem.contains("BEGIN CERTIFICATE")));
    let (mut client, _) = RawClient::connect(&sink).await;
    let ehlo = client.command("EHLO client.test").await;
    assert!(ehlo.contains("250-STARTTLS\r\n"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "no AUTH before TLS: {ehlo}");
    assert!(client
        .command("MAIL FROM:<a@x.test>")
        .await
        .starts_with("530 "));
    let plain = BASE64.encode(b"\0mailer\0s3cret");
    assert!(client
        .command(&format!("AUTH PLAIN {plain}"))
        .await
        .starts_with("538 "));
    assert!(client.command("STARTTLS now").await.starts_with("501 "));
    assert!(client.command("STARTTLS").await.starts_with("220 "));
    assert_eq!(sink.count(), 0);
}

#[tokio::test]
async fn auth_plain_and_login_take_the_right_password_and_refuse_a_wrong_one() {
    let sink = SmtpSink::start_with(SmtpOptions {
        tls: SmtpTls::None,
        credentials: Some(("mailer".into(), "s3cret".into())),
    })
    .await
    .unwrap();
    let (mut client, _) = RawClient::connect(&sink).await;
    assert!(
        client.command("AUTH PLAIN").await.starts_with("503 "),
        "EHLO first"
    );
    let ehlo = client.command("EHLO client.test").await;
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN\r\n"), "{ehlo}");
    assert!(client
        .command("MAIL FROM:<a@x.test>")
        .await
        .starts_with("530 "));
    let wrong = BASE64.encode(b"\0mailer\0guess");
    assert!(client
        .command(&format!("AUTH PLAIN {wrong}"))
        .await
        .starts_with("535 "));
    assert!(client.command("AUTH CRAM-MD5").await.starts_with("504 "));
    // LOGIN, step by step.
    assert!(client.command("AUTH LOGIN").await.starts_with("334 "));
    assert!(client
        .command(&BASE64.encode(b"mailer"))
        .await
        .starts_with("334 "));
    assert!(client
        .command(&BASE64.encode(b"s3cret"))
        .await
        .starts_with("235 "));
    assert!(
        client
            .command(&format!("AUTH PLAIN {wrong}"))
            .await
            .starts_with("503 "),
        "already authenticated"
    );
    assert!(client
        .command("MAIL FROM:<a@x.test>")
        .await
        .starts_with("250 "));
    // PLAIN with the response on the next line, on a second connection.
    let (mut second, _) = RawClient::connect(&sink).await;
    second.command("EHLO client.test").await;
    assert!(second.command("AUTH PLAIN").await.starts_with("334"));
    let right = BASE64.encode(b"\0mailer\0s3cret");
    assert!(second.command(&right).await.starts_with("235 "));
    assert_eq!(sink.connections(), 2);
}
