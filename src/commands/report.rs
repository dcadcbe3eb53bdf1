//! `store-monitor report`: the report from CSV files, in memory.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::args::{DataArgs, DbArgs, parse_interpolation, parse_timestamp};
use crate::domain::Report;
use crate::domain::{Interpolation, Timestamp};
use crate::input::{DataFiles, InputData, Rejected};
use crate::output::{write_atomically, write_report};

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Compute the report from the data in PostgreSQL (see `ingest`) instead of the files.
    #[arg(long)]
    pub from_db: bool,
    #[command(flatten)]
    pub database: DbArgs,
    /// Compute the report as of this UTC instant (e.g. "2023-01-25 18:00:00 UTC"); polls
    /// after it are ignored. Default: the newest poll.
    #[arg(long, value_name = "TIMESTAMP", value_parser = parse_timestamp)]
    pub as_of: Option<Timestamp>,
    /// How status is read between polls.
    #[arg(long, default_value = "nearest", value_parser = parse_interpolation)]
    pub interpolation: Interpolation,
    /// Write the report here (atomically) instead of to stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write every rejected row here as CSV (file, line, reason, raw).
    #[arg(long, value_name = "FILE")]
    pub rejected: Option<PathBuf>,
}

/// How many rejected rows are printed; all of them go to `--rejected`.
const SHOWN_REJECTED: usize = 20;

pub(crate) async fn run(args: &ReportArgs) -> anyhow::Result<()> {
    if args.from_db {
        return run_from_db(args).await;
    }
    let started = Instant::now();
    let files = DataFiles::find(&args.data.data, &args.data.choice())?;
    let mut data = InputData::load(&files)?;
    let report = data.prepare().report(args.as_of, args.interpolation);
    output(args, &report)?;
    if let Some(path) = &args.rejected {
        write_atomically(path, |w| write_rejected(&data.rejected, w))?;
    }
    print_rejected(&data.rejected);
    let (status, hours, zones) = (data.counts.status, data.counts.hours, data.counts.timezones);
    eprintln!(
        "report: {} stores, {} polls, as of {}, {}; rejected rows: {} status, {} hours, {} time zones; {:.2} s",
        report.rows.len(),
        status.rows - status.rejected,
        report.now.map_or("-".into(), |t| t.to_string()),
        args.interpolation.name(),
        status.rejected,
        hours.rejected,
        zones.rejected,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The report from the data in PostgreSQL: the read path of the server's report jobs.
async fn run_from_db(args: &ReportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // One connection holds the snapshot, one per core reads a part of the polls.
    let pool = crate::db::connect(&args.database.database_url, 5).await?;
    let snapshot = crate::db::snapshot::Snapshot::open(&pool, args.as_of).await?;
    let (now, version) = (snapshot.now, snapshot.data_version);
    let rows = snapshot.report(args.interpolation, Default::default()).await?;
    let report = Report { now, rows };
    output(args, &report)?;
    eprintln!(
        "report: {} stores from the database (data version {version}), as of {}, {}; {:.2} s",
        report.rows.len(),
        report.now.map_or("-".into(), |t| t.to_string()),
        args.interpolation.name(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes the report where `--out` says, or to stdout.
fn output(args: &ReportArgs, report: &Report) -> anyhow::Result<()> {
    match &args.out {
        Some(path) => write_atomically(path, |w| write_report(report, w))?,
        None => {
            let stdout = std::io::stdout().lock();
            let mut w = std::io::BufWriter::with_capacity(1 << 16, stdout);
            match write_report(report, &mut w).and_then(|()| w.flush()) {
                // The reader has all it wanted (`| head`): not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.context("cannot write the report to stdout")?,
            }
        }
    }
    Ok(())
}

fn write_rejected(rejected: &[Rejected], w: &mut impl Write) -> std::io::Result<()> {
    let mut csv = csv::Writer::from_writer(w);
    csv.write_record(["file", "line", "reason", "raw"])?;
    for r in rejected {
        csv.write_record([r.file.as_str(), &r.line.to_string(), &r.reason, &r.raw])?;
    }
    csv.flush()
}

fn print_rejected(rejected: &[Rejected]) {
    for r in rejected.iter().take(SHOWN_REJECTED) {
        eprintln!("rejected {r}");
    }
    if rejected.len() > SHOWN_REJECTED {
        eprintln!(
            "… and {} more rejected rows (--rejected FILE writes them all)",
            rejected.len() - SHOWN_REJECTED
        );
    }
}
