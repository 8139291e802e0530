//! Connecting, dialects and migrations.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Database, Executor, TransactionManager};
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};

use crate::StoreError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The connections to one database.
///
/// SQLite allows one writer at a time, so writes go through one connection
/// that Herald keeps (no `database is locked` under load) while reads use a
/// pool of several; PostgreSQL uses one pool for both.
#[derive(Clone)]
pub struct Db {
    dialect: Dialect,
    write: Writer,
    read: AnyPool,
    /// Writes for someone waiting on an answer (an API request): on SQLite
    /// they go ahead of the pipeline's writers still in line (see
    /// [`Db::for_requests`]).
    for_requests: bool,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dialect", &self.dialect)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

/// How long a write waits for SQLite's one writing connection before it
/// fails (what the pool of one used to allow).
const WRITER_WAIT: Duration = Duration::from_secs(30);

/// Where writes go.
#[derive(Clone)]
enum Writer {
    /// PostgreSQL: the shared pool.
    Pool(AnyPool),
    /// SQLite: one connection, held by a lock rather than a pool of one. A
    /// pool pings a connection as it comes back (one more round trip to the
    /// connection's thread, in a task of its own) before the next writer may
    /// have it; the writing connection changes hands hundreds of times a
    /// second, and that hand-back took longer than most transactions'
    /// statements. `None` once closed.
    Kept {
        conn: Arc<Mutex<Option<AnyConnection>>>,
        /// The line the pipeline's writers wait in before they wait for
        /// `conn`, so that at most one of them is ever waiting for it ahead
        /// of a request's write.
        line: Arc<Mutex<()>>,
    },
}

/// A connection that may write, held until dropped. Statements run on it as
/// on any connection (`&mut *conn`).
pub struct WriteConn(Held);

enum Held {
    Pooled(PoolConnection<Any>),
    Kept(OwnedMappedMutexGuard<Option<AnyConnection>, AnyConnection>),
}

impl Deref for WriteConn {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match &self.0 {
            Held::Pooled(conn) => conn,
            Held::Kept(conn) => conn,
        }
    }
}

impl DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.0 {
            Held::Pooled(conn) => conn,
            Held::Kept(conn) => conn,
        }
    }
}

/// A write transaction: committed by [`WriteTx::commit`], rolled back if
/// dropped before. Statements run on it as on a connection (`&mut *tx`).
pub struct WriteTx {
    conn: WriteConn,
    open: bool,
}

impl WriteTx {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        <Any as Database>::TransactionManager::commit(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }

    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        <Any as Database>::TransactionManager::rollback(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            // Queued on the connection ahead of anything its next holder
            // sends, and judged there: a `BEGIN` or `COMMIT` still on its way
            // (the future dropped mid-call) is answered before it, so the
            // next holder always starts outside a transaction.
            <Any as Database>::TransactionManager::start_rollback(&mut self.conn);
        }
    }
}

impl Db {
    #[tracing::instrument(skip_all, fields(url = %redact(url)))]
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, StoreError> {
        install_default_drivers();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = AnyPoolOptions::new()
                .max_connections(max_connections.max(2))
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            return Ok(Db {
                dialect: Dialect::Postgres,
                write: Writer::Pool(pool.clone()),
                read: pool,
                for_requests: false,
            });
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or_default();
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            let url = format!("sqlite://{path}?mode=rwc");
            let mut write = AnyConnection::connect(&url).await?;
            write.execute(SQLITE_PRAGMAS).await?;
            let read = sqlite_pool(&url, max_connections.max(2)).await?;
            return Ok(Db {
                dialect: Dialect::Sqlite,
                write: Writer::Kept {
                    conn: Arc::new(Mutex::new(Some(write))),
                    line: Arc::new(Mutex::new(())),
                },
                read,
                for_requests: false,
            });
        }
        Err(StoreError::UnsupportedUrl(redact(url)))
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The connection for statements that change data, held until dropped.
    /// On SQLite there is one, so hold it no longer than a write takes.
    pub async fn writer(&self) -> Result<WriteConn, sqlx::Error> {
        match &self.write {
            Writer::Pool(pool) => Ok(WriteConn(Held::Pooled(pool.acquire().await?))),
            Writer::Kept { conn, line } => {
                let turn = async {
                    // Left as soon as the connection is ours: the next
                    // pipeline writer then waits behind us, not beside us.
                    let _in_line = match self.for_requests {
                        true => None,
                        false => Some(line.lock().await),
                    };
                    conn.clone().lock_owned().await
                };
                let guard = tokio::time::timeout(WRITER_WAIT, turn)
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)?;
                OwnedMutexGuard::try_map(guard, Option::as_mut)
                    .map(|conn| WriteConn(Held::Kept(conn)))
                    .map_err(|_| sqlx::Error::PoolClosed)
            }
        }
    }

    /// A write transaction on [`Db::writer`]'s connection.
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        // Marked open before `BEGIN` is sent, so that a caller giving up
        // during it still leaves a rollback behind.
        let mut tx = WriteTx {
            conn: self.writer().await?,
            open: true,
        };
        <Any as Database>::TransactionManager::begin(&mut tx.conn, None).await?;
        Ok(tx)
    }

    /// The same database, for writes someone is waiting on (an API request
    /// answered once its write is durable). On SQLite such a write waits
    /// for the writer's current holder and at most one pipeline writer
    /// before it, however many pipeline writers are in line: they wait in
    /// a line of their own and go to the connection one at a time, so a
    /// request's write slips in between them. The pipeline is not starved:
    /// the head of its line waits only for the requests' writes already
    /// waiting when it got there, and the API's notifications are one group
    /// commit at a time. On PostgreSQL nothing changes (a pool, no line).
    pub fn for_requests(&self) -> Db {
        Db {
            for_requests: true,
            ..self.clone()
        }
    }

    /// The pool for plain reads.
    pub fn read(&self) -> &AnyPool {
        &self.read
    }

    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&mut *self.writer().await?).await?;
        Ok(())
    }

    /// Fails unless every migration this build knows has been applied.
    pub async fn check_migrated(&self) -> Result<(), StoreError> {
        let migrator = match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        let expected = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.read)
                .await
                .map_err(|_| StoreError::NotMigrated {
                    expected,
                    applied: None,
                })?;
        if applied.unwrap_or(0) < expected {
            return Err(StoreError::NotMigrated { expected, applied });
        }
        Ok(())
    }

    pub async fn close(&self) {
        match &self.write {
            Writer::Pool(pool) => pool.close().await,
            Writer::Kept { conn, .. } => {
                if let Some(conn) = conn.lock().await.take() {
                    if let Err(e) = conn.close().await {
                        tracing::warn!(error = %e, "closing the writing connection failed");
                    }
                }
            }
        }
        self.read.close().await;
    }
}

/// Set on every SQLite connection. WAL lets readers run beside the writer;
/// NORMAL sync is durable across process crashes, which is what we promise.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;";

async fn sqlite_pool(url: &str, max: u32) -> Result<AnyPool, StoreError> {
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        // A file cannot go away the way a server can: no ping (a round trip
        // to the connection's thread) before every use.
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(SQLITE_PRAGMAS).await?;
                Ok(())
            })
        })
        .connect(url)
        .await?;
    Ok(pool)
}

/// A URL fit for logs: the password, if any, replaced.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://data/herald.db"), "sqlite://data/herald.db");
    }
}
