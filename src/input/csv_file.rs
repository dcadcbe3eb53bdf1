//! Reading one input CSV by header name: plain or gzip, BOM and CRLF tolerated, bad rows
//! reported with their line and skipped.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::InputError;

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

/// Whether a file that begins with `head` is gzipped (its magic bytes).
pub fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
}

/// The longest line an input file may have. Rows are tens of bytes; a line this long is
/// not a CSV of ours (a file of NULs, a binary), and reading it as one record would hold
/// all of it in memory.
pub const MAX_LINE_BYTES: u64 = 1 << 20;

/// Why a file was given up on: a line longer than [`MAX_LINE_BYTES`].
#[derive(Debug, thiserror::Error)]
#[error("{}", Self::REASON)]
pub struct LineTooLong;

impl LineTooLong {
    /// The reason, in words a client may see.
    pub const REASON: &'static str = "a line is longer than 1 MiB: not a CSV file of polls, hours or time zones (a file of NUL bytes or a binary?)";
}

/// Fails a read, instead of growing a record without end, once more than
/// [`MAX_LINE_BYTES`] pass without a newline: whatever a file holds, reading it takes
/// bounded memory.
pub(crate) struct LineLimit<R> {
    inner: R,
    since_newline: u64,
}

impl<R> LineLimit<R> {
    pub(crate) fn new(inner: R) -> Self {
        LineLimit {
            inner,
            since_newline: 0,
        }
    }
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        // Searching from the end finds a row's newline within a few dozen bytes.
        match buf[..n].iter().rposition(|&b| b == b'\n') {
            Some(at) => self.since_newline = (n - at - 1) as u64,
            None => self.since_newline += n as u64,
        }
        if self.since_newline > MAX_LINE_BYTES {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, LineTooLong));
        }
        Ok(n)
    }
}

/// Opens `path`, unzipping it when it starts with the gzip magic bytes; a line longer than
/// [`MAX_LINE_BYTES`] (unzipped) is an error.
pub fn open(path: &Path) -> Result<Box<dyn BufRead + Send>, InputError> {
    let file = File::open(path).map_err(|source| InputError::io(path, source))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let head = reader.fill_buf().map_err(|source| InputError::io(path, source))?;
    if is_gzip(head) {
        let gz = flate2::bufread::MultiGzDecoder::new(reader);
        Ok(Box::new(BufReader::with_capacity(1 << 16, LineLimit::new(gz))))
    } else {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            LineLimit::new(reader),
        )))
    }
}

/// The header names of a CSV file, BOM and surrounding whitespace removed.
pub fn header(path: &Path) -> Result<Vec<String>, InputError> {
    let mut reader = csv_reader(open(path)?, true);
    let header = reader
        .byte_headers()
        .map_err(|source| InputError::csv(path, source))?;
    Ok(clean_header(header))
}

fn csv_reader<R: Read>(input: R, has_headers: bool) -> csv::Reader<R> {
    // Records end at `\n` only: with the default (any of `\r`, `\n`, `\r\n`), a CRLF file's
    // records start at the `\n` left over from the line before, and every line number is one
    // short. The `\r` stays at the end of the last field, and fields are trimmed anyway.
    csv::ReaderBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .has_headers(has_headers)
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
pub fn locate(path: &Path, header: &[String], wanted: &[Column]) -> Result<Vec<usize>, InputError> {
    wanted
        .iter()
        .map(|column| {
            header
                .iter()
                .position(|h| column.names.iter().any(|n| h.eq_ignore_ascii_case(n)))
                .ok_or_else(|| InputError::MissingColumn {
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

/// A stretch of a file's data rows that can be read on its own, by its own thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// Byte offset of its first row; 0 means the file from its header on.
    start: u64,
    /// Byte offset just past its last row; `None` for the end of the file.
    end: Option<u64>,
}

impl Part {
    pub const WHOLE: Part = Part { start: 0, end: None };

    /// The rows from byte `start` (just after a newline) to the end.
    pub fn from(start: u64) -> Part {
        Part { start, end: None }
    }
}

/// Files smaller than this are not worth a second thread.
const MIN_SPLIT_BYTES: u64 = 4 << 20;

/// Cuts a plain (not gzipped) file into up to `n` parts, each starting just after a
/// newline. A cut is only right if no quoted field spans it: [`PartCounts::quotes`] tells,
/// after the fact, whether the file had any quote at all.
pub fn split(path: &Path, n: usize) -> Result<Vec<Part>, InputError> {
    let io = |e| InputError::io(path, e);
    let size = std::fs::metadata(path).map_err(io)?.len();
    if n <= 1 || size < MIN_SPLIT_BYTES {
        return Ok(vec![Part::WHOLE]);
    }
    let mut file = File::open(path).map_err(io)?;
    let mut window = vec![0u8; 1 << 16];
    let head = file.read(&mut window).map_err(io)?;
    if is_gzip(&window[..head]) {
        return Ok(vec![Part::WHOLE]);
    }
    let mut cuts = Vec::new();
    for k in 1..n as u64 {
        file.seek(SeekFrom::Start(size * k / n as u64)).map_err(io)?;
        let read = file.read(&mut window).map_err(io)?;
        let Some(newline) = window[..read].iter().position(|&b| b == b'\n') else {
            continue;
        };
        let cut = size * k / n as u64 + newline as u64 + 1;
        if cut < size && cuts.last().is_none_or(|&last| cut > last) {
            cuts.push(cut);
        }
    }
    let mut parts = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        parts.push(Part {
            start,
            end: Some(cut),
        });
        start = cut;
    }
    parts.push(Part { start, end: None });
    Ok(parts)
}

/// What reading a part found, besides its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartCounts {
    pub counts: FileCounts,
    /// Newlines in the part: added to the line numbers of the parts after it.
    pub lines: u64,
    /// Whether the part held a `"`: if any part did, the cuts may be wrong.
    pub quotes: bool,
}

/// Spots the quotes of what passes through it, while the bytes are hot in the cache anyway.
struct Watch<R> {
    inner: R,
    quotes: bool,
}

impl<R: Read> Read for Watch<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let bytes = &buf[..n];
        self.quotes |= bytes.contains(&b'"');
        Ok(n)
    }
}

/// Reads every row of `path`, handing the trimmed fields of the `wanted` columns (in that
/// order) to `row`. A row with a missing field, or that `row` refuses with a reason, is
/// added to `rejected` and skipped. Fails only on a missing column or an unreadable file.
pub fn read_rows(
    path: &Path,
    wanted: &[Column],
    rejected: &mut Vec<Rejected>,
    row: impl FnMut(&[&[u8]]) -> Result<(), String>,
) -> Result<FileCounts, InputError> {
    Ok(read_part(path, Part::WHOLE, wanted, rejected, row)?.counts)
}

/// [`read_rows`] for one [`Part`] of the file. Line numbers of rejected rows count from
/// the part's start: add the lines of the parts before it.
pub fn read_part(
    path: &Path,
    part: Part,
    wanted: &[Column],
    rejected: &mut Vec<Rejected>,
    row: impl FnMut(&[&[u8]]) -> Result<(), String>,
) -> Result<PartCounts, InputError> {
    let io = |e| InputError::io(path, e);
    let header = header(path)?;
    let columns = locate(path, &header, wanted)?;
    let input: Box<dyn Read + Send> = match part {
        Part::WHOLE => open(path)?,
        Part { start, end } => {
            let mut file = File::open(path).map_err(io)?;
            file.seek(SeekFrom::Start(start)).map_err(io)?;
            Box::new(LineLimit::new(file.take(end.map_or(u64::MAX, |end| end - start))))
        }
    };
    let mut input = Watch {
        inner: input,
        quotes: false,
    };
    let mut reader = csv_reader(&mut input, part.start == 0);
    let counts = read_records(
        &mut reader,
        &display_name(path),
        &columns,
        wanted,
        u64::MAX,
        rejected,
        row,
    )
    .map_err(|source| InputError::csv(path, source))?;
    // The reader counts every `\n` it passed (from line 1), quoted or not.
    let lines = reader.position().line() - 1;
    drop(reader);
    Ok(PartCounts {
        counts,
        lines,
        quotes: input.quotes,
    })
}

/// Reads CSV rows from a body (a pushed batch, `name` in its rejected rows) as
/// [`read_rows`] reads a file: by the header's column names, bad rows rejected. Reading
/// stops after the row past `max_rows` (its count says so): a small body can hold millions
/// of tiny bad rows, and each rejected one is kept.
pub fn read_bytes(
    input: impl Read,
    name: &str,
    wanted: &[Column],
    max_rows: u64,
    rejected: &mut Vec<Rejected>,
    row: impl FnMut(&[&[u8]]) -> Result<(), String>,
) -> Result<FileCounts, InputError> {
    let path = Path::new(name);
    let mut reader = csv_reader(LineLimit::new(input), true);
    let header = reader
        .byte_headers()
        .map_err(|source| InputError::csv(path, source))?;
    let columns = locate(path, &clean_header(header), wanted)?;
    read_records(&mut reader, name, &columns, wanted, max_rows, rejected, row)
        .map_err(|source| InputError::csv(path, source))
}

/// The rows of `reader`, the fields at `columns` handed to `row` (see [`read_rows`]), up to
/// the row past `max_rows`.
fn read_records<R: Read>(
    reader: &mut csv::Reader<R>,
    name: &str,
    columns: &[usize],
    wanted: &[Column],
    max_rows: u64,
    rejected: &mut Vec<Rejected>,
    mut row: impl FnMut(&[&[u8]]) -> Result<(), String>,
) -> Result<FileCounts, csv::Error> {
    assert!(
        wanted.len() <= MAX_COLUMNS,
        "read_rows takes at most {MAX_COLUMNS} columns"
    );
    let mut record = csv::ByteRecord::new();
    let mut counts = FileCounts::default();
    while reader.read_byte_record(&mut record)? {
        if record.len() == 1 && record[0].trim_ascii().is_empty() {
            // A blank line (`\r` alone, in a CRLF file): not a row.
            continue;
        }
        if counts.rows > max_rows {
            break;
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
                file: name.to_string(),
                line: record.position().map_or(0, |p| p.line()),
                reason,
                raw: raw_text(&record),
            });
        }
    }
    Ok(counts)
}

/// The most characters of a rejected row kept as it was read: enough to see the row, while
/// a line may be 1 MiB.
pub const MAX_RAW_CHARS: usize = 500;

fn raw_text(record: &csv::ByteRecord) -> String {
    let fields: Vec<_> = record.iter().map(String::from_utf8_lossy).collect();
    let mut raw = fields.join(",");
    if raw.ends_with('\r') {
        raw.pop();
    }
    clip(&raw).to_string()
}

/// `text` cut to its first [`MAX_RAW_CHARS`] characters.
pub fn clip(text: &str) -> &str {
    match text.char_indices().nth(MAX_RAW_CHARS) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
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

#[cfg(test)]
mod line_limit_tests {
    use super::*;

    #[test]
    fn a_line_longer_than_the_limit_is_an_error_however_it_arrives() {
        let long = vec![0u8; MAX_LINE_BYTES as usize + 2];
        let mut read = LineLimit::new(&long[..]);
        let error = std::io::copy(&mut read, &mut std::io::sink()).unwrap_err();
        assert!(error.get_ref().is_some_and(|e| e.is::<LineTooLong>()), "{error}");
        // Many short lines, however long the whole, are fine.
        let rows = b"1,active,2023-01-25 18:13:22 UTC\n".repeat(100_000);
        let mut read = LineLimit::new(&rows[..]);
        assert_eq!(
            std::io::copy(&mut read, &mut std::io::sink()).unwrap(),
            rows.len() as u64
        );
    }
}
