//! Writing files so that nobody ever reads half of one, and the report CSV format.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::domain::report::{HEADER, ReportLine, Rounded};
use crate::ingest::dataset::Report;

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

/// Writes `path` through a temporary file beside it, renamed into place once complete and
/// synced, so that a reader sees the old file or the whole new one, never a part.
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
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
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
