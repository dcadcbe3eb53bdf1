//! Limits measured on a `serve` process of its own: out of file descriptors it pauses
//! accepting instead of spinning, and a body over the limit costs it no memory. A binary of
//! their own, since both load the machine, and the tests of `connections.rs` that run
//! beside each other must not be starved by them.

mod common;

use std::time::Duration;

use common::{TestDb, example_dirs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    let mut args = common::child::serve_args(&db.url, &example_dirs()[0], reports.path());
    args.extend(["--header-timeout".into(), "60".into()]);
    let server =
        common::child::ChildServer::start_with_open_files(env!("CARGO_BIN_EXE_store-monitor"), args, 24);
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
    server
        .logged("cannot accept connections", Duration::from_secs(30))
        .await;
    // Spinning on accept() took a whole core in every second (113 % was measured before).
    // Other tasks retry their own connections while files are out (the job queue's
    // pollers, the database pools), in bursts that can take a core for some seconds: the
    // accept loop is quiet if any second of twelve is.
    let mut shares = Vec::new();
    for _ in 0..12 {
        let (before, started) = (cpu_seconds(server.pid()), std::time::Instant::now());
        tokio::time::sleep(Duration::from_secs(1)).await;
        shares.push((cpu_seconds(server.pid()) - before) / started.elapsed().as_secs_f64());
        if shares.last().is_some_and(|share| *share < 0.5) {
            break;
        }
    }
    assert!(
        shares.last().is_some_and(|share| *share < 0.5),
        "the server used half a core or more every second while out of files: {shares:.2?}\n{}",
        server.log.lock().unwrap().join("\n")
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
        common::child::serve_args(&db.url, &example_dirs()[0], reports.path()),
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

/// The most memory the process `pid` has held at once, in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// 16 KB of gzip that unpacks to 8.4 million one-byte rows: each a rejected row, and all
/// of them were kept (1.6 GB) before the batch was found too large.
fn amplifying_body(head: &str) -> Vec<u8> {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gzip, head.as_bytes()).unwrap();
    let lines = b"x\n".repeat(1_000);
    for _ in 0..8_400 {
        std::io::Write::write_all(&mut gzip, &lines).unwrap();
    }
    gzip.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_16_kb_body_of_millions_of_tiny_rows_is_413_at_once_in_bounded_memory() {
    let db = TestDb::new().await;
    let reports = tempfile::tempdir().unwrap();
    let mut args = common::child::serve_args(&db.url, &example_dirs()[0], reports.path());
    args.extend(["--auth".into(), "off".into()]);
    let server = common::child::ChildServer::start(env!("CARGO_BIN_EXE_store-monitor"), args);
    for (media, head) in [
        ("text/csv", "store_id,status,timestamp_utc\n"),
        ("application/x-ndjson", ""),
    ] {
        let body = amplifying_body(head);
        assert!(body.len() < 17_000, "{} bytes", body.len());
        let started = std::time::Instant::now();
        let answer = reqwest::Client::new()
            .post(format!("{}/polls", server.address))
            .header("content-type", media)
            .header("content-encoding", "gzip")
            .body(body)
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        let status = answer.status();
        let text = answer.text().await.unwrap();
        assert_eq!(status, 413, "{media}: {text}");
        assert!(text.contains("at most 100000 polls"), "{media}: {text}");
        assert!(took < Duration::from_secs(3), "{media}: answered after {took:?}");
    }
    let peak = peak_kib(server.pid());
    assert!(peak < 256 << 10, "the server held {} MB at its peak", peak >> 10);
    server.terminate();
}
