//! `store-monitor report`: the report from CSV files, in memory.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;

use crate::cli::ReportArgs;
use crate::domain::report::{HEADER, ReportLine, Rounded};
use crate::ingest::dataset::Report;
use crate::ingest::{DataFiles, Dataset, Rejected};

/// How many rejected rows are printed; all of them go to `--rejected`.
const SHOWN_REJECTED: usize = 20;

pub async fn run(args: &ReportArgs) -> anyhow::Result<()> {
    if args.from_db {
        return run_from_db(args).await;
    }
    let started = Instant::now();
    let files = DataFiles::find(&args.data.data, &args.data.choice())?;
    let mut data = Dataset::load(&files)?;
    let report = data.prepare().report(args.as_of, args.interpolation);
    output(args, &report)?;
    if let Some(path) = &args.rejected {
        write_atomically(path, |w| write_rejected(&data.rejected, w))?;
    }
    print_rejected(&data.rejected);
    let [status, hours, zones] = data.counts;
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

/// The report CSV of SPEC §2.
pub fn write_report(report: &Report, w: &mut impl Write) -> std::io::Result<()> {
    writeln!(w, "{HEADER}")?;
    for row in &report.rows {
        let line = ReportLine {
            store_id: &row.store_id,
            figures: Rounded::from(&row.uptime),
        };
        writeln!(w, "{line}")?;
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

/// Writes `path` through a temporary file beside it, so that nobody ever reads half a file.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path
        .file_name()
        .context("output path has no file name")?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
        write(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move the new file into {}", path.display()))
}
