//! The figures of docs/PERFORMANCE.md, measured on full-size data:
//! `cargo bench --bench figures -- [--db | --server] [--runs N] …`.
//!
//! Wall-clock timings do not belong in tests (they fail on a busy machine, not on slow
//! code), so they live here: run it, read the figures, compare them with the floor.

#[path = "../../tests/common/child.rs"]
mod child;
mod db;
mod resilience;
mod server;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

use store_monitor::domain::Interpolation;
use store_monitor::generate::{Plan, generate};
use store_monitor::input::{DataFiles, FileChoice, InputData, csv_file};
use store_monitor::output::write_report;

/// Measure the engine, the data layer (--db) or the service (--server) on generated
/// full-size data and print the figures.
#[derive(Debug, Clone, Parser)]
struct BenchArgs {
    /// Data set to measure; generated at full size (`generate`'s defaults) when the folder
    /// has no status file yet.
    #[arg(long, default_value = "target/bench-data", value_name = "DIR")]
    data: PathBuf,
    /// Timed repetitions of each step; the best is reported.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Measure the PostgreSQL data layer instead (ingest, reload, read path), on a
    /// database of its own (`store_monitor_bench` on the server of --database-url,
    /// dropped afterwards).
    #[arg(long, conflicts_with = "server")]
    db: bool,
    /// Measure the service instead: a `serve` process on a database of its own
    /// (`store_monitor_bench`, dropped afterwards), trigger → COMPLETE and `report(id)`
    /// queries under load.
    #[arg(long)]
    server: bool,
    /// Concurrent connections of the `--server` load.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds of `--server` load.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// The PostgreSQL server the benchmark database is created on.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Passed by `cargo bench` to every benchmark; nothing to do here.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = BenchArgs::parse();
    let files = bench_files(&args)?;
    if args.db {
        return db::run(&files, args.runs, &args.database_url).await;
    }
    if args.server {
        return server::run(server::ServerBench {
            data_dir: &args.data,
            runs: args.runs.max(5),
            server_url: &args.database_url,
            connections: args.connections,
            seconds: args.seconds,
        })
        .await;
    }
    run_in_memory(&args, &files).await
}

/// The bench data set, generated at full size the first time.
fn bench_files(args: &BenchArgs) -> anyhow::Result<DataFiles> {
    let files = match DataFiles::find(&args.data, &FileChoice::default()) {
        Ok(files) => files,
        Err(_) => {
            eprintln!(
                "bench: generating the full-size data set in {} …",
                args.data.display()
            );
            generate(&Plan::full_size(&args.data))?;
            DataFiles::find(&args.data, &FileChoice::default())?
        }
    };
    Ok(files)
}

async fn run_in_memory(args: &BenchArgs, files: &DataFiles) -> anyhow::Result<()> {
    let size = std::fs::metadata(&files.status).map(|m| m.len()).unwrap_or(0);
    let runs = args.runs.max(1);

    // End to end first, so that the process's peak memory is this step's.
    let end_to_end = best_of_now(runs, || {
        let mut data = InputData::load(files)?;
        let report = data.prepare().report(None, Interpolation::Nearest);
        write_report(&report, &mut std::io::sink())?;
        Ok(report.rows.len())
    })
    .await?;
    let peak = peak_memory_mb();

    let floor = best_of_now(runs, || {
        let mut reader = csv::ReaderBuilder::new().from_reader(csv_file::open(&files.status)?);
        let mut record = csv::ByteRecord::new();
        let mut n = 0;
        while reader.read_byte_record(&mut record)? {
            n += 1;
        }
        Ok(n)
    })
    .await?;
    let load = best_of_now(runs, || Ok(InputData::load(files)?.poll_count())).await?;
    let mut data = InputData::load(files)?;
    let prepare = best_of_now(runs, || Ok(data.clone().prepare().poll_count())).await?;
    let prepared = data.prepare();
    let polls = prepared.poll_count();
    let engine = best_of_now(runs.max(5), || {
        Ok(prepared.report(None, Interpolation::Nearest).rows.len())
    })
    .await?;
    let engine_ff = best_of_now(runs.max(5), || {
        Ok(prepared.report(None, Interpolation::ForwardFill).rows.len())
    })
    .await?;

    println!(
        "data: {} ({:.1} MB, {polls} polls, {} stores); best of {runs} runs",
        files.status.display(),
        size as f64 / 1e6,
        prepared.store_count()
    );
    println!(
        "{:<44}{:>9.3} s",
        "floor: csv crate splitting the status file",
        secs(floor)
    );
    println!(
        "{:<44}{:>9.3} s   {:.1}x the floor, peak memory {peak:.0} MB",
        "report end to end (in process, to a sink)",
        secs(end_to_end),
        secs(end_to_end) / secs(floor)
    );
    println!("{:<44}{:>9.3} s", "  load: parse the three files", secs(load));
    println!(
        "{:<44}{:>9.3} s",
        "  prepare: group, sort, de-duplicate",
        secs(prepare)
    );
    println!("{:<44}{:>9.3} s", "  engine alone, nearest", secs(engine));
    println!("{:<44}{:>9.3} s", "  engine alone, forward fill", secs(engine_ff));
    Ok(())
}

/// The best of `runs` timings of `step`.
async fn best_of<T, F: std::future::Future<Output = anyhow::Result<T>>>(
    runs: u32,
    mut step: impl FnMut() -> F,
) -> anyhow::Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        std::hint::black_box(step().await?);
        best = best.min(started.elapsed());
    }
    Ok(best)
}

/// [`best_of`] for a step that waits on nothing.
async fn best_of_now<T>(runs: u32, mut step: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<Duration> {
    best_of(runs, || std::future::ready(step())).await
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The process's peak resident memory so far (Linux), in MB.
fn peak_memory_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
