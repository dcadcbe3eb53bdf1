//! GraphiQL in a real browser: headless Chromium (Debian's package) driven by
//! puppeteer-core, with every request to another host blocked, opens `/graphql`; the page
//! renders, its Docs pane shows the schema, and a query run from the editor shows its
//! result (`tests/js/graphiql.mjs`); on a server that needs a token, the page says so until
//! one is pasted into its token field, and then sends it. The screenshot lands in
//! `target/tmp/graphiql.png` (`CARGO_TARGET_TMPDIR`); `docs/graphiql.png` is one of them.
//!
//! The dashboard at `/` the same way (`tests/js/dashboard.mjs`): it runs a report to
//! COMPLETE with its progress bar, lists the expected CSV's worst store first, and draws
//! that store's week; it cancels a running report; and on a server that needs a token it
//! says so, then sends the pasted one with its requests and its WebSocket; its "Down now"
//! panel shows a store that pushed polls take down, live, and empties when it is back up
//! (`tests/js/down.mjs`), the store's page listing and marking the incident. For a token
//! scoped to a store group it names the group and shows that group's stores alone, and no
//! byte the server sends it names another group's store (`tests/js/scoped.mjs`). Its
//! screenshots land in `target/tmp/dashboard*.png` (`docs/` has ones of the bundled data).

mod common;

use std::path::{Path, PathBuf};

use common::child::{ChildServer, serve_args};
use common::{TestApp, TestDb, example_dirs};

/// Debian's Chromium, or the one `CHROMIUM` names.
fn chromium() -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no Chromium at {chromium}: `apt-get install chromium` (.ci/run does), or set CHROMIUM"
    );
    chromium
}

/// The example whose worst store is neither its first nor its last by store id.
fn odd_hours() -> PathBuf {
    example_dirs()
        .into_iter()
        .find(|dir| dir.ends_with("odd-hours"))
        .expect("the odd-hours example")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_runs_a_report_lists_the_worst_store_first_and_draws_its_week() {
    let db = TestDb::new().await;
    let data = odd_hours();
    let server = TestApp::spawn(&db, &data, 1).await;
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let log = common::js::run(
        "dashboard.mjs",
        vec![
            "run".into(),
            server.address.clone(),
            data.join("expected_nearest.csv").display().to_string(),
            shots.display().to_string(),
        ],
        vec![("CHROMIUM".into(), chromium())],
    )
    .await;
    println!("{log}");
    assert!(log.contains("run passed"), "{log}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_takes_a_pasted_token_for_its_requests_and_its_socket() {
    let db = TestDb::new().await;
    let token = common::create_token(&db, "operator", "the dashboard in a browser");
    let server = TestApp::spawn_adjusted(&db, &odd_hours(), 1, true, None, |s| {
        s.auth = Some(store_monitor::settings::AuthMode::Required);
    })
    .await;
    let log = common::js::run(
        "dashboard.mjs",
        vec!["token".into(), server.address.clone(), token],
        vec![("CHROMIUM".into(), chromium())],
    )
    .await;
    assert!(log.contains("token passed"), "{log}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_cancels_a_running_report() {
    let db = TestDb::new().await;
    let reports = tempfile::tempdir().unwrap();
    // Its reports stall once RUNNING, until cancelled.
    let server = ChildServer::start_with_env(
        env!("CARGO_BIN_EXE_store-monitor"),
        serve_args(&db.url, &odd_hours(), reports.path()),
        [("STORE_MONITOR_FAILPOINT", "report-stall")],
    );
    let log = common::js::run(
        "dashboard.mjs",
        vec!["cancel".into(), server.address.clone()],
        vec![("CHROMIUM".into(), chromium())],
    )
    .await;
    assert!(log.contains("cancel passed"), "{log}");
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_store_going_down_and_coming_back() {
    // No polls yet; the pushed store has no business hours: open around the clock.
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("menu_hours.csv"),
        "store_id,dayOfWeek,start_time_local,end_time_local\nelsewhere,0,09:00:00,17:00:00\n",
    )
    .unwrap();
    std::fs::write(
        data.path().join("timezones.csv"),
        "store_id,timezone_str\nelsewhere,UTC\n",
    )
    .unwrap();
    std::fs::write(
        data.path().join("store_status.csv"),
        "store_id,status,timestamp_utc\n",
    )
    .unwrap();
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, data.path(), 0).await;
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-down.png");
    let log = common::js::run(
        "down.mjs",
        vec![
            server.address.clone(),
            "pushed-store".into(),
            shot.display().to_string(),
        ],
        vec![("CHROMIUM".into(), chromium())],
    )
    .await;
    assert!(log.contains("down.mjs: passed"), "{log}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_renders_offline_shows_the_schema_and_runs_a_query() {
    let chromium = chromium();
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &example_dirs()[0], 0).await;
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("graphiql.png");
    let log = common::js::run(
        "graphiql.mjs",
        vec![server.address.clone(), screenshot.display().to_string()],
        vec![("CHROMIUM".into(), chromium)],
    )
    .await;
    assert!(log.contains("query answered"), "{log}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_takes_a_pasted_token_on_a_server_that_needs_one() {
    let chromium = chromium();
    let db = TestDb::new().await;
    let token = common::create_token(&db, "viewer", "GraphiQL in a browser");
    let server = TestApp::spawn_adjusted(&db, &example_dirs()[0], 0, true, None, |s| {
        s.auth = Some(store_monitor::settings::AuthMode::Required);
    })
    .await;
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("graphiql-token.png");
    let log = common::js::run(
        "graphiql.mjs",
        vec![server.address.clone(), screenshot.display().to_string(), token],
        vec![("CHROMIUM".into(), chromium)],
    )
    .await;
    assert!(log.contains("query answered"), "{log}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_scoped_token_its_groups_stores_alone() {
    // Three stores down since 10:00, open around the clock: `alpha-1` in group A,
    // `bravo-1` in group B, `both-ab` in both.
    let data = tempfile::tempdir().unwrap();
    let mut status = String::from("store_id,status,timestamp_utc\n");
    for store in ["alpha-1", "bravo-1", "both-ab"] {
        for hour in [10, 11] {
            status.push_str(&format!("{store},inactive,2023-01-25 {hour}:00:00 UTC\n"));
        }
    }
    std::fs::write(data.path().join("store_status.csv"), status).unwrap();
    std::fs::write(
        data.path().join("store_groups.csv"),
        "store_id,group\nalpha-1,A\nboth-ab,A\nbravo-1,B\nboth-ab,B\n",
    )
    .unwrap();
    let db = TestDb::new().await;
    // A server that needs tokens starts once one exists; a scoped one names groups that
    // have stores, so it is made once the server has loaded them.
    common::create_token(&db, "admin", "the admin");
    let server = TestApp::spawn_adjusted(&db, data.path(), 1, true, None, |s| {
        s.auth = Some(store_monitor::settings::AuthMode::Required);
    })
    .await;
    let token = common::cli(
        &db,
        [
            "token",
            "create",
            "--role",
            "operator",
            "--name",
            "owner of A",
            "--group",
            "A",
        ],
    )
    .trim()
    .to_string();
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-scoped.png");
    let log = common::js::run(
        "scoped.mjs",
        vec![
            server.address.clone(),
            token,
            "A".into(),
            "alpha-1,both-ab".into(),
            "bravo-1".into(),
            shot.display().to_string(),
        ],
        vec![("CHROMIUM".into(), chromium())],
    )
    .await;
    println!("{log}");
    assert!(log.contains("scoped.mjs: passed"), "{log}");
    server.stop().await;
}
