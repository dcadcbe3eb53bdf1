//! Writing files so that nobody ever reads half of one, the report CSV format, and where
//! finished reports' files are kept.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use uuid::Uuid;

use crate::domain::Report;
use crate::domain::report::{HEADER, ReportLine, Rounded};

/// The folder of finished reports' CSV files: one file per computed result, named by its
/// report's id (reports that reuse a result share its file).
#[derive(Clone, Debug)]
pub struct ReportFiles {
    dir: PathBuf,
}

impl ReportFiles {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ReportFiles { dir: dir.into() }
    }

    /// The file of the result computed by the report `result`.
    pub fn path(&self, result: Uuid) -> PathBuf {
        self.dir.join(format!("{result}.csv"))
    }

    /// The report files last written before `before` (a missing directory has none).
    pub fn written_before(&self, before: std::time::SystemTime) -> std::io::Result<Vec<Uuid>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut old = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".csv"))
                .and_then(|n| Uuid::parse_str(n).ok())
            else {
                continue;
            };
            if entry.metadata()?.modified()? < before {
                old.push(id);
            }
        }
        Ok(old)
    }

    /// Deletes the file of `result`, if there is one.
    pub fn remove(&self, result: Uuid) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(result)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// The report CSV of SPEC §2.
pub fn write_report(report: &Report, w: &mut impl Write) -> std::io::Result<()> {
    write_lines(
        report.rows.iter().map(|row| ReportLine {
            store_id: &row.store_id,
            figures: Rounded::from(&row.uptime),
        }),
        w,
    )
}

/// The report CSV of SPEC §2 from its lines, however they were obtained.
pub fn write_lines<'a>(
    lines: impl IntoIterator<Item = ReportLine<'a>>,
    w: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(w, "{HEADER}")?;
    for line in lines {
        writeln!(w, "{line}")?;
    }
    Ok(())
}

/// Writes `path` through a temporary file beside it, renamed into place once complete and
/// synced, so that a reader sees the old file or the whole new one, never a part.
///
/// A path that names a device or a pipe (`/dev/null`, `/dev/stdout`, a FIFO) is written in
/// place: renaming over it would replace the device node with a plain file, and as root
/// that turns `/dev/null` into a file every later reader of `/dev/null` gets text from.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    if let Ok(meta) = std::fs::metadata(path) {
        anyhow::ensure!(
            !meta.is_dir(),
            "cannot write {}: it is a directory",
            path.display()
        );
        if !meta.is_file() {
            return write_in_place(path, write);
        }
    }
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

fn write_in_place(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    (|| -> std::io::Result<()> {
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
        write(&mut w)?;
        w.flush()
    })()
    .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn a_new_file_appears_whole_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/report.csv");
        write_atomically(&path, |w| w.write_all(b"a,b\n")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b\n");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_the_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.csv");
        std::fs::write(&path, "old").unwrap();
        let err = write_atomically(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk on fire"))
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("disk on fire"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_pipe_is_written_in_place_and_stays_a_pipe() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(made.success(), "mkfifo failed");
        let reader = {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut text = String::new();
                std::fs::File::open(path)
                    .unwrap()
                    .read_to_string(&mut text)
                    .unwrap();
                text
            })
        };
        write_atomically(&path, |w| w.write_all(b"through the pipe")).unwrap();
        assert_eq!(reader.join().unwrap(), "through the pipe");
        assert!(std::fs::metadata(&path).unwrap().file_type().is_fifo());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_directory_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_atomically(dir.path(), |w| w.write_all(b"x")).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }
}
