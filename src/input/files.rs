//! Which file in a data folder holds what.
//!
//! The files have gone by several names (`store_status.csv`, `store status.csv`,
//! `bq-results-20230125-202210-1674678181880.csv`, gzipped or not), so a folder is searched
//! by what the files hold: each CSV's header says which of the four it is.

use std::path::{Path, PathBuf};

use super::InputError;
use super::csv_file::{self, Column};

/// The four kinds of input file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    Status,
    Hours,
    Timezones,
    /// Which stores belong to which groups (brands, franchisees, regions): what a scoped
    /// token sees.
    Groups,
}

impl FileKind {
    pub const ALL: [FileKind; 4] = [
        FileKind::Status,
        FileKind::Hours,
        FileKind::Timezones,
        FileKind::Groups,
    ];

    /// The columns this kind of file must have, in the order its parser takes them.
    pub fn columns(self) -> &'static [Column] {
        const STORE: Column = Column { names: &["store_id"] };
        match self {
            FileKind::Status => &[
                STORE,
                Column { names: &["status"] },
                Column {
                    names: &["timestamp_utc"],
                },
            ],
            FileKind::Hours => &[
                STORE,
                Column {
                    names: &["dayOfWeek", "day"],
                },
                Column {
                    names: &["start_time_local"],
                },
                Column {
                    names: &["end_time_local"],
                },
            ],
            FileKind::Timezones => &[
                STORE,
                Column {
                    names: &["timezone_str"],
                },
            ],
            FileKind::Groups => &[STORE, Column { names: &["group"] }],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FileKind::Status => "status",
            FileKind::Hours => "business hours",
            FileKind::Timezones => "time zones",
            FileKind::Groups => "store groups",
        }
    }

    /// The command-line flag that names a file of this kind.
    pub fn flag(self) -> &'static str {
        match self {
            FileKind::Status => "status",
            FileKind::Hours => "hours",
            FileKind::Timezones => "timezones",
            FileKind::Groups => "groups",
        }
    }

    /// The name it has in `data/`, preferred when several files of a kind are found.
    pub fn default_name(self) -> &'static str {
        match self {
            FileKind::Status => "store_status.csv",
            FileKind::Hours => "menu_hours.csv",
            FileKind::Timezones => "timezones.csv",
            FileKind::Groups => "store_groups.csv",
        }
    }

    fn matches(self, header: &[String]) -> bool {
        self.columns().iter().all(|c| {
            header
                .iter()
                .any(|h| c.names.iter().any(|n| h.eq_ignore_ascii_case(n)))
        })
    }
}

/// One value per kind of file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerKind<T> {
    pub status: T,
    pub hours: T,
    pub timezones: T,
    pub groups: T,
}

impl<T> std::ops::Index<FileKind> for PerKind<T> {
    type Output = T;
    fn index(&self, kind: FileKind) -> &T {
        match kind {
            FileKind::Status => &self.status,
            FileKind::Hours => &self.hours,
            FileKind::Timezones => &self.timezones,
            FileKind::Groups => &self.groups,
        }
    }
}

impl<T> std::ops::IndexMut<FileKind> for PerKind<T> {
    fn index_mut(&mut self, kind: FileKind) -> &mut T {
        match kind {
            FileKind::Status => &mut self.status,
            FileKind::Hours => &mut self.hours,
            FileKind::Timezones => &mut self.timezones,
            FileKind::Groups => &mut self.groups,
        }
    }
}

/// The input files of one data set. Only the status file is required: without business
/// hours every store is open 24×7, without time zones every store is in America/Chicago,
/// without groups stores are in none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataFiles {
    pub status: PathBuf,
    pub hours: Option<PathBuf>,
    pub timezones: Option<PathBuf>,
    pub groups: Option<PathBuf>,
}

/// Files named on the command line; each one left out is looked for in the data folder.
#[derive(Clone, Debug, Default)]
pub struct FileChoice {
    pub status: Option<PathBuf>,
    pub hours: Option<PathBuf>,
    pub timezones: Option<PathBuf>,
    pub groups: Option<PathBuf>,
}

impl DataFiles {
    /// The files in `dir`, taking those named in `choice` as given (relative to the
    /// current folder, or else to `dir`).
    pub fn find(dir: &Path, choice: &FileChoice) -> Result<DataFiles, InputError> {
        let named = |p: &Option<PathBuf>| p.as_ref().map(|p| csv_file::resolve(dir, p));
        let (mut status, mut hours, mut timezones, mut groups) = (
            named(&choice.status),
            named(&choice.hours),
            named(&choice.timezones),
            named(&choice.groups),
        );
        if status.is_none() || hours.is_none() || timezones.is_none() || groups.is_none() {
            let found = candidates(dir)?;
            for kind in FileKind::ALL {
                let slot = match kind {
                    FileKind::Status => &mut status,
                    FileKind::Hours => &mut hours,
                    FileKind::Timezones => &mut timezones,
                    FileKind::Groups => &mut groups,
                };
                if slot.is_none() {
                    *slot = pick(dir, kind, &found)?;
                }
            }
        }
        let status = status.ok_or_else(|| InputError::NotFound {
            kind: FileKind::Status.name(),
            dir: dir.to_path_buf(),
            expected: format!(
                "a CSV (or .csv.gz) with columns store_id, status, timestamp_utc, such as {}",
                FileKind::Status.default_name()
            ),
        })?;
        Ok(DataFiles {
            status,
            hours,
            timezones,
            groups,
        })
    }

    /// [`DataFiles::find`] for async callers: on a blocking thread, since it reads (and may
    /// unzip) the header of every CSV in the folder.
    pub async fn find_off_runtime(dir: &Path, choice: &FileChoice) -> anyhow::Result<DataFiles> {
        let (dir, choice) = (dir.to_path_buf(), choice.clone());
        Ok(tokio::task::spawn_blocking(move || DataFiles::find(&dir, &choice)).await??)
    }

    /// Each kind's file found on its own, for a reload: a kind whose file cannot be found
    /// is that kind's failed load, and the other files still load. A missing business-hours
    /// or time-zone file is no error (SPEC §1 defaults them); a missing status file is.
    pub fn find_each(dir: &Path, choice: &FileChoice) -> FoundFiles {
        let found = candidates(dir);
        let one = |kind: FileKind| {
            let named = match kind {
                FileKind::Status => &choice.status,
                FileKind::Hours => &choice.hours,
                FileKind::Timezones => &choice.timezones,
                FileKind::Groups => &choice.groups,
            };
            let missing = |error: String| Missing {
                file: dir.join(kind.default_name()),
                error,
            };
            match (named, &found) {
                (Some(path), _) => Ok(Some(csv_file::resolve(dir, path))),
                (None, Err(e)) => Err(missing(e.reason())),
                (None, Ok(found)) => match pick(dir, kind, found) {
                    Ok(None) if kind == FileKind::Status => Err(missing(
                        "no status file in the data folder: expected a CSV (or .csv.gz) with columns store_id, status, timestamp_utc"
                            .to_string(),
                    )),
                    Ok(path) => Ok(path),
                    Err(e) => Err(missing(e.reason())),
                },
            }
        };
        PerKind {
            status: one(FileKind::Status),
            hours: one(FileKind::Hours),
            timezones: one(FileKind::Timezones),
            groups: one(FileKind::Groups),
        }
    }

    /// [`DataFiles::find_each`] on a blocking thread.
    pub async fn find_each_off_runtime(dir: &Path, choice: &FileChoice) -> anyhow::Result<FoundFiles> {
        let (dir, choice) = (dir.to_path_buf(), choice.clone());
        Ok(tokio::task::spawn_blocking(move || DataFiles::find_each(&dir, &choice)).await?)
    }

    /// These files, as a reload takes them.
    pub fn found(&self) -> FoundFiles {
        PerKind {
            status: Ok(Some(self.status.clone())),
            hours: Ok(self.hours.clone()),
            timezones: Ok(self.timezones.clone()),
            groups: Ok(self.groups.clone()),
        }
    }

    pub fn get(&self, kind: FileKind) -> Option<&Path> {
        match kind {
            FileKind::Status => Some(&self.status),
            FileKind::Hours => self.hours.as_deref(),
            FileKind::Timezones => self.timezones.as_deref(),
            FileKind::Groups => self.groups.as_deref(),
        }
    }
}

/// Each kind's file, as a reload takes them: found, not there (and not needed), or why
/// it could not be found.
pub type FoundFiles = PerKind<Result<Option<PathBuf>, Missing>>;

/// A file a reload needed and could not find.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// Where it was looked for.
    pub file: PathBuf,
    pub error: String,
}

/// Every `.csv` / `.csv.gz` file in `dir` with the kinds its header fits.
fn candidates(dir: &Path) -> Result<Vec<(PathBuf, Vec<FileKind>)>, InputError> {
    let entries = std::fs::read_dir(dir).map_err(|source| InputError::io(dir, source))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|source| InputError::io(dir, source))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !(name.ends_with(".csv") || name.ends_with(".csv.gz")) || !path.is_file() {
            continue;
        }
        // A file we cannot even read the header of is nobody's input, unless it has an
        // input's own name: then it is taken for that input, whose load says why it cannot
        // be read (rather than "no such file").
        let Ok(header) = csv_file::header(&path) else {
            let named = FileKind::ALL
                .into_iter()
                .filter(|k| name == k.default_name() || name == format!("{}.gz", k.default_name()))
                .collect::<Vec<_>>();
            if !named.is_empty() {
                found.push((path, named));
            }
            continue;
        };
        let kinds = FileKind::ALL.into_iter().filter(|k| k.matches(&header)).collect();
        found.push((path, kinds));
    }
    found.sort();
    Ok(found)
}

fn pick(
    dir: &Path,
    kind: FileKind,
    found: &[(PathBuf, Vec<FileKind>)],
) -> Result<Option<PathBuf>, InputError> {
    let fits: Vec<&PathBuf> = found
        .iter()
        .filter(|(_, k)| k.contains(&kind))
        .map(|(p, _)| p)
        .collect();
    if fits.len() <= 1 {
        return Ok(fits.first().map(|p| p.to_path_buf()));
    }
    let preferred = [
        kind.default_name().to_string(),
        format!("{}.gz", kind.default_name()),
    ];
    for name in &preferred {
        if let Some(p) = fits
            .iter()
            .find(|p| p.file_name().is_some_and(|n| n == name.as_str()))
        {
            return Ok(Some(p.to_path_buf()));
        }
    }
    Err(InputError::Ambiguous {
        kind: kind.name(),
        dir: dir.to_path_buf(),
        candidates: fits
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        flag: kind.flag(),
    })
}
