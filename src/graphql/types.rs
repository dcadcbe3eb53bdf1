//! The GraphQL types of SPEC §3.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::error::ApiError;
use super::page_size;
use crate::db::loads::{LoadRecord, Outcome};
use crate::db::reports::{self, ReportRecord};
use crate::domain;
use crate::ingest::files::FileKind;
use crate::service::{self, AppState};

/// How a store's status is read between its polls.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq, Default)]
pub enum Interpolation {
    /// Every instant takes the status of the nearest poll; the switch is halfway between
    /// two polls.
    #[default]
    Nearest,
    /// A poll's status holds until the next poll.
    ForwardFill,
}

impl From<Interpolation> for domain::Interpolation {
    fn from(i: Interpolation) -> Self {
        match i {
            Interpolation::Nearest => domain::Interpolation::Nearest,
            Interpolation::ForwardFill => domain::Interpolation::ForwardFill,
        }
    }
}

impl From<domain::Interpolation> for Interpolation {
    fn from(i: domain::Interpolation) -> Self {
        match i {
            domain::Interpolation::Nearest => Interpolation::Nearest,
            domain::Interpolation::ForwardFill => Interpolation::ForwardFill,
        }
    }
}

/// Where a report is in its life.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum ReportStatus {
    /// Queued, waiting for a worker.
    Pending,
    /// A worker is computing it.
    Running,
    /// Done: `csv`, `csvUrl` and `rows` hold the result.
    Complete,
    /// It could not be computed: see `error`.
    Failed,
}

impl From<reports::ReportStatus> for ReportStatus {
    fn from(s: reports::ReportStatus) -> Self {
        match s {
            reports::ReportStatus::Pending => ReportStatus::Pending,
            reports::ReportStatus::Running => ReportStatus::Running,
            reports::ReportStatus::Complete => ReportStatus::Complete,
            reports::ReportStatus::Failed => ReportStatus::Failed,
        }
    }
}

/// What to compute.
#[derive(InputObject, Debug, Default)]
pub struct TriggerReportInput {
    /// Compute the report as of this instant (polls after it are ignored). Default: the
    /// newest poll.
    pub as_of: Option<DateTime<Utc>>,
    /// How status is read between polls (null: NEAREST).
    #[graphql(default_with = "Some(Interpolation::Nearest)")]
    pub interpolation: Option<Interpolation>,
}

pub struct Report(pub ReportRecord);

/// An uptime report: per store, uptime and downtime within business hours over the last
/// hour (minutes), day and week (hours).
#[Object]
impl Report {
    /// The report's id: a UUID.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Where the report is in its life.
    async fn status(&self) -> ReportStatus {
        self.0.status.into()
    }

    /// How status is read between polls.
    async fn interpolation(&self) -> Interpolation {
        self.0.interpolation().into()
    }

    /// The instant the report is computed at: the requested one, or once RUNNING the
    /// newest poll when none was requested.
    async fn as_of(&self) -> Option<DateTime<Utc>> {
        self.0.as_of.or(self.0.requested_as_of)
    }

    /// When it was triggered.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When a worker started it (the last start, if a crash made it start again).
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }

    /// When it became COMPLETE or FAILED.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }

    /// How many stores the report has a row for, known once RUNNING.
    async fn stores_total(&self) -> Option<i32> {
        self.0.stores_total
    }

    /// How many stores are computed so far.
    async fn stores_done(&self) -> i32 {
        self.0.stores_done
    }

    /// `storesDone / storesTotal`, from 0 to 1 (1 once COMPLETE).
    async fn progress(&self) -> f64 {
        match (self.0.status, self.0.stores_total) {
            (reports::ReportStatus::Complete, _) => 1.0,
            (_, Some(total)) if total > 0 => (f64::from(self.0.stores_done) / f64::from(total)).min(1.0),
            _ => 0.0,
        }
    }

    /// Why it FAILED.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }

    /// Where to download the CSV, once COMPLETE (a path on this server).
    async fn csv_url(&self) -> Option<String> {
        (self.0.status == reports::ReportStatus::Complete).then(|| format!("/reports/{}.csv", self.0.id))
    }

    /// The whole CSV, once COMPLETE.
    async fn csv(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        if self.0.status != reports::ReportStatus::Complete {
            return Ok(None);
        }
        let state = ctx.data_unchecked::<AppState>();
        Ok(Some(
            service::report_csv(state, &self.0)
                .await
                .map_err(ApiError::Internal)?,
        ))
    }

    /// The report's rows in store-id order, a page at a time (empty until COMPLETE).
    async fn rows(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, at most 1000 (default 100).")] first: Option<i32>,
        #[graphql(desc = "The cursor of the row to start after.")] after: Option<String>,
        #[graphql(desc = "Only the row of this store.")] store_id: Option<ID>,
    ) -> async_graphql::Result<Connection<String, StoreUptime>> {
        let limit = page_size(first)?;
        if self.0.status != reports::ReportStatus::Complete {
            return Ok(Connection::new(false, false));
        }
        let state = ctx.data_unchecked::<AppState>();
        let mut conn = state.pool.acquire().await.map_err(ApiError::from)?;
        let mut rows = reports::rows(
            &mut conn,
            self.0.result_id(),
            limit + 1,
            after.as_deref(),
            store_id.as_ref().map(|s| s.as_str()),
        )
        .await
        .map_err(ApiError::from)?;
        let has_next = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let mut page = Connection::new(after.is_some(), has_next);
        page.edges.extend(rows.into_iter().map(|r| {
            let [uh, ud, uw, dh, dd, dw] = r.figures.values();
            let node = StoreUptime {
                store_id: ID(r.store_id.clone()),
                uptime_last_hour: uh,
                uptime_last_day: ud,
                uptime_last_week: uw,
                downtime_last_hour: dh,
                downtime_last_day: dd,
                downtime_last_week: dw,
            };
            Edge::new(r.store_id, node)
        }));
        Ok(page)
    }
}

/// One store's row of a report, rounded as the CSV writes it.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct StoreUptime {
    /// The store's id, as the input files spell it.
    pub store_id: ID,
    /// Minutes the store was up within business hours in the last hour.
    pub uptime_last_hour: f64,
    /// Hours the store was up within business hours in the last day.
    pub uptime_last_day: f64,
    /// Hours the store was up within business hours in the last week.
    pub uptime_last_week: f64,
    /// Minutes the store was down within business hours in the last hour.
    pub downtime_last_hour: f64,
    /// Hours the store was down within business hours in the last day.
    pub downtime_last_day: f64,
    /// Hours the store was down within business hours in the last week.
    pub downtime_last_week: f64,
}

/// The kind of an input file.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum DataFileKind {
    /// Polls: store_id, status, timestamp_utc.
    Status,
    /// Business hours: store_id, dayOfWeek, start_time_local, end_time_local.
    Hours,
    /// Time zones: store_id, timezone_str.
    Timezones,
}

impl From<FileKind> for DataFileKind {
    fn from(k: FileKind) -> Self {
        match k {
            FileKind::Status => DataFileKind::Status,
            FileKind::Hours => DataFileKind::Hours,
            FileKind::Timezones => DataFileKind::Timezones,
        }
    }
}

/// What came of loading a file.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum LoadOutcome {
    /// Read and applied.
    Loaded,
    /// The same bytes as its last successful load: skipped.
    Unchanged,
    /// Nothing applied: see `error`.
    Failed,
}

impl From<Outcome> for LoadOutcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Loaded => LoadOutcome::Loaded,
            Outcome::Unchanged => LoadOutcome::Unchanged,
            Outcome::Failed => LoadOutcome::Failed,
        }
    }
}

pub struct FileLoad(pub LoadRecord);

/// One load of one input file.
#[Object]
impl FileLoad {
    /// The load's number; the data version is the newest load that changed the data.
    async fn id(&self) -> i64 {
        self.0.id
    }

    /// Which input it was.
    async fn kind(&self) -> DataFileKind {
        self.0.kind.into()
    }

    /// The file, as the loader was given it.
    async fn file(&self) -> &str {
        &self.0.file
    }

    /// What came of it.
    async fn outcome(&self) -> LoadOutcome {
        self.0.outcome.into()
    }

    /// xxh3-128 of the file's bytes.
    async fn checksum(&self) -> Option<&str> {
        self.0.checksum.as_deref()
    }

    /// Data rows read, from `readFrom` on.
    async fn rows_read(&self) -> i64 {
        self.0.rows_read
    }

    /// Byte offset the file was read from: 0 for the whole file; the size of the last
    /// loaded status file when this one had only grown by rows appended to it (the rows
    /// before are stored already).
    async fn read_from(&self) -> i64 {
        self.0.read_from
    }

    /// Polls added, or rows of the new business-hours or time-zone snapshot.
    async fn rows_inserted(&self) -> i64 {
        self.0.rows_inserted
    }

    /// Rows that could not be read.
    async fn rows_rejected(&self) -> i64 {
        self.0.rows_rejected
    }

    /// Whether it changed the data.
    async fn changed(&self) -> bool {
        self.0.changed
    }

    /// Why it failed.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }

    /// When it started.
    async fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }

    /// When it ended.
    async fn finished_at(&self) -> DateTime<Utc> {
        self.0.finished_at
    }

    /// The rows it rejected, by line.
    async fn rejected_rows(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many, at most 1000 (default 20).", default = 20)] first: i32,
    ) -> async_graphql::Result<Vec<RejectedRow>> {
        let limit = page_size(Some(first))?;
        let state = ctx.data_unchecked::<AppState>();
        let mut conn = state.pool.acquire().await.map_err(ApiError::from)?;
        let rows = crate::db::loads::rejected_of(&mut conn, self.0.id, &self.0.file, limit)
            .await
            .map_err(ApiError::from)?;
        Ok(rows
            .into_iter()
            .map(|r| RejectedRow {
                line: r.line as i64,
                reason: r.reason,
                raw: r.raw,
            })
            .collect())
    }
}

/// A row of an input file that could not be read.
#[derive(SimpleObject, Debug, Clone)]
pub struct RejectedRow {
    /// 1-based line in the file (the header is line 1).
    pub line: i64,
    /// Why it was rejected.
    pub reason: String,
    /// The row's fields, joined by commas.
    pub raw: String,
}

pub struct DataLoad {
    pub files: Vec<LoadRecord>,
    pub data_version: i64,
}

/// What a reload did.
#[Object]
impl DataLoad {
    /// One load per input file found.
    async fn files(&self) -> Vec<FileLoad> {
        self.files.iter().cloned().map(FileLoad).collect()
    }

    /// Whether any file changed the data.
    async fn changed(&self) -> bool {
        self.files.iter().any(|f| f.changed)
    }

    /// The data version after the reload.
    async fn data_version(&self) -> i64 {
        self.data_version
    }
}

pub struct Dataset;

/// The data in the database.
#[Object]
impl Dataset {
    /// Stores seen in any input file.
    async fn stores(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        scalar(ctx, "SELECT count(*) FROM stores").await
    }

    /// Stores with at least one poll.
    async fn polled_stores(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        scalar(ctx, "SELECT count(*) FROM stores WHERE first_poll IS NOT NULL").await
    }

    /// Polls stored (every poll was added by a load, so this adds up the loads).
    async fn polls(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        scalar(
            ctx,
            "SELECT coalesce(sum(rows_inserted), 0)::bigint FROM data_loads WHERE kind = 'status' AND outcome = 'loaded'",
        )
        .await
    }

    /// Business-hours rows.
    async fn business_hours(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        scalar(ctx, "SELECT count(*) FROM business_hours").await
    }

    /// Stores with a time zone.
    async fn timezones(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        scalar(ctx, "SELECT count(*) FROM timezones").await
    }

    /// The newest poll: a report's default *now*.
    async fn newest_poll(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<DateTime<Utc>>> {
        let state = ctx.data_unchecked::<AppState>();
        let mut conn = state.pool.acquire().await.map_err(ApiError::from)?;
        let newest = crate::db::loads::newest_poll(&mut conn)
            .await
            .map_err(ApiError::from)?;
        Ok(newest.and_then(domain::Timestamp::to_datetime))
    }

    /// Changes exactly when a load changes the data.
    async fn data_version(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let state = ctx.data_unchecked::<AppState>();
        let mut conn = state.pool.acquire().await.map_err(ApiError::from)?;
        Ok(crate::db::loads::data_version(&mut conn)
            .await
            .map_err(ApiError::from)?)
    }

    /// The latest loads, newest first, with their rejected rows.
    async fn loads(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many, at most 1000 (default 10).", default = 10)] first: i32,
    ) -> async_graphql::Result<Vec<FileLoad>> {
        let limit = page_size(Some(first))?;
        let state = ctx.data_unchecked::<AppState>();
        let mut conn = state.pool.acquire().await.map_err(ApiError::from)?;
        let loads = crate::db::loads::recent(&mut conn, limit)
            .await
            .map_err(ApiError::from)?;
        Ok(loads.into_iter().map(FileLoad).collect())
    }
}

async fn scalar(ctx: &Context<'_>, sql: &'static str) -> async_graphql::Result<i64> {
    let state = ctx.data_unchecked::<AppState>();
    let n: i64 = sqlx::query_scalar(sql)
        .fetch_one(&state.pool)
        .await
        .map_err(ApiError::from)?;
    Ok(n)
}
