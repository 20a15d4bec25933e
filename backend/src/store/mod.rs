//! sqlx repositories: one module per table family, each the only writer of its tables.
//!
//! # One code path, two databases
//!
//! evflex runs on an embedded SQLite file by default (nothing to install) and on PostgreSQL in
//! production and in the test suite. Both go through [`sqlx::AnyPool`] with runtime-checked
//! queries (`query_as::<_, Row>` into flat `#[derive(FromRow)]` rows, converted to domain types
//! by the owning module): compile-time `query!` cannot target two backends at once.
//!
//! Portable SQL only: `$1`-style placeholders (PostgreSQL's; SQLite accepts them too), integers
//! for every quantity (W, Wh, micro-EUR, Unix seconds, booleans as 0/1), `TEXT` for ids and JSON,
//! `INSERT … ON CONFLICT … DO UPDATE/NOTHING` and `RETURNING` (both support them), and no
//! `SUM()` without a `CAST(… AS BIGINT)` (PostgreSQL's `SUM(BIGINT)` is `NUMERIC`, which the
//! `Any` driver cannot decode). The only DDL difference is the identity column, so the
//! migrations live twice, with the same numbered files: `backend/migrations/postgres` and
//! `backend/migrations/sqlite`; both are embedded with `sqlx::migrate!` and picked at run time
//! from the URL scheme.
//!
//! SQLite is single-writer: its pool has one connection, so no transaction ever waits for
//! another (`SQLITE_BUSY` cannot happen). Code must therefore never hold a connection or a
//! transaction while acquiring another one; every function here takes the connection it uses.

pub mod active_profiles;
pub mod bills;
pub mod groups;
pub mod leases;
pub mod locations;
pub mod meter;
pub mod outbox;
pub mod outbox_drain;
pub mod parties;
pub mod prices;
pub mod replans;
pub mod requests;
pub mod schedules;
pub mod sessions;
pub mod sync_cursors;
pub mod tariffs;
pub mod token_deliveries;
pub mod users;
pub mod wallets;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Transaction};
use std::time::Duration;

/// A transaction on either backend.
pub type Tx = Transaction<'static, sqlx::Any>;

/// A connection on either backend (`&mut *tx` or `&mut *pool.acquire().await?`).
pub type Conn = AnyConnection;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Which database the URL selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL (`postgres://…`).
    Postgres,
    /// SQLite (`sqlite://…`), the embedded default.
    Sqlite,
}

impl Backend {
    /// The backend a database URL names.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else {
            Err(StoreError::Config(
                "DATABASE_URL must start with postgres:// or sqlite:".to_owned(),
            ))
        }
    }
}

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or rejected a statement.
    #[error("database error")]
    Db(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration error")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A unique constraint was violated.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored value could not be decoded (a JSON column, a negative id).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The database URL is unusable.
    #[error("configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// Maps a unique-constraint violation to [`StoreError::Conflict`] with `what`.
    pub fn conflict_on_unique(err: sqlx::Error, what: &str) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict(what.to_owned())
            }
            _ => Self::Db(err),
        }
    }
}

/// Result alias of the store layer.
pub type StoreResult<T> = Result<T, StoreError>;

/// The database handle shared by the whole service.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects to `url` (see the module docs for the pool sizing per backend).
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        Self::connect_with(url, max_connections, false).await
    }

    /// Connects to `url`; on PostgreSQL, `async_commit` sets `synchronous_commit = off` for
    /// evflex's sessions: a commit returns before its WAL is flushed, so a crash of the
    /// database server (not of evflex) may lose the last few hundred milliseconds of commits,
    /// whole transactions only (atomicity and the outbox guarantee hold). It roughly doubles
    /// the ingestion rate on small machines; off by default.
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        async_commit: bool,
    ) -> StoreResult<Self> {
        install_default_drivers();
        let backend = Backend::from_url(url)?;
        let max = match backend {
            Backend::Postgres => max_connections.max(1),
            Backend::Sqlite => 1,
        };
        let set_async = async_commit && backend == Backend::Postgres;
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(30))
            // No ping before each acquire: it would double the round trips of the hot
            // ingestion path; a broken connection surfaces as an error and is replaced.
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if set_async {
                        sqlx::query("SET synchronous_commit = off")
                            .execute(conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        Ok(Self { pool, backend })
    }

    /// Applies the embedded migrations of the selected backend.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self.backend {
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> StoreResult<Tx> {
        Ok(self.pool.begin().await?)
    }

    /// Acquires a connection for reads.
    pub async fn conn(&self) -> StoreResult<sqlx::pool::PoolConnection<sqlx::Any>> {
        Ok(self.pool.acquire().await?)
    }

    /// Refreshes the query planner's statistics (`ANALYZE`, on both backends): for a database
    /// filled faster than autovacuum looks at it (the benchmarks).
    pub async fn analyze(&self) -> StoreResult<()> {
        sqlx::query("ANALYZE").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `$first, $first+1, …` for `n` bound parameters: an `IN (…)` list of a batched read.
pub(crate) fn numbered(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Serialises a value for a JSON `TEXT` column.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Decodes a JSON `TEXT` column.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// SHA3-256 of a secret token, hex: tokens are stored only as hashes.
pub fn token_hash(token: &str) -> String {
    use sha3::{Digest, Sha3_256};
    hex::encode(Sha3_256::digest(token.as_bytes()))
}

/// Placeholder-free helper: `0`/`1` for booleans (portable across both backends).
pub(crate) fn flag(value: bool) -> i64 {
    i64::from(value)
}
