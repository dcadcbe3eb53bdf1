//! Subscription sockets as graphql-ws and subscriptions-transport-ws clients meet them:
//! closed when they never say `connection_init`, pinged while idle, refused operations as
//! the protocol's `error` message, oversized messages refused.

mod common;

use std::time::Duration;

use common::{TestApp, TestDb, example_dirs};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &TestApp, protocol: &str) -> Socket {
    let url = format!("{}/graphql/ws", server.address.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The next message, or `None` once the socket is closed; a safety net, not a timing.
async fn next(socket: &mut Socket) -> Option<Message> {
    tokio::time::timeout(Duration::from_secs(30), socket.next())
        .await
        .expect("the server answers")
        .and_then(Result::ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_initialises_is_closed_with_4408_and_an_idle_one_is_pinged() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &example_dirs()[0], 0).await;

    let mut silent = connect(&server, "graphql-transport-ws").await;
    let close = loop {
        match next(&mut silent).await {
            Some(Message::Close(frame)) => break frame,
            Some(_) => continue,
            None => panic!("closed without a close frame"),
        }
    };
    assert_eq!(u16::from(close.expect("a close frame with a code").code), 4408);

    let mut idle = connect(&server, "graphql-transport-ws").await;
    idle.send(Message::text(json!({ "type": "connection_init" }).to_string()))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while !seen.iter().any(|m| matches!(m, Message::Ping(_))) {
        let message = next(&mut idle).await.expect("the socket stays open");
        assert!(
            !matches!(message, Message::Close(_)),
            "an initialised socket is kept: {message:?}"
        );
        seen.push(message);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subscription_is_an_error_message_with_its_code() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &example_dirs()[0], 0).await;
    let mut socket = connect(&server, "graphql-transport-ws").await;
    socket
        .send(Message::text(json!({ "type": "connection_init" }).to_string()))
        .await
        .unwrap();
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { report(id: \"x\") { weather } }" } });
    socket.send(Message::text(subscribe.to_string())).await.unwrap();
    let mut messages = Vec::new();
    loop {
        let Some(Message::Text(text)) = next(&mut socket).await else {
            continue;
        };
        let message: Value = serde_json::from_str(&text).unwrap();
        if message["type"] == "connection_ack" {
            continue;
        }
        messages.push(message.clone());
        if message["type"] == "error" {
            break;
        }
        assert_ne!(message["type"], "complete", "{messages:?}");
    }
    let error = messages.last().unwrap();
    assert_eq!(error["id"], "1");
    assert_eq!(
        error["payload"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{error}"
    );
    assert_eq!(messages.len(), 1, "no next before the error: {messages:?}");

    // A message over the size limit closes the socket.
    let huge = json!({ "id": "2", "type": "subscribe", "payload": { "query": " ".repeat(1 << 20) } });
    let _ = socket.send(Message::text(huge.to_string())).await;
    loop {
        match next(&mut socket).await {
            None | Some(Message::Close(_)) => break,
            Some(_) => continue,
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_notice_is_made_up_for_while_other_reports_keep_announcing() {
    let db = TestDb::new().await;
    // No workers: the reports stay PENDING until the test moves them.
    let server = TestApp::spawn(&db, &example_dirs()[0], 0).await;
    let trigger = || {
        server.graphql(
            "mutation { triggerReport(input: { interpolation: FORWARD_FILL }) { id } }",
            json!({}),
        )
    };
    let followed = trigger().await["data"]["triggerReport"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = server
        .graphql("mutation { triggerReport { id } }", json!({}))
        .await["data"]["triggerReport"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut states = common::Subscription::start(&server.address, &followed, "graphql-transport-ws").await;
    assert_eq!(states.next_state().await.unwrap()["status"], "PENDING");

    // Another report's notices, ten a second, for as long as the test runs.
    let pool = db.pool.clone();
    let noise = tokio::spawn(async move {
        let other = uuid::Uuid::parse_str(&other).unwrap();
        loop {
            sqlx::query(
                "SELECT pg_notify('report_events', row_to_json(r)::text) FROM reports r WHERE id = $1",
            )
            .bind(other)
            .execute(&pool)
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // The followed report finishes without a notice, as if it were lost.
    sqlx::query("UPDATE reports SET status = 'FAILED', error = 'gone', finished_at = now() WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&followed).unwrap())
        .execute(&db.pool)
        .await
        .unwrap();
    let state = states
        .next_state()
        .await
        .expect("the subscription re-reads its report");
    assert_eq!(state["status"], "FAILED", "{state}");
    noise.abort();
    server.stop().await;
}
