//! Loading the input files into PostgreSQL: validated in Rust, moved with binary `COPY`.
//!
//! A reload is one transaction under an advisory lock: it checks each file's checksum
//! against the last successful load of its kind, skips unchanged files, adds new polls
//! (existing ones win), and replaces the business-hours and time-zone snapshots when they
//! differ. A file that cannot be read at all (missing column, unreadable) changes nothing
//! and is recorded as a failed load; the other files still load.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use sqlx::{Connection, PgConnection, PgPool};

use super::copy::CopyWriter;
use super::loads::{self, LoadRecord, Outcome};
use crate::domain::Timestamp;
use crate::ingest::files::FileKind;
use crate::ingest::{DataFiles, Dataset, Rejected};

/// How many rejected rows of a load are kept in its summary (all are stored).
pub const SUMMARY_REJECTED: usize = 10;

/// What a reload did with one file.
#[derive(Clone, Debug)]
pub struct FileLoad {
    pub load_id: i64,
    pub kind: FileKind,
    pub file: PathBuf,
    pub outcome: Outcome,
    /// Byte offset the file was read from (not 0: only rows appended since the last load).
    pub read_from: u64,
    pub rows_read: u64,
    pub rows_inserted: u64,
    pub rows_rejected: u64,
    pub changed: bool,
    /// The first rejected rows.
    pub rejected: Vec<Rejected>,
    pub error: Option<String>,
    pub elapsed: Duration,
}

/// What a reload did.
#[derive(Clone, Debug, Default)]
pub struct Reload {
    pub files: Vec<FileLoad>,
}

impl Reload {
    pub fn changed(&self) -> bool {
        self.files.iter().any(|f| f.changed)
    }
}

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
            gzip = crate::ingest::csv_file::is_gzip(chunk);
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

/// Loads the files into the database (see the module docs).
#[tracing::instrument(name = "data reload", skip_all, fields(status = %files.status.display()))]
pub async fn reload(pool: &PgPool, files: &DataFiles) -> anyhow::Result<Reload> {
    let mut tx = pool.begin().await.context("cannot start the load transaction")?;
    loads::lock(&mut tx).await.context("cannot take the load lock")?;
    let mut reload = Reload::default();
    for kind in FileKind::ALL {
        let Some(path) = files.get(kind) else {
            continue;
        };
        let started = Instant::now();
        let load = load_file(&mut tx, kind, path, started).await?;
        tracing::info!(
            kind = kind.flag(),
            file = %path.display(),
            outcome = load.outcome.as_str(),
            read_from = load.read_from,
            rows_read = load.rows_read,
            rows_inserted = load.rows_inserted,
            rows_rejected = load.rows_rejected,
            changed = load.changed,
            error = load.error.as_deref(),
            elapsed_ms = load.elapsed.as_millis() as u64,
            "data load"
        );
        crate::telemetry::metrics().rows_loaded(kind.flag(), load.rows_inserted, load.rows_rejected);
        reload.files.push(load);
    }
    tx.commit().await.context("cannot commit the load")?;
    Ok(reload)
}

#[tracing::instrument(name = "data load", skip_all, fields(kind = kind.flag(), file = %path.display()))]
async fn load_file(
    conn: &mut PgConnection,
    kind: FileKind,
    path: &Path,
    started: Instant,
) -> anyhow::Result<FileLoad> {
    let started_at = Utc::now();
    let owned = path.to_path_buf();
    let mut record = LoadRecord {
        id: 0,
        kind,
        file: path.display().to_string(),
        checksum: None,
        size_bytes: None,
        read_from: 0,
        rows_read: 0,
        rows_inserted: 0,
        rows_rejected: 0,
        newest_poll: None,
        changed: false,
        outcome: Outcome::Failed,
        error: None,
        started_at,
        finished_at: started_at,
    };
    let last = loads::last_good_file(conn, kind).await?;
    // Only polls accumulate; hours and zones are snapshots, always read whole.
    let prefix = last.as_ref().filter(|_| kind == FileKind::Status).map(|l| l.size);
    let summed = tokio::task::spawn_blocking(move || checksum(&owned, prefix).map(|c| (c, owned))).await?;
    let parsed = match summed {
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        Ok((sum, owned)) => {
            record.checksum = Some(sum.checksum.clone());
            record.size_bytes = Some(sum.size as i64);
            let last_checksum = last.map(|l| l.checksum);
            if last_checksum.as_ref() == Some(&sum.checksum) {
                record.outcome = Outcome::Unchanged;
                Ok(None)
            } else {
                // The last loaded file plus rows appended: its polls are stored already.
                let appended = sum.prefix.filter(|p| Some(&p.checksum) == last_checksum.as_ref());
                if let Some(p) = &appended {
                    record.read_from = p.len as i64;
                }
                tokio::task::spawn_blocking(move || parse(kind, &owned, appended))
                    .await?
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
        }
    };
    let mut rejected = Vec::new();
    match parsed {
        Err(error) => record.error = Some(error),
        Ok(None) => {}
        Ok(Some(mut data)) => {
            let counts = data.counts[kind as usize];
            record.rows_read = counts.rows as i64;
            record.rows_rejected = counts.rejected as i64;
            rejected = std::mem::take(&mut data.rejected);
            let mut savepoint = conn.begin().await?;
            let applied = match kind {
                FileKind::Status => apply_status(&mut savepoint, &mut data).await?,
                FileKind::Hours => apply_hours(&mut savepoint, &data).await?,
                FileKind::Timezones => apply_timezones(&mut savepoint, &data).await?,
            };
            record.rows_inserted = applied.inserted as i64;
            record.changed = applied.changed;
            record.newest_poll = applied.newest_poll;
            record.outcome = Outcome::Loaded;
            record.finished_at = Utc::now();
            record.id = loads::insert(&mut savepoint, &record).await?;
            loads::insert_rejected(&mut savepoint, record.id, &rejected).await?;
            savepoint.commit().await?;
        }
    }
    if record.outcome != Outcome::Loaded {
        record.finished_at = Utc::now();
        record.id = loads::insert(conn, &record).await?;
    }
    rejected.truncate(SUMMARY_REJECTED);
    Ok(FileLoad {
        load_id: record.id,
        kind,
        file: path.to_path_buf(),
        outcome: record.outcome,
        read_from: record.read_from as u64,
        rows_read: record.rows_read as u64,
        rows_inserted: record.rows_inserted as u64,
        rows_rejected: record.rows_rejected as u64,
        changed: record.changed,
        rejected,
        error: record.error,
        elapsed: started.elapsed(),
    })
}

fn parse(
    kind: FileKind,
    path: &Path,
    appended: Option<Prefix>,
) -> Result<Dataset, crate::ingest::IngestError> {
    let mut data = Dataset::default();
    match kind {
        FileKind::Status => match appended {
            Some(p) => data.load_status_tail(path, p.len, p.lines)?,
            None => data.load_status(path)?,
        },
        FileKind::Hours => data.load_hours(path)?,
        FileKind::Timezones => data.load_timezones(path)?,
    }
    Ok(data)
}

/// What applying a file did.
struct Applied {
    inserted: u64,
    changed: bool,
    newest_poll: Option<Timestamp>,
}

/// Adds the file's polls; polls already stored for a store and instant stay as they were.
async fn apply_status(conn: &mut PgConnection, data: &mut Dataset) -> anyhow::Result<Applied> {
    let prepared = data.prepare();
    let stores = upsert_stores(
        conn,
        prepared.stores().map(|s| (s.id, s.polls.first().map(|p| p.at))),
    )
    .await?;
    // Into the table itself when it is empty: the data is de-duplicated already, building
    // the primary key once afterwards takes a third of the time of keeping it up to date
    // row by row, and a table truncated in this (sub)transaction can take the rows frozen,
    // all-visible at once, so that reports read them by an index-only scan with no VACUUM.
    // Otherwise through a staging table, so that polls already stored win.
    let empty: bool = sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM polls)")
        .fetch_one(&mut *conn)
        .await?;
    let target = if empty {
        sqlx::query("TRUNCATE polls").execute(&mut *conn).await?;
        sqlx::query("ALTER TABLE polls DROP CONSTRAINT polls_pkey")
            .execute(&mut *conn)
            .await?;
        "COPY polls (store, at, active) FROM STDIN (FORMAT binary, FREEZE)"
    } else {
        sqlx::query("DROP TABLE IF EXISTS incoming_polls")
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "CREATE TEMP TABLE incoming_polls (store integer, at timestamptz, active boolean) ON COMMIT DROP",
        )
        .execute(&mut *conn)
        .await?;
        "COPY incoming_polls (store, at, active) FROM STDIN (FORMAT binary)"
    };
    let mut copy = conn.copy_in_raw(target).await?;
    let mut w = CopyWriter::new();
    for store in prepared.stores() {
        let id = stores[store.id];
        for poll in store.polls {
            w.row(3);
            w.int4(id);
            w.timestamptz(poll.at);
            w.bool(poll.active);
        }
        if w.len() > 1 << 20 {
            copy.send(w.take()).await?;
        }
    }
    copy.send(w.finish()).await?;
    let copied = copy.finish().await?;
    let inserted = if empty {
        sqlx::query("ALTER TABLE polls ADD CONSTRAINT polls_pkey PRIMARY KEY (store, at) INCLUDE (active)")
            .execute(&mut *conn)
            .await?;
        copied
    } else {
        // An anti-join (a merge of two sorted inputs) finds the new polls far faster than
        // a conflict check per row; ON CONFLICT stays as the guarantee.
        sqlx::query("ANALYZE incoming_polls").execute(&mut *conn).await?;
        sqlx::query(
            "INSERT INTO polls (store, at, active)
             SELECT i.store, i.at, i.active FROM incoming_polls i
             WHERE NOT EXISTS (SELECT 1 FROM polls p WHERE p.store = i.store AND p.at = i.at)
             ON CONFLICT DO NOTHING",
        )
        .execute(&mut *conn)
        .await?
        .rows_affected()
    };
    if inserted > 0 && stale_statistics(conn, inserted).await? {
        sqlx::query("ANALYZE polls").execute(&mut *conn).await?;
    }
    Ok(Applied {
        inserted,
        changed: inserted > 0,
        newest_poll: prepared.newest_poll(),
    })
}

/// Whether `inserted` new polls make the planner's statistics of `polls` stale: more than
/// one in twenty rows (or never analyzed). An hour appended to a week of polls is not, and
/// its ANALYZE would be a third of that reload; autovacuum's own analyze catches up later.
async fn stale_statistics(conn: &mut PgConnection, inserted: u64) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT $1 * 20 > greatest(reltuples, 0) FROM pg_class WHERE oid = 'polls'::regclass")
        .bind(inserted as f64)
        .fetch_one(conn)
        .await
}

/// Replaces the business hours when the file's rows differ from the stored ones.
async fn apply_hours(conn: &mut PgConnection, data: &Dataset) -> anyhow::Result<Applied> {
    let stores = upsert_stores(conn, data.hours_rows().map(|(id, _)| (id, None))).await?;
    let mut w = CopyWriter::new();
    for (id, row) in data.hours_rows() {
        w.row(4);
        w.int4(stores[id]);
        w.int2(i16::from(row.day.number()));
        w.time(row.start.micros());
        w.time(row.end.micros());
    }
    replace_snapshot(conn, Snapshot::HOURS, w).await
}

/// Replaces the time zones when the file's differ from the stored ones.
async fn apply_timezones(conn: &mut PgConnection, data: &Dataset) -> anyhow::Result<Applied> {
    let stores = upsert_stores(conn, data.zones().map(|(id, _)| (id, None))).await?;
    let mut w = CopyWriter::new();
    for (id, zone) in data.zones() {
        w.row(2);
        w.int4(stores[id]);
        w.text(zone.name());
    }
    replace_snapshot(conn, Snapshot::TIMEZONES, w).await
}

/// A table that each load of its file replaces whole.
struct Snapshot {
    table: &'static str,
    columns: &'static str,
}

impl Snapshot {
    const HOURS: Snapshot = Snapshot {
        table: "business_hours",
        columns: "store, day, start_local, end_local",
    };
    const TIMEZONES: Snapshot = Snapshot {
        table: "timezones",
        columns: "store, zone",
    };
}

/// Stages `rows` (binary COPY data for the snapshot's columns) and, if they differ from
/// the table's rows as a multiset, replaces the table's contents with them.
async fn replace_snapshot(
    conn: &mut PgConnection,
    snapshot: Snapshot,
    rows: CopyWriter,
) -> anyhow::Result<Applied> {
    let Snapshot { table, columns } = snapshot;
    // Table and column names are the constants above, never input.
    let sql = |s: String| sqlx::AssertSqlSafe(s);
    let staging = format!("incoming_{table}");
    sqlx::query(sql(format!("DROP TABLE IF EXISTS {staging}")))
        .execute(&mut *conn)
        .await?;
    sqlx::query(sql(format!(
        "CREATE TEMP TABLE {staging} (LIKE {table}) ON COMMIT DROP"
    )))
    .execute(&mut *conn)
    .await?;
    let mut copy = conn
        .copy_in_raw(&format!("COPY {staging} ({columns}) FROM STDIN (FORMAT binary)"))
        .await?;
    copy.send(rows.finish()).await?;
    let count = copy.finish().await?;
    let changed: bool = sqlx::query_scalar(sql(format!(
        "SELECT EXISTS (SELECT {columns} FROM {table} EXCEPT ALL SELECT {columns} FROM {staging})
             OR EXISTS (SELECT {columns} FROM {staging} EXCEPT ALL SELECT {columns} FROM {table})"
    )))
    .fetch_one(&mut *conn)
    .await?;
    if changed {
        sqlx::query(sql(format!("DELETE FROM {table}")))
            .execute(&mut *conn)
            .await?;
        sqlx::query(sql(format!(
            "INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging}"
        )))
        .execute(&mut *conn)
        .await?;
    }
    Ok(Applied {
        inserted: if changed { count } else { 0 },
        changed,
        newest_poll: None,
    })
}

/// Makes sure every store in `stores` has a row (and its earliest poll is recorded),
/// returning the key of each.
async fn upsert_stores<'a>(
    conn: &mut PgConnection,
    stores: impl Iterator<Item = (&'a str, Option<Timestamp>)>,
) -> anyhow::Result<HashMap<String, i32>> {
    sqlx::query("DROP TABLE IF EXISTS incoming_stores")
        .execute(&mut *conn)
        .await?;
    sqlx::query("CREATE TEMP TABLE incoming_stores (store_id text PRIMARY KEY, first_poll timestamptz) ON COMMIT DROP")
        .execute(&mut *conn)
        .await?;
    let mut seen: HashMap<&'a str, Option<Timestamp>> = HashMap::new();
    for (id, first) in stores {
        let entry = seen.entry(id).or_insert(first);
        *entry = match (*entry, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let mut ordered: Vec<(&'a str, Option<Timestamp>)> = seen.into_iter().collect();
    // In byte order, so that new stores get keys in the order the report lists them.
    ordered.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut copy = conn
        .copy_in_raw("COPY incoming_stores (store_id, first_poll) FROM STDIN (FORMAT binary)")
        .await?;
    let mut w = CopyWriter::new();
    for (id, first) in &ordered {
        w.row(2);
        w.text(id);
        match first {
            Some(at) => w.timestamptz(*at),
            None => w.null(),
        }
    }
    copy.send(w.finish()).await?;
    copy.finish().await?;
    sqlx::query(
        "INSERT INTO stores (store_id, first_poll)
         SELECT store_id, first_poll FROM incoming_stores ORDER BY store_id COLLATE \"C\"
         ON CONFLICT (store_id) DO UPDATE SET first_poll = EXCLUDED.first_poll
         WHERE stores.first_poll IS NULL OR EXCLUDED.first_poll < stores.first_poll",
    )
    .execute(&mut *conn)
    .await?;
    let keys: Vec<(i32, String)> =
        sqlx::query_as("SELECT s.id, i.store_id FROM incoming_stores i JOIN stores s USING (store_id)")
            .fetch_all(&mut *conn)
            .await?;
    Ok(keys.into_iter().map(|(key, id)| (id, key)).collect())
}

#[cfg(test)]
mod tests {
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
