//! The `reports` and `report_rows` tables: one small function per statement.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::copy::CopyWriter;
use crate::domain::Interpolation;
use crate::domain::report::Rounded;
use crate::ingest::dataset::StoreReport;

/// The channel on which every change of a report is announced, with the report as JSON.
pub const CHANNEL: &str = "report_events";

/// Where a report is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReportStatus {
    Pending,
    Running,
    Complete,
    Failed,
}

impl ReportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Pending => "PENDING",
            ReportStatus::Running => "RUNNING",
            ReportStatus::Complete => "COMPLETE",
            ReportStatus::Failed => "FAILED",
        }
    }

    fn parse(s: &str) -> ReportStatus {
        match s {
            "RUNNING" => ReportStatus::Running,
            "COMPLETE" => ReportStatus::Complete,
            "FAILED" => ReportStatus::Failed,
            _ => ReportStatus::Pending,
        }
    }

    /// Whether the report will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, ReportStatus::Complete | ReportStatus::Failed)
    }
}

pub fn interpolation_str(i: Interpolation) -> &'static str {
    match i {
        Interpolation::Nearest => "NEAREST",
        Interpolation::ForwardFill => "FORWARD_FILL",
    }
}

fn parse_interpolation(s: &str) -> Interpolation {
    match s {
        "FORWARD_FILL" => Interpolation::ForwardFill,
        _ => Interpolation::Nearest,
    }
}

/// One row of `reports`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportRecord {
    pub id: Uuid,
    pub status: ReportStatus,
    /// `NEAREST` or `FORWARD_FILL`.
    pub interpolation: String,
    pub requested_as_of: Option<DateTime<Utc>>,
    pub as_of: Option<DateTime<Utc>>,
    pub data_version: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub stores_total: Option<i32>,
    pub stores_done: i32,
    pub error: Option<String>,
    pub result_of: Option<Uuid>,
    pub traceparent: Option<String>,
}

impl ReportRecord {
    pub fn interpolation(&self) -> Interpolation {
        parse_interpolation(&self.interpolation)
    }

    /// The report whose rows and CSV file this one has (once COMPLETE).
    pub fn result_id(&self) -> Uuid {
        self.result_of.unwrap_or(self.id)
    }

    fn from_row(row: &sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        Ok(ReportRecord {
            id: row.try_get("id")?,
            status: ReportStatus::parse(row.try_get("status")?),
            interpolation: row.try_get("interpolation")?,
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
        })
    }
}

const COLUMNS: &str = "id, status, interpolation, requested_as_of, as_of, data_version, created_at, \
     started_at, finished_at, stores_total, stores_done, error, result_of, traceparent";

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Runs a statement that returns a report row, and announces the new state.
async fn one(
    conn: &mut PgConnection,
    sql: String,
    bind: impl FnOnce(Query<'_>) -> Query<'_>,
) -> sqlx::Result<Option<ReportRecord>> {
    let query = bind(sqlx::query(sqlx::AssertSqlSafe(sql)));
    let row = query.fetch_optional(&mut *conn).await?;
    let record = row.as_ref().map(ReportRecord::from_row).transpose()?;
    if let Some(record) = &record {
        notify(conn, record).await?;
    }
    Ok(record)
}

/// Announces the report's new state to every listening process (at commit).
pub async fn notify(conn: &mut PgConnection, record: &ReportRecord) -> sqlx::Result<()> {
    let payload = serde_json::to_string(record).expect("a report serializes");
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// A new report, waiting for a worker.
pub async fn insert_pending(
    conn: &mut PgConnection,
    id: Uuid,
    interpolation: Interpolation,
    requested_as_of: Option<DateTime<Utc>>,
    traceparent: Option<String>,
) -> sqlx::Result<ReportRecord> {
    let sql = format!(
        "INSERT INTO reports (id, interpolation, requested_as_of, traceparent) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    );
    let record = one(conn, sql, |q| {
        q.bind(id)
            .bind(interpolation_str(interpolation))
            .bind(requested_as_of)
            .bind(traceparent)
    })
    .await?;
    Ok(record.expect("INSERT … RETURNING returns the row"))
}

/// A new report that is finished at once: it shares `source`'s result.
pub async fn insert_reused(
    conn: &mut PgConnection,
    id: Uuid,
    requested_as_of: Option<DateTime<Utc>>,
    source: &ReportRecord,
) -> sqlx::Result<ReportRecord> {
    let sql = format!(
        "INSERT INTO reports (id, status, interpolation, requested_as_of, as_of, data_version, started_at,
             finished_at, stores_total, stores_done, result_of)
         VALUES ($1, 'COMPLETE', $2, $3, $4, $5, now(), now(), $6, $6, $7) RETURNING {COLUMNS}"
    );
    let record = one(conn, sql, |q| {
        q.bind(id)
            .bind(source.interpolation.clone())
            .bind(requested_as_of)
            .bind(source.as_of)
            .bind(source.data_version)
            .bind(source.stores_total)
            .bind(source.result_id())
    })
    .await?;
    Ok(record.expect("INSERT … RETURNING returns the row"))
}

/// A COMPLETE report computed from the same data, at the same instant, the same way.
pub async fn find_reusable(
    conn: &mut PgConnection,
    data_version: i64,
    as_of: DateTime<Utc>,
    interpolation: Interpolation,
) -> sqlx::Result<Option<ReportRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM reports
         WHERE status = 'COMPLETE' AND data_version = $1 AND as_of = $2 AND interpolation = $3
         ORDER BY finished_at LIMIT 1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(data_version)
        .bind(as_of)
        .bind(interpolation_str(interpolation))
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(ReportRecord::from_row).transpose()
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ReportRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM reports WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(ReportRecord::from_row).transpose()
}

/// Reports newest first, `limit` of them, after the one at `after` (created, id).
pub async fn list(
    conn: &mut PgConnection,
    limit: i64,
    after: Option<(DateTime<Utc>, Uuid)>,
) -> sqlx::Result<Vec<ReportRecord>> {
    let (created, id) = after.unzip();
    let sql = format!(
        "SELECT {COLUMNS} FROM reports
         WHERE $1::timestamptz IS NULL OR (created_at, id) < ($1, $2)
         ORDER BY created_at DESC, id DESC LIMIT $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(created)
        .bind(id)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(ReportRecord::from_row).collect()
}

/// A worker starts (or, after a crash, restarts) the report: `None` if it is already
/// finished.
pub async fn mark_running(
    conn: &mut PgConnection,
    id: Uuid,
    as_of: Option<DateTime<Utc>>,
    data_version: i64,
    stores_total: i32,
) -> sqlx::Result<Option<ReportRecord>> {
    let sql = format!(
        "UPDATE reports SET status = 'RUNNING', as_of = $2, data_version = $3, stores_total = $4,
             stores_done = 0, started_at = now(), error = NULL
         WHERE id = $1 AND status IN ('PENDING', 'RUNNING') RETURNING {COLUMNS}"
    );
    one(conn, sql, |q| {
        q.bind(id).bind(as_of).bind(data_version).bind(stores_total)
    })
    .await
}

pub async fn set_progress(
    conn: &mut PgConnection,
    id: Uuid,
    done: i32,
) -> sqlx::Result<Option<ReportRecord>> {
    let sql = format!(
        "UPDATE reports SET stores_done = $2 WHERE id = $1 AND status = 'RUNNING' AND stores_done < $2 RETURNING {COLUMNS}"
    );
    one(conn, sql, |q| q.bind(id).bind(done)).await
}

/// Stores the rows (run it in the transaction that marks the report COMPLETE).
pub async fn insert_rows(conn: &mut PgConnection, id: Uuid, rows: &[StoreReport]) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM report_rows WHERE report = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
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

pub async fn mark_complete(
    conn: &mut PgConnection,
    id: Uuid,
    stores: i32,
) -> sqlx::Result<Option<ReportRecord>> {
    let sql = format!(
        "UPDATE reports SET status = 'COMPLETE', stores_done = $2, finished_at = now(), result_of = id
         WHERE id = $1 AND status = 'RUNNING' RETURNING {COLUMNS}"
    );
    one(conn, sql, |q| q.bind(id).bind(stores)).await
}

/// Finishes a report with the result of an equal one (same data version, instant and
/// interpolation).
pub async fn mark_reused(
    conn: &mut PgConnection,
    id: Uuid,
    source: &ReportRecord,
) -> sqlx::Result<Option<ReportRecord>> {
    let sql = format!(
        "UPDATE reports SET status = 'COMPLETE', as_of = $2, data_version = $3, stores_total = $4,
             stores_done = $4, started_at = coalesce(started_at, now()), finished_at = now(), result_of = $5
         WHERE id = $1 AND status IN ('PENDING', 'RUNNING') RETURNING {COLUMNS}"
    );
    one(conn, sql, |q| {
        q.bind(id)
            .bind(source.as_of)
            .bind(source.data_version)
            .bind(source.stores_total)
            .bind(source.result_id())
    })
    .await
}

pub async fn mark_failed(
    conn: &mut PgConnection,
    id: Uuid,
    error: &str,
) -> sqlx::Result<Option<ReportRecord>> {
    let sql = format!(
        "UPDATE reports SET status = 'FAILED', error = $2, finished_at = now()
         WHERE id = $1 AND status IN ('PENDING', 'RUNNING') RETURNING {COLUMNS}"
    );
    one(conn, sql, |q| q.bind(id).bind(error)).await
}

/// One stored row of a finished report.
#[derive(Clone, Debug, PartialEq)]
pub struct RowRecord {
    pub store_id: String,
    pub figures: Rounded,
}

/// Up to `limit` rows of the report `result` after store id `after`, or the one row of
/// `store_id`.
pub async fn rows(
    conn: &mut PgConnection,
    result: Uuid,
    limit: i64,
    after: Option<&str>,
    store_id: Option<&str>,
) -> sqlx::Result<Vec<RowRecord>> {
    let rows = sqlx::query(
        "SELECT store_id, uptime_last_hour, uptime_last_day, uptime_last_week,
                downtime_last_hour, downtime_last_day, downtime_last_week
         FROM report_rows
         WHERE report = $1 AND ($2::text IS NULL OR store_id > $2) AND ($3::text IS NULL OR store_id = $3)
         ORDER BY store_id LIMIT $4",
    )
    .bind(result)
    .bind(after)
    .bind(store_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let mut figures = [0i64; 6];
            for (i, f) in figures.iter_mut().enumerate() {
                *f = i64::from(r.try_get::<i32, _>(i + 1)?);
            }
            Ok(RowRecord {
                store_id: r.try_get(0)?,
                figures: Rounded(figures),
            })
        })
        .collect()
}
