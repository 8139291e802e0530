//! Herald's own pool of SMTP connections, over lettre's SMTP client.
//!
//! lettre's pooled transport (0.11.23) costs about 40 ms per message on a
//! connection: it writes the message and its final `.` in two writes on a
//! socket with Nagle's algorithm on, so the second waits for the server's
//! delayed ACK (fixed upstream in lettre PR 1159, not yet released), and it
//! sends a `NOOP` before every reuse. Its sockets are made inside lettre, so
//! neither can be changed from outside. This pool opens the TCP connection
//! itself with `TCP_NODELAY`, hands it to lettre's connection (which still
//! speaks SMTP, STARTTLS and AUTH), and checks a connection with `NOOP` only
//! after it sat idle.

use std::io;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream};
use lettre::transport::smtp::Error as SmtpError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

use super::target::{Security, Target};

/// A connection idle longer than this is checked with `NOOP` before reuse
/// (a server may have closed it); one used more recently is reused as is.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(2);

/// What went wrong on the way to the server, before any message was sent.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {0}: {1}")]
    Tcp(String, #[source] io::Error),
    #[error("the SMTP server did not answer in time")]
    TimedOut,
    #[error("SMTP: {0}")]
    Smtp(#[source] SmtpError),
    #[error("the SMTP server does not offer STARTTLS, and the URL requires it")]
    NoStartTls,
    #[error("the SMTP connection pool is closed")]
    Closed,
}

/// Up to `connections` open SMTP connections to one relay.
pub struct SmtpPool {
    target: Target,
    timeout: Duration,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    slots: Semaphore,
}

impl SmtpPool {
    pub fn new(target: Target, timeout: Duration, connections: u32) -> SmtpPool {
        SmtpPool {
            target,
            timeout,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(connections.max(1) as usize),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends one message on a pooled connection, waiting for a free one.
    /// A connection that failed is closed, never reused.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), SendError> {
        let Ok(_slot) = self.slots.acquire().await else {
            return Err(SendError::Connect(ConnectError::Closed));
        };
        let mut conn = self.connection().await.map_err(SendError::Connect)?;
        match conn.send(envelope, message).await {
            Ok(_) => {
                self.park(conn);
                Ok(())
            }
            Err(e) => {
                conn.abort().await;
                Err(SendError::Smtp(e))
            }
        }
    }

    /// An idle connection (checked if it sat long), or a new one.
    async fn connection(&self) -> Result<AsyncSmtpConnection, ConnectError> {
        loop {
            let parked = lock(&self.idle).pop();
            let Some((mut conn, since)) = parked else {
                return self.connect().await;
            };
            if since.elapsed() < CHECK_AFTER_IDLE || conn.test_connected().await {
                return Ok(conn);
            }
            conn.abort().await;
        }
    }

    fn park(&self, conn: AsyncSmtpConnection) {
        if !conn.has_broken() {
            lock(&self.idle).push((conn, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, ConnectError> {
        tokio::time::timeout(self.timeout, self.open())
            .await
            .map_err(|_| ConnectError::TimedOut)?
    }

    async fn open(&self) -> Result<AsyncSmtpConnection, ConnectError> {
        let target = &self.target;
        let address = format!("{}:{}", target.host, target.port);
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| ConnectError::Tcp(address.clone(), e))?;
        // The point of this pool: the message's last write goes out at once.
        tcp.set_nodelay(true)
            .map_err(|e| ConnectError::Tcp(address, e))?;
        let mut conn = match (target.security, &target.tls) {
            (Security::Implicit, Some(tls)) => {
                #[allow(deprecated)] // lettre's one way to wrap a stream in its TLS
                let mut stream =
                    lettre::transport::smtp::client::AsyncNetworkStream::use_existing_tokio1(
                        Box::new(tcp),
                    );
                stream
                    .upgrade_tls(tls.clone())
                    .await
                    .map_err(ConnectError::Smtp)?;
                AsyncSmtpConnection::connect_with_transport(
                    Box::new(Encrypted(stream.compat())),
                    &target.hello,
                )
                .await
            }
            _ => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &target.hello).await,
        }
        .map_err(ConnectError::Smtp)?;
        if let (Security::StartTls { required }, Some(tls)) = (target.security, &target.tls) {
            if conn.can_starttls() {
                conn.starttls(tls.clone(), &target.hello)
                    .await
                    .map_err(ConnectError::Smtp)?;
            } else if required {
                conn.abort().await;
                return Err(ConnectError::NoStartTls);
            }
        }
        if let Some(credentials) = &target.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(ConnectError::Smtp)?;
        }
        Ok(conn)
    }
}

/// Why a message did not go.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Connect(ConnectError),
    #[error("SMTP: {0}")]
    Smtp(#[source] SmtpError),
}

impl SendError {
    /// Whether trying again later cannot help: the server refused this
    /// message, or the settings cannot work (no STARTTLS, a refused login).
    pub fn is_permanent(&self) -> bool {
        match self {
            SendError::Smtp(e) | SendError::Connect(ConnectError::Smtp(e)) => e.is_permanent(),
            SendError::Connect(ConnectError::NoStartTls) => true,
            SendError::Connect(_) => false,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A stream lettre encrypted (TLS from the first byte), as a stream lettre's
/// connection can be built on: lettre wraps its TLS in a type that speaks
/// the `futures` IO traits, and takes streams that speak tokio's.
#[allow(deprecated)]
#[derive(Debug)]
struct Encrypted(Compat<lettre::transport::smtp::client::AsyncNetworkStream>);

impl AsyncRead for Encrypted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Encrypted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Encrypted {
    fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.get_ref().peer_addr()
    }
}
