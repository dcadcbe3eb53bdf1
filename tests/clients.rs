//! The server as the client libraries front ends use meet it (`tests/js/`): graphql-http's
//! audit of the GraphQL-over-HTTP spec, graphql-js's introspection, graphql-ws and
//! subscriptions-transport-ws following a report (with a token in `connectionParams` on a
//! server that needs one), Apollo Client's persisted queries, and the Standard Webhooks
//! library receivers verify deliveries with.

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

#[tokio::test]
async fn the_standard_webhooks_library_verifies_our_signatures_and_refuses_tampering() {
    use store_monitor::domain::webhook::{Secret, signature_header};
    let (old, new) = (
        Secret::from_bytes((0..32).collect()).unwrap(),
        Secret::from_bytes((100..148).collect()).unwrap(),
    );
    // The library refuses timestamps more than five minutes from its clock.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let body = r#"{"type":"incident.opened","timestamp":"2023-01-25T18:13:22Z","data":{"store":"é"}}"#;
    let case = |secret: &Secret, signature: String, body: &str| {
        serde_json::json!({ "secret": secret.reveal(), "id": "msg_2Lz", "timestamp": now,
                            "signature": signature, "body": body })
    };
    let both = signature_header(&[&new, &old], "msg_2Lz", now, body.as_bytes());
    let cases = serde_json::json!([
        case(
            &new,
            signature_header(&[&new], "msg_2Lz", now, body.as_bytes()),
            body
        ),
        // A rotated secret's overlap: either secret verifies the two signatures.
        case(&new, both.clone(), body),
        case(&old, both.clone(), body),
        // A body changed on the way, or signed by a secret the receiver does not hold.
        case(&new, both, &body.replace("opened", "resolved")),
        case(
            &old,
            signature_header(&[&new], "msg_2Lz", now, body.as_bytes()),
            body
        ),
    ]);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), cases.to_string()).unwrap();
    let log = common::js::run(
        "standardwebhooks.mjs",
        vec![file.path().to_string_lossy().into_owned()],
        vec![],
    )
    .await;
    let outcomes: Vec<String> = serde_json::from_str(log.trim()).unwrap();
    assert_eq!(outcomes[..3], ["verified", "verified", "verified"], "{log}");
    assert!(outcomes[3].starts_with("refused"), "{log}");
    assert!(outcomes[4].starts_with("refused"), "{log}");
}
