//! Reading the three input files of SPEC §1: finding them, checksumming them, and parsing
//! them into memory. No database here; `db::reload` stores what this reads.

pub mod checksum;
pub mod csv_file;
pub mod data;
pub mod fields;
pub mod files;
pub mod push;
mod store_ids;

use std::path::{Path, PathBuf};

pub use csv_file::Rejected;
pub use data::InputData;
pub use files::{DataFiles, FileChoice, FileKind, FoundFiles, Missing, PerKind};

/// Why a whole file (not just a row of it) could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path} as CSV: {source}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("{path}: the header lacks the column `{column}` (header: {header})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        header: String,
    },
    #[error("no {kind} file in {dir}: expected {expected}")]
    NotFound {
        kind: &'static str,
        dir: PathBuf,
        expected: String,
    },
    #[error("several files in {dir} look like the {kind} file ({candidates}); name one with --{flag}")]
    Ambiguous {
        kind: &'static str,
        dir: PathBuf,
        candidates: String,
        flag: &'static str,
    },
}

impl InputError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        InputError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn csv(path: &Path, source: csv::Error) -> Self {
        InputError::Csv {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The reason without the server's paths or the operating system's text, for what
    /// clients see (a load's `error`; its `file` says which file).
    pub fn reason(&self) -> String {
        match self {
            InputError::Io { source, .. } => format!("cannot read the file: {}", io_reason(source)),
            InputError::Csv { source, .. } => match source.kind() {
                csv::ErrorKind::Io(e) => format!("cannot read the file: {}", io_reason(e)),
                _ => format!("cannot read the file as CSV: {source}"),
            },
            InputError::MissingColumn { column, header, .. } => {
                format!("the header lacks the column `{column}` (header: {header})")
            }
            InputError::NotFound { kind, expected, .. } => {
                format!("no {kind} file in the data folder: expected {expected}")
            }
            InputError::Ambiguous { kind, flag, .. } => {
                format!("several files in the data folder look like the {kind} file; name one with --{flag}")
            }
        }
    }
}

/// An I/O failure in words a client may see.
pub fn io_reason(error: &std::io::Error) -> &'static str {
    if error.get_ref().is_some_and(|e| e.is::<csv_file::LineTooLong>()) {
        return csv_file::LineTooLong::REASON;
    }
    match error.kind() {
        std::io::ErrorKind::NotFound => "it does not exist",
        std::io::ErrorKind::PermissionDenied => "permission denied",
        std::io::ErrorKind::IsADirectory => "it is a folder",
        std::io::ErrorKind::InvalidData => "it is not valid (a broken gzip stream?)",
        _ => "reading it failed (the server's log has the cause)",
    }
}
