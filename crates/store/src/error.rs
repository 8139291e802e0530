use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored row for {what} is unreadable: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("unsupported database url {0:?}: expected sqlite:… or postgres://…")]
    UnsupportedUrl(String),
    #[error("the database schema is at migration {applied:?}, this build needs {expected}: run `herald migrate`")]
    NotMigrated { expected: i64, applied: Option<i64> },
    /// A writer that queues work for the database has stopped (shutdown).
    #[error("the store is shutting down")]
    Closed,
    /// Asked to enqueue in the store's own transaction, but this store has
    /// no queue in its database (a bug in the caller).
    #[error("this store has no queue in its database to enqueue on")]
    NoQueue,
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
}

impl StoreError {
    /// Could trying again later succeed? Connection trouble yes; a corrupt
    /// row or a bad configuration no.
    pub fn is_retriable(&self) -> bool {
        match self {
            StoreError::Database(e) => !matches!(
                e,
                sqlx::Error::ColumnDecode { .. }
                    | sqlx::Error::ColumnNotFound(_)
                    | sqlx::Error::Decode(_)
                    | sqlx::Error::TypeNotFound { .. }
                    | sqlx::Error::Configuration(_)
            ),
            StoreError::Closed => true,
            StoreError::Migration(_)
            | StoreError::Corrupt { .. }
            | StoreError::UnsupportedUrl(_) => false,
            StoreError::DataDir { .. } | StoreError::NotMigrated { .. } | StoreError::NoQueue => {
                false
            }
        }
    }

    pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> Self {
        StoreError::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }
}
