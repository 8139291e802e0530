//! One SMTP connection: the RFC 5321 command loop behind [`super::SmtpSink`].
//!
//! A session reads one command line at a time, answers it, and keeps the
//! state of the current mail transaction. Every read is bounded (command
//! lines, message data, recipients, idle time), and nothing a client sends can
//! make it panic: bad input gets the reply code a real relay would give.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::path::parse_path;
use super::security::{login_line, plain_credentials, SmtpTls};
use super::{Mailbox, ReceivedMail, Security, SmtpMode};

const SERVER_NAME: &str = "smtp.standin.herald.invalid";
/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets, CRLF included.
const MAX_COMMAND_LINE: usize = 512;
/// Advertised with SIZE. Larger messages are read to the end but not kept.
const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;
/// RFC 5321 §4.5.3.1.8: the minimum a server must accept, and plenty for tests.
const MAX_RECIPIENTS: usize = 100;
/// Message data is read in pieces of at most this size, however long its lines.
const DATA_CHUNK: usize = 8 * 1024;
/// RFC 5321 §4.5.3.2.7 asks servers to wait at least 5 minutes for a command.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection, plain or encrypted.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[tracing::instrument(name = "smtp_session", skip_all, fields(%peer))]
pub(super) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    mailbox: Arc<Mailbox>,
    security: Arc<Security>,
) {
    // Replies are small and each one is awaited by the client; Nagle would
    // only add delayed-ACK stalls.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not disable Nagle");
    }
    let (conn, encrypted): (Box<dyn Io>, bool) = match (&security.identity, security.options.tls) {
        (Some(identity), SmtpTls::Implicit) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, identity.acceptor.accept(stream)).await {
                Ok(Ok(tls)) => (Box::new(tls), true),
                Ok(Err(error)) => {
                    tracing::debug!(%error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    return;
                }
            }
        }
        _ => (Box::new(stream), false),
    };
    let mut session = Session {
        conn: BufReader::new(conn),
        mailbox,
        security,
        greeted: false,
        encrypted,
        authenticated: None,
        transaction: None,
    };
    match session.serve().await {
        Ok(()) => tracing::debug!("smtp session closed"),
        Err(error) => tracing::debug!(%error, "smtp session ended by an IO error"),
    }
}

struct Session {
    conn: BufReader<Box<dyn Io>>,
    mailbox: Arc<Mailbox>,
    security: Arc<Security>,
    greeted: bool,
    /// TLS from the first byte, or since `STARTTLS`.
    encrypted: bool,
    /// The user an `AUTH` succeeded for.
    authenticated: Option<String>,
    transaction: Option<Transaction>,
}

/// Everything between `MAIL FROM` and the end of `DATA` (or `RSET`).
struct Transaction {
    mail_from: String,
    rcpt_to: Vec<String>,
    /// Read once at `MAIL FROM`, so a mode change never splits a transaction.
    mode: SmtpMode,
    /// Whether a `RCPT TO` was seen, accepted or not; the sink counts those.
    attempted: bool,
}

enum Line {
    Command(String),
    TooLong,
    Closed,
}

enum Next {
    Continue,
    Quit,
}

impl Session {
    async fn serve(&mut self) -> io::Result<()> {
        self.reply(&format!("220 {SERVER_NAME} ESMTP Herald stand-in ready"))
            .await?;
        loop {
            let Ok(line) = tokio::time::timeout(IDLE_TIMEOUT, self.read_command()).await else {
                return self.reply("421 4.4.2 Idle for too long, closing").await;
            };
            let next = match line? {
                Line::Closed => return Ok(()),
                Line::TooLong => {
                    self.reply("500 5.5.2 Line too long").await?;
                    Next::Continue
                }
                Line::Command(command) => self.execute(&command).await?,
            };
            if let Next::Quit = next {
                return Ok(());
            }
        }
    }

    async fn execute(&mut self, line: &str) -> io::Result<Next> {
        let (verb, arg) = match line.split_once(' ') {
            Some((verb, arg)) => (verb, arg.trim()),
            None => (line.trim(), ""),
        };
        let verb = verb.to_ascii_uppercase();
        tracing::trace!(%verb, "smtp command");
        let reply: Cow<'static, str> = match verb.as_str() {
            "EHLO" => self.hello(arg, true),
            "HELO" => self.hello(arg, false),
            "MAIL" => self.mail(arg),
            "RCPT" => self.rcpt(arg),
            "DATA" => {
                self.data(arg).await?;
                return Ok(Next::Continue);
            }
            "RSET" => {
                self.transaction = None;
                "250 2.0.0 OK".into()
            }
            "NOOP" => "250 2.0.0 OK".into(),
            "VRFY" if arg.is_empty() => "501 5.5.4 Syntax: VRFY <address>".into(),
            "VRFY" => "252 2.5.0 Cannot VRFY user, but will accept message".into(),
            "QUIT" => {
                self.reply("221 2.0.0 Bye").await?;
                return Ok(Next::Quit);
            }
            "STARTTLS" if self.security.options.tls == SmtpTls::StartTls => {
                return self.start_tls(arg).await;
            }
            "AUTH" if self.security.options.credentials.is_some() => {
                self.auth(arg).await?;
                return Ok(Next::Continue);
            }
            "EXPN" | "HELP" | "STARTTLS" | "AUTH" | "BDAT" | "ETRN" | "TURN" => {
                "502 5.5.1 Command not implemented".into()
            }
            _ => "500 5.5.2 Command not recognized".into(),
        };
        self.reply(&reply).await?;
        Ok(Next::Continue)
    }

    fn hello(&mut self, domain: &str, extended: bool) -> Cow<'static, str> {
        if domain.is_empty() {
            return "501 5.5.4 Syntax: EHLO <domain>".into();
        }
        self.greeted = true;
        self.transaction = None;
        if extended {
            let mut offers = String::new();
            if self.security.options.tls == SmtpTls::StartTls && !self.encrypted {
                offers.push_str("250-STARTTLS\r\n");
            }
            if self.may_authenticate() {
                offers.push_str("250-AUTH PLAIN LOGIN\r\n");
            }
            format!(
                "250-{SERVER_NAME}\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n\
                 {offers}250 SIZE {MAX_MESSAGE_SIZE}"
            )
            .into()
        } else {
            format!("250 {SERVER_NAME}").into()
        }
    }

    fn mail(&mut self, arg: &str) -> Cow<'static, str> {
        if !self.greeted {
            return "503 5.5.1 Send EHLO or HELO first".into();
        }
        if self.security.options.tls == SmtpTls::StartTls && !self.encrypted {
            return "530 5.7.0 Must issue a STARTTLS command first".into();
        }
        if self.security.options.credentials.is_some() && self.authenticated.is_none() {
            return "530 5.7.0 Authentication required".into();
        }
        if self.transaction.is_some() {
            return "503 5.5.1 Nested MAIL command".into();
        }
        let Some((mail_from, params)) = parse_path(arg, "FROM:") else {
            return "501 5.5.4 Syntax: MAIL FROM:<address>".into();
        };
        for param in params.split_whitespace() {
            let (keyword, value) = param.split_once('=').unwrap_or((param, ""));
            match keyword.to_ascii_uppercase().as_str() {
                "BODY"
                    if ["7BIT", "8BITMIME"]
                        .iter()
                        .any(|body| value.eq_ignore_ascii_case(body)) => {}
                "BODY" => return "501 5.5.4 Unsupported BODY value".into(),
                "SIZE" => match value.parse::<usize>() {
                    Ok(size) if size > MAX_MESSAGE_SIZE => {
                        return "552 5.3.4 Message size exceeds fixed maximum".into()
                    }
                    Ok(_) => {}
                    Err(_) => return "501 5.5.4 Invalid SIZE value".into(),
                },
                _ => return "555 5.5.4 MAIL parameter not recognized".into(),
            }
        }
        self.transaction = Some(Transaction {
            mail_from,
            rcpt_to: Vec::new(),
            mode: self.mailbox.mode(),
            attempted: false,
        });
        "250 2.1.0 OK".into()
    }

    fn rcpt(&mut self, arg: &str) -> Cow<'static, str> {
        let Some(transaction) = self.transaction.as_mut() else {
            return "503 5.5.1 Send MAIL first".into();
        };
        let Some((rcpt_to, params)) = parse_path(arg, "TO:") else {
            return "501 5.5.4 Syntax: RCPT TO:<address>".into();
        };
        if rcpt_to.is_empty() {
            return "501 5.1.3 Empty forward-path".into();
        }
        if !params.trim().is_empty() {
            return "555 5.5.4 RCPT parameters not recognized".into();
        }
        if !transaction.attempted {
            transaction.attempted = true;
            self.mailbox.record_attempt();
        }
        if transaction.mode == SmtpMode::PermFail {
            return "550 5.1.1 Mailbox unavailable (stand-in set to PermFail)".into();
        }
        if transaction.rcpt_to.len() >= MAX_RECIPIENTS {
            return "452 4.5.3 Too many recipients".into();
        }
        transaction.rcpt_to.push(rcpt_to);
        "250 2.1.5 OK".into()
    }

    async fn data(&mut self, arg: &str) -> io::Result<()> {
        if !arg.is_empty() {
            return self.reply("501 5.5.4 DATA takes no arguments").await;
        }
        let transaction = match self.transaction.take() {
            None => return self.reply("503 5.5.1 Send MAIL and RCPT first").await,
            Some(transaction) if transaction.rcpt_to.is_empty() => {
                let refusal = if transaction.attempted {
                    "554 5.5.1 No valid recipients"
                } else {
                    "503 5.5.1 Send RCPT first"
                };
                self.transaction = Some(transaction);
                return self.reply(refusal).await;
            }
            Some(transaction) => transaction,
        };
        self.reply("354 Start mail input; end with <CRLF>.<CRLF>")
            .await?;
        let data = self.read_data().await?;
        let delay = self.mailbox.answer_delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let reply: Cow<'static, str> = match (data, transaction.mode) {
            (None, _) => "552 5.3.4 Message exceeds fixed maximum size".into(),
            (Some(_), SmtpMode::TempFail) => {
                "451 4.3.0 Temporary failure (stand-in set to TempFail)".into()
            }
            (Some(data), SmtpMode::Accept | SmtpMode::PermFail) => {
                let queued = self.mailbox.deliver(ReceivedMail {
                    mail_from: transaction.mail_from,
                    rcpt_to: transaction.rcpt_to,
                    data,
                    received_at: Instant::now(),
                    encrypted: self.encrypted,
                    authenticated_as: self.authenticated.clone(),
                });
                format!("250 2.0.0 OK queued as {queued}").into()
            }
        };
        self.reply(&reply).await
    }

    /// Reads message data up to the line holding a lone ".", undoing
    /// dot-stuffing (RFC 5321 §4.5.2). An oversized message is still read to
    /// its end, so the session stays in step with the client, but is not kept
    /// and comes back as `None`.
    async fn read_data(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut data = Vec::new();
        let mut oversize = false;
        let mut chunk = Vec::with_capacity(DATA_CHUNK);
        // Lines end in CRLF only. A line longer than a chunk is read in
        // pieces, and one piece may end between its CR and LF.
        let mut at_line_start = true;
        let mut after_cr = false;
        loop {
            chunk.clear();
            let read = tokio::time::timeout(IDLE_TIMEOUT, self.read_piece(&mut chunk, DATA_CHUNK))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            if read == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let starts_line = at_line_start;
            at_line_start = chunk.ends_with(b"\r\n") || (after_cr && chunk == b"\n");
            after_cr = chunk.ends_with(b"\r");
            if starts_line && chunk == b".\r\n" {
                return Ok((!oversize).then_some(data));
            }
            let piece = match chunk.strip_prefix(b".") {
                Some(unstuffed) if starts_line => unstuffed,
                _ => &chunk[..],
            };
            if !oversize && data.len() + piece.len() > MAX_MESSAGE_SIZE {
                oversize = true;
                data = Vec::new();
            }
            if !oversize {
                data.extend_from_slice(piece);
            }
        }
    }

    /// Reads one command line, without its line ending. A line longer than
    /// RFC 5321 allows is skipped to its end without being kept.
    async fn read_command(&mut self) -> io::Result<Line> {
        let mut line = Vec::new();
        self.read_piece(&mut line, MAX_COMMAND_LINE).await?;
        if line.ends_with(b"\n") {
            line.pop();
            if line.ends_with(b"\r") {
                line.pop();
            }
            return Ok(Line::Command(String::from_utf8_lossy(&line).into_owned()));
        }
        if line.len() < MAX_COMMAND_LINE {
            // The client closed the connection, perhaps mid-line.
            return Ok(Line::Closed);
        }
        loop {
            line.clear();
            let read = self.read_piece(&mut line, MAX_COMMAND_LINE).await?;
            if read == 0 {
                return Ok(Line::Closed);
            }
            if line.ends_with(b"\n") {
                return Ok(Line::TooLong);
            }
        }
    }

    /// Appends to `buf` up to and including the next LF, but never more than
    /// `limit` bytes, and returns how many were read (0 at end of stream).
    async fn read_piece(&mut self, buf: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
        (&mut self.conn)
            .take(limit as u64)
            .read_until(b'\n', buf)
            .await
    }

    async fn reply(&mut self, reply: &str) -> io::Result<()> {
        // One write per reply, so a reply never spans two packets needlessly.
        let mut wire = Vec::with_capacity(reply.len() + 2);
        wire.extend_from_slice(reply.as_bytes());
        wire.extend_from_slice(b"\r\n");
        let conn = self.conn.get_mut();
        conn.write_all(&wire).await?;
        // TLS holds what it encrypts until flushed.
        conn.flush().await
    }

    /// `AUTH` is offered once the connection is as safe as the sink wants
    /// it: encrypted when the sink has TLS.
    fn may_authenticate(&self) -> bool {
        self.security.options.credentials.is_some()
            && (self.encrypted || self.security.options.tls == SmtpTls::None)
    }

    /// `STARTTLS` (RFC 3207): after `220`, the TLS handshake; then the
    /// session starts over, as if just connected, but encrypted.
    async fn start_tls(&mut self, arg: &str) -> io::Result<Next> {
        let refusal = if !arg.is_empty() {
            Some("501 5.5.4 STARTTLS takes no arguments")
        } else if self.encrypted {
            Some("503 5.5.1 TLS already active")
        } else {
            None
        };
        let identity = match (refusal, &self.security.identity) {
            (Some(refusal), _) => {
                self.reply(refusal).await?;
                return Ok(Next::Continue);
            }
            (None, None) => {
                self.reply("454 4.7.0 TLS not available").await?;
                return Ok(Next::Continue);
            }
            (None, Some(identity)) => identity.acceptor.clone(),
        };
        self.reply("220 2.0.0 Ready to start TLS").await?;
        let (placeholder, _) = tokio::io::duplex(1);
        let plain = std::mem::replace(&mut self.conn, BufReader::new(Box::new(placeholder)));
        // Anything the client sent after STARTTLS, before the handshake, is
        // dropped with the buffer: RFC 3207 forbids pipelining past it.
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, identity.accept(plain.into_inner()))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        self.conn = BufReader::new(Box::new(tls));
        self.encrypted = true;
        self.greeted = false;
        self.authenticated = None;
        self.transaction = None;
        Ok(Next::Continue)
    }

    /// `AUTH PLAIN` or `AUTH LOGIN` (RFC 4954), with or without an initial
    /// response.
    async fn auth(&mut self, arg: &str) -> io::Result<()> {
        let refusal = if !self.greeted {
            Some("503 5.5.1 Send EHLO first")
        } else if !self.may_authenticate() {
            Some("538 5.7.11 Encryption required for requested authentication mechanism")
        } else if self.authenticated.is_some() {
            Some("503 5.5.1 Already authenticated")
        } else if self.transaction.is_some() {
            Some("503 5.5.1 AUTH not allowed during a mail transaction")
        } else {
            None
        };
        if let Some(refusal) = refusal {
            return self.reply(refusal).await;
        }
        let (mechanism, initial) = match arg.split_once(' ') {
            Some((mechanism, initial)) => (mechanism.to_ascii_uppercase(), Some(initial.trim())),
            None => (arg.to_ascii_uppercase(), None),
        };
        let offered = match (mechanism.as_str(), initial) {
            ("PLAIN", Some(response)) => plain_credentials(response),
            ("PLAIN", None) => {
                self.reply("334 ").await?;
                self.challenge_answer()
                    .await?
                    .as_deref()
                    .and_then(plain_credentials)
            }
            ("LOGIN", initial) => {
                let user = match initial {
                    Some(user) => login_line(user),
                    None => {
                        self.reply("334 VXNlcm5hbWU6").await?;
                        self.challenge_answer()
                            .await?
                            .as_deref()
                            .and_then(login_line)
                    }
                };
                match user {
                    Some(user) => {
                        self.reply("334 UGFzc3dvcmQ6").await?;
                        self.challenge_answer()
                            .await?
                            .as_deref()
                            .and_then(login_line)
                            .map(|password| (user, password))
                    }
                    None => None,
                }
            }
            _ => {
                return self
                    .reply("504 5.5.4 Unrecognized authentication type")
                    .await
            }
        };
        match offered {
            Some(offered) if Some(&offered) == self.security.options.credentials.as_ref() => {
                self.authenticated = Some(offered.0);
                self.reply("235 2.7.0 Authentication successful").await
            }
            _ => {
                self.reply("535 5.7.8 Authentication credentials invalid")
                    .await
            }
        }
    }

    /// One line answering a `334` challenge; `None` when the client gave up
    /// (`*`) or sent something unreadable.
    async fn challenge_answer(&mut self) -> io::Result<Option<String>> {
        match self.read_command().await? {
            Line::Command(line) if line.trim() != "*" => Ok(Some(line)),
            Line::Closed => Err(io::ErrorKind::UnexpectedEof.into()),
            _ => Ok(None),
        }
    }
}
