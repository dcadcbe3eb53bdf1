//! Browsers on other origins: refused unless `--cors-origin` names them, with only the
//! methods and headers the API uses, `Vary: Origin` on every answer, and WebSocket upgrades
//! held to the same rule. Pages of the server's own origin (GraphiQL) are not CORS at all.

mod common;

use common::{TestApp, TestDb, example_dirs};
use reqwest::header;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const QUERY: &str = r#"{"query":"{ __typename }"}"#;

async fn post(server: &TestApp, origin: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/graphql", server.address))
        .header(header::CONTENT_TYPE, "application/json")
        .body(QUERY);
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    request.send().await.unwrap()
}

async fn preflight(server: &TestApp, origin: &str, method: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}/graphql", server.address))
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, method)
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type, authorization",
        )
        .send()
        .await
        .unwrap()
}

/// The status of a WebSocket upgrade sent with `origin`.
async fn upgrade(server: &TestApp, origin: Option<&str>) -> u16 {
    let url = format!("{}/graphql/ws", server.address.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    if let Some(origin) = origin {
        request.headers_mut().insert("Origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

fn varies_by_origin(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get_all(header::VARY)
        .iter()
        .any(|v| v.to_str().unwrap().to_ascii_lowercase().contains("origin"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_origin_configured_only_the_servers_own_pages_may_call() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &example_dirs()[0], 0).await;
    let own = server.address.clone();

    let from_elsewhere = post(&server, Some("https://evil.example")).await;
    assert_eq!(from_elsewhere.status(), 403);
    assert!(
        !from_elsewhere
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
    assert_eq!(
        preflight(&server, "https://evil.example", "POST").await.status(),
        403
    );

    let same = post(&server, Some(&own)).await;
    assert_eq!(same.status(), 200);
    assert!(varies_by_origin(&same));
    assert!(!same.headers().contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    let no_browser = post(&server, None).await;
    assert_eq!(no_browser.status(), 200);
    assert!(varies_by_origin(&no_browser), "caches keep origins apart");

    assert_eq!(upgrade(&server, Some("https://evil.example")).await, 403);
    assert_eq!(upgrade(&server, Some(&own)).await, 101);
    assert_eq!(upgrade(&server, None).await, 101);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_origin_gets_only_the_methods_and_headers_the_api_uses() {
    let db = TestDb::new().await;
    let app = "https://dashboard.example";
    let server = TestApp::spawn_adjusted(&db, &example_dirs()[0], 0, true, None, |s| {
        s.cors_origins = vec![app.into()];
    })
    .await;

    let allowed = preflight(&server, app, "POST").await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], app);
    let methods = allowed.headers()[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap()
        .to_ascii_uppercase();
    assert!(methods.contains("POST") && methods.contains("GET"), "{methods}");
    for never in ["TRACE", "CONNECT", "PUT", "DELETE", "PATCH"] {
        assert!(!methods.contains(never), "{methods}");
    }
    let headers = allowed.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        headers.contains("content-type") && headers.contains("authorization"),
        "{headers}"
    );
    for method in ["TRACE", "CONNECT", "DELETE"] {
        assert_eq!(preflight(&server, app, method).await.status(), 403, "{method}");
    }

    let answer = post(&server, Some(app)).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], app);
    assert!(varies_by_origin(&answer));
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body, json!({ "data": { "__typename": "Query" } }));

    assert_eq!(post(&server, Some("https://other.example")).await.status(), 403);
    assert_eq!(upgrade(&server, Some(app)).await, 101);
    assert_eq!(upgrade(&server, Some("https://other.example")).await, 403);
    server.stop().await;
}
