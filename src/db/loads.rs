//! The `data_loads` and `rejected_rows` tables, and what is derived from them: the data
//! version and the newest poll.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::copy::CopyWriter;
use crate::domain::Timestamp;
use crate::ingest::Rejected;
use crate::ingest::files::FileKind;

/// Serializes loads across every process on the database: a reload holds it for its
/// whole transaction, so two reloads never interleave.
const LOAD_LOCK: i64 = 0x0057_01e0_10ad;

/// What came of loading one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Read and applied.
    Loaded,
    /// The same bytes as the last successful load of this kind: skipped.
    Unchanged,
    /// Nothing applied; see the error.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Loaded => "loaded",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Outcome {
        match s {
            "loaded" => Outcome::Loaded,
            "unchanged" => Outcome::Unchanged,
            _ => Outcome::Failed,
        }
    }
}

pub fn kind_str(kind: FileKind) -> &'static str {
    kind.flag()
}

pub fn parse_kind(s: &str) -> FileKind {
    match s {
        "status" => FileKind::Status,
        "hours" => FileKind::Hours,
        _ => FileKind::Timezones,
    }
}

/// One row of `data_loads`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadRecord {
    pub id: i64,
    pub kind: FileKind,
    pub file: String,
    pub checksum: Option<String>,
    pub size_bytes: Option<i64>,
    /// Byte offset reading started from: 0, or the size of the previous load's file when
    /// this one only had rows appended to it.
    pub read_from: i64,
    pub rows_read: i64,
    pub rows_inserted: i64,
    pub rows_rejected: i64,
    pub newest_poll: Option<Timestamp>,
    pub changed: bool,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// Waits until no other load runs, then holds the lock until the transaction ends.
pub async fn lock(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOAD_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

/// The file of the last load of a kind that left the data as that file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoodFile {
    pub checksum: String,
    pub size: u64,
}

/// The checksum and size of the last load of `kind` that left the data as its file says.
pub async fn last_good_file(conn: &mut PgConnection, kind: FileKind) -> sqlx::Result<Option<GoodFile>> {
    let row: Option<(Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT checksum, size_bytes FROM data_loads
         WHERE kind = $1 AND outcome IN ('loaded', 'unchanged')
         ORDER BY id DESC LIMIT 1",
    )
    .bind(kind_str(kind))
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(|(checksum, size)| {
        Some(GoodFile {
            checksum: checksum?,
            size: u64::try_from(size?).ok()?,
        })
    }))
}

/// Adds a load to `data_loads`, returning its id.
pub async fn insert(conn: &mut PgConnection, r: &LoadRecord) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO data_loads (kind, file, checksum, size_bytes, rows_read, rows_inserted,
             rows_rejected, newest_poll, changed, outcome, error, started_at, finished_at, read_from)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         RETURNING id",
    )
    .bind(kind_str(r.kind))
    .bind(&r.file)
    .bind(&r.checksum)
    .bind(r.size_bytes)
    .bind(r.rows_read)
    .bind(r.rows_inserted)
    .bind(r.rows_rejected)
    .bind(r.newest_poll.and_then(Timestamp::to_datetime))
    .bind(r.changed)
    .bind(r.outcome.as_str())
    .bind(&r.error)
    .bind(r.started_at)
    .bind(r.finished_at)
    .bind(r.read_from)
    .fetch_one(conn)
    .await
}

/// Stores a load's rejected rows.
pub async fn insert_rejected(conn: &mut PgConnection, load: i64, rejected: &[Rejected]) -> sqlx::Result<u64> {
    if rejected.is_empty() {
        return Ok(0);
    }
    let mut copy = conn
        .copy_in_raw("COPY rejected_rows (load, line, reason, raw) FROM STDIN (FORMAT binary)")
        .await?;
    let mut w = CopyWriter::new();
    for r in rejected {
        w.row(4);
        w.int8(load);
        w.int8(r.line as i64);
        w.text(&r.reason);
        w.text(&r.raw);
        if w.len() > 1 << 20 {
            copy.send(w.take()).await?;
        }
    }
    copy.send(w.finish()).await?;
    copy.finish().await
}

/// The id of the newest load that changed the data (0: none yet). Equal versions mean
/// equal data.
pub async fn data_version(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM data_loads WHERE changed")
        .fetch_one(conn)
        .await
}

/// The newest poll in the database.
pub async fn newest_poll(conn: &mut PgConnection) -> sqlx::Result<Option<Timestamp>> {
    let newest: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT max(newest_poll) FROM data_loads WHERE outcome = 'loaded'")
            .fetch_one(conn)
            .await?;
    Ok(newest.map(Timestamp::from_datetime))
}

/// A report's *now* (SPEC §2): its `asOf`, or else the newest poll.
pub async fn report_now(
    conn: &mut PgConnection,
    as_of: Option<Timestamp>,
) -> sqlx::Result<Option<Timestamp>> {
    match as_of {
        Some(at) => Ok(Some(at)),
        None => newest_poll(conn).await,
    }
}

type LoadRow = (
    i64,
    String,
    String,
    Option<String>,
    Option<i64>,
    i64,
    i64,
    i64,
    Option<DateTime<Utc>>,
    bool,
    String,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
    i64,
);

fn record(r: LoadRow) -> LoadRecord {
    LoadRecord {
        id: r.0,
        kind: parse_kind(&r.1),
        file: r.2,
        checksum: r.3,
        size_bytes: r.4,
        read_from: r.14,
        rows_read: r.5,
        rows_inserted: r.6,
        rows_rejected: r.7,
        newest_poll: r.8.map(Timestamp::from_datetime),
        changed: r.9,
        outcome: Outcome::parse(&r.10),
        error: r.11,
        started_at: r.12,
        finished_at: r.13,
    }
}

/// The newest `limit` loads, newest first.
pub async fn recent(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<LoadRecord>> {
    let rows: Vec<LoadRow> = sqlx::query_as(
        "SELECT id, kind, file, checksum, size_bytes, rows_read, rows_inserted, rows_rejected,
                newest_poll, changed, outcome, error, started_at, finished_at, read_from
         FROM data_loads ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(record).collect())
}

/// The loads of `ids`, oldest first.
pub async fn by_ids(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<Vec<LoadRecord>> {
    let rows: Vec<LoadRow> = sqlx::query_as(
        "SELECT id, kind, file, checksum, size_bytes, rows_read, rows_inserted, rows_rejected,
                newest_poll, changed, outcome, error, started_at, finished_at, read_from
         FROM data_loads WHERE id = ANY($1) ORDER BY id",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(record).collect())
}

/// The rejected rows of a load, by line, at most `limit`.
pub async fn rejected_of(
    conn: &mut PgConnection,
    load: i64,
    file: &str,
    limit: i64,
) -> sqlx::Result<Vec<Rejected>> {
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT line, reason, raw FROM rejected_rows WHERE load = $1 ORDER BY line LIMIT $2")
            .bind(load)
            .bind(limit)
            .fetch_all(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(line, reason, raw)| Rejected {
            file: file.to_string(),
            line: line as u64,
            reason,
            raw,
        })
        .collect())
}
