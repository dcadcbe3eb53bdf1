//! `--db`: the data layer's figures, on a database of its own.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::{best_of, secs};
use futures::TryStreamExt;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgPool};

use store_monitor::db;
use store_monitor::db::reload::reload;
use store_monitor::db::snapshot::Snapshot;
use store_monitor::domain::time::MICROS_PER_HOUR;
use store_monitor::domain::{Interpolation, Timestamp};
use store_monitor::input::{DataFiles, FileKind, InputData, csv_file};

/// The database the benchmarks create, fill and drop.
pub(crate) const BENCH_DATABASE: &str = "store_monitor_bench";

pub(crate) async fn run(files: &DataFiles, runs: u32, server_url: &str) -> anyhow::Result<()> {
    let (options, url) = fresh_database(server_url).await?;
    let pool = db::connect(&url, 6).await?;
    let size = std::fs::metadata(&files.status).map(|m| m.len()).unwrap_or(0);

    let copy_floor = best_of(runs, || raw_copy(&pool, files)).await?;
    let started = Instant::now();
    let first = reload(&pool, files).await?;
    let first_ingest = started.elapsed();
    let rows: i64 = first.files.iter().map(|f| f.record.rows_inserted).sum();
    let status_ingest = first.files.first().map_or(Duration::ZERO, |f| f.elapsed);
    let unchanged = best_of(runs, || async {
        let r = reload(&pool, files).await?;
        anyhow::ensure!(!r.changed(), "a reload of unchanged files changed the data");
        Ok(())
    })
    .await?;
    let read_floor = best_of(runs, || copy_out(&pool)).await?;
    let read_path = best_of(runs, || async {
        let snapshot = Snapshot::open(&pool, None).await?;
        Ok(snapshot
            .report(Interpolation::Nearest, Default::default())
            .await?
            .len())
    })
    .await?;
    let (child_wall, child_peak) = report_process(&url)?;
    let hourly = hourly_reloads(&pool, files).await?;
    pool.close().await;
    drop_database(&options).await?;

    println!(
        "data: {} ({:.1} MB), {rows} rows loaded into a fresh database; best of {runs} runs",
        files.status.display(),
        size as f64 / 1e6
    );
    println!(
        "{:<52}{:>8.3} s",
        "floor: COPY of the status CSV into a text table",
        secs(copy_floor)
    );
    println!(
        "{:<52}{:>8.3} s   {:.1}x the floor",
        "first ingest of the three files",
        secs(first_ingest),
        secs(first_ingest) / secs(copy_floor)
    );
    println!(
        "{:<52}{:>8.3} s",
        "  of which the status file",
        secs(status_ingest)
    );
    println!("{:<52}{:>8.3} s", "reload of unchanged files", secs(unchanged));
    println!(
        "{:<52}{:>8.3} s",
        "floor: COPY of all polls out, in key order",
        secs(read_floor)
    );
    println!(
        "{:<52}{:>8.3} s   {:.1}x the floor",
        "read path: snapshot streamed into the engine",
        secs(read_path),
        secs(read_path) / secs(read_floor)
    );
    println!(
        "{:<52}{:>8.3} s   peak memory {:.0} MB",
        "`report --from-db` as a process (connect included)",
        secs(child_wall),
        child_peak
    );
    match hourly {
        Some(h) => {
            println!(
                "{:<52}{:>8.3} s   {} new polls",
                "reload of the status file with an hour appended",
                secs(h.appended),
                h.polls
            );
            println!(
                "{:<52}{:>8.3} s   {} new polls",
                "  the same, rewritten (not appended): read whole",
                secs(h.rewritten),
                h.polls
            );
        }
        None => println!("(the status file is gzipped: no appended-hour figures)"),
    }
    Ok(())
}

/// What an hourly reload of a grown status file takes.
struct Hourly {
    appended: Duration,
    rewritten: Duration,
    polls: i64,
}

/// The hourly case on a copy of the status file: a poll per store appended an hour after
/// its last one, then another hour's polls written after the header, which makes the file
/// a rewrite that must be read whole. Not for a gzipped file, which only ever is read whole.
async fn hourly_reloads(pool: &PgPool, files: &DataFiles) -> anyhow::Result<Option<Hourly>> {
    let mut head = [0u8; 2];
    std::fs::File::open(&files.status)?.read_exact(&mut head)?;
    if csv_file::is_gzip(&head) {
        return Ok(None);
    }
    let header = csv_file::header(&files.status)?;
    let [store_id, status, timestamp] =
        csv_file::locate(&files.status, &header, FileKind::Status.columns())?[..]
    else {
        unreachable!("a status file has three required columns")
    };
    let mut polls = InputData::default();
    polls.load_status(&files.status)?;
    let prepared = polls.prepare();
    let new_polls = |hours: i64| -> String {
        let mut text = String::new();
        let mut fields = vec![String::new(); header.len()];
        for store in prepared.stores() {
            let Some(last) = store.polls.last() else { continue };
            fields[store_id] = store.id.to_string();
            fields[status] = "active".to_string();
            fields[timestamp] = Timestamp(last.at.micros() + hours * MICROS_PER_HOUR).to_string();
            text.push_str(&fields.join(","));
            text.push('\n');
        }
        text
    };
    let dir = std::env::temp_dir().join(format!("store-monitor-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let status = dir.join("store_status.csv");
    std::fs::copy(&files.status, &status)?;
    let copy = DataFiles {
        status: status.clone(),
        ..files.clone()
    };
    let result = async {
        anyhow::ensure!(!reload(pool, &copy).await?.changed());
        let mut file = std::fs::OpenOptions::new().append(true).open(&status)?;
        file.write_all(new_polls(1).as_bytes())?;
        drop(file);
        let started = Instant::now();
        let appended = reload(pool, &copy).await?;
        let appended_time = started.elapsed();
        let load = &appended.files[0].record;
        anyhow::ensure!(load.read_from > 0, "the appended file was read whole");
        let polls = load.rows_inserted;

        let text = std::fs::read(&status)?;
        let body = text
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |i| i + 1);
        let mut rewritten = text[..body].to_vec();
        rewritten.extend_from_slice(new_polls(2).as_bytes());
        rewritten.extend_from_slice(&text[body..]);
        std::fs::write(&status, rewritten)?;
        let started = Instant::now();
        let whole = reload(pool, &copy).await?;
        let rewritten_time = started.elapsed();
        let load = &whole.files[0].record;
        anyhow::ensure!(load.read_from == 0 && load.rows_inserted == polls);
        Ok(Hourly {
            appended: appended_time,
            rewritten: rewritten_time,
            polls,
        })
    }
    .await;
    std::fs::remove_dir_all(&dir)?;
    result.map(Some)
}

/// The floor of any ingest: PostgreSQL parsing the raw CSV into an unlogged text table.
async fn raw_copy(pool: &PgPool, files: &DataFiles) -> anyhow::Result<u64> {
    let mut conn = pool.acquire().await?;
    sqlx::query("DROP TABLE IF EXISTS bench_raw_status")
        .execute(&mut *conn)
        .await?;
    sqlx::query("CREATE UNLOGGED TABLE bench_raw_status (store_id text, status text, timestamp_utc text)")
        .execute(&mut *conn)
        .await?;
    let mut copy = conn
        .copy_in_raw("COPY bench_raw_status FROM STDIN (FORMAT csv, HEADER)")
        .await?;
    let mut input = csv_file::open(&files.status)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        copy.send(&buf[..n]).await?;
    }
    let rows = copy.finish().await?;
    sqlx::query("DROP TABLE bench_raw_status")
        .execute(&mut *conn)
        .await?;
    Ok(rows)
}

/// The floor of the read path: every poll out of PostgreSQL in key order, discarded.
async fn copy_out(pool: &PgPool) -> anyhow::Result<usize> {
    let mut conn = pool.acquire().await?;
    let mut stream = conn
        .copy_out_raw(
            "COPY (SELECT store, at, active FROM polls ORDER BY store, at) TO STDOUT (FORMAT binary)",
        )
        .await?;
    let mut bytes = 0;
    while let Some(chunk) = stream.try_next().await? {
        bytes += chunk.len();
    }
    Ok(bytes)
}

/// Runs `report --from-db` as its own process: its wall time and peak memory (MB).
fn report_process(url: &str) -> anyhow::Result<(Duration, f64)> {
    let started = Instant::now();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_store-monitor"))
        .args(["report", "--from-db", "--out", "/dev/null", "--database-url", url])
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("cannot start the report process")?;
    let mut status = 0;
    // SAFETY: `rusage` is plain data that wait4 fills in; the child is ours and not waited
    // for anywhere else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    anyhow::ensure!(
        waited > 0 && status == 0,
        "the report process failed (status {status})"
    );
    Ok((started.elapsed(), usage.ru_maxrss as f64 / 1024.0))
}

/// The bench database on the server at `server_url`, dropped if a run left it behind: its
/// connect options (to drop it again) and URL.
pub(crate) async fn fresh_database(server_url: &str) -> anyhow::Result<(PgConnectOptions, String)> {
    let options: PgConnectOptions = server_url.parse().context("bad database URL")?;
    let options = options.database(BENCH_DATABASE);
    drop_database(&options).await?;
    let url = options.to_url_lossy().to_string();
    Ok((options, url))
}

/// Drops the bench database on the server of `options`, if it exists.
pub(crate) async fn drop_database(options: &PgConnectOptions) -> anyhow::Result<()> {
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .context("cannot connect to PostgreSQL")?;
    let statement = format!("DROP DATABASE IF EXISTS \"{BENCH_DATABASE}\" WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&mut admin)
        .await?;
    Ok(())
}
