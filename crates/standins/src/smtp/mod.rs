//! An SMTP server that stands in for Herald's mail relay.
//!
//! The e-mail channel hands messages to a relay over SMTP through `lettre`.
//! To test that path end to end we need something on the other side of the
//! socket that speaks RFC 5321 well enough for a pooled `lettre` transport,
//! keeps every message it accepted, and can be told to answer 451 or 550 so
//! the retry and give-up paths run against real SMTP replies.
//!
//! [`SmtpSink`] is that server. By default it speaks plain SMTP; started
//! with [`SmtpOptions`] it asks what a submission server asks: `STARTTLS`
//! (or TLS from the first byte) with a certificate made at start, and
//! `AUTH PLAIN`/`LOGIN` with a user and password. It runs one task per
//! connection and allows several transactions per connection.
//! Line length, recipient count and message size are bounded, so a
//! misbehaving client cannot make it grow without limit.

mod mail;
mod path;
mod security;
mod session;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

pub use mail::ReceivedMail;
pub use security::{SmtpOptions, SmtpTls};

use security::TlsIdentity;

/// More simultaneous connections than any test or load test needs, yet few
/// enough that a runaway client cannot exhaust file descriptors.
const MAX_CONNECTIONS: usize = 1024;

/// How the sink answers the transactions that start after [`SmtpSink::set_mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpMode {
    /// Store the message and answer `250`.
    Accept,
    /// Read the whole message, then answer `451` and store nothing.
    TempFail,
    /// Answer `550` to every `RCPT TO`.
    PermFail,
}

/// A running SMTP stand-in bound to `127.0.0.1` on a free port.
///
/// Clones share the same server. It stops, closing every open connection, when
/// the last clone is dropped.
#[derive(Clone)]
pub struct SmtpSink {
    server: Arc<Server>,
}

struct Server {
    addr: SocketAddr,
    mailbox: Arc<Mailbox>,
    security: Arc<Security>,
    accept_loop: JoinHandle<()>,
}

/// What the sessions ask of clients, and the certificate they serve.
struct Security {
    options: SmtpOptions,
    identity: Option<TlsIdentity>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // The accept loop owns the sessions' JoinSet, so aborting it ends them too.
        self.accept_loop.abort();
    }
}

impl SmtpSink {
    /// Binds `127.0.0.1:0` and starts serving plain SMTP on the current
    /// tokio runtime.
    pub async fn start() -> std::io::Result<SmtpSink> {
        SmtpSink::start_with(SmtpOptions::default()).await
    }

    /// Like [`start`](Self::start), asking clients for TLS and `AUTH` as
    /// `options` say.
    pub async fn start_with(options: SmtpOptions) -> std::io::Result<SmtpSink> {
        let identity = match options.tls {
            SmtpTls::None => None,
            SmtpTls::StartTls | SmtpTls::Implicit => Some(TlsIdentity::generate()?),
        };
        let security = Arc::new(Security { options, identity });
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let mailbox = Arc::new(Mailbox::default());
        let accept_loop = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&mailbox),
            Arc::clone(&security),
        ));
        tracing::debug!(%addr, "smtp stand-in listening");
        Ok(SmtpSink {
            server: Arc::new(Server {
                addr,
                mailbox,
                security,
                accept_loop,
            }),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The URL a client uses, in lettre's form (Herald's `HERALD_SMTP_URL`):
    /// `smtp://127.0.0.1:<port>` for plain SMTP, with `?tls=required` for
    /// STARTTLS, `smtps://` for TLS from the first byte, and the user and
    /// password when the sink asks for them.
    pub fn url(&self) -> String {
        let options = &self.server.security.options;
        let scheme = match options.tls {
            SmtpTls::Implicit => "smtps",
            SmtpTls::None | SmtpTls::StartTls => "smtp",
        };
        let login = options
            .credentials
            .as_ref()
            .map(|(user, password)| format!("{user}:{password}@"))
            .unwrap_or_default();
        let query = match options.tls {
            SmtpTls::StartTls => "?tls=required",
            SmtpTls::None | SmtpTls::Implicit => "",
        };
        format!("{scheme}://{login}{}{query}", self.server.addr)
    }

    /// The sink's self-signed certificate (PEM), for a client to trust;
    /// `None` without TLS.
    pub fn ca_pem(&self) -> Option<String> {
        self.server
            .security
            .identity
            .as_ref()
            .map(|identity| identity.ca_pem.clone())
    }

    /// Changes how transactions that begin (`MAIL FROM`) after this call are answered.
    pub fn set_mode(&self, mode: SmtpMode) {
        *lock(&self.server.mailbox.mode) = mode;
    }

    /// Answers every message's end of data `delay` late from now on, as a
    /// slow provider does; a message counts as accepted when answered.
    pub fn set_answer_delay(&self, delay: Duration) {
        *lock(&self.server.mailbox.answer_delay) = delay;
    }

    /// Every accepted message, in the order the sink accepted them.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.server.mailbox.received).clone()
    }

    pub fn count(&self) -> usize {
        lock(&self.server.mailbox.received).len()
    }

    /// Waits until at least `n` messages were accepted or `timeout` passed,
    /// then returns every accepted message (possibly fewer than `n`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        let arrived = &self.server.mailbox.arrived;
        loop {
            // Register interest before checking, so a delivery between the
            // check and the await still wakes us.
            let notified = arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count() >= n {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        self.messages()
    }

    /// Transactions that got as far as `RCPT TO`, whatever the answer was.
    /// Unlike [`count`](Self::count) this includes rejected ones, so a test can
    /// tell "retried and refused" from "never tried".
    pub fn attempts(&self) -> usize {
        self.server.mailbox.attempts.load(Ordering::SeqCst)
    }

    /// Connections accepted so far: how a test sees a client's pooling.
    pub fn connections(&self) -> usize {
        self.server.mailbox.connections.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSink")
            .field("addr", &self.server.addr)
            .field("count", &self.count())
            .field("attempts", &self.attempts())
            .finish()
    }
}

/// What the sessions share with the handle: the current mode and what arrived.
struct Mailbox {
    mode: Mutex<SmtpMode>,
    /// How long each message's end of data waits for its answer.
    answer_delay: Mutex<Duration>,
    received: Mutex<Vec<ReceivedMail>>,
    attempts: AtomicUsize,
    connections: AtomicUsize,
    arrived: Notify,
}

impl Default for Mailbox {
    fn default() -> Self {
        Mailbox {
            mode: Mutex::new(SmtpMode::Accept),
            answer_delay: Mutex::new(Duration::ZERO),
            received: Mutex::new(Vec::new()),
            attempts: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            arrived: Notify::new(),
        }
    }
}

impl Mailbox {
    fn mode(&self) -> SmtpMode {
        *lock(&self.mode)
    }

    fn answer_delay(&self) -> Duration {
        *lock(&self.answer_delay)
    }

    fn record_attempt(&self) {
        self.attempts.fetch_add(1, Ordering::SeqCst);
    }

    /// Stores `mail` and returns its 1-based position, used as the queue id.
    fn deliver(&self, mail: ReceivedMail) -> usize {
        let position = {
            let mut received = lock(&self.received);
            received.push(mail);
            received.len()
        };
        self.arrived.notify_waiters();
        position
    }
}

/// A panic while holding one of these locks cannot leave the data half
/// written (every critical section is a single push, read or store), so a
/// poisoned lock is still safe to use.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn accept_loop(listener: TcpListener, mailbox: Arc<Mailbox>, security: Arc<Security>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut sessions = JoinSet::new();
    loop {
        while sessions.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                mailbox.connections.fetch_add(1, Ordering::SeqCst);
                let mailbox = Arc::clone(&mailbox);
                let security = Arc::clone(&security);
                sessions.spawn(async move {
                    session::run(stream, peer, mailbox, security).await;
                    drop(permit);
                });
            }
            Err(error) => {
                // Usually out of file descriptors; back off instead of spinning.
                tracing::warn!(%error, "smtp stand-in failed to accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
