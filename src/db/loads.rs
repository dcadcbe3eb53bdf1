//! The `data_loads` and `rejected_rows` tables, and what is derived from them: the data
//! version and the newest poll.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};

use super::codes::Code;
use super::copy::CopyWriter;
use crate::domain::Timestamp;
use crate::domain::load::Outcome;
use crate::input::{FileKind, Rejected};

/// Serializes loads across every process on the database: a reload holds it for its
/// whole transaction, so two reloads never interleave.
const LOAD_LOCK: i64 = 0x0057_01e0_10ad;

/// One row of `data_loads`.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct LoadRecord {
    pub id: i64,
    #[sqlx(try_from = "Code<FileKind>")]
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
    /// Polls an admin removed (`deletePolls`); 0 for a file's load.
    pub rows_deleted: i64,
    pub newest_poll: Option<DateTime<Utc>>,
    pub changed: bool,
    #[sqlx(try_from = "Code<Outcome>")]
    pub outcome: Outcome,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl LoadRecord {
    /// A load of `file` that failed (or has not finished) for `error`, starting now.
    pub(crate) fn failed(kind: FileKind, file: &std::path::Path, error: String) -> LoadRecord {
        let now = Utc::now();
        LoadRecord {
            id: 0,
            kind,
            file: file.display().to_string(),
            checksum: None,
            size_bytes: None,
            read_from: 0,
            rows_read: 0,
            rows_inserted: 0,
            rows_rejected: 0,
            rows_deleted: 0,
            newest_poll: None,
            changed: false,
            outcome: Outcome::Failed,
            error: Some(error),
            started_at: now,
            finished_at: now,
        }
    }
}

/// Deletes the loads `ids` (a reload's records of itself as unfinished, once it is).
pub(crate) async fn delete(db: impl PgExecutor<'_>, ids: &[i64]) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM data_loads WHERE id = ANY($1)")
        .bind(ids)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
}

/// Waits until no other load runs, then holds the lock until the transaction ends.
pub(crate) async fn lock(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOAD_LOCK)
        .execute(db)
        .await?;
    Ok(())
}

/// The lock of [`lock`], shared: pushed batches, which only add polls, run side by side and
/// wait only for the loads that take it whole.
pub(crate) async fn lock_shared(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind(LOAD_LOCK)
        .execute(db)
        .await
        .map(drop)
}

/// The file of the last load of a kind that left the data as that file says.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub(crate) struct GoodFile {
    pub checksum: String,
    pub size_bytes: i64,
}

/// The checksum and size of the last load of `kind` that left the data as its file says.
pub(crate) async fn last_good_file(
    db: impl PgExecutor<'_>,
    kind: FileKind,
) -> sqlx::Result<Option<GoodFile>> {
    sqlx::query_as(
        "SELECT checksum, size_bytes FROM data_loads
         WHERE kind = $1 AND outcome IN ('loaded', 'unchanged')
           AND checksum IS NOT NULL AND size_bytes IS NOT NULL
         ORDER BY id DESC LIMIT 1",
    )
    .bind(Code(kind))
    .fetch_optional(db)
    .await
}

/// Adds a load to `data_loads`, returning its id.
pub(crate) async fn insert(db: impl PgExecutor<'_>, r: &LoadRecord) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO data_loads (kind, file, checksum, size_bytes, rows_read, rows_inserted,
             rows_rejected, newest_poll, changed, outcome, error, started_at, finished_at, read_from,
             rows_deleted)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         RETURNING id",
    )
    .bind(Code(r.kind))
    .bind(&r.file)
    .bind(&r.checksum)
    .bind(r.size_bytes)
    .bind(r.rows_read)
    .bind(r.rows_inserted)
    .bind(r.rows_rejected)
    .bind(r.newest_poll)
    .bind(r.changed)
    .bind(Code(r.outcome))
    .bind(&r.error)
    .bind(r.started_at)
    .bind(r.finished_at)
    .bind(r.read_from)
    .bind(r.rows_deleted)
    .fetch_one(db)
    .await
}

/// Stores a load's rejected rows.
pub(crate) async fn insert_rejected(
    conn: &mut PgConnection,
    load: i64,
    rejected: &[Rejected],
) -> sqlx::Result<u64> {
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
pub async fn data_version(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM data_loads WHERE changed")
        .fetch_one(db)
        .await
}

/// Where a reload that changed the data announces it (`pg_notify` in its transaction,
/// delivered at commit): the payload is the new data version.
pub(crate) const DATASET_CHANNEL: &str = "dataset_events";

/// Announces, at commit, that the data changed, with its new version.
pub(crate) async fn announce_change(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "SELECT pg_notify('dataset_events', (SELECT coalesce(max(id), 0) FROM data_loads WHERE changed)::text)",
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Whether any load ever applied a file.
pub(crate) async fn any_loaded(db: impl PgExecutor<'_>) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM data_loads WHERE outcome = 'loaded')")
        .fetch_one(db)
        .await
}

/// Makes no load's newest poll later than `newest`, the newest poll still stored after polls
/// were removed (`None`: none is left).
pub(crate) async fn cap_newest_poll(
    db: impl PgExecutor<'_>,
    newest: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE data_loads SET newest_poll = $1
         WHERE newest_poll > $1 OR ($1::timestamptz IS NULL AND newest_poll IS NOT NULL)",
    )
    .bind(newest)
    .execute(db)
    .await
    .map(drop)
}

/// The newest poll in the database.
pub async fn newest_poll(db: impl PgExecutor<'_>) -> sqlx::Result<Option<Timestamp>> {
    let newest: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT max(newest_poll) FROM data_loads WHERE outcome = 'loaded'")
            .fetch_one(db)
            .await?;
    Ok(newest.map(Timestamp::from_datetime))
}

/// A report's *now* (SPEC §2): its `asOf`, or else the newest poll.
pub(crate) async fn report_now(
    db: impl PgExecutor<'_>,
    as_of: Option<Timestamp>,
) -> sqlx::Result<Option<Timestamp>> {
    match as_of {
        Some(at) => Ok(Some(at)),
        None => newest_poll(db).await,
    }
}

/// The newest `limit` loads, newest first.
pub async fn recent(db: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<LoadRecord>> {
    sqlx::query_as("SELECT * FROM data_loads ORDER BY id DESC LIMIT $1")
        .bind(limit)
        .fetch_all(db)
        .await
}

/// The load `id`.
pub(crate) async fn by_id(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<LoadRecord>> {
    sqlx::query_as("SELECT * FROM data_loads WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

#[derive(FromRow)]
struct RejectedRow {
    line: i64,
    reason: String,
    raw: String,
}

/// The rejected rows of a load, by line, at most `limit`.
pub(crate) async fn rejected_of(
    db: impl PgExecutor<'_>,
    load: i64,
    file: &str,
    limit: i64,
) -> sqlx::Result<Vec<Rejected>> {
    let rows: Vec<RejectedRow> =
        sqlx::query_as("SELECT line, reason, raw FROM rejected_rows WHERE load = $1 ORDER BY line LIMIT $2")
            .bind(load)
            .bind(limit)
            .fetch_all(db)
            .await?;
    Ok(rows
        .into_iter()
        .map(|r| Rejected {
            file: file.to_string(),
            line: r.line as u64,
            reason: r.reason,
            raw: r.raw,
        })
        .collect())
}

/// `unchanged` loads changed nothing and repeat the checksum of the load before them, so
/// the skip-unchanged check and the data version read the same without them. The newest
/// load of each kind stays, so that `dataset` still shows when each file was last looked at.
pub(crate) async fn prune_unchanged(db: impl PgExecutor<'_>, before: DateTime<Utc>) -> sqlx::Result<u64> {
    sqlx::query(
        "DELETE FROM data_loads d
         WHERE outcome = 'unchanged'
           AND finished_at < $1
           AND id < (SELECT max(id) FROM data_loads n WHERE n.kind = d.kind)",
    )
    .bind(before)
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}

/// A count the `dataset` query shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tally {
    /// Stores seen in any input file.
    Stores,
    /// Stores with at least one poll.
    PolledStores,
    /// Polls stored: every poll was added by a load and removed by a load (`deletePolls`)
    /// or a pruning, so this adds up the loads and takes away the prunings.
    Polls,
    BusinessHours,
    Timezones,
}

pub(crate) async fn tally(db: impl PgExecutor<'_>, what: Tally) -> sqlx::Result<i64> {
    let statement = match what {
        Tally::Stores => "SELECT count(*) FROM stores",
        Tally::PolledStores => "SELECT count(*) FROM stores WHERE first_poll IS NOT NULL",
        Tally::Polls => {
            "SELECT ((SELECT coalesce(sum(rows_inserted - rows_deleted), 0) FROM data_loads
                      WHERE kind = 'status' AND outcome = 'loaded')
                   - (SELECT coalesce(sum(polls), 0) FROM poll_prunings))::bigint"
        }
        Tally::BusinessHours => "SELECT count(*) FROM business_hours",
        Tally::Timezones => "SELECT count(*) FROM timezones",
    };
    sqlx::query_scalar(statement).fetch_one(db).await
}
