//! Helpers shared by the integration tests: a fresh database per test, the app in process,
//! a `serve` process of its own, and the report subscription as a client speaks it.
#![allow(dead_code)]

pub mod child;
pub mod js;
pub mod receiver;
pub mod socket;

use std::path::{Path, PathBuf};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgPool};

/// The server the tests create their databases on: `TEST_DATABASE_URL`, or the local
/// PostgreSQL these machines run.
/// `work`, which must end within `limit`: a test that waits for something fails saying
/// what it waited for, instead of hanging the suite.
#[allow(dead_code)]
pub async fn within<F: std::future::Future>(what: &str, limit: std::time::Duration, work: F) -> F::Output {
    match tokio::time::timeout(limit, work).await {
        Ok(done) => done,
        Err(_) => panic!("waited {limit:?} for {what}"),
    }
}

pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `store-monitor ARGS` on `db`, which must succeed: what it printed on stdout.
pub fn cli<const N: usize>(db: &TestDb, args: [&str; N]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_store-monitor"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `store-monitor token create --role ROLE --name NAME` on `db`: the secret it prints.
pub fn create_token(db: &TestDb, role: &str, name: &str) -> String {
    let secret = cli(db, ["token", "create", "--role", role, "--name", name])
        .trim()
        .to_string();
    assert!(secret.starts_with("sm_") && secret.len() == 67, "{secret:?}");
    secret
}

/// A database of its own for one test, migrated, and dropped when the test ends.
pub struct TestDb {
    pub pool: PgPool,
    pub url: String,
    pub name: String,
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

impl TestDb {
    /// A database of its own with the migrations up to `version` only: the schema as an
    /// older release left it.
    pub async fn at_migration(version: i64) -> TestDb {
        let db = TestDb::empty().await;
        store_monitor::db::MIGRATOR
            .run_to(version, &db.pool)
            .await
            .unwrap();
        db
    }

    /// A database of its own with nothing in it: what a restore starts from.
    pub async fn empty() -> TestDb {
        let name = format!("store_monitor_test_{}", uuid::Uuid::new_v4().simple());
        let options: PgConnectOptions = server_url()
            .parse()
            .expect("TEST_DATABASE_URL is a PostgreSQL URL");
        let mut admin = options
            .connect()
            .await
            .expect("cannot reach PostgreSQL for the tests");
        let create = format!("CREATE DATABASE \"{name}\"");
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&mut admin)
            .await
            .unwrap();
        let url = options.clone().database(&name).to_url_lossy().to_string();
        let pool = PgPool::connect(&url).await.unwrap();
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

/// A running application on a random port, with its own reports folder.
pub struct TestApp {
    pub address: String,
    pub reports: tempfile::TempDir,
    stop: tokio::sync::watch::Sender<bool>,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    /// The server (HTTP, report workers unless `concurrency` is 0, no schedule) on `db`,
    /// loading `data` first.
    pub async fn spawn(db: &TestDb, data: &Path, concurrency: usize) -> TestApp {
        Self::spawn_with(db, data, concurrency, true, None).await
    }

    /// A worker process's part only: report workers, no HTTP.
    pub async fn spawn_worker(db: &TestDb, data: &Path) -> TestApp {
        Self::spawn_with(db, data, 2, false, None).await
    }

    pub async fn spawn_with(
        db: &TestDb,
        data: &Path,
        concurrency: usize,
        http: bool,
        reports_dir: Option<PathBuf>,
    ) -> TestApp {
        Self::spawn_adjusted(db, data, concurrency, http, reports_dir, |_| {}).await
    }

    /// [`TestApp::spawn_with`], with its settings adjusted by `adjust` first.
    pub async fn spawn_adjusted(
        db: &TestDb,
        data: &Path,
        concurrency: usize,
        http: bool,
        reports_dir: Option<PathBuf>,
        adjust: impl FnOnce(&mut store_monitor::settings::Settings),
    ) -> TestApp {
        // RUST_LOG=… shows the app's logs in a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let reports = tempfile::tempdir().unwrap();
        let mut settings = store_monitor::settings::Settings {
            database_url: db.url.clone(),
            bind: http.then(|| "127.0.0.1:0".parse().unwrap()),
            metrics_bind: None,
            trusted_proxies: vec![],
            trusted_proxy_header: Default::default(),
            data_dir: data.to_path_buf(),
            files: Default::default(),
            reports_dir: reports_dir.unwrap_or_else(|| reports.path().to_path_buf()),
            reload: None,
            keep_history: chrono::TimeDelta::days(30),
            keep_reports: None,
            keep_polls_days: 0,
            snapshot_guard: Default::default(),
            concurrency,
            cors_origins: vec![],
            initial_load: true,
            // Short, so that the tests of idle sockets see them closed and pinged soon.
            websocket: store_monitor::settings::WebSocketLimits {
                init_timeout: std::time::Duration::from_millis(500),
                keepalive: std::time::Duration::from_millis(300),
                ..Default::default()
            },
            max_response_bytes: 16 << 20,
            server: Default::default(),
            max_queued_reports: 1000,
            auth: None,
            // The tests of the rate limits set their own.
            trigger_rate: 0,
            reload_rate: 0,
            webhook_concurrency: 8,
            // Receivers of the tests' own listen on loopback.
            webhooks: store_monitor::settings::WebhookSettings {
                allow_private: true,
                ..Default::default()
            },
        };
        adjust(&mut settings);
        let app = store_monitor::startup::Application::build(settings)
            .await
            .expect("the app starts");
        let address = app
            .port()
            .map_or(String::new(), |p| format!("http://127.0.0.1:{p}"));
        let stop = app.stopper();
        let running = tokio::spawn(app.run_until_stopped());
        TestApp {
            address,
            reports,
            stop,
            running,
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.running.await.unwrap().unwrap();
    }

    /// Triggers a report and follows it over WebSocket until it ends, which must be
    /// COMPLETE: its id.
    pub async fn completed_report(&self) -> String {
        let triggered = self
            .graphql("mutation { triggerReport { id } }", serde_json::json!({}))
            .await;
        let id = triggered["data"]["triggerReport"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{triggered}"))
            .to_string();
        let (states, _) = self.follow(&id, "graphql-transport-ws").await;
        assert_eq!(states.last().map(String::as_str), Some("COMPLETE"), "{states:?}");
        id
    }

    /// Runs a GraphQL operation, returning the whole response.
    pub async fn graphql(&self, query: &str, variables: serde_json::Value) -> serde_json::Value {
        let response = self.graphql_request(None, query, variables).await;
        assert_eq!(
            response.status(),
            200,
            "GraphQL answers 200 even for client errors"
        );
        response.json().await.unwrap()
    }

    /// Runs a GraphQL operation with `token`, returning the whole response (refusals answer
    /// with their own HTTP status).
    pub async fn graphql_as(
        &self,
        token: &str,
        query: &str,
        variables: serde_json::Value,
    ) -> serde_json::Value {
        let response = self.graphql_request(Some(token), query, variables).await;
        response.json().await.unwrap()
    }

    async fn graphql_request(
        &self,
        token: Option<&str>,
        query: &str,
        variables: serde_json::Value,
    ) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .post(format!("{}/graphql", self.address))
            .json(&serde_json::json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(format!("{}{path}", self.address)).await.unwrap()
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    /// The statuses a subscription to the report sees until it ends, and its last state.
    pub async fn follow(&self, id: &str, protocol: &str) -> (Vec<String>, serde_json::Value) {
        self.follow_ready(id, protocol, None).await
    }

    /// [`TestApp::follow`], telling `ready` once the first state has arrived.
    pub async fn follow_ready(
        &self,
        id: &str,
        protocol: &str,
        mut ready: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> (Vec<String>, serde_json::Value) {
        let mut subscription = Subscription::start(&self.address, id, protocol).await;
        let (mut statuses, mut last) = (Vec::new(), serde_json::Value::Null);
        while let Some(report) = subscription.next_state().await {
            let status = report["status"].as_str().unwrap().to_string();
            if statuses.last() != Some(&status) {
                statuses.push(status);
            }
            last = report;
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
        }
        (statuses, last)
    }
}

/// The `report` subscription of one report over WebSocket, as a client library speaks it.
pub struct Subscription {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Subscription {
    /// Subscribes to report `id` on the server at `address` (`http://…`), in `protocol`
    /// (`graphql-transport-ws` or `graphql-ws`).
    pub async fn start(address: &str, id: &str, protocol: &str) -> Subscription {
        use futures::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;

        let url = format!("{}/graphql/ws", address.replace("http://", "ws://"));
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket connects");
        let send = |v: serde_json::Value| Message::Text(v.to_string().into());
        ws.send(send(
            serde_json::json!({ "type": "connection_init", "payload": {} }),
        ))
        .await
        .unwrap();
        let subscribe = if protocol == "graphql-ws" {
            "start"
        } else {
            "subscribe"
        };
        let query = "subscription($id: ID!) { report(id: $id) { id status storesTotal storesDone progress csvUrl error } }";
        ws.send(send(serde_json::json!({
            "id": "1", "type": subscribe,
            "payload": { "query": query, "variables": { "id": id } }
        })))
        .await
        .unwrap();
        Subscription { ws }
    }

    /// The report's next state; `None` once the subscription has ended.
    pub async fn next_state(&mut self) -> Option<serde_json::Value> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;

        // A safety net for a broken server, not a timing the test depends on.
        let limit = std::time::Duration::from_secs(120);
        loop {
            let message = tokio::time::timeout(limit, self.ws.next())
                .await
                .expect("the subscription answers in time");
            let text = match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("the subscription broke: {e}"),
                None => return None,
            };
            let message: serde_json::Value = serde_json::from_str(&text).unwrap();
            match message["type"].as_str().unwrap() {
                "next" | "data" => {
                    assert!(message["payload"]["errors"].is_null(), "{message}");
                    return Some(message["payload"]["data"]["report"].clone());
                }
                "complete" => return None,
                "error" => panic!("subscription error: {message}"),
                _ => {}
            }
        }
    }
}

/// A server on a generated data set of 300 real stores in `data` (settings adjusted by
/// `adjust`), with one report COMPLETE: the server, the report's id and its CSV.
pub async fn generated_report(
    db: &TestDb,
    data: &Path,
    adjust: impl FnOnce(&mut store_monitor::settings::Settings),
) -> (TestApp, String, String) {
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    store_monitor::generate::generate(&store_monitor::generate::Plan {
        stores: 300,
        hours: bundled.join("menu_hours.csv"),
        timezones: bundled.join("timezones.csv"),
        ..store_monitor::generate::Plan::full_size(data)
    })
    .unwrap();
    let server = TestApp::spawn_adjusted(db, data, 1, true, None, adjust).await;
    let id = server.completed_report().await;
    let csv = server
        .graphql(
            "query($id: ID!) { report(id: $id) { csv } }",
            serde_json::json!({ "id": id }),
        )
        .await["data"]["report"]["csv"]
        .as_str()
        .unwrap()
        .to_string();
    (server, id, csv)
}
