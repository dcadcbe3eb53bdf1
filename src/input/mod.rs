//! Reading the three input files of SPEC §1: finding them, checksumming them, and parsing
//! them into memory. No database here; `db::reload` stores what this reads.

pub mod checksum;
pub mod csv_file;
pub mod data;
pub mod fields;
pub mod files;
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
}
