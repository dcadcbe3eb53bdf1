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
