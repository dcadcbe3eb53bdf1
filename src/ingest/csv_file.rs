//! Reading one input CSV by header name: plain or gzip, BOM and CRLF tolerated, bad rows
//! reported with their line and skipped.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::IngestError;

/// A row that could not be read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub file: String,
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    pub reason: String,
    /// The row as it was read, fields joined by commas.
    pub raw: String,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// A column the file must have; any of `names` will do (compared ignoring case).
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub names: &'static [&'static str],
}

/// Opens `path`, unzipping it when it starts with the gzip magic bytes.
pub fn open(path: &Path) -> Result<Box<dyn BufRead + Send>, IngestError> {
    let file = File::open(path).map_err(|source| IngestError::io(path, source))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let head = reader
        .fill_buf()
        .map_err(|source| IngestError::io(path, source))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let gz = flate2::bufread::MultiGzDecoder::new(reader);
        Ok(Box::new(BufReader::with_capacity(1 << 16, gz)))
    } else {
        Ok(Box::new(reader))
    }
}

/// The header names of a CSV file, BOM and surrounding whitespace removed.
pub fn header(path: &Path) -> Result<Vec<String>, IngestError> {
    let mut reader = csv_reader(open(path)?);
    let header = reader
        .byte_headers()
        .map_err(|source| IngestError::csv(path, source))?;
    Ok(clean_header(header))
}

fn csv_reader(input: Box<dyn BufRead + Send>) -> csv::Reader<Box<dyn BufRead + Send>> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .buffer_capacity(1 << 16)
        .from_reader(input)
}

fn clean_header(header: &csv::ByteRecord) -> Vec<String> {
    header
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let name = if i == 0 {
                name.strip_prefix(b"\xef\xbb\xbf").unwrap_or(name)
            } else {
                name
            };
            String::from_utf8_lossy(name.trim_ascii()).into_owned()
        })
        .collect()
}

/// Where each wanted column sits in `header`, or the error naming the first one missing.
pub fn locate(path: &Path, header: &[String], wanted: &[Column]) -> Result<Vec<usize>, IngestError> {
    wanted
        .iter()
        .map(|column| {
            header
                .iter()
                .position(|h| column.names.iter().any(|n| h.eq_ignore_ascii_case(n)))
                .ok_or_else(|| IngestError::MissingColumn {
                    path: path.to_path_buf(),
                    column: column.names.join("` or `"),
                    header: header.join(","),
                })
        })
        .collect()
}

/// The most columns any input file needs.
const MAX_COLUMNS: usize = 4;

/// How many data rows a file had and how many of them were rejected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileCounts {
    pub rows: u64,
    pub rejected: u64,
}

/// Reads every row of `path`, handing the trimmed fields of the `wanted` columns (in that
/// order) to `row`. A row with a missing field, or that `row` refuses with a reason, is
/// added to `rejected` and skipped. Fails only on a missing column or an unreadable file.
pub fn read_rows(
    path: &Path,
    wanted: &[Column],
    rejected: &mut Vec<Rejected>,
    mut row: impl FnMut(&[&[u8]]) -> Result<(), String>,
) -> Result<FileCounts, IngestError> {
    let mut reader = csv_reader(open(path)?);
    let header = clean_header(
        reader
            .byte_headers()
            .map_err(|source| IngestError::csv(path, source))?,
    );
    assert!(
        wanted.len() <= MAX_COLUMNS,
        "read_rows takes at most {MAX_COLUMNS} columns"
    );
    let columns = locate(path, &header, wanted)?;
    let file = display_name(path);
    let mut record = csv::ByteRecord::new();
    let mut counts = FileCounts::default();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(source) => return Err(IngestError::csv(path, source)),
        }
        counts.rows += 1;
        let mut fields: [&[u8]; MAX_COLUMNS] = [&[]; MAX_COLUMNS];
        let mut missing = None;
        for (i, (&index, column)) in columns.iter().zip(wanted).enumerate() {
            match record.get(index).map(<[u8]>::trim_ascii) {
                Some(field) => fields[i] = field,
                None => {
                    missing = Some(format!("missing field `{}`", column.names[0]));
                    break;
                }
            }
        }
        let outcome = match missing {
            Some(reason) => Err(reason),
            None => row(&fields[..columns.len()]),
        };
        if let Err(reason) = outcome {
            counts.rejected += 1;
            rejected.push(Rejected {
                file: file.clone(),
                line: record.position().map_or(0, |p| p.line()),
                reason,
                raw: raw_text(&record),
            });
        }
    }
    Ok(counts)
}

fn raw_text(record: &csv::ByteRecord) -> String {
    let fields: Vec<_> = record.iter().map(String::from_utf8_lossy).collect();
    fields.join(",")
}

/// How a file is named in messages: its path as given.
pub fn display_name(path: &Path) -> String {
    path.display().to_string()
}

/// `path` as given when it exists there, else inside `dir`.
pub fn resolve(dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() || path.exists() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}
