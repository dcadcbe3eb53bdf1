//! The GraphQL API: queries, mutations and the report subscription, built by one function
//! that the server, the tests and the SDL export share.

pub mod error;
pub mod types;

use std::time::Duration;

use async_graphql::connection::{Connection, Edge};
use async_graphql::futures_util::Stream;
use async_graphql::{Context, ID, Object, Schema, Subscription};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::reports::{self, ReportRecord};
use crate::service::{self, AppState};
use error::ApiError;
use types::{DataLoad, Dataset, Report, TriggerReportInput};

/// The schema type.
pub type AppSchema = Schema<Query, Mutation, SubscriptionRoot>;

/// The largest page any list returns.
pub const MAX_PAGE: i32 = 1000;
/// How deep a query may nest, and how many fields it may ask for: enough for any real
/// client, too little to take the server down.
const MAX_DEPTH: usize = 10;
const MAX_COMPLEXITY: usize = 500;
/// A subscription re-reads its report this often too, in case a notification was lost.
const RECHECK: Duration = Duration::from_secs(5);

/// The schema, serving `state`.
pub fn schema(state: AppState) -> AppSchema {
    Schema::build(Query, Mutation, SubscriptionRoot)
        .data(state)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(async_graphql::extensions::Tracing)
        .extension(error::ErrorCodes)
        .finish()
}

/// The schema's types alone, with nothing to serve (for the SDL and introspection).
pub fn bare_schema() -> AppSchema {
    Schema::build(Query, Mutation, SubscriptionRoot).finish()
}

/// The SDL of the schema, as committed in `schema.graphql`.
pub fn sdl() -> String {
    bare_schema().sdl()
}

/// `first` checked against the page limit.
pub(crate) fn page_size(first: Option<i32>) -> Result<i64, ApiError> {
    match first {
        None => Ok(100),
        Some(n) if (0..=MAX_PAGE).contains(&n) => Ok(i64::from(n)),
        Some(n) => Err(ApiError::BadInput(format!(
            "first must be between 0 and {MAX_PAGE}, not {n}"
        ))),
    }
}

fn parse_id(id: &ID) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id)
        .map_err(|_| ApiError::BadInput(format!("{:?} is not a report id (a UUID)", id.as_str())))
}

async fn find_report(state: &AppState, id: &ID) -> Result<ReportRecord, ApiError> {
    let uuid = parse_id(id)?;
    service::get_report(state, uuid)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no report with id {uuid}")))
}

pub struct Query;

/// What can be read: reports and the data they are computed from.
#[Object]
impl Query {
    /// A report by id.
    async fn report(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The report's id, as triggerReport returned it.")] id: ID,
    ) -> async_graphql::Result<Option<Report>> {
        let state = ctx.data_unchecked::<AppState>();
        Ok(Some(Report(find_report(state, &id).await?)))
    }

    /// Reports, newest first.
    async fn reports(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, at most 1000 (default 100).")] first: Option<i32>,
        #[graphql(desc = "The cursor of the report to start after.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Report>> {
        let limit = page_size(first)?;
        let cursor = after.as_deref().map(parse_cursor).transpose()?;
        let state = ctx.data_unchecked::<AppState>();
        let mut conn = state.pool.acquire().await.map_err(ApiError::from)?;
        let mut records = reports::list(&mut conn, limit + 1, cursor)
            .await
            .map_err(ApiError::from)?;
        let has_next = records.len() as i64 > limit;
        records.truncate(limit as usize);
        let mut page = Connection::new(after.is_some(), has_next);
        page.edges.extend(records.into_iter().map(|r| {
            let cursor = format!("{}|{}", r.created_at.to_rfc3339(), r.id);
            Edge::new(cursor, Report(r))
        }));
        Ok(page)
    }

    /// The data in the database: row counts, newest poll, the latest loads.
    async fn dataset(&self) -> Dataset {
        Dataset
    }
}

fn parse_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let bad = || ApiError::BadInput(format!("{cursor:?} is not a cursor of this list"));
    let (at, id) = cursor.split_once('|').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at)
        .map_err(|_| bad())?
        .with_timezone(&Utc);
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

pub struct Mutation;

/// What can be done: compute a report, reload the data.
#[Object]
impl Mutation {
    /// Queues a report and returns it at once (PENDING, or COMPLETE when an equal report
    /// is already finished). Follow it with the `report` subscription or query.
    async fn trigger_report(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to compute; default: as of the newest poll, NEAREST.")] input: Option<
            TriggerReportInput,
        >,
    ) -> async_graphql::Result<Report> {
        let state = ctx.data_unchecked::<AppState>();
        let input = input.unwrap_or_default();
        let record =
            service::trigger_report(state, input.interpolation.unwrap_or_default().into(), input.as_of)
                .await
                .map_err(ApiError::Internal)?;
        Ok(Report(record))
    }

    /// Reloads the input files now (as the schedule does), and says what it did.
    async fn reload_data(&self, ctx: &Context<'_>) -> async_graphql::Result<DataLoad> {
        let state = ctx.data_unchecked::<AppState>();
        let reload = service::reload_now(state).await.map_err(ApiError::Internal)?;
        let mut conn = state.pool.acquire().await.map_err(ApiError::from)?;
        let ids: Vec<i64> = reload.files.iter().map(|f| f.load_id).collect();
        let files = crate::db::loads::by_ids(&mut conn, &ids)
            .await
            .map_err(ApiError::from)?;
        let data_version = crate::db::loads::data_version(&mut conn)
            .await
            .map_err(ApiError::from)?;
        Ok(DataLoad { files, data_version })
    }
}

pub struct SubscriptionRoot;

/// How far along a report is, to tell a newer state from a stale one.
fn progress_key(r: &ReportRecord) -> (u8, Option<DateTime<Utc>>, i32) {
    let stage = match r.status {
        reports::ReportStatus::Pending => 0,
        reports::ReportStatus::Running => 1,
        _ => 2,
    };
    (stage, r.started_at, r.stores_done)
}

/// What can be followed as it happens.
#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The report's current state, then each change; ends after COMPLETE or FAILED.
    /// Works whichever process runs the report.
    async fn report(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The report's id, as triggerReport returned it.")] id: ID,
    ) -> async_graphql::Result<impl Stream<Item = Report>> {
        let state = ctx.data_unchecked::<AppState>().clone();
        let uuid = parse_id(&id)?;
        // Listen before reading, so that no change falls between the two.
        let mut events = state.events.subscribe();
        let first = find_report(&state, &id).await?;
        Ok(async_stream::stream! {
            let mut last = first.clone();
            yield Report(first);
            while !last.status.is_final() {
                let next = tokio::select! {
                    event = events.recv() => match event {
                        Ok(record) if record.id == uuid => Some((*record).clone()),
                        Ok(_) => None,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            service::get_report(&state, uuid).await.ok().flatten()
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                    _ = tokio::time::sleep(RECHECK) => service::get_report(&state, uuid).await.ok().flatten(),
                };
                if let Some(next) = next
                    && progress_key(&next) > progress_key(&last)
                {
                    last = next.clone();
                    yield Report(next);
                }
            }
        })
    }
}
