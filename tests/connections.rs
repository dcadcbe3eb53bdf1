//! Hostile and greedy clients meet limits, and the others are still served: documents that
//! fan out, a client that trickles its headers, more connections than allowed, more
//! sockets per address or subscriptions per socket than allowed. (A process out of file
//! descriptors and a huge body are `process_limits.rs`'s: run alone, they load the machine.)

mod common;

use std::time::Duration;

use common::{TestApp, TestDb, example_dirs};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn host(server: &TestApp) -> String {
    server.address.trim_start_matches("http://").to_string()
}

async fn healthz(server: &TestApp) -> u16 {
    reqwest::get(format!("{}/healthz", server.address))
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Fragments each spreading the next one ten times, `levels` deep: 10^levels fields once
/// expanded, a few kilobytes written down.
fn fan_out(levels: usize) -> String {
    let mut document = String::from("query FanOut { ...F0 }\n");
    for level in 0..levels {
        let spreads = format!("...F{} ", level + 1).repeat(10);
        document += &format!("fragment F{level} on Query {{ {spreads}}}\n");
    }
    document += &format!("fragment F{levels} on Query {{ __typename }}\n");
    document
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_that_fan_out_are_refused_over_http_and_websocket_while_health_checks_answer() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &example_dirs()[0], 0).await;
    let url = format!("{}/graphql/ws", server.address.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
        .send(Message::text(json!({ "type": "connection_init" }).to_string()))
        .await
        .unwrap();

    for levels in [7, 8, 30] {
        let document = fan_out(levels);
        // Two at once over HTTP (two were enough to hang every runtime thread before).
        let posts = (0..2).map(|_| server.graphql(&document, json!({})));
        let health = async {
            let mut answered = 0;
            for _ in 0..5 {
                assert_eq!(healthz(&server).await, 200);
                answered += 1;
            }
            answered
        };
        // A safety net, not a timing: before, 30 levels were never answered.
        let (answers, answered) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(futures::future::join_all(posts), health)
        })
        .await
        .expect("the documents are answered");
        assert_eq!(answered, 5);
        for answer in answers {
            assert!(answer["data"].is_null(), "{levels} levels: {answer}");
            let code = &answer["errors"][0]["extensions"]["code"];
            assert_eq!(code, "GRAPHQL_VALIDATION_FAILED", "{levels} levels: {answer}");
        }

        let subscribe =
            json!({ "id": levels.to_string(), "type": "subscribe", "payload": { "query": document } });
        socket.send(Message::text(subscribe.to_string())).await.unwrap();
        let refusal = loop {
            let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
                .await
                .expect("the socket answers")
                .unwrap()
                .unwrap();
            if let Message::Text(text) = message {
                let message: Value = serde_json::from_str(&text).unwrap();
                if message["type"] != "connection_ack" {
                    break message;
                }
            }
        };
        assert_eq!(refusal["type"], "error", "{refusal}");
        assert_eq!(
            refusal["payload"][0]["extensions"]["code"],
            "GRAPHQL_VALIDATION_FAILED"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_trickles_its_headers_is_cut_off_and_others_are_served_meanwhile() {
    let db = TestDb::new().await;
    let server = TestApp::spawn_adjusted(&db, &example_dirs()[0], 0, true, None, |s| {
        s.server.header_timeout = Duration::from_secs(1);
    })
    .await;

    let mut slow = TcpStream::connect(host(&server)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One header byte every 200 ms: under any idle timeout, never a whole request.
    let mut sent = 0;
    let cut_off = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(healthz(&server).await, 200, "others are served meanwhile");
        if slow.write_all(b"X").await.is_err() {
            break true;
        }
        sent += 1;
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(1), slow.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            _ => {}
        }
        if sent > 100 {
            break false;
        }
    };
    assert!(cut_off, "a trickling client is cut off");
    assert!(sent < 100);

    // A client that says nothing at all is closed too.
    let mut silent = TcpStream::connect(host(&server)).await.unwrap();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(30), silent.read(&mut buffer))
        .await
        .expect("the server closes a silent connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_cap_is_answered_503_and_the_cap_frees_as_connections_close() {
    let db = TestDb::new().await;
    let server = TestApp::spawn_adjusted(&db, &example_dirs()[0], 0, true, None, |s| {
        s.server.max_connections = 3;
        s.server.header_timeout = Duration::from_secs(60);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut tcp = TcpStream::connect(host(&server)).await.unwrap();
        // A whole request and its answer: the server has accepted this one.
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 12];
        tcp.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");
        held.push(tcp);
    }
    let mut over = TcpStream::connect(host(&server)).await.unwrap();
    let mut answer = String::new();
    over.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");

    held.pop();
    let mut again = None;
    for _ in 0..100 {
        let mut tcp = TcpStream::connect(host(&server)).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        let _ = tcp.read_to_string(&mut answer).await;
        if answer.starts_with("HTTP/1.1 200") {
            again = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a closed connection frees its place");
    server.stop().await;
}

async fn socket(server: &TestApp) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let url = format!("{}/graphql/ws", server.address.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_subscriptions_on_one_socket_are_capped_and_other_clients_are_served() {
    let db = TestDb::new().await;
    let server = TestApp::spawn_adjusted(&db, &example_dirs()[0], 0, true, None, |s| {
        s.websocket.max_sockets_per_address = 2;
    })
    .await;
    let id = server
        .graphql("mutation { triggerReport { id } }", json!({}))
        .await["data"]["triggerReport"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let mut greedy = socket(&server).await.unwrap();
    greedy
        .send(Message::text(json!({ "type": "connection_init" }).to_string()))
        .await
        .unwrap();
    let query = "subscription($id: ID!) { report(id: $id) { status } }";
    for n in 0..2000 {
        let subscribe = json!({ "id": n.to_string(), "type": "subscribe",
            "payload": { "query": query, "variables": { "id": id } } });
        greedy.feed(Message::text(subscribe.to_string())).await.unwrap();
    }
    greedy.flush().await.unwrap();

    // Meanwhile another client's queries are answered.
    for _ in 0..20 {
        let answer = server
            .graphql(
                "query($id: ID!) { report(id: $id) { status } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(answer["data"]["report"]["status"], "PENDING", "{answer}");
    }

    let (mut first_states, mut refused) = (0, 0);
    while first_states + refused < 2000 {
        let message = tokio::time::timeout(Duration::from_secs(60), greedy.next())
            .await
            .expect("every subscription is answered")
            .unwrap()
            .unwrap();
        let Message::Text(text) = message else { continue };
        let message: Value = serde_json::from_str(&text).unwrap();
        // A refused subscription is a result with the error and no data, then `complete`
        // (as graphql-js answers a source stream that cannot be created).
        let errors = match message["type"].as_str() {
            Some("next") => &message["payload"]["errors"],
            Some("error") => &message["payload"],
            _ => continue,
        };
        if errors.is_null() {
            first_states += 1;
        } else {
            assert_eq!(
                errors[0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS",
                "{message}"
            );
            refused += 1;
        }
    }
    assert_eq!((first_states, refused), (100, 1900));

    // The address has one socket more, and no third.
    let second = socket(&server).await.expect("a second socket is allowed");
    match socket(&server).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert!(response.headers().contains_key("retry-after"));
        }
        other => panic!("a third socket is refused: {other:?}"),
    }
    drop(second);
    // Its place is free again once it is closed.
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok(socket) = socket(&server).await {
            reopened = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reopened.is_some());
    server.stop().await;
}
