//! Helpers shared by the integration tests: a fresh database per test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgPool};

/// The server the tests create their databases on: `TEST_DATABASE_URL`, or the local
/// PostgreSQL these machines run.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of its own for one test, migrated, and dropped when the test ends.
pub struct TestDb {
    pub pool: PgPool,
    pub url: String,
    name: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let name = format!("store_monitor_test_{}", uuid::Uuid::new_v4().simple());
        let options: PgConnectOptions = server_url()
            .parse()
            .expect("TEST_DATABASE_URL is a PostgreSQL URL");
        let url = options.clone().database(&name).to_url_lossy().to_string();
        // connect() creates the database and applies the migrations, as the app does.
        let pool = store_monitor::db::connect(&url, 8)
            .await
            .expect("cannot reach PostgreSQL for the tests");
        TestDb { pool, url, name }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any runtime the test may have had: use one of our own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let options: PgConnectOptions = server_url().parse().unwrap();
                if let Ok(mut conn) = options.connect().await {
                    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples")
}

pub fn example_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 5, "examples are missing");
    dirs
}
