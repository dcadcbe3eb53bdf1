//! `--server`: the service's figures, against a real `serve` process on a database of its
//! own: trigger → COMPLETE, and `report(id)` throughput; then `resilience`'s.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::child::ChildServer;
use crate::db::{BENCH_DATABASE, drop_database, fresh_database};

pub(crate) struct ServerBench<'a> {
    pub(crate) data_dir: &'a Path,
    pub(crate) runs: u32,
    pub(crate) server_url: &'a str,
    pub(crate) connections: usize,
    pub(crate) seconds: u64,
}

pub(crate) async fn run(bench: ServerBench<'_>) -> anyhow::Result<()> {
    let (options, url) = fresh_database(bench.server_url).await?;
    let reports = std::env::temp_dir().join(format!("store-monitor-bench-{}", std::process::id()));
    eprintln!("bench: starting `serve` with database {BENCH_DATABASE} (loads the data first) …");
    // No rate limit: these figures are the server's capacity (`resilience` measures the
    // default limits on a server of their own).
    let mut args = crate::child::serve_args(&url, bench.data_dir, &reports);
    args.extend(["--trigger-rate".into(), "0".into()]);
    let server = ChildServer::start(env!("CARGO_BIN_EXE_store-monitor"), args);
    let mut outcome = measure(&bench, &server.address).await;
    if outcome.is_ok() {
        outcome = crate::resilience::measure(&server.address, &url, &bench).await;
    }
    server.terminate();
    let _ = std::fs::remove_dir_all(&reports);
    drop_database(&options).await?;
    outcome
}

async fn measure(bench: &ServerBench<'_>, address: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(bench.connections * 2)
        .build()?;
    let graphql = |query: &str, variables: Value| {
        let request = client
            .post(format!("{address}/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        async move {
            let body: Value = request.send().await?.json().await?;
            anyhow::ensure!(body["errors"].is_null(), "GraphQL error: {body}");
            Ok(body["data"].clone())
        }
    };
    let newest = graphql("{ dataset { newestPoll polls } }", json!({})).await?;
    let polls = newest["dataset"]["polls"].as_i64().unwrap_or(0);
    let newest: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(newest["dataset"]["newestPoll"].clone())?;

    // Each run asks for a different instant, so that none reuses an earlier result.
    let mut times = Vec::new();
    let mut last_id = String::new();
    for run in 0..bench.runs.max(1) {
        let as_of = newest - chrono::Duration::seconds(i64::from(run));
        let started = Instant::now();
        let triggered = graphql(
            "mutation($asOf: DateTime) { triggerReport(input: { asOf: $asOf }) { id } }",
            json!({ "asOf": as_of }),
        )
        .await?;
        let id = triggered["triggerReport"]["id"]
            .as_str()
            .context("no id")?
            .to_string();
        loop {
            let r = graphql(
                "query($id: ID!) { report(id: $id) { status error } }",
                json!({ "id": id }),
            )
            .await?;
            match r["report"]["status"].as_str() {
                Some("COMPLETE") => break,
                Some("FAILED") => anyhow::bail!("the report failed: {}", r["report"]["error"]),
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        times.push(started.elapsed());
        last_id = id;
    }
    times.sort();

    let load = report_load(address, &last_id, bench.connections, bench.seconds, None).await?;
    println!("data: {polls} polls in the database; the server on {address}");
    println!(
        "{:<48}{:>8.3} s best, {:.3} s median of {}",
        "triggerReport → COMPLETE (polled every 5 ms)",
        times[0].as_secs_f64(),
        times[times.len() / 2].as_secs_f64(),
        times.len()
    );
    load.print(&format!(
        "report(id) queries, {} connections, {} s",
        bench.connections, bench.seconds
    ));
    worst_stores(address, &last_id).await?;
    one_store(address, &last_id).await
}

/// One store's `uptime` and `timeline`, computed on demand, one request at a time: the
/// store of the report's middle row.
async fn one_store(address: &str, id: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let post = |query: Value| {
        let request = client.post(format!("{address}/graphql")).json(&query);
        async move {
            let body: Value = request.send().await?.json().await?;
            anyhow::ensure!(body["errors"].is_null(), "GraphQL error: {body}");
            anyhow::Ok(body)
        }
    };
    let rows = post(json!({
        "query": "query($id: ID!) { report(id: $id) { rows(first: 1, orderBy: { field: DOWNTIME_LAST_WEEK, direction: DESC }) { nodes { storeId } } } }",
        "variables": { "id": id },
    }))
    .await?;
    let store = rows["data"]["report"]["rows"]["nodes"][0]["storeId"].clone();
    for (what, query) in [
        (
            "one store's uptime (the worst store)",
            "query($s: String!) { store(id: $s) { uptime { uptimeLastWeek downtimeLastWeek } } }",
        ),
        (
            "one store's week timeline",
            "query($s: String!) { store(id: $s) { timeline { start end open status } } }",
        ),
    ] {
        let mut times = Vec::new();
        let mut pieces = 0;
        for _ in 0..100 {
            let started = Instant::now();
            let body = post(json!({ "query": query, "variables": { "s": store } })).await?;
            times.push(started.elapsed());
            pieces = body["data"]["store"]["timeline"].as_array().map_or(0, Vec::len);
        }
        times.sort();
        println!(
            "{what:<48}{:>8.2} ms p50, {:.2} ms p99 of 100{}",
            times[50].as_secs_f64() * 1e3,
            times[99].as_secs_f64() * 1e3,
            if pieces > 0 {
                format!(" ({pieces} pieces)")
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// The 50 worst stores of the report (most downtime in the last week first), with the
/// count, one request at a time: what a dashboard's first page asks.
async fn worst_stores(address: &str, id: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for (what, filter) in [
        ("the 50 worst stores, with totalCount", json!(null)),
        (
            "  … of those down 1-40 h in the week",
            json!({ "downtimeLastWeek": { "min": 1, "max": 40 } }),
        ),
    ] {
        let query = json!({
            "query": "query($id: ID!, $filter: ReportRowFilter) { report(id: $id) { rows(first: 50, orderBy: { field: DOWNTIME_LAST_WEEK, direction: DESC }, filter: $filter) { totalCount nodes { storeId downtimeLastWeek } } } }",
            "variables": { "id": id, "filter": filter },
        });
        let mut times = Vec::new();
        let mut total = 0;
        for _ in 0..100 {
            let started = Instant::now();
            let body: Value = client
                .post(format!("{address}/graphql"))
                .json(&query)
                .send()
                .await?
                .json()
                .await?;
            times.push(started.elapsed());
            anyhow::ensure!(body["errors"].is_null(), "GraphQL error: {body}");
            total = body["data"]["report"]["rows"]["totalCount"].as_i64().unwrap_or(0);
        }
        times.sort();
        println!(
            "{what:<48}{:>8.2} ms p50, {:.2} ms p99 of 100 ({total} rows match)",
            times[50].as_secs_f64() * 1e3,
            times[99].as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// What `report(id)` asked back to back gave.
pub(crate) struct Load {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    failed: u64,
}

impl Load {
    pub(crate) fn print(&self, what: &str) {
        println!(
            "{what:<48}{:>8.0} req/s   p50 {:.1} ms, p99 {:.1} ms, {} failed",
            self.per_second,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.failed
        );
    }
}

/// `report(id)` under load: `connections` clients asking back to back for `seconds`, with
/// `token` as their bearer token if given.
pub(crate) async fn report_load(
    address: &str,
    id: &str,
    connections: usize,
    seconds: u64,
    token: Option<&str>,
) -> anyhow::Result<Load> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections * 2)
        .build()?;
    let query = json!({
        "query": "query($id: ID!) { report(id: $id) { id status progress storesDone finishedAt csvUrl } }",
        "variables": { "id": id },
    });
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut clients = Vec::new();
    for _ in 0..connections {
        let (client, query, done, failed, url, token) = (
            client.clone(),
            query.clone(),
            done.clone(),
            failed.clone(),
            format!("{address}/graphql"),
            token.map(str::to_string),
        );
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < until {
                let started = Instant::now();
                // As browsers ask: compressed answers when worth it.
                let mut request = client
                    .post(&url)
                    .header("accept-encoding", "gzip, br")
                    .json(&query);
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let ok = match request.send().await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                    latencies.push(started.elapsed());
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for c in clients {
        latencies.extend(c.await?);
    }
    latencies.sort();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Load {
        per_second: done.load(Ordering::Relaxed) as f64 / seconds as f64,
        p50: percentile(0.5),
        p99: percentile(0.99),
        failed: failed.load(Ordering::Relaxed),
    })
}
