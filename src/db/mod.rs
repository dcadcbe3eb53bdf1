//! The PostgreSQL adapter, and the only room with SQL: connecting (and creating the
//! database), the schema in `migrations/`, loading the input files, the consistent read a
//! report is made from, the report lifecycle's rows, and apalis's tables.
//!
//! Each statement is static text in a small function of the module of its table; rows come
//! back as `FromRow` types, and stored enums go through [`codes`].

mod codes;
mod copy;
pub(crate) mod events;
pub(crate) mod groups;
mod health;
pub(crate) mod history;
pub mod housekeeping;
pub(crate) mod idempotency;
pub mod incidents;
pub mod loads;
pub(crate) mod polls;
pub(crate) mod push;
pub mod queue;
pub mod reload;
pub(crate) mod removal;
mod replace;
pub(crate) mod reports;
pub(crate) mod rows;
pub(crate) mod scope;
pub mod snapshot;
pub(crate) mod stores;
pub(crate) mod ticks;
pub(crate) mod tokens;
pub mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrate;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

/// A pool of connections to the service's database.
pub type Pool = sqlx::PgPool;

/// What a statement's failure is, for callers that tell it from other errors.
pub type QueryError = sqlx::Error;

/// Where the database is when `DATABASE_URL` does not say.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/store_monitor";

/// The migrations of `migrations/`, built into the binary. A database a newer release has
/// migrated further is accepted, not refused: during a rolling upgrade the older processes
/// keep running on the newer schema, which every migration must allow (expand now, contract
/// a release later: docs/OPERATIONS.md, "Upgrading").
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("./migrations")
};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("bad database URL {url:?}: {source}")]
    Url {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create the database {name}: {source}")]
    Create {
        name: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot apply the migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot set up the job queue's schema: {0:#}")]
    Queue(anyhow::Error),
    #[error("cannot drop the database {name}: {source}")]
    Drop {
        name: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the database URL names no database: nothing to drop")]
    NoDatabase,
    #[error(
        "the database {target} does not exist: `store-monitor serve` or `store-monitor ingest` creates it (this command does not)"
    )]
    Missing { target: String },
}

/// A pool on the database of `url`, creating the database if it does not exist, with the
/// migrations applied: for the commands that own the data (`serve`, `worker`, `ingest`).
pub async fn connect(url: &str, max_connections: u32) -> Result<Pool, DbError> {
    open(url, max_connections, true).await
}

/// A pool on the database of `url`, which must exist already ([`DbError::Missing`]), with
/// the migrations applied: for the commands that only manage what is there (`token`).
pub async fn connect_existing(url: &str, max_connections: u32) -> Result<Pool, DbError> {
    open(url, max_connections, false).await
}

/// What [`migrate`] did.
pub struct Migrated {
    /// The migrations it applied, oldest first: version and description.
    pub applied: Vec<(i64, String)>,
    /// The newest migration the database has now.
    pub now_at: Option<i64>,
}

/// Creates the database if it does not exist and applies this build's migrations and the
/// job queue's schema, saying which it applied: a deploy pipeline's step before the new
/// processes start (they would apply them too, racing each other for the lock).
pub async fn migrate(url: &str) -> Result<Migrated, DbError> {
    let pool = open_unmigrated(url, 2, true).await?;
    let before = applied_versions(&pool).await?;
    MIGRATOR.run(&pool).await?;
    let applied = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !before.contains(&m.version))
        .map(|m| (m.version, m.description.to_string()))
        .collect();
    queue::setup(&pool).await.map_err(DbError::Queue)?;
    let now_at = applied_migration(&pool).await?;
    pool.close().await;
    Ok(Migrated { applied, now_at })
}

async fn applied_versions(pool: &Pool) -> Result<Vec<i64>, sqlx::migrate::MigrateError> {
    let mut conn = pool.acquire().await?;
    conn.ensure_migrations_table(&MIGRATOR.table_name).await?;
    let applied = conn.list_applied_migrations(&MIGRATOR.table_name).await?;
    Ok(applied.iter().map(|m| m.version).collect())
}

async fn open(url: &str, max_connections: u32, create: bool) -> Result<Pool, DbError> {
    let pool = open_unmigrated(url, max_connections, create).await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

async fn open_unmigrated(url: &str, max_connections: u32, create: bool) -> Result<Pool, DbError> {
    let options = PgConnectOptions::from_str(url).map_err(|source| DbError::Url {
        url: url.to_string(),
        source,
    })?;
    // Building the polls' primary key after a first load takes a second or two: expected,
    // not worth a warning. Anything slower still is.
    let options = options.log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(10));
    if create {
        create_database_if_missing(&options).await?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .map_err(|source| match &source {
            sqlx::Error::Database(e) if e.code().as_deref() == Some(NO_SUCH_DATABASE) => DbError::Missing {
                target: describe(&options),
            },
            _ => DbError::Connect {
                target: describe(&options),
                source,
            },
        })?;
    Ok(pool)
}

/// PostgreSQL's invalid_catalog_name: the database does not exist.
const NO_SUCH_DATABASE: &str = "3D000";

/// A second pool on the same database for the API: requests wait for a connection at most
/// `acquire_timeout`, so that a database that is down or saturated is answered at once
/// (503) rather than after the work pool's patience, and a burst of requests cannot take
/// the connections the report workers and the reload need (they keep the first pool).
pub fn api_pool(pool: &Pool, max_connections: u32, acquire_timeout: Duration) -> Pool {
    // A few connections kept open: opening one (TLS included) under a burst is what
    // makes the first requests wait.
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(4.min(max_connections))
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with((*pool.connect_options()).clone())
}

/// Whether `error` says the database cannot be reached or is saturated (no connection to
/// be had in time, the connection lost, the server shutting down or out of connections),
/// as opposed to a statement that failed: worth a retry later, not a bug.
pub fn unavailable(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        let e = match e.downcast_ref::<sqlx::migrate::MigrateError>() {
            Some(sqlx::migrate::MigrateError::Execute(e)) => e,
            _ => match e.downcast_ref::<sqlx::Error>() {
                Some(e) => e,
                None => return false,
            },
        };
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => true,
            // Class 08: connection exceptions; 57P01-3: the server is shutting down or
            // starting; 53300: too many connections; 40001 and 40P01: a transaction that
            // lost to a concurrent one (two pushed batches of the same polls), which a
            // retry gets through.
            sqlx::Error::Database(e) => e.code().is_some_and(|c| {
                c.starts_with("08")
                    || matches!(&*c, "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01")
            }),
            _ => false,
        }
    })
}

/// `host:port/database`, for messages (never the password).
fn describe(options: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("(default)")
    )
}

async fn create_database_if_missing(options: &PgConnectOptions) -> Result<(), DbError> {
    let Some(name) = options.get_database() else {
        return Ok(());
    };
    let connect_error = |source| DbError::Connect {
        target: describe(options),
        source,
    };
    match options.connect().await {
        Ok(conn) => {
            let _ = conn.close().await;
            return Ok(());
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(NO_SUCH_DATABASE) => {}
        Err(e) => return Err(connect_error(e)),
    }
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .map_err(connect_error)?;
    // CREATE DATABASE takes no parameters; the name is quoted as an identifier.
    let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    match sqlx::query(sqlx::AssertSqlSafe(create)).execute(&mut admin).await {
        Ok(_) => {
            tracing::info!(database = name, "created the database");
            Ok(())
        }
        // 42P04: duplicate_database — another process created it first.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(()),
        Err(source) => Err(DbError::Create {
            name: name.to_string(),
            source,
        }),
    }
}

/// Drops the database of `url`, closing its connections (a developer's reset: the next
/// `serve` or `ingest` creates it again). Returns its name, and whether it existed.
pub async fn drop_database(url: &str) -> Result<(String, bool), DbError> {
    let options = PgConnectOptions::from_str(url).map_err(|source| DbError::Url {
        url: url.to_string(),
        source,
    })?;
    let name = options.get_database().ok_or(DbError::NoDatabase)?.to_string();
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .map_err(|source| DbError::Connect {
            target: describe(&options),
            source,
        })?;
    let drop_error = |source| DbError::Drop {
        name: name.clone(),
        source,
    };
    let existed: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .map_err(drop_error)?;
    // DROP DATABASE takes no parameters; the name is quoted as an identifier.
    let drop = format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        name.replace('"', "\"\"")
    );
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&mut admin)
        .await
        .map_err(drop_error)?;
    Ok((name, existed))
}

/// The newest migration the database has applied successfully (`None`: none), read through
/// sqlx's own migration bookkeeping.
pub async fn applied_migration(pool: &Pool) -> Result<Option<i64>, sqlx::migrate::MigrateError> {
    let mut conn = pool.acquire().await?;
    let applied = conn.list_applied_migrations(&MIGRATOR.table_name).await?;
    let failed = conn.dirty_version(&MIGRATOR.table_name).await?;
    Ok(applied
        .iter()
        .map(|m| m.version)
        .filter(|&v| Some(v) != failed)
        .max())
}

/// The newest migration this build knows.
pub fn latest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Whether a database whose newest migration is `applied` has every one this build needs:
/// what readiness means. A newer release's schema has them too (a rolling upgrade).
pub fn has_every_migration(applied: Option<i64>) -> bool {
    applied.is_some_and(|applied| applied >= latest_migration())
}
