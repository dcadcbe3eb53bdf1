//! The PostgreSQL adapter: connecting (and creating the database), the schema in
//! `migrations/`, loading the input files, and the consistent read a report is made from.

pub mod copy;
pub mod events;
pub mod housekeeping;
pub mod ingest;
pub mod loads;
pub mod reports;
pub mod snapshot;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// Where the database is when `DATABASE_URL` does not say.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/store_monitor";

/// The migrations of `migrations/`, built into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

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
}

/// A pool on the database of `url`, creating the database if it does not exist, with the
/// migrations applied.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    let options = PgConnectOptions::from_str(url).map_err(|source| DbError::Url {
        url: url.to_string(),
        source,
    })?;
    // Building the polls' primary key after a first load takes a second or two: expected,
    // not worth a warning. Anything slower still is.
    let options = options.log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(10));
    create_database_if_missing(&options).await?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .map_err(|source| DbError::Connect {
            target: describe(&options),
            source,
        })?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// `host:port/database`, for messages (never the password).
pub fn describe(options: &PgConnectOptions) -> String {
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
        // 3D000: invalid_catalog_name, the database does not exist.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {}
        Err(e) => return Err(connect_error(e)),
    }
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .map_err(connect_error)?;
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
