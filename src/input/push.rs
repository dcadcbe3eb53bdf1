//! Polls pushed to the server (`POST /polls`, `recordPolls`): a batch read from a request
//! body (plain, gzip or zstd) as the status file is read, each bad row rejected with its line and reason while the
//! good ones go on. No I/O: the body is in memory, within [`MAX_BODY_BYTES`].

use std::collections::HashSet;
use std::io::{BufRead, Read};
use std::sync::Arc;

use serde::Deserialize;

use super::InputData;
use super::data::PollTimes;

/// The most polls one batch may hold; a bigger one is refused whole (413), so that a batch
/// is one transaction of bounded size. The GraphQL mutation takes fewer.
pub const MAX_POLLS: u64 = 100_000;

/// The most polls `recordPolls` takes at once: GraphQL is for small batches.
pub const MAX_LISTED_POLLS: usize = 10_000;

/// The most bytes a batch's body may have, before and after decompression: 100,000 polls
/// of NDJSON with long ids fit.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// How a pushed batch is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchFormat {
    /// `text/csv`: the status file's columns, header required.
    Csv,
    /// `application/x-ndjson`: a JSON object of `store_id`, `status`, `timestamp_utc` a line.
    Ndjson,
}

impl BatchFormat {
    /// The format of a media type (its parameters ignored), if it is one of ours.
    pub fn of_media_type(content_type: &str) -> Option<BatchFormat> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case("text/csv") {
            Some(BatchFormat::Csv)
        } else if ["application/x-ndjson", "application/ndjson", "application/jsonl"]
            .iter()
            .any(|m| media.eq_ignore_ascii_case(m))
        {
            Some(BatchFormat::Ndjson)
        } else {
            None
        }
    }
}

/// How a batch's body is compressed (`Content-Encoding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    /// The encoding a `Content-Encoding` value names, if we read it.
    pub fn of_header(value: Option<&str>) -> Option<Encoding> {
        match value.map(str::trim) {
            None | Some("") => Some(Encoding::Identity),
            Some(v) if v.eq_ignore_ascii_case("identity") => Some(Encoding::Identity),
            Some(v) if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") => {
                Some(Encoding::Gzip)
            }
            Some(v) if v.eq_ignore_ascii_case("zstd") => Some(Encoding::Zstd),
            Some(_) => None,
        }
    }
}

/// Why a batch was refused whole.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// More polls (or bytes) than one batch may have.
    #[error("{0}")]
    TooLarge(String),
    /// Not a batch at all: no header, a broken gzip stream, not text.
    #[error("{0}")]
    Unreadable(String),
}

/// How a batch is named in its rejected rows.
pub const NAME: &str = "push";

/// Reads a batch: its polls, rows counted and rejected rows with their lines, in `data`;
/// polls of stores outside `scope` (when given) rejected. The body is unpacked as it is
/// read, and reading stops at the row past [`MAX_POLLS`]: a 16 KB gzip body can unpack to
/// millions of tiny bad rows, each of which would be kept.
pub fn read_batch(
    body: &[u8],
    format: BatchFormat,
    encoding: Encoding,
    times: PollTimes,
    scope: Option<Arc<HashSet<String>>>,
) -> Result<InputData, BatchError> {
    let decoder: Box<dyn Read + '_> = match encoding {
        Encoding::Identity => Box::new(body),
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body)),
        Encoding::Zstd => Box::new(
            zstd::stream::read::Decoder::new(body).map_err(|_| BatchError::Unreadable(broken("zstd")))?,
        ),
    };
    let mut input = Unpacked {
        inner: decoder,
        read: 0,
        over: false,
        broken: false,
    };
    let mut data = InputData::default();
    data.poll_times = times;
    data.scope = scope;
    let read = match format {
        BatchFormat::Csv => data.load_status_from(&mut input, NAME, MAX_POLLS).map_err(|e| {
            BatchError::Unreadable(format!("the body is not a CSV batch of polls: {}", e.reason()))
        }),
        BatchFormat::Ndjson => read_ndjson(&mut input, &mut data),
    };
    if input.over {
        return Err(BatchError::TooLarge(format!(
            "the body is over {MAX_BODY_BYTES} bytes once unpacked; one batch may have at most {MAX_POLLS} polls: split it"
        )));
    }
    if input.broken {
        let name = if encoding == Encoding::Zstd {
            "zstd"
        } else {
            "gzip"
        };
        return Err(BatchError::Unreadable(broken(name)));
    }
    read?;
    // Reading stopped at the row past the cap.
    if data.counts.status.rows > MAX_POLLS {
        return Err(BatchError::TooLarge(format!(
            "the batch has more than {MAX_POLLS} rows; one batch may have at most {MAX_POLLS} polls: split it"
        )));
    }
    Ok(data)
}

/// A body as it is unpacked: more than [`MAX_BODY_BYTES`] of it, or a broken stream, fails
/// the read and is noted, so that the batch is refused for what it is.
struct Unpacked<R> {
    inner: R,
    read: usize,
    over: bool,
    broken: bool,
}

impl<R: Read> Read for Unpacked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|_| self.broken = true)?;
        self.read += n;
        if self.read > MAX_BODY_BYTES {
            self.over = true;
            return Err(std::io::Error::other("the body is too large once unpacked"));
        }
        Ok(n)
    }
}

/// Reads polls given one by one (`recordPolls`): store id, whether active, instant as text.
/// A rejected one's line is its place in the list, from 1; so is a poll of a store outside
/// `scope` (when given).
pub fn read_list<'a>(
    polls: impl Iterator<Item = (&'a str, bool, String)>,
    times: PollTimes,
    scope: Option<Arc<HashSet<String>>>,
) -> InputData {
    let mut data = InputData::default();
    data.poll_times = times;
    data.scope = scope;
    for (i, (id, active, at)) in polls.enumerate() {
        let status = if active { "active" } else { "inactive" };
        let raw = format!("{id},{status},{at}");
        data.push_row(
            NAME,
            i as u64 + 1,
            &raw,
            Ok([id.as_bytes(), status.as_bytes(), at.as_bytes()]),
        );
    }
    data
}

fn broken(encoding: &str) -> String {
    format!("the body is not a valid {encoding} stream (Content-Encoding: {encoding})")
}

/// A line of NDJSON: the status file's columns as keys. The id may come as a number, as a
/// client that parsed a CSV may send it; the others must be strings.
#[derive(Deserialize)]
struct NdjsonPoll {
    store_id: serde_json::Value,
    status: String,
    timestamp_utc: String,
}

/// Reads the lines of an NDJSON batch, up to the one past [`MAX_POLLS`] (as a CSV batch's
/// rows are), none longer than a line of a file may be.
fn read_ndjson(input: impl Read, data: &mut InputData) -> Result<(), BatchError> {
    let mut lines = std::io::BufReader::with_capacity(1 << 16, super::csv_file::LineLimit::new(input));
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        match lines.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if e.get_ref()
                    .is_some_and(|e| e.is::<super::csv_file::LineTooLong>()) =>
            {
                return Err(BatchError::Unreadable(format!(
                    "the body is not NDJSON: {}",
                    super::csv_file::LineTooLong::REASON
                )));
            }
            Err(e) => return Err(BatchError::Unreadable(format!("the body could not be read: {e}"))),
        }
        let Ok(line) = std::str::from_utf8(&line) else {
            return Err(BatchError::Unreadable(format!(
                "the body is not UTF-8 text (line {number})"
            )));
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if data.counts.status.rows > MAX_POLLS {
            break;
        }
        let fields = serde_json::from_str::<NdjsonPoll>(line)
            .map_err(|e| format!("not a JSON object of store_id, status and timestamp_utc: {e}"))
            .and_then(|poll| {
                let id = match poll.store_id {
                    serde_json::Value::String(id) => id,
                    serde_json::Value::Number(n) => n.to_string(),
                    other => return Err(format!("store_id must be a string, not {other}")),
                };
                Ok((id, poll.status, poll.timestamp_utc))
            });
        match &fields {
            Ok((id, status, at)) => data.push_row(
                NAME,
                number,
                line,
                Ok([id.as_bytes(), status.as_bytes(), at.as_bytes()]),
            ),
            Err(reason) => data.push_row(NAME, number, line, Err(reason.clone())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str, format: BatchFormat) -> InputData {
        read_batch(
            body.as_bytes(),
            format,
            Encoding::Identity,
            PollTimes::default(),
            None,
        )
        .unwrap()
    }

    #[test]
    fn csv_and_ndjson_read_alike_with_bad_rows_at_their_lines() {
        let csv = "timestamp_utc,store_id,status\n\
                   2023-01-25 18:00:00 UTC,1,active\n\
                   2023-01-25 19:00:00 UTC,1,sleeping\n\
                   2023-01-25T20:00:00Z,2,inactive\n";
        let ndjson = "{\"store_id\":\"1\",\"status\":\"active\",\"timestamp_utc\":\"2023-01-25 18:00:00 UTC\"}\n\
                      {\"store_id\":\"1\",\"status\":\"sleeping\",\"timestamp_utc\":\"2023-01-25 19:00:00 UTC\"}\n\
                      \n\
                      {\"store_id\":2,\"status\":\"inactive\",\"timestamp_utc\":\"2023-01-25T20:00:00Z\"}\n\
                      [1,2,3]\n";
        let (a, b) = (read(csv, BatchFormat::Csv), read(ndjson, BatchFormat::Ndjson));
        assert_eq!(a.poll_count(), 2);
        assert_eq!(b.poll_count(), 2);
        assert_eq!((a.counts.status.rows, a.counts.status.rejected), (3, 1));
        assert_eq!((b.counts.status.rows, b.counts.status.rejected), (4, 2));
        assert_eq!(a.rejected[0].line, 3);
        assert!(
            a.rejected[0].reason.contains("sleeping"),
            "{}",
            a.rejected[0].reason
        );
        let lines: Vec<u64> = b.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 5]);
        assert!(
            b.rejected[1].reason.contains("JSON object"),
            "{}",
            b.rejected[1].reason
        );
    }

    #[test]
    fn a_csv_without_the_columns_or_a_broken_gzip_is_refused_whole() {
        let refused = read_batch(
            b"a,b\n1,2\n",
            BatchFormat::Csv,
            Encoding::Identity,
            PollTimes::default(),
            None,
        );
        assert!(
            matches!(&refused, Err(BatchError::Unreadable(m)) if m.contains("store_id")),
            "{refused:?}"
        );
        let refused = read_batch(
            b"\x1f\x8bnot gzip",
            BatchFormat::Csv,
            Encoding::Gzip,
            PollTimes::default(),
            None,
        );
        assert!(matches!(refused, Err(BatchError::Unreadable(_))));
        let refused = read_batch(
            b"not zstd",
            BatchFormat::Csv,
            Encoding::Zstd,
            PollTimes::default(),
            None,
        );
        assert!(matches!(refused, Err(BatchError::Unreadable(_))));
    }

    #[test]
    fn zstd_and_gzip_bodies_read_as_plain_ones_and_a_bomb_is_too_large() {
        let csv = "store_id,status,timestamp_utc\n1,active,2023-01-25 18:00:00 UTC\n";
        let zstd = zstd::encode_all(csv.as_bytes(), 3).unwrap();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gzip, csv.as_bytes()).unwrap();
        for (body, encoding) in [(zstd, Encoding::Zstd), (gzip.finish().unwrap(), Encoding::Gzip)] {
            let data = read_batch(&body, BatchFormat::Csv, encoding, PollTimes::default(), None).unwrap();
            assert_eq!(data.poll_count(), 1, "{encoding:?}");
        }
        let bomb = zstd::encode_all(&vec![b'\n'; MAX_BODY_BYTES + 10][..], 3).unwrap();
        assert!(bomb.len() < 10_000);
        let refused = read_batch(
            &bomb,
            BatchFormat::Csv,
            Encoding::Zstd,
            PollTimes::default(),
            None,
        );
        assert!(matches!(refused, Err(BatchError::TooLarge(_))), "{refused:?}");
    }

    #[test]
    fn sixteen_kb_of_gzip_unpacking_to_millions_of_tiny_rows_is_read_only_to_the_cap() {
        for (format, head) in [
            (BatchFormat::Csv, "store_id,status,timestamp_utc\n"),
            (BatchFormat::Ndjson, ""),
        ] {
            let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            std::io::Write::write_all(&mut gzip, head.as_bytes()).unwrap();
            for _ in 0..8_400 {
                std::io::Write::write_all(&mut gzip, &b"x\n".repeat(1_000)).unwrap();
            }
            let body = gzip.finish().unwrap();
            assert!(body.len() < 20_000, "{}", body.len());
            let mut unpacked = Unpacked {
                inner: flate2::read::MultiGzDecoder::new(&body[..]),
                read: 0,
                over: false,
                broken: false,
            };
            let mut data = InputData::default();
            let read = match format {
                BatchFormat::Csv => data
                    .load_status_from(&mut unpacked, NAME, MAX_POLLS)
                    .map_err(|e| e.reason()),
                BatchFormat::Ndjson => read_ndjson(&mut unpacked, &mut data).map_err(|e| e.to_string()),
            };
            read.unwrap();
            assert_eq!(data.counts.status.rows, MAX_POLLS + 1, "{format:?}");
            assert!(
                unpacked.read < 1 << 20,
                "{format:?}: unpacked {} bytes",
                unpacked.read
            );
            let refused = read_batch(&body, format, Encoding::Gzip, PollTimes::default(), None);
            assert!(
                matches!(refused, Err(BatchError::TooLarge(_))),
                "{format:?}: {refused:?}"
            );
        }
    }

    #[test]
    fn a_batch_over_the_cap_is_too_large_and_says_the_cap() {
        let mut body = String::from("store_id,status,timestamp_utc\n");
        for i in 0..MAX_POLLS {
            body.push_str(&format!("{i},active,2023-01-25 18:00:00 UTC\n"));
        }
        let full = read_batch(
            body.as_bytes(),
            BatchFormat::Csv,
            Encoding::Identity,
            PollTimes::default(),
            None,
        );
        assert_eq!(
            full.unwrap().poll_count() as u64,
            MAX_POLLS,
            "the cap itself is a batch"
        );
        body.push_str("x,active,2023-01-25 18:00:00 UTC\n");
        let refused = read_batch(
            body.as_bytes(),
            BatchFormat::Csv,
            Encoding::Identity,
            PollTimes::default(),
            None,
        );
        assert!(
            matches!(&refused, Err(BatchError::TooLarge(m)) if m.contains("100000")),
            "{refused:?}"
        );
    }

    #[test]
    fn media_types_and_encodings() {
        assert_eq!(
            BatchFormat::of_media_type("text/csv; charset=utf-8"),
            Some(BatchFormat::Csv)
        );
        assert_eq!(
            BatchFormat::of_media_type("application/x-ndjson"),
            Some(BatchFormat::Ndjson)
        );
        assert_eq!(BatchFormat::of_media_type("application/json"), None);
        assert_eq!(Encoding::of_header(None), Some(Encoding::Identity));
        assert_eq!(Encoding::of_header(Some("GZIP")), Some(Encoding::Gzip));
        assert_eq!(Encoding::of_header(Some("zstd")), Some(Encoding::Zstd));
        assert_eq!(Encoding::of_header(Some("br")), None);
    }
}
