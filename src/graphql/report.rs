//! The GraphQL types of a report (SPEC §3).

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::error::ApiError;
use super::{null_on_error, page, page_size};
use crate::domain::{self, ReportRecord};
use crate::service::{self, AppState};

/// How a store's status is read between its polls.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq, Default)]
#[graphql(remote = "domain::Interpolation")]
pub enum Interpolation {
    /// Every instant takes the status of the nearest poll; the switch is halfway between
    /// two polls.
    #[default]
    Nearest,
    /// A poll's status holds until the next poll.
    ForwardFill,
}

/// Where a report is in its life.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
#[graphql(remote = "domain::ReportStatus")]
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

pub struct ReportNode(pub ReportRecord);

/// An uptime report: per store, uptime and downtime within business hours over the last
/// hour (minutes), day and week (hours).
#[Object(name = "Report")]
impl ReportNode {
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
        self.0.interpolation.into()
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
        self.0.progress()
    }

    /// Why it FAILED.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }

    /// Where to download the CSV, once COMPLETE: a path on this server, signed for the
    /// caller and good for 15 minutes, that works without a token (a link, `curl -O`).
    /// Ask again for a fresh one.
    async fn csv_url(&self, ctx: &Context<'_>) -> Option<String> {
        let state = ctx.data_unchecked::<AppState>();
        (self.0.status == domain::ReportStatus::Complete)
            .then(|| service::auth::report_link(state, self.0.id, &super::caller(ctx)))
    }

    /// The whole CSV, once COMPLETE.
    async fn csv(&self, ctx: &Context<'_>) -> Option<String> {
        if self.0.status != domain::ReportStatus::Complete {
            return None;
        }
        let state = ctx.data_unchecked::<AppState>();
        let csv = service::report_csv(state, &self.0).await.map_err(ApiError::from);
        null_on_error(ctx, csv)
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
        if self.0.status != domain::ReportStatus::Complete {
            return Ok(Connection::new(false, false));
        }
        let state = ctx.data_unchecked::<AppState>();
        let store_id = store_id.as_ref().map(|s| s.as_str());
        let rows = service::report_rows(state, &self.0, limit + 1, after.as_deref(), store_id)
            .await
            .map_err(ApiError::from)?;
        Ok(page(rows, limit, after.is_some(), |r| {
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
            (r.store_id, node)
        }))
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
