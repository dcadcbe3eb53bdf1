//! `--server`, continued: what the limits of issues 9 and 10 cost and buy. A burst of 1,000
//! `triggerReport` calls from 50 clients (throughput, latency, refusals, time until all
//! accepted are COMPLETE) with `report(id)` asked meanwhile, once with no rate limit (the
//! server's capacity) and once on a server with the default limits (what a client meets);
//! the time to refuse the worst documents; and the memory an idle subscription socket holds.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const CLIENTS: usize = 50;
const TRIGGERS: usize = 1000;
const IDLE_SOCKETS: usize = 500;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or_default().as_secs_f64() * 1e3
}

pub(crate) async fn measure(
    address: &str,
    database_url: &str,
    bench: &crate::server::ServerBench<'_>,
) -> anyhow::Result<()> {
    let data_dir = bench.data_dir;
    burst(address, "no rate limit", None).await?;
    refusals(address).await?;
    // A server as it runs in production: the default flags (60 triggers a minute per
    // token), tokens required. The first server's workers compute what it accepts.
    let token = create_token(database_url)?;
    let reports = std::env::temp_dir().join(format!("store-monitor-bench-limited-{}", std::process::id()));
    let mut args = crate::child::serve_args(database_url, data_dir, &reports);
    args.extend(["--no-workers".into(), "--auth".into(), "required".into()]);
    let limited = crate::child::ChildServer::start(env!("CARGO_BIN_EXE_store-monitor"), args);
    let outcome = async {
        let id = burst(&limited.address, "default limits, one token", Some(&token)).await?;
        let load = crate::server::report_load(
            &limited.address,
            &id,
            bench.connections,
            bench.seconds,
            Some(&token),
        )
        .await?;
        load.print(&format!(
            "report(id) with a token, {} connections",
            bench.connections
        ));
        anyhow::Ok(())
    }
    .await;
    limited.terminate();
    let _ = std::fs::remove_dir_all(&reports);
    outcome?;
    // On a second process of its own: in the first, memory freed by the burst and the
    // load would be reused by the sockets and hide what they take.
    let fresh = crate::child::ChildServer::start(
        env!("CARGO_BIN_EXE_store-monitor"),
        [
            "--no-reload".as_ref(),
            "--no-workers".as_ref(),
            "--database-url".as_ref(),
            database_url.as_ref(),
            "--data".as_ref(),
            data_dir.as_os_str(),
            "--max-sockets-per-address".as_ref(),
            "1000".as_ref(),
        ] as [&std::ffi::OsStr; 8],
    );
    let outcome = idle_sockets(&fresh.address, fresh.pid()).await;
    fresh.terminate();
    outcome
}

/// `store-monitor token create --role operator` on the bench's database: its secret.
fn create_token(database_url: &str) -> anyhow::Result<String> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_store-monitor"))
        .args(["token", "create", "--role", "operator", "--name", "bench"])
        .env("DATABASE_URL", database_url)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "token create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}

/// The burst, with `token` on every call if given: the figures, and the first report
/// accepted.
async fn burst(address: &str, limits: &str, token: Option<&str>) -> anyhow::Result<String> {
    let bearer = token.map(|t| format!("Bearer {t}")).unwrap_or_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS * 2)
        .build()?;
    let url = format!("{address}/graphql");
    let started = Instant::now();
    let triggers = (0..CLIENTS).map(|_| {
        let (client, url, bearer) = (client.clone(), url.clone(), bearer.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..TRIGGERS / CLIENTS {
                let asked = Instant::now();
                let answer: Value = client
                    .post(&url)
                    .header("authorization", &bearer)
                    .json(&json!({ "query": "mutation { triggerReport { id } }" }))
                    .send()
                    .await?
                    .json()
                    .await?;
                answers.push((asked.elapsed(), answer));
            }
            anyhow::Ok(answers)
        })
    });
    // Meanwhile, a client follows one report by asking for it back to back.
    let first: Value = client
        .post(&url)
        .header("authorization", &bearer)
        .json(&json!({ "query": "mutation { triggerReport { id } }" }))
        .send()
        .await?
        .json()
        .await?;
    let followed = first["data"]["triggerReport"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let bursting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reader = {
        let (client, url, bursting, bearer) = (client.clone(), url.clone(), bursting.clone(), bearer.clone());
        let followed = followed.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while bursting.load(std::sync::atomic::Ordering::Relaxed) {
                let asked = Instant::now();
                let ok = client
                    .post(&url)
                    .header("authorization", &bearer)
                    .json(&json!({ "query": "query($id: ID!) { report(id: $id) { status } }", "variables": { "id": followed } }))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if ok {
                    latencies.push(asked.elapsed());
                }
            }
            latencies
        })
    };
    let mut latencies = Vec::new();
    let (mut ids, mut too_many, mut unavailable, mut other) = (Vec::new(), 0, 0, Vec::new());
    for task in futures::future::join_all(triggers).await {
        for (took, answer) in task?? {
            latencies.push(took);
            let code = answer["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or_default();
            match answer["data"]["triggerReport"]["id"].as_str() {
                Some(id) => ids.push(id.to_string()),
                None if code == "TOO_MANY_REQUESTS" => too_many += 1,
                None if code == "SERVICE_UNAVAILABLE" => unavailable += 1,
                None => other.push(code.to_string()),
            }
        }
    }
    let answered_in = started.elapsed();
    bursting.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut complete = 0;
    for id in &ids {
        loop {
            let answer: Value = client
                .post(&url)
                .header("authorization", &bearer)
                .json(&json!({ "query": "query($id: ID!) { report(id: $id) { status } }", "variables": { "id": id } }))
                .send()
                .await?
                .json()
                .await?;
            match answer["data"]["report"]["status"].as_str() {
                Some("COMPLETE") => {
                    complete += 1;
                    break;
                }
                Some("FAILED") => break,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    let all_complete = started.elapsed();
    latencies.sort();
    let mut reads = reader.await?;
    reads.sort();
    println!(
        "{:<48}{:>8.0} calls/s   p50 {:.1} ms, p99 {:.1} ms, slowest {:.1} ms; {} accepted, {too_many} TOO_MANY_REQUESTS, {unavailable} SERVICE_UNAVAILABLE, {} other {:?}",
        format!("triggerReport burst, {TRIGGERS} from {CLIENTS} clients, {limits}"),
        TRIGGERS as f64 / answered_in.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        ids.len(),
        other.len(),
        other,
    );
    println!(
        "{:<48}{:>8.2} s until all {complete} of {} accepted were COMPLETE",
        "  … and every accepted report",
        all_complete.as_secs_f64(),
        ids.len()
    );
    println!(
        "{:<48}{:>8.1} ms p99 (p50 {:.1} ms, {} reads)",
        "  report(id) during the burst",
        percentile(&reads, 0.99),
        percentile(&reads, 0.5),
        reads.len()
    );
    Ok(followed)
}

/// Fragments each spreading the next one ten times, `levels` deep.
fn fan_out(levels: usize) -> String {
    let mut document = String::from("query FanOut { ...F0 }\n");
    for level in 0..levels {
        document += &format!(
            "fragment F{level} on Query {{ {}}}\n",
            format!("...F{} ", level + 1).repeat(10)
        );
    }
    document + &format!("fragment F{levels} on Query {{ __typename }}\n")
}

async fn refusals(address: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let url = format!("{address}/graphql");
    let aliases: String = (0..700_000).map(|n| format!("a{n}: __typename ")).collect();
    let documents = [
        ("fan-out, 7 levels", fan_out(7)),
        ("fan-out, 8 levels", fan_out(8)),
        ("fan-out, 30 levels", fan_out(30)),
        ("700,000 aliased __typename (12 MB)", format!("{{ {aliases} }}")),
    ];
    for (name, document) in documents {
        let mut times = Vec::new();
        let mut answer = String::new();
        for _ in 0..20 {
            let asked = Instant::now();
            // A body over the limit is answered 413 at once, and the connection closed: a
            // client still sending may see only the close.
            answer = match client.post(&url).json(&json!({ "query": document })).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or_default();
                    anyhow::ensure!(body["data"].is_null(), "{name} was not refused: {body}");
                    format!("HTTP {status}")
                }
                Err(_) => "HTTP 413, closed while the client was still sending".to_string(),
            };
            times.push(asked.elapsed());
        }
        times.sort();
        println!(
            "{:<48}{:>8.2} ms median, {:.2} ms worst of 20 ({answer})",
            format!("refusing {name}"),
            percentile(&times, 0.5),
            percentile(&times, 1.0)
        );
    }
    Ok(())
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or_default();
    Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
}

async fn idle_sockets(address: &str, pid: u32) -> anyhow::Result<()> {
    let url = format!("{}/graphql/ws", address.replace("http://", "ws://"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid)?;
    let mut sockets = Vec::new();
    for _ in 0..IDLE_SOCKETS {
        let mut request = url.as_str().into_client_request()?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
        socket
            .send(Message::text(json!({ "type": "connection_init" }).to_string()))
            .await?;
        // connection_ack: the socket is set up on the server.
        while let Some(message) = socket.next().await {
            if matches!(message?, Message::Text(_)) {
                break;
            }
        }
        sockets.push(socket);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid)?;
    println!(
        "{:<48}{:>8.1} KiB each ({IDLE_SOCKETS} initialised sockets: {} → {} MiB resident)",
        "memory per idle subscription socket",
        after.saturating_sub(before) as f64 / IDLE_SOCKETS as f64,
        before / 1024,
        after / 1024
    );
    Ok(())
}
