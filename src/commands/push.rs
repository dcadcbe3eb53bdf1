//! `store-monitor push`: a client that sends status files to a server's `POST /polls` in
//! batches, several at once, retrying what the server asks to be retried, with a progress
//! line and the totals. Each batch carries an `Idempotency-Key` made from its bytes, so a
//! push run again after a lost answer gets the first answer back instead of storing twice.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use sha2::Digest;

/// Flags of `store-monitor push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Status files (store_id, status, timestamp_utc, header first; .csv or .csv.gz).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The server (plain HTTP; for HTTPS, send through a proxy or with curl).
    #[arg(long, env = "STORE_MONITOR_URL", default_value = "http://127.0.0.1:8000")]
    url: String,
    /// An operator's or admin's API token.
    #[arg(long, env = "STORE_MONITOR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Polls a batch (at most 100,000, the server's cap).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch: u64,
    /// Batches sent at once. More may commit out of the files' order, and a store whose
    /// polls then arrive after later ones has its incidents evaluated afresh from a day of
    /// its stored polls: worth it only when the files hold different stores.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    clients: u64,
}

/// A batch: its first line in its file, and the body to send.
struct Batch {
    file: usize,
    first_line: u64,
    body: Vec<u8>,
    polls: u64,
}

/// What the server said of the batches so far.
#[derive(Default)]
struct Totals {
    received: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    replayed: AtomicU64,
    retries: AtomicU64,
}

/// How often a batch is tried before the push gives up.
const ATTEMPTS: u32 = 8;
/// Rejected rows printed (all are stored in the server's `dataset.loads`).
const SHOWN_REJECTED: u64 = 10;

pub(crate) async fn run(args: &PushArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let url = format!("{}/polls", args.url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .context("cannot make an HTTP client")?;
    let total: u64 = args
        .files
        .iter()
        .map(|f| count_rows(f.as_path()))
        .sum::<anyhow::Result<u64>>()?;
    let (send, receive) = async_channel(args.clients as usize);
    let totals = Arc::new(Totals::default());
    let names: Arc<Vec<String>> = Arc::new(args.files.iter().map(|f| f.display().to_string()).collect());
    let mut senders = Vec::new();
    for _ in 0..args.clients {
        let (receive, client, url, token, totals, names) = (
            receive.clone(),
            client.clone(),
            url.clone(),
            args.token.clone(),
            totals.clone(),
            names.clone(),
        );
        senders.push(tokio::spawn(async move {
            while let Ok(batch) = receive.recv().await {
                send_batch(&client, &url, token.as_deref(), &batch, &totals, &names).await?;
                progress(&totals, total, started);
            }
            anyhow::Ok(())
        }));
    }
    drop(receive);
    let files = args.files.clone();
    let batch_size = args.batch;
    let reading = tokio::task::spawn_blocking(move || read_batches(&files, batch_size, &send));
    for sender in senders {
        sender.await??;
    }
    reading.await??;
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    eprintln!(
        "push: {} polls sent in {:.2} s: {} new, {} stored already, {} rejected{}{}",
        get(&totals.received),
        started.elapsed().as_secs_f64(),
        get(&totals.accepted),
        get(&totals.duplicates),
        get(&totals.rejected),
        match get(&totals.replayed) {
            0 => String::new(),
            n => format!(
                "; {n} batch(es) were stored by an earlier send, their polls counted as stored already"
            ),
        },
        match get(&totals.retries) {
            0 => String::new(),
            n => format!("; {n} retries"),
        },
    );
    Ok(())
}

/// A bounded channel of batches: reading waits while every client is busy.
fn async_channel(clients: usize) -> (tokio::sync::mpsc::Sender<Batch>, SharedReceiver) {
    let (send, receive) = tokio::sync::mpsc::channel(clients);
    (send, SharedReceiver(Arc::new(tokio::sync::Mutex::new(receive))))
}

#[derive(Clone)]
struct SharedReceiver(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Batch>>>);

impl SharedReceiver {
    async fn recv(&self) -> Result<Batch, ()> {
        self.0.lock().await.recv().await.ok_or(())
    }
}

fn open(path: &Path) -> anyhow::Result<Box<dyn BufRead + Send>> {
    crate::input::csv_file::open(path)
        .map_err(|e| anyhow::anyhow!("{}", e.reason()).context(path.display().to_string()))
}

fn count_rows(path: &Path) -> anyhow::Result<u64> {
    let mut rows = 0u64;
    for line in open(path)?.split(b'\n') {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        rows += u64::from(!line.trim_ascii().is_empty());
    }
    Ok(rows.saturating_sub(1))
}

/// Cuts each file into batches of `size` rows, each with the file's header.
fn read_batches(files: &[PathBuf], size: u64, send: &tokio::sync::mpsc::Sender<Batch>) -> anyhow::Result<()> {
    for (file, path) in files.iter().enumerate() {
        let mut lines = open(path)?.split(b'\n');
        let Some(header) = lines.next() else {
            bail!("{} is empty: no header", path.display());
        };
        let mut header = header.with_context(|| format!("cannot read {}", path.display()))?;
        header.push(b'\n');
        let (mut body, mut polls, mut first_line, mut line) = (header.clone(), 0, 2, 1);
        for row in lines {
            let row = row.with_context(|| format!("cannot read {}", path.display()))?;
            line += 1;
            if row.trim_ascii().is_empty() {
                continue;
            }
            if polls == 0 {
                first_line = line;
            }
            body.extend_from_slice(&row);
            body.push(b'\n');
            polls += 1;
            if polls == size {
                let full = std::mem::replace(&mut body, header.clone());
                if send
                    .blocking_send(Batch {
                        file,
                        first_line,
                        body: full,
                        polls,
                    })
                    .is_err()
                {
                    return Ok(());
                }
                polls = 0;
            }
        }
        if polls > 0 {
            let _ = send.blocking_send(Batch {
                file,
                first_line,
                body,
                polls,
            });
        }
    }
    Ok(())
}

/// Sends a batch until the server stores it (or answers for it), waiting as told when it is
/// busy or away.
async fn send_batch(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    batch: &Batch,
    totals: &Totals,
    names: &[String],
) -> anyhow::Result<()> {
    let key = hex::encode(&sha2::Sha256::digest(&batch.body)[..16]);
    let mut wait = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        let mut request = client
            .post(url)
            .header("content-type", "text/csv")
            .header("idempotency-key", format!("\"{key}\""))
            .body(batch.body.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if attempt < ATTEMPTS => {
                totals.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "push failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot reach {url}")),
        };
        let status = response.status().as_u16();
        if matches!(status, 429 | 503) && attempt < ATTEMPTS {
            totals.retries.fetch_add(1, Ordering::Relaxed);
            let told = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs);
            tokio::time::sleep(told.unwrap_or(wait)).await;
            wait = (wait * 2).min(Duration::from_secs(30));
            continue;
        }
        let replayed = response.headers().contains_key("idempotent-replayed");
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        if status != 200 {
            bail!(
                "{} (the batch from line {}): the server answered {status}: {}",
                names[batch.file],
                batch.first_line,
                answer["error"].as_str().unwrap_or("(no reason given)")
            );
        }
        let count = |field: &str| answer[field].as_u64().unwrap_or(0);
        totals.received.fetch_add(batch.polls, Ordering::Relaxed);
        // A replayed answer is the first send's: what it stored then is stored already now.
        let (new, duplicates) = match replayed {
            false => (count("accepted"), count("duplicates")),
            true => (0, count("accepted") + count("duplicates")),
        };
        totals.accepted.fetch_add(new, Ordering::Relaxed);
        totals.duplicates.fetch_add(duplicates, Ordering::Relaxed);
        let rejected = answer["rejected"].as_array().cloned().unwrap_or_default();
        let before = totals
            .rejected
            .fetch_add(rejected.len() as u64, Ordering::Relaxed);
        totals.replayed.fetch_add(u64::from(replayed), Ordering::Relaxed);
        for (i, r) in rejected.iter().enumerate() {
            if before + i as u64 >= SHOWN_REJECTED {
                break;
            }
            // The batch's line 2 is its first row.
            let line = batch.first_line + r["line"].as_u64().unwrap_or(2) - 2;
            eprintln!(
                "  rejected {}:{line}: {}",
                names[batch.file],
                r["reason"].as_str().unwrap_or_default()
            );
        }
        return Ok(());
    }
    unreachable!("the last attempt returns")
}

/// Redraws the progress line (on a terminal only).
fn progress(totals: &Totals, total: u64, started: Instant) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let done = totals.received.load(Ordering::Relaxed);
    let share = if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    };
    let filled = (share * 30.0).round() as usize;
    let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r[{}{}] {:>3.0}% {done}/{total} polls, {rate:.0}/s ",
        "#".repeat(filled),
        " ".repeat(30 - filled.min(30)),
        share * 100.0
    );
    let _ = err.flush();
}
