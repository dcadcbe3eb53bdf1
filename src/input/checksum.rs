//! A file's checksum, and whether it only grew since an earlier version: what lets a reload
//! skip an unchanged file and read only the rows appended to a grown one.

use std::io::Read;
use std::path::Path;

/// A file's xxh3-128 checksum (hex) and size, and what its first bytes were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSum {
    pub checksum: String,
    pub size: u64,
    /// Present when the file is longer than the prefix asked for, is not gzipped, and the
    /// prefix ends a line: then the rest can be read on its own.
    pub prefix: Option<Prefix>,
}

/// The first bytes of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub len: u64,
    pub checksum: String,
    /// Newlines in it: the line numbers of the rows after it start past these.
    pub lines: u64,
}

/// Checksums `path` in one pass (fast enough to run on every reload), and its first
/// `prefix` bytes too when asked.
pub fn checksum(path: &Path, prefix: Option<u64>) -> std::io::Result<FileSum> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    let (mut lines, mut last, mut gzip) = (0u64, 0u8, false);
    let mut found = None;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let mut chunk = &buf[..n];
        if size == 0 {
            gzip = super::csv_file::is_gzip(chunk);
        }
        if let Some(len) = prefix.filter(|&len| size < len) {
            let head = &chunk[..chunk.len().min((len - size) as usize)];
            hasher.update(head);
            lines += head.iter().filter(|&&b| b == b'\n').count() as u64;
            last = head.last().copied().unwrap_or(last);
            size += head.len() as u64;
            chunk = &chunk[head.len()..];
            if size == len {
                found = Some(Prefix {
                    len,
                    checksum: format!("{:032x}", hasher.digest128()),
                    lines,
                });
            }
        }
        hasher.update(chunk);
        size += chunk.len() as u64;
    }
    let prefix = found.filter(|p| p.len < size && last == b'\n' && !gzip);
    Ok(FileSum {
        checksum: format!("{:032x}", hasher.digest128()),
        size,
        prefix,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn a_grown_file_reports_its_earlier_version_as_its_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let old = file(dir.path(), "old.csv", b"h\r\na\r\nb\r\n");
        let new = file(dir.path(), "new.csv", b"h\r\na\r\nb\r\nc\r\n");
        let before = checksum(&old, None).unwrap();
        assert_eq!(before.prefix, None);
        let after = checksum(&new, Some(before.size)).unwrap();
        let expected = Prefix {
            len: 9,
            checksum: before.checksum.clone(),
            lines: 3,
        };
        assert_eq!(after.prefix, Some(expected));
        assert_eq!(after.size, 12);
        assert_eq!(after.checksum, checksum(&new, None).unwrap().checksum);
    }

    #[test]
    fn no_prefix_unless_the_file_grew_past_a_line_end_and_is_not_gzipped() {
        let dir = tempfile::tempdir().unwrap();
        let text = file(dir.path(), "a.csv", b"h\na\nb\n");
        assert_eq!(checksum(&text, Some(3)).unwrap().prefix, None, "mid-line");
        assert_eq!(checksum(&text, Some(6)).unwrap().prefix, None, "the whole file");
        assert_eq!(
            checksum(&text, Some(60)).unwrap().prefix,
            None,
            "longer than the file"
        );
        assert_eq!(checksum(&text, Some(0)).unwrap().prefix, None, "empty");
        assert!(checksum(&text, Some(4)).unwrap().prefix.is_some());
        let gz = file(dir.path(), "a.csv.gz", b"\x1f\x8bh\na\nb\n");
        assert_eq!(checksum(&gz, Some(4)).unwrap().prefix, None, "gzip");
    }
}
