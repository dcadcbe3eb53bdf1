//! The database goes away and comes back: while it is down the API answers at once with
//! 503 `SERVICE_UNAVAILABLE` and `Retry-After` (not after the pool's ten-second wait),
//! `/healthz` still answers, and once it is back everything works again without a
//! restart. The test runs a PostgreSQL cluster of its own, on a port of its own, so that it
//! can stop it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestApp, TestDb, example_dirs};
use serde_json::json;

/// A PostgreSQL cluster in a temporary folder, stopped when dropped.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn start_new() -> Cluster {
        let bin = PathBuf::from(
            String::from_utf8(Command::new("pg_config").arg("--bindir").output().unwrap().stdout)
                .unwrap()
                .trim(),
        );
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster { bin, dir, port };
        if is_root() {
            // initdb refuses to run as root; the cluster belongs to the postgres user.
            assert!(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(cluster.dir.path())
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let data = cluster.data();
        cluster.run(
            "initdb",
            &["-A", "trust", "-U", "postgres", "-D", data.to_str().unwrap()],
        );
        cluster.start();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/store_monitor", self.port)
    }

    /// Runs one of PostgreSQL's programs, as the postgres user when we are root.
    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program:?} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    fn stop(&self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = Command::new(if is_root() { "runuser" } else { "true" })
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout)
        .unwrap()
        .trim()
        == "0"
}

/// The status, `Retry-After` and body of a request, and how long it took.
async fn timed(request: reqwest::RequestBuilder) -> (u16, Option<String>, serde_json::Value, Duration) {
    let started = Instant::now();
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.json().await.unwrap_or_default();
    (status, retry, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_requests_fail_fast_with_503_and_all_works_again_once_it_is_back() {
    let cluster = Cluster::start_new();
    let unused = TestDb::new().await;
    let url = cluster.url();
    let data: &Path = &example_dirs()[0];
    let server = TestApp::spawn_adjusted(&unused, data, 1, true, None, move |s| s.database_url = url).await;
    let client = reqwest::Client::new();
    let graphql = |query: &str| {
        client
            .post(format!("{}/graphql", server.address))
            .json(&json!({ "query": query }))
    };
    let (status, _, answer, _) = timed(graphql("{ dataset { dataVersion } }")).await;
    assert_eq!(status, 200, "{answer}");

    cluster.stop();
    let readyz = timed(client.get(format!("{}/readyz", server.address))).await;
    let query = timed(graphql("{ reports(first: 1) { nodes { id } } }")).await;
    let trigger = timed(graphql("mutation { triggerReport { id } }")).await;
    let legacy = timed(client.post(format!("{}/trigger_report", server.address))).await;
    for (what, (status, retry, body, took)) in [
        ("readyz", readyz),
        ("query", query),
        ("trigger", trigger),
        ("legacy", legacy),
    ] {
        assert_eq!(status, 503, "{what}: {body}");
        assert_eq!(retry.as_deref(), Some("5"), "{what}");
        // A bound far from the pool's 10 s wait that every request took before, not a race.
        assert!(took < Duration::from_secs(5), "{what} took {took:?}");
        let text = body.to_string();
        assert!(
            !text.contains("internal error") && !text.contains("127.0.0.1"),
            "{what}: {text}"
        );
        eprintln!("{what}: 503 in {took:?}");
    }
    let (_, _, body, _) = timed(graphql("{ reports(first: 1) { nodes { id } } }")).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "SERVICE_UNAVAILABLE",
        "{body}"
    );
    assert_eq!(
        client
            .get(format!("{}/healthz", server.address))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "the process itself is alive"
    );

    cluster.start();
    let mut ready = false;
    for _ in 0..300 {
        if client
            .get(format!("{}/readyz", server.address))
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "ready again without a restart");
    let (status, _, answer, _) = timed(graphql("mutation { triggerReport { id } }")).await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["data"]["triggerReport"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (statuses, last) = server.follow(&id, "graphql-transport-ws").await;
    assert_eq!(last["status"], "COMPLETE", "{statuses:?}");
    server.stop().await;
}
