//! The SMTP stand-in, driven by the client Herald uses in production (`lettre`)
//! and by a raw socket for what a well-behaved client never sends.

use std::collections::HashSet;
use std::time::Duration;

use herald_standins::smtp::{SmtpMode, SmtpSink};
use lettre::message::{Message, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

mod raw;

use raw::RawClient;

const WAIT: Duration = Duration::from_secs(10);

fn transport(sink: &SmtpSink) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.addr().port())
        .build()
}

fn plain_message(message_id: &str, body: &str) -> Message {
    Message::builder()
        .from("Herald <noreply@herald.test>".parse().unwrap())
        .to("ada@example.test".parse().unwrap())
        .subject("Plain")
        .message_id(Some(format!("<{message_id}>")))
        .body(body.to_owned())
        .unwrap()
}

/// What the sink must store for `message`: its bytes plus the CRLF that
/// ends the last line before lettre's closing dot.
fn as_stored(message: &Message) -> Vec<u8> {
    [message.formatted().as_slice(), b"\r\n"].concat()
}

#[tokio::test]
async fn lettre_delivers_one_multipart_message_whose_subject_and_bodies_parse_back_unchanged() {
    let sink = SmtpSink::start().await.unwrap();
    assert_eq!(
        sink.url(),
        format!("smtp://127.0.0.1:{}", sink.addr().port())
    );
    let subject = "Votre reçu est prêt — 東京 ✓";
    let text = "Bonjour Zoë,\r\nvotre commande est partie.\r\n";
    let html = "<p>Bonjour Zoë,</p><p>votre commande est partie.</p>";
    let email = Message::builder()
        .from("Herald <noreply@herald.test>".parse().unwrap())
        .to("Zoë <zoe@example.test>".parse().unwrap())
        .cc("ops@example.test".parse().unwrap())
        .subject(subject)
        .multipart(MultiPart::alternative_plain_html(
            text.to_owned(),
            html.to_owned(),
        ))
        .unwrap();
    let expected = as_stored(&email);

    transport(&sink)
        .send(email)
        .await
        .expect("the sink accepts it");

    let received = sink.messages();
    assert_eq!(received.len(), 1, "sent exactly once");
    let mail = &received[0];
    assert_eq!(mail.mail_from, "noreply@herald.test");
    assert_eq!(mail.rcpt_to, ["zoe@example.test", "ops@example.test"]);
    assert_eq!(mail.data, expected);
    assert_eq!(mail.subject().as_deref(), Some(subject));
    assert_eq!(mail.header("subject").as_deref(), Some(subject));
    assert_eq!(mail.text_body().as_deref(), Some(text));
    assert_eq!(mail.html_body().as_deref(), Some(html));
    assert_eq!(sink.attempts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_sends_through_one_pooled_transport_each_arrive_exactly_once() {
    let sink = SmtpSink::start().await.unwrap();
    let transport = transport(&sink);
    let mut sends = JoinSet::new();
    for i in 0..50 {
        let transport = transport.clone();
        let email = plain_message(&format!("{i}.burst@herald.test"), "hello");
        sends.spawn(async move { transport.send(email).await });
    }
    while let Some(sent) = sends.join_next().await {
        sent.unwrap().expect("the sink accepts every message");
    }

    let received = sink.wait_for(50, WAIT).await;
    let ids: Vec<String> = received
        .iter()
        .map(|mail| mail.header("Message-ID").expect("has a Message-ID"))
        .collect();
    let distinct: HashSet<&String> = ids.iter().collect();
    let expected: HashSet<String> = (0..50).map(|i| format!("{i}.burst@herald.test")).collect();
    assert_eq!(ids.len(), 50, "no duplicates: {ids:?}");
    assert_eq!(distinct, expected.iter().collect());
    assert_eq!(sink.attempts(), 50);
}

#[tokio::test]
async fn a_body_line_that_begins_with_a_dot_survives_dot_stuffing() {
    let sink = SmtpSink::start().await.unwrap();
    let body = "first\r\n.starts with a dot\r\n..two dots\r\n.\r\nlast line\r\n";
    let email = plain_message("dots@herald.test", body);
    let expected = as_stored(&email);

    transport(&sink).send(email).await.unwrap();

    let received = sink.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].data, expected);
    // lettre sends CRLF.CRLF after a body that already ends in CRLF, so any
    // relay, this one included, stores one more empty line.
    assert_eq!(received[0].text_body(), Some(format!("{body}\r\n")));
}

#[tokio::test]
async fn wait_for_wakes_when_a_message_arrives_and_gives_up_at_its_timeout() {
    let sink = SmtpSink::start().await.unwrap();
    assert!(sink.wait_for(1, Duration::from_millis(20)).await.is_empty());

    let transport = transport(&sink);
    let send = tokio::spawn(async move {
        transport
            .send(plain_message("late@herald.test", "hi"))
            .await
    });
    let received = sink.wait_for(1, WAIT).await;

    assert_eq!(received.len(), 1);
    send.await.unwrap().unwrap();
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn a_temporary_failure_stores_nothing_and_the_retry_arrives_once() {
    let sink = SmtpSink::start().await.unwrap();
    let transport = transport(&sink);
    let email = plain_message("retry@herald.test", "try again");
    sink.set_mode(SmtpMode::TempFail);

    let error = transport.send(email.clone()).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert_eq!(sink.count(), 0);
    assert_eq!(sink.attempts(), 1);

    sink.set_mode(SmtpMode::Accept);
    transport
        .send(email.clone())
        .await
        .expect("the retry is accepted");
    let received = sink.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].data, as_stored(&email));
    assert_eq!(sink.attempts(), 2);
}

#[tokio::test]
async fn a_permanent_failure_is_reported_as_permanent_and_stores_nothing() {
    let sink = SmtpSink::start().await.unwrap();
    sink.set_mode(SmtpMode::PermFail);

    let error = transport(&sink)
        .send(plain_message("gone@herald.test", "no such user"))
        .await
        .unwrap_err();

    assert!(error.is_permanent(), "{error}");
    assert_eq!(sink.count(), 0);
    assert_eq!(sink.attempts(), 1);
}

/// A client that writes raw command lines and reads whole replies.
#[tokio::test]
async fn bad_commands_get_smtp_errors_and_the_session_carries_on_until_quit() {
    let sink = SmtpSink::start().await.unwrap();
    let (mut client, greeting) = RawClient::connect(&sink).await;
    assert!(greeting.starts_with("220 "), "{greeting}");

    assert!(client
        .command("FLY me to the moon")
        .await
        .starts_with("500 "));
    assert!(client.command("").await.starts_with("500 "));
    assert!(client
        .command("MAIL FROM:<a@x.test>")
        .await
        .starts_with("503 "));
    let ehlo = client.command("EHLO client.test").await;
    assert!(
        ehlo.starts_with("250-") && ehlo.contains("250-8BITMIME\r\n"),
        "{ehlo}"
    );
    assert!(client.command("DATA").await.starts_with("503 "));
    assert!(client
        .command("RCPT TO:<b@x.test>")
        .await
        .starts_with("503 "));
    assert!(client
        .command("MAIL FROM:a@x.test")
        .await
        .starts_with("501 "));
    assert!(client
        .command("MAIL FROM:<a@x.test> X=1")
        .await
        .starts_with("555 "));
    assert!(client.command("AUTH PLAIN").await.starts_with("502 "));
    let long = format!("NOOP {}", "x".repeat(100_000));
    assert!(client.command(&long).await.starts_with("500 "));
    client.send(b"\xff\xfe\x00 not utf-8\r\n").await;
    assert!(client.reply().await.starts_with("500 "));
    assert!(client.command("noop").await.starts_with("250 "));
    assert!(client.command("VRFY ada").await.starts_with("252 "));
    assert!(client.command("QUIT").await.starts_with("221 "));

    let mut rest = Vec::new();
    client.conn.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "the server closes after QUIT");
    assert_eq!(sink.count(), 0);
    assert_eq!(sink.attempts(), 0);
}

#[tokio::test]
async fn one_connection_carries_several_transactions_and_rset_abandons_one() {
    let sink = SmtpSink::start().await.unwrap();
    let (mut client, _) = RawClient::connect(&sink).await;
    assert!(client.command("HELO client.test").await.starts_with("250 "));

    assert!(client
        .command("MAIL FROM:<a@x.test>")
        .await
        .starts_with("250 "));
    assert!(client
        .command("RCPT TO:<b@x.test>")
        .await
        .starts_with("250 "));
    assert!(client.command("RSET").await.starts_with("250 "));
    assert!(client.command("DATA").await.starts_with("503 "));

    for n in 1..=2 {
        let from = format!("MAIL FROM:<a{n}@x.test> BODY=8BITMIME SIZE=100");
        assert!(client.command(&from).await.starts_with("250 "));
        assert!(client
            .command("RCPT TO:<b@x.test>")
            .await
            .starts_with("250 "));
        assert!(client
            .command("RCPT TO:<c@x.test>")
            .await
            .starts_with("250 "));
        assert!(client.command("DATA").await.starts_with("354 "));
        client
            .send(b"Subject: dots\r\n\r\n..leading\r\n.\r\n")
            .await;
        assert!(client.reply().await.starts_with("250 "));
    }

    let received = sink.messages();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].mail_from, "a2@x.test");
    assert_eq!(received[1].rcpt_to, ["b@x.test", "c@x.test"]);
    assert_eq!(received[1].data, b"Subject: dots\r\n\r\n.leading\r\n");
    assert_eq!(sink.attempts(), 3, "the abandoned transaction reached RCPT");
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused_with_552_and_not_stored() {
    let sink = SmtpSink::start().await.unwrap();
    let (mut client, _) = RawClient::connect(&sink).await;
    assert!(client
        .command("EHLO client.test")
        .await
        .contains("250 SIZE 10485760"));
    let declared = client.command("MAIL FROM:<a@x.test> SIZE=20000000").await;
    assert!(declared.starts_with("552 "), "{declared}");

    assert!(client
        .command("MAIL FROM:<a@x.test>")
        .await
        .starts_with("250 "));
    assert!(client
        .command("RCPT TO:<b@x.test>")
        .await
        .starts_with("250 "));
    assert!(client.command("DATA").await.starts_with("354 "));
    let line = format!("{}\r\n", "a".repeat(1022));
    for _ in 0..(11 * 1024) {
        client.send(line.as_bytes()).await;
    }
    client.send(b".\r\n").await;
    let refused = client.reply().await;

    assert!(refused.starts_with("552 "), "{refused}");
    assert!(client.command("NOOP").await.starts_with("250 "));
    assert_eq!(sink.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_answers_each_message_late() {
    let sink = SmtpSink::start().await.unwrap();
    sink.set_answer_delay(Duration::from_millis(300));
    let transport = transport(&sink);
    let started = tokio::time::Instant::now();
    let mut sends = JoinSet::new();
    for i in 0..4 {
        let (transport, email) = (
            transport.clone(),
            plain_message(&format!("slow-{i}@herald.test"), "slow"),
        );
        sends.spawn(async move { transport.send(email).await });
    }
    while let Some(sent) = sends.join_next().await {
        sent.unwrap().expect("accepted, late");
    }
    let took = started.elapsed();
    assert_eq!(sink.count(), 4);
    assert!(
        took >= Duration::from_millis(300),
        "answered late: {took:?}"
    );
}
