//! The subcommands deploy pipelines run: `migrate` applies what a database lacks and says
//! so (nothing the second time), and `healthcheck` exits 0 against a ready server, 1
//! against a stopped one or one that does not answer in time.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{TestApp, TestDb, examples_dir};

fn store_monitor(args: &[&str], database_url: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_store-monitor"));
    command.args(args).env_remove("STORE_MONITOR_BIND");
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    command.output().unwrap()
}

#[tokio::test]
async fn migrate_applies_what_the_database_lacks_once_and_nothing_the_second_time() {
    // A database an older release left: the migrations up to the store groups.
    let db = TestDb::at_migration(20261205000017).await;
    let first = store_monitor(&["migrate"], Some(&db.url));
    let said = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // Every migration after 17, in order, as the folder holds them.
    let mut later: Vec<String> =
        std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"))
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .split('_')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .filter(|v| v.as_str() > "20261205000017")
            .collect();
    later.sort();
    let applied: Vec<&str> = said.lines().collect();
    assert_eq!(applied.len(), later.len(), "{said}");
    for (line, version) in applied.iter().zip(&later) {
        assert!(line.starts_with(&format!("applied {version} ")), "{said}");
    }
    let newest = later.last().unwrap();
    // The job queue's schema too: a worker could start on it.
    let queue: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'apalis')")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(queue);

    let second = store_monitor(&["migrate"], Some(&db.url));
    assert!(second.status.success());
    assert_eq!(String::from_utf8_lossy(&second.stdout), "");
    assert!(
        String::from_utf8_lossy(&second.stderr)
            .contains(&format!("nothing to apply: the database is at {newest}")),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
}

/// Migration 19 gives every group row its store's id: from a schema-18 database full of
/// groups (20,000 stores, 30,000 memberships, ids of both shapes), each row is found after
/// it with the id of its store, and the new unique key holds.
#[tokio::test]
async fn migration_19_gives_every_group_row_of_a_full_database_its_store_id() {
    let db = TestDb::at_migration(20261205000018).await;
    for statement in [
        "INSERT INTO stores (store_id) SELECT CASE WHEN g % 2 = 0 THEN (7000000000000000000 + g)::text \
         ELSE md5(g::text)::uuid::text END FROM generate_series(1, 20000) g",
        "INSERT INTO store_groups (group_name, store) SELECT 'group ' || (id % 40), id FROM stores",
        "INSERT INTO store_groups (group_name, store) SELECT 'group ' || (100 + id % 7), id FROM stores WHERE id % 2 = 0",
    ] {
        sqlx::query(statement).execute(&db.pool).await.unwrap();
    }
    let before: Vec<(String, i32)> =
        sqlx::query_as("SELECT group_name, store FROM store_groups ORDER BY group_name, store")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(before.len(), 30_000);

    let migrated = store_monitor(&["migrate"], Some(&db.url));
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let after: Vec<(String, i32, String)> = sqlx::query_as(
        "SELECT g.group_name, g.store, g.store_id FROM store_groups g ORDER BY g.group_name, g.store",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let ids: std::collections::HashMap<i32, String> = sqlx::query_as("SELECT id, store_id FROM stores")
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(after.len(), before.len());
    for ((group, store), (group_after, store_after, store_id)) in before.iter().zip(&after) {
        assert_eq!((group, store), (group_after, store_after));
        assert_eq!(&ids[store], store_id, "{group} {store}");
    }
    let duplicate = sqlx::query("INSERT INTO store_groups (group_name, store, store_id) VALUES ($1, -1, $2)")
        .bind(&after[0].0)
        .bind(&after[0].2)
        .execute(&db.pool)
        .await;
    assert!(duplicate.is_err(), "(group, store id) is unique");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_0_against_a_ready_server_and_1_otherwise() {
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db, &examples_dir().join("odd-hours"), 0).await;
    let port = app.address.rsplit(':').next().unwrap().to_string();
    // As a container runs it: the server's own --bind, unspecified.
    let bind = format!("0.0.0.0:{port}");
    let ready = store_monitor(&["healthcheck", "--bind", &bind], None);
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    app.stop().await;
    let stopped = store_monitor(&["healthcheck", "--bind", &bind, "--timeout", "2"], None);
    assert_eq!(stopped.status.code(), Some(1));
    // Refused at once: said so, not taken for a silent server.
    let said = String::from_utf8_lossy(&stopped.stderr);
    assert!(
        said.contains("cannot connect") && !said.contains("no answer"),
        "{said}"
    );

    // A port that takes the connection and never answers: told within its timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let mute = store_monitor(&["healthcheck", "--url", &url, "--timeout", "1"], None);
    assert_eq!(mute.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&mute.stderr).contains("no answer within 1 s"),
        "{}",
        String::from_utf8_lossy(&mute.stderr)
    );
}

/// `systemd-analyze verify` on the units, where systemd is installed: not a word of warning
/// (it exits 0 on an unknown key, so its output is what is checked). The binary's path is
/// this build's, as an install puts it at /usr/local/bin.
#[test]
fn the_systemd_units_verify_without_a_warning() {
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze is not installed: the units are not verified here");
        return;
    };
    let units = tempfile::tempdir().unwrap();
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd");
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(&deploy).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("ExecStart=/usr/local/bin/store-monitor "),
            "{}",
            path.display()
        );
        let copy = units.path().join(path.file_name().unwrap());
        std::fs::write(
            &copy,
            text.replace(
                "/usr/local/bin/store-monitor",
                env!("CARGO_BIN_EXE_store-monitor"),
            ),
        )
        .unwrap();
        paths.push(copy);
    }
    assert_eq!(paths.len(), 2, "the API's unit and the worker's");
    let verified = Command::new(analyze).arg("verify").args(&paths).output().unwrap();
    let said =
        String::from_utf8_lossy(&verified.stderr).to_string() + &String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success() && said.trim().is_empty(), "{said}");
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .ok_or(())
}

/// Every label comes from a closed set: 5,000 requests with methods of their own (some of
/// 32 KB) made a series each, grew `/metrics` from 25 KB to 4 MB, and pushed real new
/// series into `otel_metric_overflow`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_make_no_series_of_their_own() {
    let db = TestDb::new().await;
    let reports = tempfile::tempdir().unwrap();
    let mut args = common::child::serve_args(&db.url, &examples_dir().join("odd-hours"), reports.path());
    args.extend(["--metrics-bind".into(), "127.0.0.1:0".into()]);
    let server = common::child::ChildServer::start(env!("CARGO_BIN_EXE_store-monitor"), args);
    let client = reqwest::Client::new();
    for method in ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        for path in ["/healthz", "/graphql", "/polls", "/nowhere"] {
            client
                .request(method.clone(), format!("{}{path}", server.address))
                .send()
                .await
                .unwrap();
        }
    }
    let before = server.scrape_metrics().await;
    for i in 0..5_000 {
        let method = if i % 1_000 == 0 {
            format!("M{i}{}", "X".repeat(32 << 10))
        } else {
            format!("INVENTED{i}")
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        // Refused or answered, whatever the server does with it, it is not a label.
        let _ = client
            .request(method, format!("{}/healthz", server.address))
            .send()
            .await;
    }
    let after = server.scrape_metrics().await;
    assert!(
        after.len() < 2 * before.len(),
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    assert!(
        !after.contains("INVENTED") && !after.contains("otel_metric_overflow"),
        "{after}"
    );
    assert!(after.contains(r#"method="other""#), "{after}");
    server.terminate();
}

/// A Prometheus server (Debian's package) scraping `serve --metrics-bind` every second: the
/// target is up, and after a report its duration histogram and the HTTP request counter
/// answer through Prometheus's HTTP API; `promtool check metrics` passes a scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_metrics_and_answers_for_a_report() {
    let (prometheus, promtool) = match (which("prometheus"), which("promtool")) {
        (Ok(p), Ok(t)) => (p, t),
        _ => panic!("no prometheus/promtool: `apt-get install prometheus` (.ci/run does)"),
    };
    let db = TestDb::new().await;
    let reports = tempfile::tempdir().unwrap();
    let mut args = common::child::serve_args(&db.url, &examples_dir().join("odd-hours"), reports.path());
    args.extend(["--metrics-bind".into(), "127.0.0.1:0".into()]);
    let server = common::child::ChildServer::start(env!("CARGO_BIN_EXE_store-monitor"), args);
    let metrics = server.metrics_address().await;

    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
             scrape_configs:\n  - job_name: store-monitor\n    static_configs: [{{ targets: ['{metrics}'] }}]\n"
        ),
    )
    .unwrap();
    let web = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let _prometheus = Killed(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                home.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let query = |expression: &'static str| {
        let url = format!("http://{web}/api/v1/query");
        async move {
            let answer: serde_json::Value = reqwest::Client::new()
                .get(url)
                .query(&[("query", expression)])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            answer["data"]["result"][0]["value"][1]
                .as_str()?
                .parse::<f64>()
                .ok()
        }
    };
    // Until Prometheus answers that the value is at least `least`.
    let until = |expression: &'static str, least: f64| async move {
        common::within(expression, Duration::from_secs(60), async {
            loop {
                if query(expression).await.is_some_and(|v| v >= least) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await
    };
    until("up{job=\"store-monitor\"}", 1.0).await;

    let triggered = server.graphql("mutation { triggerReport { id } }").await;
    let id = triggered["data"]["triggerReport"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut subscription = common::Subscription::start(&server.address, &id, "graphql-transport-ws").await;
    let mut last = None;
    while let Some(state) = subscription.next_state().await {
        last = state["status"].as_str().map(str::to_string);
    }
    assert_eq!(last.as_deref(), Some("COMPLETE"));
    until("store_monitor_report_duration_seconds_count", 1.0).await;
    until(
        "sum(store_monitor_http_requests_total{route=\"/graphql\",status=\"200\"})",
        1.0,
    )
    .await;
    until("store_monitor_build_info", 1.0).await;
    until("store_monitor_ready", 1.0).await;
    until(
        "sum(store_monitor_graphql_operations_total{kind=\"mutation\",outcome=\"ok\"})",
        1.0,
    )
    .await;
    until("store_monitor_polls_ingested_total{source=\"file\"}", 1.0).await;
    until("sum(store_monitor_db_pool_connections{pool=\"work\"})", 1.0).await;
    until("count(store_monitor_db_pool_acquire_wait_seconds)", 2.0).await;
    // Routes by the router's pattern, never by the path sent.
    let probe = reqwest::Client::new();
    for path in ["/reports/0b5e9f.csv", "/wp-admin/setup.php"] {
        let answer = probe
            .get(format!("{}{path}", server.address))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{path}");
    }
    until(
        "sum(store_monitor_http_requests_total{route=\"/reports/:file\",status=\"404\"})",
        1.0,
    )
    .await;
    until(
        "sum(store_monitor_http_requests_total{route=\"other\",status=\"404\"})",
        1.0,
    )
    .await;
    // The report was followed over WebSocket: its subscription counts too.
    until(
        "sum(store_monitor_graphql_operations_total{kind=\"subscription\",outcome=\"ok\"})",
        1.0,
    )
    .await;

    let scrape = server.scrape_metrics().await;
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), scrape.as_bytes()).unwrap();
    let checked = check.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&checked.stdout).to_string() + &String::from_utf8_lossy(&checked.stderr);
    assert!(
        checked.status.success() && said.trim().is_empty(),
        "{said}\n{scrape}"
    );
    server.terminate();
}

/// A child process killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The alert rules load (`promtool check rules`), fire on the series their unit tests give
/// and not before their `for` (`promtool test rules`), and each names a runbook section
/// that docs/OPERATIONS.md has.
#[test]
fn the_alert_rules_check_pass_their_tests_and_have_a_runbook_section() {
    let promtool = which("promtool").expect("no promtool: `apt-get install prometheus` (.ci/run does)");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = root.join("deploy/prometheus");
    for args in [
        &["check", "rules", "alerts.yml"][..],
        &["test", "rules", "alerts.test.yml"],
    ] {
        let ran = Command::new(&promtool)
            .args(args)
            .current_dir(&rules)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&ran.stdout).to_string() + &String::from_utf8_lossy(&ran.stderr);
        assert!(
            ran.status.success() && said.contains("SUCCESS"),
            "promtool {args:?}: {said}"
        );
    }
    let alerts = std::fs::read_to_string(rules.join("alerts.yml")).unwrap();
    let runbook = std::fs::read_to_string(root.join("docs/OPERATIONS.md")).unwrap();
    let mut named = 0;
    for line in alerts.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            named += 1;
            let anchor = format!("docs/OPERATIONS.md#{}", name.to_lowercase());
            assert!(alerts.contains(&anchor), "{name} points to no runbook section");
            assert!(
                runbook
                    .lines()
                    .any(|l| l.starts_with("### ") && l.trim_start_matches("### ").trim() == name),
                "docs/OPERATIONS.md has no section ### {name}"
            );
        }
    }
    assert!(named >= 6, "{named} alerts");
}

/// The container files, for machines with Docker (these have no daemon, so the image is
/// not built here): a multi-stage build whose image runs as a user of its own and checks
/// its health with `store-monitor healthcheck`; `docker compose config` where Compose is
/// installed.
#[test]
fn the_container_files_build_in_stages_run_unprivileged_and_check_their_health() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let stages: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(stages[0].ends_with(" AS build"), "{stages:?}");
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "runs as {user}"
    );
    assert!(dockerfile.contains(r#"CMD ["store-monitor", "healthcheck""#));
    // The bundled 2023 sample is never the image's data: it served and reloaded it as if
    // it were the operator's.
    let data = dockerfile
        .split("\n    STORE_MONITOR_DATA=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the image names its data folder");
    assert_eq!(data, "/var/lib/store-monitor/data");
    assert!(!dockerfile.contains("COPY data /var/lib/store-monitor/data"));
    let compose = std::fs::read_to_string(root.join("compose.yaml")).unwrap();
    assert!(compose.contains("pg_isready") && compose.contains(r#"command: ["worker"]"#));
    let Ok(docker) = which("docker") else {
        eprintln!("no docker: compose.yaml is not checked by Compose here");
        return;
    };
    let compose_here = Command::new(&docker).args(["compose", "version"]).output();
    if !compose_here.is_ok_and(|o| o.status.success()) {
        eprintln!("docker has no compose plugin: compose.yaml is not checked by Compose here");
        return;
    }
    let checked = Command::new(docker)
        .args(["compose", "-f", "compose.yaml", "config", "--quiet"])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}

/// Behind a trusted proxy (`--trusted-proxy`), the address its `X-Forwarded-For` names is
/// the client: each has its own trigger budget, and the audit and the logs name it. A
/// `Forwarded` the client wrote itself, which such a proxy passes through, changes nothing
/// (it used to win, and a client picked its own address). Without the flag the headers are
/// ignored: every call is the proxy's.
#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_limited_audited_and_logged() {
    let db = TestDb::new().await;
    let data = examples_dir().join("odd-hours");
    let reports = tempfile::tempdir().unwrap();
    let trigger_as =
        |address: String, forwarded_for: Option<&'static str>, forwarded: Option<&'static str>| async move {
            let mut request = reqwest::Client::new()
                .post(format!("{address}/graphql"))
                .json(&serde_json::json!({ "query": "mutation { triggerReport { id } }" }));
            if let Some(client) = forwarded_for {
                request = request.header("x-forwarded-for", client);
            }
            if let Some(element) = forwarded {
                request = request.header("forwarded", element);
            }
            let answer: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
            answer["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or("ok")
                .to_string()
        };
    let trigger = |address: String, forwarded_for| trigger_as(address, forwarded_for, None);
    for trusted in [true, false] {
        let mut args = common::child::serve_args(&db.url, &data, reports.path());
        args.extend(["--trigger-rate".into(), "1".into(), "--no-workers".into()]);
        if trusted {
            args.extend(["--trusted-proxy".into(), "127.0.0.1".into()]);
        }
        let server = common::child::ChildServer::start(env!("CARGO_BIN_EXE_store-monitor"), args);
        let address = server.address.clone();
        let first = trigger(address.clone(), Some("203.0.113.1")).await;
        let again = trigger(address.clone(), Some("203.0.113.1")).await;
        let other = trigger(address.clone(), Some("203.0.113.2")).await;
        let mut spoofed = Vec::new();
        for own in ["for=198.51.100.7", "for=198.51.100.8", "for=\"[2001:db8::9]\""] {
            spoofed.push(trigger_as(address.clone(), Some("203.0.113.1"), Some(own)).await);
        }
        let log = server.log.clone();
        server.terminate();
        let log = log.lock().unwrap().join("\n");
        if trusted {
            assert_eq!([first, again, other], ["ok", "TOO_MANY_REQUESTS", "ok"], "{log}");
            assert_eq!(
                spoofed, ["TOO_MANY_REQUESTS"; 3],
                "a client's own Forwarded: {log}"
            );
            assert!(
                !log.contains("198.51.100.") && !log.contains("2001:db8::9"),
                "{log}"
            );
            assert!(
                log.contains("anonymous at 203.0.113.1: GraphQL"),
                "the audit: {log}"
            );
            assert!(
                log.contains("request{remote_addr=203.0.113.2 "),
                "the logs: {log}"
            );
        } else {
            assert_eq!(
                [first, again, other],
                ["ok", "TOO_MANY_REQUESTS", "TOO_MANY_REQUESTS"],
                "{log}"
            );
            assert!(
                !log.contains("203.0.113."),
                "an untrusted header reached the log: {log}"
            );
        }
    }
}

/// A rolling upgrade leaves the older processes running on the schema the newer release
/// migrated: they must start, be ready and compute reports on it. The newer release is
/// played by one more migration of each kind (ours, apalis's), expanding the schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_build_runs_on_a_database_a_newer_release_migrated() {
    let db = TestDb::new().await;
    assert!(store_monitor(&["migrate"], Some(&db.url)).status.success());
    for statement in [
        "ALTER TABLE stores ADD COLUMN nickname text",
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99991231000001, 'store nicknames', true, '\\x00', 1)",
        "INSERT INTO apalis._sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99991231000001, 'a newer apalis', true, '\\x00', 1)",
    ] {
        sqlx::query(statement).execute(&db.pool).await.unwrap();
    }
    let migrate = store_monitor(&["migrate"], Some(&db.url));
    let said = String::from_utf8_lossy(&migrate.stderr);
    assert!(migrate.status.success(), "{said}");
    assert!(
        said.contains("the database is at 99991231000001, newer than this build's"),
        "{said}"
    );

    let app = TestApp::spawn(&db, &examples_dir().join("odd-hours"), 1).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.completed_report().await;
    app.stop().await;
}

/// What makes a migration unsafe while the previous release still runs (see
/// docs/OPERATIONS.md, "Upgrading"): a file that does one of these says why it may, on a
/// line `-- contract: …`, and is shipped a release after the code stopped needing the old shape.
fn contracting(sql: &str) -> Vec<&'static str> {
    let code: String = sql
        .lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let code = code.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut found = Vec::new();
    for (pattern, what) in [
        ("drop table", "drops a table"),
        ("drop column", "drops a column"),
        ("rename ", "renames"),
        ("set not null", "makes a column NOT NULL"),
        (" type ", "changes a column's type"),
    ] {
        if code.contains(pattern) {
            found.push(what);
        }
    }
    // A new NOT NULL column without a default: the older release's inserts would fail.
    if code
        .split("add column")
        .skip(1)
        .map(|clause| clause.split([',', ';']).next().unwrap_or_default())
        .any(|clause| clause.contains("not null") && !clause.contains("default"))
    {
        found.push("adds a NOT NULL column without a default");
    }
    found
}

#[test]
fn migrations_after_the_store_groups_id_only_expand_the_schema() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let version = |path: &std::path::Path| -> i64 {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        name.split('_').next().unwrap().parse().unwrap()
    };
    // The last migration before this rule: it contracts (a NOT NULL column an older groups
    // loader does not fill), which the checker must see.
    let before_the_rule = files.iter().find(|p| version(p) == 20261205000019).unwrap();
    assert_eq!(
        contracting(&std::fs::read_to_string(before_the_rule).unwrap()),
        ["makes a column NOT NULL"]
    );
    assert_eq!(
        contracting("ALTER TABLE t ADD COLUMN a int NOT NULL, ADD COLUMN b int NOT NULL DEFAULT 0"),
        ["adds a NOT NULL column without a default"]
    );
    assert!(
        contracting("-- we never drop table x\nALTER TABLE t ADD COLUMN a int DEFAULT 0 NOT NULL").is_empty()
    );
    for file in files.iter().filter(|p| version(p) > 20261205000019) {
        let sql = std::fs::read_to_string(file).unwrap();
        if sql.lines().any(|l| l.trim_start().starts_with("-- contract:")) {
            continue;
        }
        let found = contracting(&sql);
        assert!(
            found.is_empty(),
            "{} {}: the release before it would fail on the new schema during a rolling upgrade \
             (expand now, contract a release later; a `-- contract: why` line if it is that later step)",
            file.display(),
            found.join(", ")
        );
    }
}

/// The top-level modules of `src/` each file of one names (`crate::x`), comments left out:
/// module → the modules it uses.
fn module_uses() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        let name = name.strip_suffix(".rs").unwrap_or(&name).to_string();
        if name != "main" && name != "lib" {
            modules.insert(name);
        }
    }
    let mut uses: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        modules.iter().map(|m| (m.clone(), Default::default())).collect();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let relative = path.strip_prefix(&src).unwrap();
        let first = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .to_string();
        let module = first.strip_suffix(".rs").unwrap_or(&first).to_string();
        let Some(used) = uses.get_mut(&module) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().map(|l| l.split("//").next().unwrap_or_default()) {
            for (at, _) in line.match_indices("crate::") {
                let name: String = line[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name != module && modules.contains(&name) {
                    used.insert(name);
                }
            }
        }
    }
    uses
}

/// Rooms use the rooms below them, never back: no circle of `crate::` paths between the
/// top-level modules (the settings once imported the doors that imported the services that
/// imported the settings; telemetry knew the jobs that reported to it).
#[test]
fn no_circle_between_top_level_modules() {
    let uses = module_uses();
    // Depth-first from each module: a module met again on the path is a circle.
    fn walk(
        at: &str,
        uses: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            let mut circle = path[i..].to_vec();
            circle.push(at.to_string());
            return Some(circle);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_string());
        for next in &uses[at] {
            if let Some(circle) = walk(next, uses, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(at.to_string());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    for module in uses.keys() {
        if let Some(circle) = walk(module, &uses, &mut Vec::new(), &mut done) {
            panic!("a circle between rooms: {}", circle.join(" → "));
        }
    }
    // The checker sees a circle when there is one.
    let mut made = uses.clone();
    made.get_mut("domain").unwrap().insert("db".to_string());
    let mut done = std::collections::BTreeSet::new();
    assert!(
        made.keys()
            .any(|m| walk(m, &made, &mut Vec::new(), &mut done).is_some())
    );
}

/// Every committed migration, by version, with the start of the checksum sqlx keeps of it
/// (SHA-384, hex). A new migration adds its line; a line never changes.
const COMMITTED_MIGRATIONS: &[(i64, &str)] = &[
    (20261129000001, "77ef022bd2d990f35db984d3c6f51a02"),
    (20261129000002, "e500a6cd6a5816898f04870a43b08f1f"),
    (20261129000003, "71f8e1e4098ece4adba17f302254aed3"),
    (20261129000004, "377c17f4b19d9b16fb54ce7b5bf45657"),
    (20261129000005, "6189a16224cc202a0741b2ac959566c0"),
    (20261129000006, "1f18beb9c3a6e9cf58c5fbc348041a99"),
    (20261129000007, "98d860e6e6d7e63e2a17fc581bcfe135"),
    (20261129000008, "0513d332e1ab13522e8ff4b8f1bc4fd4"),
    (20261129000009, "f85702a1bba08457dab5d5fe37deb145"),
    (20261129000010, "5cc1feae78604d7e60a16b3bce5bdcc7"),
    (20261205000011, "2af3b00aa891f9991fa66004264880c6"),
    (20261205000012, "328c00c9138244daf07479847b031864"),
    (20261205000013, "c05e4b736284e95a4c3e2035f074417c"),
    (20261205000014, "c7eeb28eca7defd1f8ce078f3d27c921"),
    (20261205000015, "4141291686a2ed9812d984360b54d098"),
    (20261205000016, "f324a5c36a07527a9330491457718772"),
    (20261205000017, "b7b025ad903d6cd5b2f43ed6d0a86681"),
    (20261205000018, "62c613f97884fbe765eee81735d51b6e"),
    (20261205000019, "5dbedb7d0c2eb86baea9bf1a51bd52c4"),
    (20261207000020, "e95162021f359042e1e01974836a7999"),
    (20261207000021, "dc0818527706a272c9f2ec4095501b1a"),
    (20261207000022, "6eb8c1d41e10a0b37efb8391b9a30d69"),
];

/// A committed migration is never edited: databases out there have applied it, and sqlx
/// refuses to migrate one whose applied migration's checksum no longer matches. Four were
/// edited after they were committed before this test pinned them.
#[test]
fn committed_migrations_are_never_edited() {
    let found: Vec<(i64, String)> = store_monitor::db::MIGRATOR
        .iter()
        .map(|m| (m.version, m.checksum.iter().map(|b| format!("{b:02x}")).collect()))
        .collect();
    for &(version, pinned) in COMMITTED_MIGRATIONS {
        let Some((_, checksum)) = found.iter().find(|(v, _)| *v == version) else {
            panic!("migration {version} is gone: a committed migration stays, and a new one undoes it");
        };
        assert!(
            checksum.starts_with(pinned),
            "migration {version} was edited after it was committed (checksum {checksum}): \
             undo the edit and add a migration that makes the change"
        );
    }
    for (version, checksum) in &found {
        assert!(
            COMMITTED_MIGRATIONS.iter().any(|(v, _)| v == version),
            "migration {version} is new: pin it in COMMITTED_MIGRATIONS as ({version}, \"{}\")",
            &checksum[..32]
        );
    }
}

/// The URL of the test server's database `name` as libpq's tools take it (sqlx's own adds
/// parameters they refuse).
fn libpq_url(name: &str) -> String {
    let server = common::server_url();
    let (base, _) = server.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// The backup the runbook describes: `pg_dump` of the database, restored with
/// `pg_restore` into an empty one, serves the same reports (byte for byte, rebuilt from
/// their rows: the reports folder is a cache), tokens, incidents and data, and needs no
/// migration. Taken while the server runs, as a nightly backup would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_dump_restores_into_an_empty_database_serving_the_same_reports_and_tokens() {
    let (pg_dump, pg_restore) = match (which("pg_dump"), which("pg_restore")) {
        (Ok(d), Ok(r)) => (d, r),
        _ => panic!("no pg_dump/pg_restore: `apt-get install postgresql-client`"),
    };
    let db = TestDb::new().await;
    let data = tempfile::tempdir().unwrap();
    let (server, id, csv) = common::generated_report(&db, data.path(), |_| {}).await;
    let token = common::create_token(&db, "viewer", "kept across a restore");
    let figures = "{ dataset { stores polls businessHours timezones newestPoll } \
                   incidents { totalCount } reports(first: 10) { nodes { id status storesTotal } } }";
    let before = server.graphql(figures, serde_json::json!({})).await;
    assert!(before["errors"].is_null(), "{before}");
    assert!(
        before["data"]["incidents"]["totalCount"].as_i64().unwrap() > 0,
        "{before}"
    );

    let dump = tempfile::tempdir().unwrap();
    let file = dump.path().join("store_monitor.dump");
    let dumped = Command::new(pg_dump)
        .args(["--format=custom", "--file"])
        .arg(&file)
        .arg(format!("--dbname={}", libpq_url(&db.name)))
        .output()
        .unwrap();
    assert!(
        dumped.status.success(),
        "{}",
        String::from_utf8_lossy(&dumped.stderr)
    );
    server.stop().await;

    let restored = TestDb::empty().await;
    let loaded = Command::new(pg_restore)
        .args(["--exit-on-error", "--no-owner", "--single-transaction"])
        .arg(format!("--dbname={}", libpq_url(&restored.name)))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    let migrate = store_monitor(&["migrate"], Some(&restored.url));
    assert!(
        String::from_utf8_lossy(&migrate.stderr).contains("nothing to apply"),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );

    // A new machine: an empty reports folder, tokens required.
    let app = TestApp::spawn_adjusted(&restored, data.path(), 1, true, None, |s| {
        s.auth = Some(store_monitor::settings::AuthMode::Required);
    })
    .await;
    let after = app.graphql_as(&token, figures, serde_json::json!({})).await;
    assert_eq!(after, before);
    let file = reqwest::Client::new()
        .get(format!("{}/reports/{id}.csv", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(file.text().await.unwrap(), csv);
    app.stop().await;
}

/// The runbook's GraphQL (inline, in backticks) runs as written against this build's schema:
/// its deliveries query once named fields no type has.
#[tokio::test]
async fn the_runbooks_graphql_validates_against_the_schema() {
    let runbook =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/OPERATIONS.md"))
            .unwrap();
    let snippets: Vec<String> = runbook
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            ["{ ", "query ", "mutation ", "subscription "]
                .iter()
                .any(|p| s.starts_with(p))
        })
        // An id left to the reader: any well-formed one.
        .map(|s| s.replace('…', "00000000-0000-0000-0000-000000000000"))
        .collect();
    assert!(!snippets.is_empty());
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db, &examples_dir().join("odd-hours"), 0).await;
    for snippet in &snippets {
        let answer = app.graphql(snippet, serde_json::json!({})).await;
        assert!(answer.get("errors").is_none(), "{snippet}: {answer}");
    }
    app.stop().await;
}
