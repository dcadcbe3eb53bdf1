//! The reports a front end lists and hears of (issue 11): the latest COMPLETE one,
//! `reports` filtered by status and interpolation, and the `reports` subscription that
//! passes on every change of any report.

mod common;

use common::socket::Socket;
use common::{TestApp, TestDb, example_dirs};
use serde_json::json;

const TRIGGER: &str = "mutation($i: Interpolation!) { triggerReport(input: { interpolation: $i }) { id } }";

async fn trigger(server: &TestApp, interpolation: &str) -> String {
    let answer = server.graphql(TRIGGER, json!({ "i": interpolation })).await;
    answer["data"]["triggerReport"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_report_a_filtered_list_and_every_change_as_it_happens() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &example_dirs()[0], 1).await;
    let latest = "query($i: Interpolation) { latestReport(interpolation: $i) { id status interpolation } }";
    let answer = server.graphql(latest, json!({})).await;
    assert!(answer["data"]["latestReport"].is_null(), "none yet: {answer}");

    // Hear every change of every report, and only COMPLETE ones of FORWARD_FILL on another.
    let mut everything = Socket::open(&server.address, json!({})).await;
    everything.expect_ack().await;
    everything
        .subscribe("1", "subscription { reports { id status } }", json!({}))
        .await;
    let mut finished = Socket::open(&server.address, json!({})).await;
    finished.expect_ack().await;
    finished
        .subscribe(
            "1",
            "subscription { reports(filter: { status: COMPLETE, interpolation: FORWARD_FILL }) { id status interpolation } }",
            json!({}),
        )
        .await;
    // The subscriptions have started once a query on the same sockets has answered.
    for socket in [&mut everything, &mut finished] {
        socket.subscribe("ready", "{ __typename }", json!({})).await;
        while socket.next().await.unwrap()["id"] != "ready" {}
        assert_eq!(socket.next().await.unwrap()["type"], "complete");
    }

    let nearest = trigger(&server, "NEAREST").await;
    let (states, _) = server.follow(&nearest, "graphql-transport-ws").await;
    assert_eq!(states.last().map(String::as_str), Some("COMPLETE"));
    let forward = trigger(&server, "FORWARD_FILL").await;
    let (states, _) = server.follow(&forward, "graphql-transport-ws").await;
    assert_eq!(states.last().map(String::as_str), Some("COMPLETE"));

    // Everything: each report from PENDING to COMPLETE, in order.
    let mut heard: Vec<(String, String)> = Vec::new();
    while heard.last() != Some(&(forward.clone(), "COMPLETE".to_string())) {
        let message = everything.next().await.unwrap();
        assert_eq!(message["type"], "next", "{message}");
        let report = &message["payload"]["data"]["reports"];
        heard.push((
            report["id"].as_str().unwrap().into(),
            report["status"].as_str().unwrap().into(),
        ));
    }
    let statuses = |id: &str| -> Vec<String> {
        heard
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, s)| s.clone())
            .collect()
    };
    assert_eq!(
        statuses(&nearest).last().map(String::as_str),
        Some("COMPLETE"),
        "{heard:?}"
    );
    // The second was triggered well after the subscription started: its whole life.
    assert_eq!(
        statuses(&forward).first().map(String::as_str),
        Some("PENDING"),
        "{heard:?}"
    );
    assert_eq!(
        statuses(&forward).last().map(String::as_str),
        Some("COMPLETE"),
        "{heard:?}"
    );
    // The filtered one: the FORWARD_FILL report's COMPLETE, and nothing else.
    let message = finished.next().await.unwrap();
    assert_eq!(message["payload"]["data"]["reports"]["id"], forward, "{message}");
    assert_eq!(message["payload"]["data"]["reports"]["status"], "COMPLETE");

    // The latest, of either interpolation or of one.
    let answer = server.graphql(latest, json!({})).await;
    assert_eq!(answer["data"]["latestReport"]["id"], forward);
    let answer = server.graphql(latest, json!({ "i": "NEAREST" })).await;
    assert_eq!(answer["data"]["latestReport"]["id"], nearest);

    // A list of one status and interpolation.
    let pending = trigger(&server, "NEAREST").await;
    let list = "query($f: ReportsFilter) { reports(filter: $f) { nodes { id status interpolation } } }";
    let answer = server
        .graphql(
            list,
            json!({ "f": { "status": "COMPLETE", "interpolation": "NEAREST" } }),
        )
        .await;
    let ids: Vec<&str> = answer["data"]["reports"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&nearest.as_str()) && !ids.contains(&forward.as_str()),
        "{answer}"
    );
    let answer = server
        .graphql(list, json!({ "f": { "interpolation": "FORWARD_FILL" } }))
        .await;
    assert_eq!(
        answer["data"]["reports"]["nodes"].as_array().unwrap().len(),
        1,
        "{answer}"
    );
    let answer = server.graphql(list, json!({})).await;
    let all = answer["data"]["reports"]["nodes"].as_array().unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["id"], pending, "newest first");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dataset_subscription_hears_each_reload_that_changed_the_data_and_no_other() {
    let db = TestDb::new().await;
    let data = tempfile::tempdir().unwrap();
    for file in std::fs::read_dir(&example_dirs()[0]).unwrap() {
        let file = file.unwrap().path();
        if file.extension().is_some_and(|e| e == "csv")
            && !file
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("expected")
        {
            std::fs::copy(&file, data.path().join(file.file_name().unwrap())).unwrap();
        }
    }
    let server = TestApp::spawn(&db, data.path(), 0).await;
    let version = |answer: &serde_json::Value| answer["data"]["dataset"]["dataVersion"].as_i64().unwrap();
    let first = version(&server.graphql("{ dataset { dataVersion } }", json!({})).await);

    let mut socket = Socket::open(&server.address, json!({})).await;
    socket.expect_ack().await;
    socket
        .subscribe("1", "subscription { dataset { dataVersion polls } }", json!({}))
        .await;
    socket.subscribe("ready", "{ __typename }", json!({})).await;
    while socket.next().await.unwrap()["id"] != "ready" {}
    assert_eq!(socket.next().await.unwrap()["type"], "complete");

    // Unchanged files: nothing to hear. Then a poll more: one change.
    let reload = "mutation { reloadData { changed dataVersion } }";
    let unchanged = server.graphql(reload, json!({})).await;
    assert_eq!(unchanged["data"]["reloadData"]["changed"], false, "{unchanged}");
    let status = data.path().join("store_status.csv");
    let mut text = std::fs::read_to_string(&status).unwrap();
    text.push_str("1001,active,2023-01-23 18:14:00 UTC\n");
    std::fs::write(&status, text).unwrap();
    let changed = server.graphql(reload, json!({})).await;
    assert_eq!(changed["data"]["reloadData"]["changed"], true, "{changed}");
    let now = changed["data"]["reloadData"]["dataVersion"].as_i64().unwrap();
    assert!(now > first);

    let heard = socket.next().await.unwrap();
    assert_eq!(heard["type"], "next", "{heard}");
    assert_eq!(
        heard["payload"]["data"]["dataset"]["dataVersion"], now,
        "the first heard is the change: {heard}"
    );
    server.stop().await;
}
