//! The GraphQL types of the data reports are computed from: the dataset and its loads.

use async_graphql::{Context, Enum, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{null_on_error, page_size};
use crate::service::{self, AppState, FileKind, LoadRecord, Tally};

/// The kind of an input file.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
#[graphql(remote = "FileKind")]
pub enum DataFileKind {
    /// Polls: store_id, status, timestamp_utc.
    Status,
    /// Business hours: store_id, dayOfWeek, start_time_local, end_time_local.
    Hours,
    /// Time zones: store_id, timezone_str.
    Timezones,
    /// Store groups: store_id, group (a store may be in several).
    Groups,
}

/// What came of loading a file.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
#[graphql(remote = "service::LoadOutcome")]
pub enum LoadOutcome {
    /// Read and applied.
    Loaded,
    /// The same bytes as its last successful load: skipped.
    Unchanged,
    /// Nothing applied: see `error`.
    Failed,
}

pub struct FileLoadNode(pub LoadRecord);

/// One load of one input file.
#[Object(name = "FileLoad")]
impl FileLoadNode {
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

    /// The file's xxh3-128 checksum, in hex.
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

    /// Polls added, or rows of the new business-hours, time-zone or store-groups snapshot.
    async fn rows_inserted(&self) -> i64 {
        self.0.rows_inserted
    }

    /// Polls removed by `deletePolls` (its loads have no file).
    async fn rows_deleted(&self) -> i64 {
        self.0.rows_deleted
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
        let rows = service::rejected_rows(state, &self.0, limit).await?;
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

pub struct DataLoadNode {
    pub files: Vec<LoadRecord>,
    pub data_version: i64,
}

/// What a reload did.
#[Object(name = "DataLoad")]
impl DataLoadNode {
    /// One load per input file found.
    async fn files(&self) -> Vec<FileLoadNode> {
        self.files.iter().cloned().map(FileLoadNode).collect()
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

pub struct DatasetNode;

/// The data in the database: for a token scoped to store groups, of its groups' stores
/// (and no loads or prunings, which are the fleet's).
#[Object(name = "Dataset")]
impl DatasetNode {
    /// Stores seen in any input file.
    async fn stores(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        tally(ctx, Tally::Stores).await
    }

    /// Stores with at least one poll.
    async fn polled_stores(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        tally(ctx, Tally::PolledStores).await
    }

    /// Polls stored (every poll was added by a load and removed by a pruning, so this adds
    /// up the loads and takes away the prunings).
    async fn polls(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        tally(ctx, Tally::Polls).await
    }

    /// Business-hours rows.
    async fn business_hours(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        tally(ctx, Tally::BusinessHours).await
    }

    /// Stores with a time zone.
    async fn timezones(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        tally(ctx, Tally::Timezones).await
    }

    /// The newest poll: a report's default *now*.
    async fn newest_poll(&self, ctx: &Context<'_>) -> Option<DateTime<Utc>> {
        let state = ctx.data_unchecked::<AppState>();
        let newest = service::newest_poll_seen(state, &super::caller(ctx)).await;
        null_on_error(ctx, newest)?
    }

    /// The oldest poll stored. Once old polls were pruned (`pollsKeptFrom`), the oldest of
    /// the stores' last polls kept from before that.
    async fn oldest_poll(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<DateTime<Utc>>> {
        let state = ctx.data_unchecked::<AppState>();
        Ok(service::oldest_poll(state, &super::caller(ctx)).await?)
    }

    /// Where complete history begins: `--keep-polls-days` pruned the polls before this
    /// instant, keeping each store's last one. Reports, uptimes and timelines that would
    /// read earlier polls are refused. Null: no poll was ever pruned.
    async fn polls_kept_from(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<DateTime<Utc>>> {
        let state = ctx.data_unchecked::<AppState>();
        Ok(service::polls_kept_from(state).await?)
    }

    /// The latest prunings of old polls (a week at a time), newest first.
    async fn prunings(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many, at most 1000 (default 10).", default = 10)] first: i32,
    ) -> async_graphql::Result<Vec<PollPruning>> {
        let limit = page_size(Some(first))?;
        let state = ctx.data_unchecked::<AppState>();
        let prunings = service::prunings(state, &super::caller(ctx), limit).await?;
        Ok(prunings.into_iter().map(PollPruning::from).collect())
    }

    /// Changes exactly when a load changes the data.
    async fn data_version(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let state = ctx.data_unchecked::<AppState>();
        Ok(service::data_version(state).await?)
    }

    /// The latest loads, newest first, with their rejected rows.
    async fn loads(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many, at most 1000 (default 10).", default = 10)] first: i32,
    ) -> async_graphql::Result<Vec<FileLoadNode>> {
        let limit = page_size(Some(first))?;
        let state = ctx.data_unchecked::<AppState>();
        let loads = service::loads(state, &super::caller(ctx), limit).await?;
        Ok(loads.into_iter().map(FileLoadNode).collect())
    }
}

/// A week of old polls pruned by `--keep-polls-days`.
#[derive(SimpleObject)]
pub struct PollPruning {
    /// When it was done.
    pub finished_at: DateTime<Utc>,
    /// The week whose partition went: its Monday, 00:00 UTC.
    pub week: DateTime<Utc>,
    /// Where complete history began after it.
    pub kept_from: DateTime<Utc>,
    /// Polls removed: the week's, but each store's last one before `keptFrom`.
    pub polls_removed: i64,
    /// The newest poll then: the retention counts back from it.
    pub newest_poll: DateTime<Utc>,
    /// The `--keep-polls-days` it pruned for.
    pub keep_days: i32,
}

impl From<service::PruningRecord> for PollPruning {
    fn from(r: service::PruningRecord) -> Self {
        PollPruning {
            finished_at: r.finished_at,
            week: r.week,
            kept_from: r.kept_from,
            polls_removed: r.polls,
            newest_poll: r.newest_poll,
            keep_days: r.keep_days,
        }
    }
}

async fn tally(ctx: &Context<'_>, what: Tally) -> async_graphql::Result<i64> {
    let state = ctx.data_unchecked::<AppState>();
    Ok(service::tally(state, &super::caller(ctx), what).await?)
}
