//! The `reports` table: one small function per statement (`rows` has `report_rows`).
//!
//! Every statement that changes a report also announces its new state on
//! [`CHANNEL`] (`pg_notify` in the same statement, delivered at commit), so that every
//! process's subscriptions hear of it whichever process made the change.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgExecutor, Row};
use uuid::Uuid;

use super::Pool;
use super::codes::Code;
use crate::domain::{Interpolation, ReportFilter, ReportRecord, ReportStatus, StoreReport};

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

/// A running report's rows, stored in a transaction not yet committed: [`complete`] marks
/// the report COMPLETE in it, so that a reader sees either no rows and a report still
/// RUNNING, or both. Dropped, it takes the rows back.
pub(crate) struct StoredRows(sqlx::Transaction<'static, sqlx::Postgres>);

/// Stores a running report's rows (replacing any an earlier attempt left), uncommitted.
pub(crate) async fn store_rows(pool: &Pool, id: Uuid, rows: &[StoreReport]) -> sqlx::Result<StoredRows> {
    let mut tx = pool.begin().await?;
    super::rows::delete(&mut *tx, id).await?;
    super::rows::copy(&mut tx, id, rows).await?;
    Ok(StoredRows(tx))
}

/// Marks the report whose rows are `stored` COMPLETE and commits both. `None` if someone
/// else finished it meanwhile (then its rows are taken back).
pub(crate) async fn complete(
    stored: StoredRows,
    id: Uuid,
    stores: i32,
) -> sqlx::Result<Option<ReportRecord>> {
    let StoredRows(mut tx) = stored;
    let Some(complete) = mark_complete(&mut *tx, id, stores).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    tx.commit().await?;
    Ok(Some(complete))
}

/// Brings the planner's statistics of the stored rows up to date once `written` more rows
/// make them stale (after the rows are committed: ANALYZE samples what is visible).
pub(crate) async fn keep_statistics(pool: &Pool, written: usize) -> sqlx::Result<bool> {
    if !super::rows::stale_statistics(pool, written as u64).await? {
        return Ok(false);
    }
    super::rows::analyze(pool).await?;
    Ok(true)
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
