//! Connecting, dialects and migrations.

use std::path::Path;
use std::time::Duration;

use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

use crate::StoreError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Connection pools for one database.
///
/// SQLite allows one writer at a time, so writes go through a pool of one
/// connection (no `database is locked` under load) while reads use several;
/// PostgreSQL uses one pool for both.
#[derive(Clone, Debug)]
pub struct Db {
    dialect: Dialect,
    write: AnyPool,
    read: AnyPool,
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
                write: pool.clone(),
                read: pool,
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
            let write = sqlite_pool(&url, 1).await?;
            let read = sqlite_pool(&url, max_connections.max(2)).await?;
            return Ok(Db {
                dialect: Dialect::Sqlite,
                write,
                read,
            });
        }
        Err(StoreError::UnsupportedUrl(redact(url)))
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The pool for statements that change data.
    pub fn write(&self) -> &AnyPool {
        &self.write
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
        migrator.run(&self.write).await?;
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
        self.write.close().await;
        self.read.close().await;
    }
}

async fn sqlite_pool(url: &str, max: u32) -> Result<AnyPool, StoreError> {
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        // A file cannot go away the way a server can: no ping (a round trip
        // to the connection's thread) before every use.
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // WAL lets readers run beside the writer; NORMAL sync is
                // durable across process crashes, which is what we promise.
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                )
                .await?;
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
