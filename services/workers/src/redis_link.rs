//! A Redis connection that is never required: it connects lazily, and when
//! Redis cannot be reached it says so in a log line and a metric, and the
//! caller falls back (to the database claim, to a local rate limit).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisError;
use tokio::sync::Mutex;

#[derive(Clone)]
pub struct RedisLink {
    client: redis::Client,
    state: Arc<Mutex<LinkState>>,
    timeout: Duration,
}

#[derive(Default)]
struct LinkState {
    conn: Option<ConnectionManager>,
    /// After a failed connect, don't try again before this, so a dead Redis
    /// costs one timeout now and then, not one per message.
    retry_at: Option<Instant>,
    last_warning: Option<Instant>,
}

impl RedisLink {
    /// Parses the URL; does not connect.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RedisError> {
        Ok(RedisLink {
            client: redis::Client::open(url)?,
            state: Arc::default(),
            timeout,
        })
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        let mut state = self.state.lock().await;
        if let Some(conn) = &state.conn {
            return Some(conn.clone());
        }
        if state.retry_at.is_some_and(|at| Instant::now() < at) {
            return None;
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        match tokio::time::timeout(
            self.timeout * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        {
            Ok(Ok(conn)) => {
                state.conn = Some(conn.clone());
                state.retry_at = None;
                Some(conn)
            }
            Ok(Err(e)) => {
                warn(&mut state, &e.to_string());
                None
            }
            Err(_) => {
                warn(&mut state, "connect timed out");
                None
            }
        }
    }

    /// Runs `op` on a connection. `None` when Redis is unreachable or the
    /// command failed; the failure is logged and counted under `purpose`.
    pub async fn run<T, F, Fut>(&self, purpose: &'static str, op: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let Some(conn) = self.connection().await else {
            metrics::counter!(herald_telemetry::REDIS_FALLBACKS, "use" => purpose).increment(1);
            return None;
        };
        match tokio::time::timeout(self.timeout * 2, op(conn)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                metrics::counter!(herald_telemetry::REDIS_FALLBACKS, "use" => purpose).increment(1);
                let mut state = self.state.lock().await;
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    state.conn = None;
                }
                warn(&mut state, &e.to_string());
                None
            }
            Err(_) => {
                metrics::counter!(herald_telemetry::REDIS_FALLBACKS, "use" => purpose).increment(1);
                let mut state = self.state.lock().await;
                state.conn = None;
                warn(&mut state, "command timed out");
                None
            }
        }
    }
}

fn warn(state: &mut LinkState, error: &str) {
    state.retry_at = Some(Instant::now() + Duration::from_secs(5));
    if state
        .last_warning
        .is_none_or(|at| at.elapsed() > Duration::from_secs(30))
    {
        state.last_warning = Some(Instant::now());
        tracing::warn!(%error, "Redis unreachable: falling back to the database claim and local rate limits (correct, slower)");
    }
}
