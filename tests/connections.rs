//! Hostile and greedy clients meet limits, and the others are still served: documents that
//! fan out, a client that trickles its headers, more connections than allowed, more
//! sockets per address or subscriptions per socket than allowed, and a process out of
//! file descriptors.

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

/// CPU seconds the process `pid` has used so far (user and system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_server_pauses_accepting_instead_of_spinning_and_recovers() {
    let db = TestDb::new().await;
    let reports = tempfile::tempdir().unwrap();
    // 24 files: about 17 are taken at start, so a few connections use up the rest (the
    // connection cap never goes below 16).
    let server = common::child::ChildServer::start_with_open_files(
        env!("CARGO_BIN_EXE_store-monitor"),
        [
            "--no-reload".as_ref(),
            "--header-timeout".as_ref(),
            "60".as_ref(),
            "--database-url".as_ref(),
            db.url.as_ref(),
            "--data".as_ref(),
            example_dirs()[0].as_os_str(),
            "--reports".as_ref(),
            reports.path().as_os_str(),
        ] as [&std::ffi::OsStr; 9],
        24,
    );
    let address = server.address.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..30 {
        let mut tcp = TcpStream::connect(&address).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(tcp);
    }
    // accept() now fails with EMFILE for the connections still waiting in the backlog.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (before, started) = (cpu_seconds(server.pid()), std::time::Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let share = (cpu_seconds(server.pid()) - before) / started.elapsed().as_secs_f64();
    // Spinning on accept() took a whole core (113 % was measured before).
    assert!(
        share < 0.5,
        "the server used {:.0} % of a core while out of files",
        share * 100.0
    );

    drop(held);
    let mut healthy = false;
    for _ in 0..100 {
        let answer = reqwest::Client::new()
            .get(format!("{}/healthz", server.address))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if answer.is_ok_and(|a| a.status() == 200) {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "the server serves again once files are free");
    server.terminate();
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_one_byte_over_the_limit_is_413_and_a_huge_one_costs_the_server_no_memory() {
    let db = TestDb::new().await;
    let reports = tempfile::tempdir().unwrap();
    let server = common::child::ChildServer::start(
        env!("CARGO_BIN_EXE_store-monitor"),
        [
            "--no-reload".as_ref(),
            "--database-url".as_ref(),
            db.url.as_ref(),
            "--data".as_ref(),
            example_dirs()[0].as_os_str(),
            "--reports".as_ref(),
            reports.path().as_os_str(),
        ] as [&std::ffi::OsStr; 7],
    );
    const LIMIT: usize = 1 << 20;
    let padded = |size: usize| {
        let query = r#"{"query":"{ __typename }"}"#;
        format!("{query}{}", " ".repeat(size - query.len()))
    };
    let post = |body: String| {
        reqwest::Client::new()
            .post(format!("{}/graphql", server.address))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(post(padded(LIMIT)).await.unwrap().status(), 200, "at the limit");
    let over = post(padded(LIMIT + 1)).await.unwrap();
    assert_eq!(over.status(), 413, "one byte over");
    assert!(over.text().await.unwrap().contains("over 1048576 bytes"));

    // 256 MB sent without a length: the server stops reading at the limit.
    let before = rss_kib(server.pid());
    let tcp = TcpStream::connect(server.address.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut read, mut write) = tcp.into_split();
    let answer = tokio::spawn(async move {
        let mut answer = Vec::new();
        let _ = read.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).to_string()
    });
    let head = "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    write.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 1 << 16, " ".repeat(1 << 16));
    for _ in 0..4096 {
        if write.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    drop(write);
    let answer = tokio::time::timeout(Duration::from_secs(30), answer)
        .await
        .expect("the server ends the exchange")
        .unwrap();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 413"),
        "{answer}"
    );
    let grown = rss_kib(server.pid()).saturating_sub(before);
    assert!(
        grown < 32 << 10,
        "the server grew by {grown} KiB reading a 256 MB body"
    );
    server.terminate();
}
