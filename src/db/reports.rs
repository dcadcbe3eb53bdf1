//! The `reports` and `report_rows` tables: one small function per statement.
//!
//! Every statement that changes a report also announces its new state on
//! [`CHANNEL`] (`pg_notify` in the same statement, delivered at commit), so that every
//! process's subscriptions hear of it whichever process made the change.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgExecutor, Row};
use uuid::Uuid;

use super::Pool;
use super::codes::Code;
use super::copy::CopyWriter;
use crate::domain::report::Rounded;
use crate::domain::{Interpolation, ReportRecord, ReportStatus, StoreReport};

/// The channel on which every change of a report is announced, with the report's row as
/// JSON. The statements below spell it out; the listener in `events` listens on this.
pub(crate) const CHANNEL: &str = "report_events";

impl<'r> FromRow<'r, PgRow> for ReportRecord {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        Ok(ReportRecord {
            id: row.try_get("id")?,
            status: row.try_get::<Code<_>, _>("status")?.0,
            interpolation: row.try_get::<Code<_>, _>("interpolation")?.0,
            requested_as_of: row.try_get("requested_as_of")?,
            as_of: row.try_get("as_of")?,
            data_version: row.try_get("data_version")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            stores_total: row.try_get("stores_total")?,
            stores_done: row.try_get("stores_done")?,
            error: row.try_get("error")?,
            result_of: row.try_get("result_of")?,
            traceparent: row.try_get("traceparent")?,
            attempts: row.try_get("attempts")?,
        })
    }
}

/// A new report, waiting for a worker.
pub(crate) async fn insert_pending(
    db: impl PgExecutor<'_>,
    id: Uuid,
    interpolation: Interpolation,
    requested_as_of: Option<DateTime<Utc>>,
    traceparent: Option<String>,
) -> sqlx::Result<ReportRecord> {
    sqlx::query_as(
        "WITH r AS (
             INSERT INTO reports (id, interpolation, requested_as_of, traceparent)
             VALUES ($1, $2, $3, $4) RETURNING *)
         SELECT r.*, pg_notify('report_events', row_to_json(r)::text) FROM r",
    )
    .bind(id)
    .bind(Code(interpolation))
    .bind(requested_as_of)
    .bind(traceparent)
    .fetch_one(db)
    .await
}

/// A new report that is finished at once: it shares `source`'s result.
pub(crate) async fn insert_reused(
    db: impl PgExecutor<'_>,
    id: Uuid,
    requested_as_of: Option<DateTime<Utc>>,
    source: &ReportRecord,
) -> sqlx::Result<ReportRecord> {
    sqlx::query_as(
        "WITH r AS (
             INSERT INTO reports (id, status, interpolation, requested_as_of, as_of, data_version,
                 started_at, finished_at, stores_total, stores_done, result_of)
             VALUES ($1, 'COMPLETE', $2, $3, $4, $5, now(), now(), $6, $6, $7) RETURNING *)
         SELECT r.*, pg_notify('report_events', row_to_json(r)::text) FROM r",
    )
    .bind(id)
    .bind(Code(source.interpolation))
    .bind(requested_as_of)
    .bind(source.as_of)
    .bind(source.data_version)
    .bind(source.stores_total)
    .bind(source.result_id())
    .fetch_one(db)
    .await
}

/// A COMPLETE report computed from the same data, at the same instant, the same way
/// (none when there is no instant: no data).
pub(crate) async fn find_reusable(
    db: impl PgExecutor<'_>,
    data_version: i64,
    as_of: Option<DateTime<Utc>>,
    interpolation: Interpolation,
) -> sqlx::Result<Option<ReportRecord>> {
    sqlx::query_as(
        "SELECT * FROM reports
         WHERE status = 'COMPLETE' AND data_version = $1 AND as_of = $2 AND interpolation = $3
         ORDER BY finished_at LIMIT 1",
    )
    .bind(data_version)
    .bind(as_of)
    .bind(Code(interpolation))
    .fetch_optional(db)
    .await
}

pub(crate) async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<ReportRecord>> {
    sqlx::query_as("SELECT * FROM reports WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// How many reports wait for a worker.
pub(crate) async fn waiting(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM reports WHERE status = 'PENDING'")
        .fetch_one(db)
        .await
}

/// The reports among `ids`.
pub(crate) async fn get_many(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<ReportRecord>> {
    sqlx::query_as("SELECT * FROM reports WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(db)
        .await
}

/// Reports newest first, `limit` of them, after the one at `after` (created, id).
pub(crate) async fn list(
    db: impl PgExecutor<'_>,
    filter: ReportFilter,
    limit: i64,
    after: Option<(DateTime<Utc>, Uuid)>,
) -> sqlx::Result<Vec<ReportRecord>> {
    let (created, id) = after.unzip();
    sqlx::query_as(
        "SELECT * FROM reports
         WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2))
           AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR interpolation = $4)
         ORDER BY created_at DESC, id DESC LIMIT $5",
    )
    .bind(created)
    .bind(id)
    .bind(filter.status.map(Code))
    .bind(filter.interpolation.map(Code))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Which reports a list keeps: `None` keeps any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportFilter {
    pub status: Option<ReportStatus>,
    pub interpolation: Option<Interpolation>,
}

/// A worker starts (or, after a crash, restarts) the report, counting the attempt: `None`
/// if it is already finished.
pub(crate) async fn mark_running(
    db: impl PgExecutor<'_>,
    id: Uuid,
    as_of: Option<DateTime<Utc>>,
    data_version: i64,
    stores_total: i32,
) -> sqlx::Result<Option<ReportRecord>> {
    sqlx::query_as(
        "WITH r AS (
             UPDATE reports SET status = 'RUNNING', as_of = $2, data_version = $3, stores_total = $4,
                 stores_done = 0, started_at = now(), error = NULL, attempts = attempts + 1
             WHERE id = $1 AND status IN ('PENDING', 'RUNNING') RETURNING *)
         SELECT r.*, pg_notify('report_events', row_to_json(r)::text) FROM r",
    )
    .bind(id)
    .bind(as_of)
    .bind(data_version)
    .bind(stores_total)
    .fetch_optional(db)
    .await
}

/// Records how many stores a running report has computed (only ever forward).
pub(crate) async fn set_progress(
    db: impl PgExecutor<'_>,
    id: Uuid,
    done: i32,
) -> sqlx::Result<Option<ReportRecord>> {
    sqlx::query_as(
        "WITH r AS (
             UPDATE reports SET stores_done = $2
             WHERE id = $1 AND status = 'RUNNING' AND stores_done < $2 RETURNING *)
         SELECT r.*, pg_notify('report_events', row_to_json(r)::text) FROM r",
    )
    .bind(id)
    .bind(done)
    .fetch_optional(db)
    .await
}

/// Stores a running report's rows and marks it COMPLETE, together: a reader sees either
/// no rows and a report still RUNNING, or both. `None` if someone else finished it.
pub(crate) async fn complete(
    pool: &Pool,
    id: Uuid,
    rows: &[StoreReport],
) -> sqlx::Result<Option<ReportRecord>> {
    let mut tx = pool.begin().await?;
    delete_rows(&mut *tx, id).await?;
    copy_rows(&mut tx, id, rows).await?;
    let complete = mark_complete(&mut *tx, id, rows.len() as i32).await?;
    tx.commit().await?;
    Ok(complete)
}

/// Rows of an earlier attempt, which a crash may have left (the rows' transaction was
/// rolled back then, so this finds none unless the schema changes).
async fn delete_rows(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM report_rows WHERE report = $1")
        .bind(id)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
}

async fn copy_rows(conn: &mut PgConnection, id: Uuid, rows: &[StoreReport]) -> sqlx::Result<u64> {
    let mut copy = conn
        .copy_in_raw(
            "COPY report_rows (report, store_id, uptime_last_hour, uptime_last_day, uptime_last_week,
                 downtime_last_hour, downtime_last_day, downtime_last_week) FROM STDIN (FORMAT binary)",
        )
        .await?;
    let mut w = CopyWriter::new();
    for row in rows {
        w.row(8);
        w.uuid(id);
        w.text(&row.store_id);
        for figure in Rounded::from(&row.uptime).0 {
            w.int4(figure as i32);
        }
        if w.len() > 1 << 20 {
            copy.send(w.take()).await?;
        }
    }
    copy.send(w.finish()).await?;
    copy.finish().await
}

async fn mark_complete(db: impl PgExecutor<'_>, id: Uuid, stores: i32) -> sqlx::Result<Option<ReportRecord>> {
    sqlx::query_as(
        "WITH r AS (
             UPDATE reports SET status = 'COMPLETE', stores_done = $2, finished_at = now(), result_of = id
             WHERE id = $1 AND status = 'RUNNING' RETURNING *)
         SELECT r.*, pg_notify('report_events', row_to_json(r)::text) FROM r",
    )
    .bind(id)
    .bind(stores)
    .fetch_optional(db)
    .await
}

/// Finishes a report with the result of an equal one (same data version, instant and
/// interpolation).
pub(crate) async fn mark_reused(
    db: impl PgExecutor<'_>,
    id: Uuid,
    source: &ReportRecord,
) -> sqlx::Result<Option<ReportRecord>> {
    sqlx::query_as(
        "WITH r AS (
             UPDATE reports SET status = 'COMPLETE', as_of = $2, data_version = $3, stores_total = $4,
                 stores_done = $4, started_at = coalesce(started_at, now()), finished_at = now(),
                 result_of = $5
             WHERE id = $1 AND status IN ('PENDING', 'RUNNING') RETURNING *)
         SELECT r.*, pg_notify('report_events', row_to_json(r)::text) FROM r",
    )
    .bind(id)
    .bind(source.as_of)
    .bind(source.data_version)
    .bind(source.stores_total)
    .bind(source.result_id())
    .fetch_optional(db)
    .await
}

pub(crate) async fn mark_failed(
    db: impl PgExecutor<'_>,
    id: Uuid,
    error: &str,
) -> sqlx::Result<Option<ReportRecord>> {
    sqlx::query_as(
        "WITH r AS (
             UPDATE reports SET status = 'FAILED', error = $2, finished_at = now()
             WHERE id = $1 AND status IN ('PENDING', 'RUNNING') RETURNING *)
         SELECT r.*, pg_notify('report_events', row_to_json(r)::text) FROM r",
    )
    .bind(id)
    .bind(error)
    .fetch_optional(db)
    .await
}

/// Stops a PENDING or RUNNING report: CANCELLED, announced like any change. `None` if it
/// is not one (unknown, or finished already).
pub(crate) async fn cancel(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<ReportRecord>> {
    sqlx::query_as(
        "WITH r AS (
             UPDATE reports SET status = 'CANCELLED', finished_at = now()
             WHERE id = $1 AND status IN ('PENDING', 'RUNNING') RETURNING *)
         SELECT r.*, pg_notify('report_events', row_to_json(r)::text) FROM r",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// A report's status now (`None`: no such report): a running job asks whether it was
/// cancelled.
pub(crate) async fn status(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<ReportStatus>> {
    let status: Option<Code<ReportStatus>> = sqlx::query_scalar("SELECT status FROM reports WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(status.map(|c| c.0))
}

/// Reports not finished yet that were created before `before`: the reconciler checks that
/// each still has a job that will run it.
pub(crate) async fn unfinished_before(
    db: impl PgExecutor<'_>,
    before: DateTime<Utc>,
) -> sqlx::Result<Vec<ReportRecord>> {
    sqlx::query_as(
        "SELECT * FROM reports WHERE status IN ('PENDING', 'RUNNING') AND created_at < $1
         ORDER BY created_at LIMIT 1000",
    )
    .bind(before)
    .fetch_all(db)
    .await
}

/// Deletes the reports that finished before `before`, with their rows, except a result
/// that a newer or unfinished report still shares. Returns the ids of the deleted reports,
/// with whether each had computed its own result (whose CSV file is to go too).
pub(crate) async fn prune_finished(
    db: impl PgExecutor<'_>,
    before: DateTime<Utc>,
) -> sqlx::Result<Vec<(Uuid, bool)>> {
    sqlx::query_as(
        "WITH kept AS (
             SELECT DISTINCT coalesce(result_of, id) AS result FROM reports
             WHERE finished_at IS NULL OR finished_at >= $1),
         gone AS (
             DELETE FROM reports r
             WHERE r.finished_at < $1 AND coalesce(r.result_of, r.id) NOT IN (SELECT result FROM kept)
             RETURNING r.id, r.result_of)
         SELECT id, coalesce(result_of = id, false) FROM gone",
    )
    .bind(before)
    .fetch_all(db)
    .await
}

/// Which of `ids` are reports still kept.
pub(crate) async fn existing(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT id FROM reports WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(db)
        .await
}

/// One stored row of a finished report.
#[derive(Clone, Debug, PartialEq)]
pub struct RowRecord {
    pub store_id: String,
    pub figures: Rounded,
}

impl<'r> FromRow<'r, PgRow> for RowRecord {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        let mut figures = [0i64; 6];
        let columns = [
            "uptime_last_hour",
            "uptime_last_day",
            "uptime_last_week",
            "downtime_last_hour",
            "downtime_last_day",
            "downtime_last_week",
        ];
        for (figure, column) in figures.iter_mut().zip(columns) {
            *figure = i64::from(row.try_get::<i32, _>(column)?);
        }
        Ok(RowRecord {
            store_id: row.try_get("store_id")?,
            figures: Rounded(figures),
        })
    }
}

/// The column a page of rows is ordered by (then by store id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RowOrder {
    #[default]
    StoreId,
    /// One of the six figures, in the CSV's order (uptime hour, day, week; downtime hour,
    /// day, week).
    Figure(usize),
}

/// Which rows of a report to read: some stores only, and each figure within a range of
/// its stored value (hundredths), both ends included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowFilter {
    pub store_ids: Option<Vec<String>>,
    pub ranges: [(i32, i32); 6],
}

impl Default for RowFilter {
    fn default() -> Self {
        RowFilter {
            store_ids: None,
            ranges: [(i32::MIN, i32::MAX); 6],
        }
    }
}

/// A page of rows: where it starts (after the row with this figure and store id; the figure
/// is ignored in store-id order), how many, in which order.
#[derive(Clone, Debug, Default)]
pub struct RowPage<'a> {
    pub order: RowOrder,
    pub descending: bool,
    pub after: Option<(i32, &'a str)>,
    pub limit: i64,
}

/// The statement reading a page of rows in `$order` (a column), ascending or descending:
/// each is its own static text, so that each is served by its column's index.
macro_rules! ordered_rows {
    ($order:literal, $key:literal, $cmp:literal) => {
        concat!(
            "SELECT * FROM report_rows
             WHERE report = $1
               AND ($2::text[] IS NULL OR store_id = ANY($2))
               AND uptime_last_hour BETWEEN $3 AND $4 AND uptime_last_day BETWEEN $5 AND $6
               AND uptime_last_week BETWEEN $7 AND $8 AND downtime_last_hour BETWEEN $9 AND $10
               AND downtime_last_day BETWEEN $11 AND $12 AND downtime_last_week BETWEEN $13 AND $14
               AND ($16::text IS NULL OR ",
            $key,
            " ",
            $cmp,
            " ",
            "($15, $16))
             ORDER BY ",
            $order,
            " LIMIT $17"
        )
    };
}

/// A page of the rows of the report `result` that pass `filter`.
pub(crate) async fn rows(
    db: impl PgExecutor<'_>,
    result: Uuid,
    filter: &RowFilter,
    page: &RowPage<'_>,
) -> sqlx::Result<Vec<RowRecord>> {
    let statement = match (page.order, page.descending) {
        // The figure ($15) is ignored: the key is the store id alone.
        (RowOrder::StoreId, false) => ordered_rows!("store_id", "(0, store_id)", ">"),
        (RowOrder::StoreId, true) => ordered_rows!("store_id DESC", "(0, store_id)", "<"),
        (RowOrder::Figure(0), false) => {
            ordered_rows!("uptime_last_hour, store_id", "(uptime_last_hour, store_id)", ">")
        }
        (RowOrder::Figure(0), true) => ordered_rows!(
            "uptime_last_hour DESC, store_id DESC",
            "(uptime_last_hour, store_id)",
            "<"
        ),
        (RowOrder::Figure(1), false) => {
            ordered_rows!("uptime_last_day, store_id", "(uptime_last_day, store_id)", ">")
        }
        (RowOrder::Figure(1), true) => ordered_rows!(
            "uptime_last_day DESC, store_id DESC",
            "(uptime_last_day, store_id)",
            "<"
        ),
        (RowOrder::Figure(2), false) => {
            ordered_rows!("uptime_last_week, store_id", "(uptime_last_week, store_id)", ">")
        }
        (RowOrder::Figure(2), true) => ordered_rows!(
            "uptime_last_week DESC, store_id DESC",
            "(uptime_last_week, store_id)",
            "<"
        ),
        (RowOrder::Figure(3), false) => ordered_rows!(
            "downtime_last_hour, store_id",
            "(downtime_last_hour, store_id)",
            ">"
        ),
        (RowOrder::Figure(3), true) => ordered_rows!(
            "downtime_last_hour DESC, store_id DESC",
            "(downtime_last_hour, store_id)",
            "<"
        ),
        (RowOrder::Figure(4), false) => {
            ordered_rows!(
                "downtime_last_day, store_id",
                "(downtime_last_day, store_id)",
                ">"
            )
        }
        (RowOrder::Figure(4), true) => ordered_rows!(
            "downtime_last_day DESC, store_id DESC",
            "(downtime_last_day, store_id)",
            "<"
        ),
        (RowOrder::Figure(5), false) => ordered_rows!(
            "downtime_last_week, store_id",
            "(downtime_last_week, store_id)",
            ">"
        ),
        // 5, the last figure.
        (RowOrder::Figure(_), true) => ordered_rows!(
            "downtime_last_week DESC, store_id DESC",
            "(downtime_last_week, store_id)",
            "<"
        ),
        (RowOrder::Figure(_), false) => ordered_rows!(
            "downtime_last_week, store_id",
            "(downtime_last_week, store_id)",
            ">"
        ),
    };
    let mut query = sqlx::query_as(statement).bind(result).bind(&filter.store_ids);
    for (min, max) in filter.ranges {
        query = query.bind(min).bind(max);
    }
    let (after_figure, after_store) = match page.after {
        Some((figure, store)) => (Some(figure), Some(store)),
        None => (None, None),
    };
    // In store-id order the key compares (0, store_id): the figure given is 0.
    let after_figure = match page.order {
        RowOrder::StoreId => after_store.map(|_| 0),
        RowOrder::Figure(_) => after_figure,
    };
    query
        .bind(after_figure)
        .bind(after_store)
        .bind(page.limit)
        .fetch_all(db)
        .await
}

/// How many rows of the report `result` pass `filter`.
pub(crate) async fn count_rows(
    db: impl PgExecutor<'_>,
    result: Uuid,
    filter: &RowFilter,
) -> sqlx::Result<i64> {
    let mut query = sqlx::query_scalar(
        "SELECT count(*) FROM report_rows
         WHERE report = $1
           AND ($2::text[] IS NULL OR store_id = ANY($2))
           AND uptime_last_hour BETWEEN $3 AND $4 AND uptime_last_day BETWEEN $5 AND $6
           AND uptime_last_week BETWEEN $7 AND $8 AND downtime_last_hour BETWEEN $9 AND $10
           AND downtime_last_day BETWEEN $11 AND $12 AND downtime_last_week BETWEEN $13 AND $14",
    )
    .bind(result)
    .bind(&filter.store_ids);
    for (min, max) in filter.ranges {
        query = query.bind(min).bind(max);
    }
    query.fetch_one(db).await
}
