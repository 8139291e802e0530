//! Fresh, migrated databases for tests: one per test, so tests run in parallel.

use crate::{Db, Store, StoreError};

/// PostgreSQL server for tests; `HERALD_TEST_POSTGRES_URL` overrides it.
pub fn postgres_admin_url() -> String {
    std::env::var("HERALD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A new SQLite file inside `dir`.
pub async fn sqlite_store(dir: &std::path::Path) -> Result<Store, StoreError> {
    let url = format!("sqlite://{}", dir.join("herald.db").display());
    let db = Db::connect(&url, 4).await?;
    db.migrate().await?;
    Ok(Store::new(db))
}

/// A new, empty PostgreSQL database and its URL. Databases are named
/// `herald_test_<uuid>`; they are left behind for inspection and are cheap.
pub async fn postgres_database() -> Result<String, StoreError> {
    let admin_url = postgres_admin_url();
    let name = format!("herald_test_{}", uuid::Uuid::new_v4().simple());
    let admin = Db::connect(&admin_url, 2).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut *admin.writer().await?)
        .await?;
    admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin_url);
    Ok(format!("{base}/{name}"))
}

/// A new, migrated PostgreSQL database.
pub async fn postgres_store() -> Result<Store, StoreError> {
    let url = postgres_database().await?;
    let db = Db::connect(&url, 4).await?;
    db.migrate().await?;
    Ok(Store::new(db))
}

/// Runs each listed test once per backend: `async fn name(store: Store)`.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let store = $crate::testing::sqlite_store(dir.path()).await.unwrap();
                super::$name(store).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                let store = $crate::testing::postgres_store().await.unwrap();
                super::$name(store).await;
            })*
        }
    };
}
