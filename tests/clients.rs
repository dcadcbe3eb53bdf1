//! The server as the client libraries front ends use meet it (`tests/js/`): graphql-http's
//! audit of the GraphQL-over-HTTP spec, graphql-js's introspection, graphql-ws and
//! subscriptions-transport-ws following a report (with a token in `connectionParams` on a
//! server that needs one), and Apollo Client's persisted queries.

mod common;

use common::{TestApp, TestDb, example_dirs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_http_audits_pass_without_warnings() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &example_dirs()[0], 0).await;
    let log = common::js::run("audit.mjs", vec![server.address.clone()], vec![]).await;
    assert!(log.contains("0 warn, 0 error"), "{log}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_js_builds_the_schema_from_the_standard_introspection_query() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &example_dirs()[0], 0).await;
    let log = common::js::run("introspection.mjs", vec![server.address.clone()], vec![]).await;
    assert!(log.contains("lines of SDL"), "{log}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_subscription_clients_follow_a_report_until_complete() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &example_dirs()[0], 1).await;
    let log = common::js::run("follow.mjs", vec![server.address.clone()], vec![]).await;
    for client in ["graphql-ws:", "subscriptions-transport-ws:"] {
        let line = log.lines().find(|l| l.contains(client)).unwrap_or_default();
        assert!(line.ends_with("COMPLETE"), "{log}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_clients_send_the_token_in_connection_params() {
    let db = TestDb::new().await;
    let token = common::create_token(&db, "operator", "subscription clients");
    let server = TestApp::spawn_adjusted(&db, &example_dirs()[0], 1, true, None, |s| {
        s.auth = Some(store_monitor::settings::AuthMode::Required);
    })
    .await;
    let log = common::js::run("follow.mjs", vec![server.address.clone(), token], vec![]).await;
    assert!(log.contains("graphql-ws without a token: closed 4401"), "{log}");
    for client in ["graphql-ws:", "subscriptions-transport-ws:"] {
        let line = log.lines().find(|l| l.contains(client)).unwrap_or_default();
        assert!(line.ends_with("COMPLETE"), "{log}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apollo_clients_persisted_queries_link_registers_then_sends_hashes() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &example_dirs()[0], 0).await;
    let log = common::js::run("apollo.mjs", vec![server.address.clone()], vec![]).await;
    // By POST: the hash alone (unknown), then with its query; then the hash alone. By GET
    // the server knows it already: the hash alone, twice.
    assert!(log.contains("apollo.mjs: POST POST+query POST GET GET"), "{log}");
    server.stop().await;
}
