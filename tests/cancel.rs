//! `cancelReport` (issue 11): a PENDING report is CANCELLED and never runs; a RUNNING one
//! (held mid-computation by the `report-stall` failpoint of a `serve` process of its own)
//! is CANCELLED, its job stops and frees its worker, and no file is written.

mod common;

use common::child::{ChildServer, serve_args};
use common::{TestApp, TestDb, example_dirs};
use serde_json::{Value, json};

const CANCEL: &str = "mutation($id: ID!) { cancelReport(id: $id) { id status finishedAt } }";

async fn graphql(address: &str, query: &str, variables: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{address}/graphql"))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn trigger(address: &str) -> String {
    let answer = graphql(address, "mutation { triggerReport { id } }", json!({})).await;
    answer["data"]["triggerReport"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_report_is_cancelled_and_never_runs() {
    let db = TestDb::new().await;
    // No workers: the report stays PENDING until cancelled.
    let server = TestApp::spawn(&db, &example_dirs()[0], 0).await;
    let id = trigger(&server.address).await;
    let mut follower = common::Subscription::start(&server.address, &id, "graphql-transport-ws").await;
    assert_eq!(follower.next_state().await.unwrap()["status"], "PENDING");

    let answer = graphql(&server.address, CANCEL, json!({ "id": id })).await;
    assert_eq!(answer["data"]["cancelReport"]["status"], "CANCELLED", "{answer}");
    assert!(answer["data"]["cancelReport"]["finishedAt"].is_string());
    // Its follower hears it, and the subscription ends there.
    assert_eq!(follower.next_state().await.unwrap()["status"], "CANCELLED");
    assert!(follower.next_state().await.is_none());

    // Twice, or an unknown report: the client's mistake, said so.
    let again = graphql(&server.address, CANCEL, json!({ "id": id })).await;
    assert_eq!(
        again["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{again}"
    );
    assert!(
        again["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("CANCELLED already")
    );
    let unknown = graphql(&server.address, CANCEL, json!({ "id": uuid::Uuid::new_v4() })).await;
    assert_eq!(
        unknown["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{unknown}"
    );
    let legacy = server.get(&format!("/get_report?report_id={id}")).await;
    assert_eq!(legacy.status(), 410);
    server.stop().await;

    // A worker that comes later leaves it CANCELLED.
    let worker = TestApp::spawn_worker(&db, &example_dirs()[0]).await;
    let other = {
        let server = TestApp::spawn(&db, &example_dirs()[0], 0).await;
        let other = trigger(&server.address).await;
        let (states, _) = server.follow(&other, "graphql-transport-ws").await;
        assert_eq!(states.last().map(String::as_str), Some("COMPLETE"));
        server.stop().await;
        other
    };
    let statuses: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, status FROM reports ORDER BY created_at")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(statuses[0], (id.parse().unwrap(), "CANCELLED".to_string()));
    assert_eq!(statuses[1], (other.parse().unwrap(), "COMPLETE".to_string()));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_report_stops_frees_its_worker_and_writes_nothing() {
    let db = TestDb::new().await;
    let reports = tempfile::tempdir().unwrap();
    let mut args = serve_args(&db.url, &example_dirs()[0], reports.path());
    args.extend(["--concurrency".into(), "1".into()]);
    let server = ChildServer::start_with_env(
        env!("CARGO_BIN_EXE_store-monitor"),
        args,
        [("STORE_MONITOR_FAILPOINT", "report-stall")],
    );
    let id = trigger(&server.address).await;
    let mut follower = common::Subscription::start(&server.address, &id, "graphql-transport-ws").await;
    while follower.next_state().await.unwrap()["status"] != "RUNNING" {}

    let answer = graphql(&server.address, CANCEL, json!({ "id": id })).await;
    assert_eq!(answer["data"]["cancelReport"]["status"], "CANCELLED", "{answer}");
    assert_eq!(follower.next_state().await.unwrap()["status"], "CANCELLED");

    // The job stops: the one worker takes the next report (which stalls in its turn).
    let next = trigger(&server.address).await;
    let mut second = common::Subscription::start(&server.address, &next, "graphql-transport-ws").await;
    while second.next_state().await.unwrap()["status"] != "RUNNING" {}
    // The log is read from the process's pipe by a thread of its own: give it a moment.
    let stopped = |log: &[String]| {
        log.iter()
            .any(|l| l.contains("report cancelled while running: stopped"))
    };
    for _ in 0..100 {
        if stopped(&server.log.lock().unwrap()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        stopped(&server.log.lock().unwrap()),
        "{:?}",
        server.log.lock().unwrap()
    );
    let written: Vec<_> = std::fs::read_dir(reports.path()).unwrap().collect();
    assert!(
        written.is_empty(),
        "a cancelled report writes no file: {written:?}"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM reports WHERE id = $1")
        .bind(id.parse::<uuid::Uuid>().unwrap())
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(status, "CANCELLED");
    server.terminate();
}
