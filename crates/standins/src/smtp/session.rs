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

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::path::parse_path;
use super::{Mailbox, ReceivedMail, SmtpMode};

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

#[tracing::instrument(name = "smtp_session", skip_all, fields(%peer))]
pub(super) async fn run(stream: TcpStream, peer: SocketAddr, mailbox: Arc<Mailbox>) {
    // Replies are small and each one is awaited by the client; Nagle would
    // only add delayed-ACK stalls.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not disable Nagle");
    }
    let mut session = Session {
        conn: BufReader::new(stream),
        mailbox,
        greeted: false,
        transaction: None,
    };
    match session.serve().await {
        Ok(()) => tracing::debug!("smtp session closed"),
        Err(error) => tracing::debug!(%error, "smtp session ended by an IO error"),
    }
}

struct Session {
    conn: BufReader<TcpStream>,
    mailbox: Arc<Mailbox>,
    greeted: bool,
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
            format!(
                "250-{SERVER_NAME}\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n\
                 250 SIZE {MAX_MESSAGE_SIZE}"
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
        self.conn.get_mut().write_all(&wire).await
    }
}
