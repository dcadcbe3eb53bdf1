//! The read path of a report: one repeatable-read snapshot whose polls stream, store by
//! store and in time order, into the engine.
//!
//! Polls leave PostgreSQL through binary `COPY` in key order (index-only scans), only those
//! that begin or end a run of equal statuses, of the report's week and each store's last one
//! before it (and, read beside them, every poll of the spans pushed since `tidy_edges` last
//! marked them), so only one store's polls are in memory at a time; the hours and zones (a few
//! hundred thousand rows at most) are read whole first. The stores are cut into one range
//! per core, each read on its own connection that shares the snapshot
//! (`pg_export_snapshot`), so that PostgreSQL and the engine both use every core.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;
use sqlx::{FromRow, PgConnection, PgExecutor, Postgres, Transaction};

use super::copy::CopyReader;
use super::{Pool, loads, stores};
use crate::domain::{
    Engine, HoursRow, Interpolation, LocalTime, Poll, StoreReport, Timestamp, Weekday, Zone, reads_from,
};

/// A consistent view of the data at one instant, ready to compute a report from.
pub struct Snapshot {
    pool: Pool,
    tx: Transaction<'static, Postgres>,
    /// Lets other connections see exactly what `tx` sees.
    exported: String,
    /// The report's *now*: `asOf`, or the newest poll (`None`: no polls at all).
    pub now: Option<Timestamp>,
    /// The data version the view shows (see [`loads::data_version`]).
    pub data_version: i64,
    /// How many stores the report will have a row for.
    pub stores_total: u64,
}

/// How many bytes of COPY data the reader hands the engine at a time.
const BATCH_BYTES: usize = 256 << 10;

/// What every part of a report reads besides its polls.
struct Shared {
    ids: HashMap<i32, String>,
    hours: HashMap<i32, Vec<HoursRow>>,
    zones: HashMap<i32, Zone>,
}

impl Snapshot {
    /// Opens the view; `as_of` fixes *now* (default: the newest poll).
    pub async fn open(pool: &Pool, as_of: Option<Timestamp>) -> anyhow::Result<Snapshot> {
        let mut tx = pool
            .begin()
            .await
            .context("cannot start the report transaction")?;
        read_only_snapshot(&mut *tx).await?;
        let exported = export_snapshot(&mut *tx).await?;
        let data_version = loads::data_version(&mut *tx).await?;
        let now = loads::report_now(&mut *tx, as_of).await?;
        let stores_total = match now.and_then(Timestamp::to_datetime) {
            Some(now) => stores_polled_by(&mut *tx, now).await? as u64,
            None => 0,
        };
        Ok(Snapshot {
            pool: pool.clone(),
            tx,
            exported,
            now,
            data_version,
            stores_total,
        })
    }

    /// Computes every store's row, in byte order of store ids, counting finished stores
    /// in `done` as it goes.
    pub async fn report(
        mut self,
        interpolation: Interpolation,
        done: Arc<AtomicU64>,
    ) -> anyhow::Result<Vec<StoreReport>> {
        let Some(now) = self.now else {
            return Ok(Vec::new());
        };
        let shared = Arc::new(Shared {
            ids: stores::polled(&mut *self.tx).await?,
            hours: business_hours(&mut *self.tx).await?,
            zones: zones(&mut *self.tx).await?,
        });
        let parts = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4);
        let bounds = store_ranges(shared.ids.keys().copied().collect(), parts);
        let mut readers = Vec::new();
        for (start, end) in bounds {
            let (pool, exported, shared, done) = (
                self.pool.clone(),
                self.exported.clone(),
                shared.clone(),
                done.clone(),
            );
            readers.push(tokio::spawn(async move {
                let mut tx = pool.begin().await?;
                read_only_snapshot(&mut *tx).await?;
                import_snapshot(&mut *tx, &exported).await?;
                let rows = read_range(&mut tx, shared, start, end, now, interpolation, done).await?;
                tx.commit().await?;
                anyhow::Ok(rows)
            }));
        }
        let mut parts = Vec::with_capacity(readers.len());
        for reader in readers {
            parts.push(reader.await.context("a report reader stopped")??);
        }
        self.tx.commit().await?;
        let total = self.stores_total as usize;
        Ok(tokio::task::spawn_blocking(move || {
            let mut rows = Vec::with_capacity(total);
            rows.extend(parts.into_iter().flatten());
            rows.sort_unstable_by(|a, b| a.store_id.as_bytes().cmp(b.store_id.as_bytes()));
            rows
        })
        .await?)
    }
}

async fn read_only_snapshot(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(db)
        .await
        .map(drop)
}

async fn export_snapshot(db: impl PgExecutor<'_>) -> sqlx::Result<String> {
    sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(db)
        .await
}

/// Makes this transaction see exactly what the exporting one sees.
async fn import_snapshot(db: impl PgExecutor<'_>, exported: &str) -> sqlx::Result<()> {
    // SET TRANSACTION SNAPSHOT takes no parameters; the id is PostgreSQL's own answer to
    // pg_export_snapshot(), never input.
    let statement = format!("SET TRANSACTION SNAPSHOT '{exported}'");
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(db)
        .await
        .map(drop)
}

async fn stores_polled_by(db: impl PgExecutor<'_>, now: chrono::DateTime<chrono::Utc>) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM stores WHERE first_poll <= $1")
        .bind(now)
        .fetch_one(db)
        .await
}

/// The report rows of the stores with keys in `[start, end)`.
///
/// The COPY stream is read here, on the runtime; the rows are decoded and the engine runs
/// on a blocking thread fed chunk by chunk, so that a report never holds up a runtime
/// worker (nor the requests it serves) for the engine's whole share.
async fn read_range(
    conn: &mut PgConnection,
    shared: Arc<Shared>,
    start: i32,
    end: Option<i32>,
    now: Timestamp,
    interpolation: Interpolation,
    done: Arc<AtomicU64>,
) -> anyhow::Result<Vec<StoreReport>> {
    set_range(&mut *conn, start, end, now).await?;
    no_jit(&mut *conn).await?;
    // Only the polls that begin or end a run of equal statuses (`edge`): the others change
    // no figure, and are most of the polls. Each store's last such poll before the window:
    // one index probe per store, the partitions read newest first.
    let before = polls_before_window(&mut *conn).await?;
    let extras = Extras::new(before, pending_polls(&mut *conn).await?, now);
    let (chunks, received) = tokio::sync::mpsc::channel::<Bytes>(8);
    let engine = tokio::task::spawn_blocking(move || {
        compute_range(received, extras, &shared, now, interpolation, &done)
    });
    // The window's edges of the range: one scan of the partial index `polls_edges` per
    // partition, merged in key order. PostgreSQL's work per poll sent is what a report
    // waits for: a scan per store (a nested loop) took a third longer, every poll ten times.
    let mut stream = conn
        .copy_out_raw(
            "COPY (SELECT store, at, active FROM polls
                   WHERE edge
                     AND store >= current_setting('store_monitor.range_start')::bigint
                     AND store < current_setting('store_monitor.range_end')::bigint
                     AND at >= current_setting('store_monitor.window_start')::timestamptz
                     AND at <= current_setting('store_monitor.now')::timestamptz
                   ORDER BY store, at) TO STDOUT (FORMAT binary)",
        )
        .await?;
    // PostgreSQL sends a message per row: hand them over a batch at a time, or the two
    // threads spend more time waking each other than computing.
    let mut batch = BytesMut::with_capacity(BATCH_BYTES);
    while let Some(row) = stream.try_next().await? {
        batch.extend_from_slice(&row);
        if batch.len() >= BATCH_BYTES && chunks.send(batch.split().freeze()).await.is_err() {
            // The engine stopped on bad data: its error says why.
            break;
        }
    }
    if !batch.is_empty() {
        let _ = chunks.send(batch.freeze()).await;
    }
    drop(stream);
    drop(chunks);
    engine.await.context("a report's engine stopped")?
}

/// Compiling a report's read (JIT) costs more than it saves: each row is simple.
async fn no_jit(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("SELECT set_config('jit', 'off', true)")
        .execute(db)
        .await
        .map(drop)
}

/// A store's poll as read.
#[derive(FromRow)]
struct StorePoll {
    store: i32,
    at: chrono::DateTime<chrono::Utc>,
    active: bool,
}

impl StorePoll {
    fn keyed(self) -> (i32, Poll) {
        let poll = Poll {
            at: Timestamp::from_datetime(self.at),
            active: self.active,
        };
        (self.store, poll)
    }
}

/// Each store of the range's last poll before the window, in store order. A store whose
/// first poll is in the window has none, and is not looked for: the search walks back
/// through every partition older than the window before it gives up.
async fn polls_before_window(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(i32, Poll)>> {
    let rows: Vec<StorePoll> = sqlx::query_as(
        "SELECT s.id AS store, p.at, p.active FROM stores s CROSS JOIN LATERAL (
             SELECT at, active FROM polls
             WHERE edge AND store = s.id AND at < current_setting('store_monitor.window_start')::timestamptz
             ORDER BY at DESC LIMIT 1) p
         WHERE s.id >= current_setting('store_monitor.range_start')::bigint
           AND s.id < current_setting('store_monitor.range_end')::bigint
           AND s.first_poll < current_setting('store_monitor.window_start')::timestamptz
         ORDER BY s.id",
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(StorePoll::keyed).collect())
}

/// The unmarked polls that may begin or end a run: those of the spans pushed batches noted
/// and `tidy_edges` has not reached yet (`polls::note_pushed_spans`), with the poll on each
/// side, from the last one before the window to *now*, in key order. A few thousand rows a
/// minute of pushes; none once tidied.
async fn pending_polls(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(i32, Poll)>> {
    let rows: Vec<StorePoll> = sqlx::query_as(
        "SELECT w.store, q.at, q.active
         FROM (SELECT store, min(lo) AS lo, max(hi) AS hi FROM edge_work
               WHERE store >= current_setting('store_monitor.range_start')::bigint
                 AND store < current_setting('store_monitor.range_end')::bigint
               GROUP BY store) w
         CROSS JOIN LATERAL (SELECT
             -- greatest() skips nulls: from the later of the poll before the span and the
             -- last one before the window.
             coalesce(greatest(
                 (SELECT at FROM polls WHERE store = w.store AND at < w.lo ORDER BY at DESC LIMIT 1),
                 (SELECT at FROM polls WHERE store = w.store
                    AND at < current_setting('store_monitor.window_start')::timestamptz
                  ORDER BY at DESC LIMIT 1)), w.lo) AS lo,
             coalesce((SELECT at FROM polls WHERE store = w.store AND at > w.hi ORDER BY at LIMIT 1),
                      w.hi) AS hi) f
         -- Lateral, so that each span is read by the key, never every poll hashed; and
         -- `OFFSET 0`, or the planner flattens it into a hash join with every poll not an
         -- edge (0.54 s a report of the sample data, while a push's span waits to be tidied).
         CROSS JOIN LATERAL (SELECT at, active FROM polls
                             WHERE store = w.store AND at >= f.lo AND at <= f.hi AND NOT edge
                               AND at <= current_setting('store_monitor.now')::timestamptz
                             OFFSET 0) q
         ORDER BY w.store, q.at",
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(StorePoll::keyed).collect())
}

/// What a range's stream of edges does not carry, store by store in key order: each store's
/// last poll before the window, and the unmarked polls of spans not tidied yet.
struct Extras {
    before: std::iter::Peekable<std::vec::IntoIter<(i32, Poll)>>,
    pending: std::iter::Peekable<std::vec::IntoIter<(i32, Vec<Poll>)>>,
}

impl Extras {
    /// `before`: the last marked poll before the window of each store; `pending`: what
    /// [`pending_polls`] read; both in key order.
    fn new(before: Vec<(i32, Poll)>, pending: Vec<(i32, Poll)>, now: Timestamp) -> Extras {
        let window_start = reads_from(now);
        let mut last_before: HashMap<i32, Poll> = HashMap::new();
        let mut in_window: Vec<(i32, Vec<Poll>)> = Vec::new();
        for (store, poll) in pending {
            if poll.at < window_start {
                // In key order: the last one wins.
                last_before.insert(store, poll);
            } else {
                match in_window.last_mut() {
                    Some((s, polls)) if *s == store => polls.push(poll),
                    _ => in_window.push((store, vec![poll])),
                }
            }
        }
        let mut before: Vec<(i32, Poll)> = before
            .into_iter()
            .map(|(store, marked)| match last_before.remove(&store) {
                Some(unmarked) if unmarked.at > marked.at => (store, unmarked),
                _ => (store, marked),
            })
            .collect();
        if !last_before.is_empty() {
            before.extend(last_before);
            before.sort_unstable_by_key(|(store, _)| *store);
        }
        Extras {
            before: before.into_iter().peekable(),
            pending: in_window.into_iter().peekable(),
        }
    }

    /// The next store with extras whose key is below `limit` (`None`: any), and its extras.
    fn next_below(&mut self, limit: Option<i32>) -> Option<(i32, Vec<Poll>)> {
        let below = |store: i32| limit.is_none_or(|limit| store < limit);
        let before = self.before.peek().map(|(s, _)| *s).filter(|s| below(*s));
        let pending = self.pending.peek().map(|(s, _)| *s).filter(|s| below(*s));
        let store = match (before, pending) {
            (Some(a), Some(b)) => a.min(b),
            (Some(s), None) | (None, Some(s)) => s,
            (None, None) => return None,
        };
        let mut polls = Vec::new();
        self.take(store, &mut polls);
        Some((store, polls))
    }

    /// Adds `store`'s extras to `polls`, oldest first.
    fn take(&mut self, store: i32, polls: &mut Vec<Poll>) {
        if let Some((_, last)) = self.before.next_if(|(s, _)| *s == store) {
            polls.push(last);
        }
        if let Some((_, pending)) = self.pending.next_if(|(s, _)| *s == store) {
            polls.extend(pending);
        }
    }
}

/// COPY takes no parameters: the range of stores and the report's window (from the start
/// of its week to *now*) go in as settings of the transaction.
async fn set_range(
    db: impl PgExecutor<'_>,
    start: i32,
    end: Option<i32>,
    now: Timestamp,
) -> sqlx::Result<()> {
    let end = end.map_or(i64::from(i32::MAX) + 1, i64::from);
    sqlx::query(
        "SELECT set_config('store_monitor.range_start', $1::text, true),
                set_config('store_monitor.range_end', $2::text, true),
                set_config('store_monitor.window_start', $3::text, true),
                set_config('store_monitor.now', $4::text, true)",
    )
    .bind(i64::from(start))
    .bind(end)
    .bind(reads_from(now).to_datetime().map(|at| at.to_rfc3339()))
    .bind(now.to_datetime().map(|at| at.to_rfc3339()))
    .execute(db)
    .await
    .map(drop)
}

/// Decodes the window's polls of a range of stores, in key order, and computes each store's
/// row from those and its `extras`.
fn compute_range(
    mut chunks: tokio::sync::mpsc::Receiver<Bytes>,
    mut extras: Extras,
    shared: &Shared,
    now: Timestamp,
    interpolation: Interpolation,
    done: &AtomicU64,
) -> anyhow::Result<Vec<StoreReport>> {
    let mut engine = Engine::new(now, interpolation);
    let mut rows = Vec::new();
    let mut current: Option<i32> = None;
    let mut polls: Vec<Poll> = Vec::new();
    let mut flush = |store: i32, polls: &mut Vec<Poll>, rows: &mut Vec<StoreReport>| {
        // Unmarked polls of a span not tidied yet fall among the marked ones.
        if !polls.is_sorted_by_key(|p| p.at) {
            polls.sort_unstable_by_key(|p| p.at);
        }
        let hours = shared.hours.get(&store).map_or(&[][..], Vec::as_slice);
        let zone = shared.zones.get(&store).copied().unwrap_or_default();
        // Polls after `now` are ignored by the engine itself.
        if let Some(uptime) = engine.store(polls, hours, zone) {
            rows.push(StoreReport {
                store_id: shared.ids.get(&store).cloned().unwrap_or_default(),
                uptime,
            });
            done.fetch_add(1, Ordering::Relaxed);
        }
        polls.clear();
    };
    let mut reader = CopyReader::new();
    while let Some(chunk) = chunks.blocking_recv() {
        reader.feed(&chunk, &[4, 8, 1], |row| {
            let store = row.int4(0);
            if current != Some(store) {
                if let Some(previous) = current {
                    flush(previous, &mut polls, &mut rows);
                }
                // Stores without marked polls in the window come before this one.
                while let Some((quiet, mut theirs)) = extras.next_below(Some(store)) {
                    flush(quiet, &mut theirs, &mut rows);
                }
                extras.take(store, &mut polls);
                current = Some(store);
            }
            polls.push(Poll {
                at: row.timestamptz(1),
                active: row.bool(2),
            });
        })?;
    }
    reader.finish()?;
    if let Some(last) = current {
        flush(last, &mut polls, &mut rows);
    }
    while let Some((quiet, mut theirs)) = extras.next_below(None) {
        flush(quiet, &mut theirs, &mut rows);
    }
    Ok(rows)
}

/// Cuts the polled stores' keys into up to `parts` ranges of about as many stores each.
fn store_ranges(mut keys: Vec<i32>, parts: usize) -> Vec<(i32, Option<i32>)> {
    keys.sort_unstable();
    let mut cuts: Vec<i32> = (1..parts)
        .filter_map(|k| keys.get(keys.len() * k / parts).copied())
        .collect();
    cuts.dedup();
    let mut ranges = Vec::with_capacity(cuts.len() + 1);
    let mut start = i32::MIN;
    for cut in cuts {
        ranges.push((start, Some(cut)));
        start = cut;
    }
    ranges.push((start, None));
    ranges
}

#[derive(FromRow)]
struct HoursRecord {
    store: i32,
    day: i16,
    start_micros: i64,
    end_micros: i64,
}

pub(super) async fn business_hours(db: impl PgExecutor<'_>) -> anyhow::Result<HashMap<i32, Vec<HoursRow>>> {
    let rows: Vec<HoursRecord> = sqlx::query_as(
        // date_part's double holds every microsecond of a day exactly, and is much faster
        // than extract's numeric.
        "SELECT store, day,
                (date_part('epoch', start_local) * 1000000)::bigint AS start_micros,
                (date_part('epoch', end_local) * 1000000)::bigint AS end_micros
         FROM business_hours",
    )
    .fetch_all(db)
    .await?;
    let mut by_store: HashMap<i32, Vec<HoursRow>> = HashMap::new();
    for r in rows {
        by_store.entry(r.store).or_default().push(hours_row(&r)?);
    }
    Ok(by_store)
}

/// One store's business hours, as loaded, by day and opening.
pub(crate) async fn hours_of_store(db: impl PgExecutor<'_>, store: i32) -> anyhow::Result<Vec<HoursRow>> {
    let rows: Vec<HoursRecord> = sqlx::query_as(
        "SELECT store, day,
                (date_part('epoch', start_local) * 1000000)::bigint AS start_micros,
                (date_part('epoch', end_local) * 1000000)::bigint AS end_micros
         FROM business_hours WHERE store = $1 ORDER BY day, start_local, end_local",
    )
    .bind(store)
    .fetch_all(db)
    .await?;
    rows.iter().map(hours_row).collect()
}

fn hours_row(r: &HoursRecord) -> anyhow::Result<HoursRow> {
    (|| {
        Some(HoursRow {
            day: Weekday::new(u8::try_from(r.day).ok()?)?,
            start: LocalTime::from_micros(r.start_micros)?,
            end: LocalTime::from_micros(r.end_micros)?,
        })
    })()
    .with_context(|| format!("business_hours holds an impossible row for store {}", r.store))
}

/// The zone a store's row names, as stored (`None`: no row).
pub(crate) async fn zone_of_store(db: impl PgExecutor<'_>, store: i32) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT zone FROM timezones WHERE store = $1")
        .bind(store)
        .fetch_optional(db)
        .await
}

#[derive(FromRow)]
struct ZoneRecord {
    store: i32,
    zone: String,
}

pub(super) async fn zones(db: impl PgExecutor<'_>) -> sqlx::Result<HashMap<i32, Zone>> {
    let rows: Vec<ZoneRecord> = sqlx::query_as("SELECT store, zone FROM timezones")
        .fetch_all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match r.zone.parse::<Zone>() {
            Ok(zone) => Some((r.store, zone)),
            Err(e) => {
                tracing::warn!(store = r.store, "{e}; the store is read as America/Chicago");
                None
            }
        })
        .collect())
}
