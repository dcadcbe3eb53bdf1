//! The GraphQL types of a report (SPEC §3).

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{null_on_error, page_size, page_with};
use crate::domain::report::Rounded;
use crate::domain::{self, ReportRecord};
use crate::service::{self, AppState, Error, Figure, RowFilter, RowOrder, RowPage, RowRecord};

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
    /// Stopped by `cancelReport` before it finished: it has no result.
    Cancelled,
}

/// Which reports a list keeps.
#[derive(InputObject, Debug, Default, Clone, Copy)]
pub struct ReportsFilter {
    /// Only reports in this status.
    pub status: Option<ReportStatus>,
    /// Only reports read with this interpolation.
    pub interpolation: Option<Interpolation>,
}

impl From<ReportsFilter> for service::ReportFilter {
    fn from(filter: ReportsFilter) -> Self {
        service::ReportFilter {
            status: filter.status.map(Into::into),
            interpolation: filter.interpolation.map(Into::into),
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

pub struct ReportNode(pub ReportRecord, ScopedTotal);

/// A scoped caller's `storesTotal`, counted once however many fields of the report ask.
type ScopedTotal = tokio::sync::OnceCell<Option<i32>>;

impl ReportNode {
    pub fn new(record: ReportRecord) -> Self {
        ReportNode(record, ScopedTotal::new())
    }
}

/// An uptime report: per store, uptime and downtime within business hours over the last
/// hour (minutes), day and week (hours).
#[Object(name = "Report")]
impl ReportNode {
    /// The report's id: a UUID.
    pub(crate) async fn id(&self) -> ID {
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

    /// When it finished: became COMPLETE, FAILED or CANCELLED.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }

    /// How many stores the report has a row for, known once RUNNING; for a token scoped to
    /// store groups, its stores' rows, known once COMPLETE.
    async fn stores_total(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<i32>> {
        let state = ctx.data_unchecked::<AppState>();
        let caller = super::caller(ctx);
        if caller.groups().is_none() {
            return Ok(self.0.stores_total);
        }
        let total = self
            .1
            .get_or_try_init(|| service::report_stores_total(state, &caller, &self.0))
            .await?;
        Ok(*total)
    }

    /// How many stores are computed so far (for a scoped token: 0, then `storesTotal` once
    /// COMPLETE).
    async fn stores_done(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        if super::caller(ctx).groups().is_none() {
            return Ok(self.0.stores_done);
        }
        Ok(self.stores_total(ctx).await?.unwrap_or(0))
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
        let csv = service::report_csv(state, &super::caller(ctx), &self.0).await;
        null_on_error(ctx, csv)
    }

    /// The report's rows, a page at a time (empty until COMPLETE): in store-id order, or by
    /// any figure (`orderBy`), the ones that pass `filter`. `totalCount` counts those.
    async fn rows(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, at most 1000 (default 100).")] first: Option<i32>,
        #[graphql(desc = "The cursor of the row to start after (from a page in the same order).")]
        after: Option<String>,
        #[graphql(desc = "Only the row of this store (as `filter: { storeIds: [...] }`).")] store_id: Option<
            ID,
        >,
        #[graphql(
            desc = "The order: by store id (default) or a figure, ascending or descending; ties by store id in the same direction."
        )]
        order_by: Option<ReportRowOrder>,
        #[graphql(desc = "Only these stores, and each figure within a range.")] filter: Option<
            ReportRowFilter,
        >,
    ) -> async_graphql::Result<Connection<String, ReportRow, RowCount>> {
        let limit = page_size(first)?;
        let order = order_by.unwrap_or_default();
        let mut filter = filter.unwrap_or_default().into_filter()?;
        if let Some(store) = store_id {
            filter.store_ids.get_or_insert_with(Vec::new).push(store.0);
        }
        let key = order.field.key();
        // A cursor carries its report and order: one of another is refused.
        let list = format!("rows:{}:{:?}:{:?}", self.0.id, order.field, order.direction);
        let after = after
            .as_deref()
            .map(|c| parse_row_cursor(c, &list, key))
            .transpose()?;
        let page = RowPage {
            order: key,
            descending: order.direction == OrderDirection::Desc,
            after: after.as_ref().map(|(figure, store)| (*figure, store.as_str())),
            limit: limit + 1,
        };
        let state = ctx.data_unchecked::<AppState>();
        let caller = super::caller(ctx);
        let total_count = if ctx.look_ahead().field("totalCount").exists() {
            service::count_report_rows(state, &caller, &self.0, &filter).await?
        } else {
            0
        };
        let rows = service::report_rows(state, &caller, &self.0, &filter, &page).await?;
        Ok(page_with(
            rows,
            limit,
            after.is_some(),
            RowCount { total_count },
            |r| {
                (
                    super::cursor::encode(&list, &row_key(key, &r)),
                    ReportRow::of(self.0.id, &r.store_id, r.figures),
                )
            },
        ))
    }
}

/// How many rows a `rows` query matches, all pages together.
#[derive(SimpleObject, Debug, Default)]
pub struct RowCount {
    /// The rows that pass the filter, on every page.
    pub total_count: i64,
}

/// What a report's rows can be ordered by.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq, Default)]
pub enum ReportRowField {
    /// The store id, byte by byte (the CSV's order).
    #[default]
    StoreId,
    /// Minutes up in the last hour.
    UptimeLastHour,
    /// Hours up in the last day.
    UptimeLastDay,
    /// Hours up in the last week.
    UptimeLastWeek,
    /// Minutes down in the last hour.
    DowntimeLastHour,
    /// Hours down in the last day.
    DowntimeLastDay,
    /// Hours down in the last week.
    DowntimeLastWeek,
}

impl ReportRowField {
    fn key(self) -> RowOrder {
        match self {
            ReportRowField::StoreId => RowOrder::StoreId,
            ReportRowField::UptimeLastHour => RowOrder::Figure(Figure::UptimeLastHour),
            ReportRowField::UptimeLastDay => RowOrder::Figure(Figure::UptimeLastDay),
            ReportRowField::UptimeLastWeek => RowOrder::Figure(Figure::UptimeLastWeek),
            ReportRowField::DowntimeLastHour => RowOrder::Figure(Figure::DowntimeLastHour),
            ReportRowField::DowntimeLastDay => RowOrder::Figure(Figure::DowntimeLastDay),
            ReportRowField::DowntimeLastWeek => RowOrder::Figure(Figure::DowntimeLastWeek),
        }
    }
}

/// Which way a list runs.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq, Default)]
pub enum OrderDirection {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first: `DOWNTIME_LAST_WEEK` `DESC` lists the worst stores first.
    Desc,
}

/// The order of a report's rows.
#[derive(InputObject, Debug, Default, Clone, Copy)]
pub struct ReportRowOrder {
    /// What to order by (default: the store id).
    #[graphql(default)]
    pub field: ReportRowField,
    /// Ascending (default) or descending; ties by store id, in the same direction.
    #[graphql(default)]
    pub direction: OrderDirection,
}

/// A range of a figure, in its unit (minutes for the last hour, hours for the day and
/// week); both ends included, either may be left out.
#[derive(InputObject, Debug, Default, Clone, Copy)]
pub struct FigureRange {
    /// The smallest value kept.
    pub min: Option<f64>,
    /// The largest value kept.
    pub max: Option<f64>,
}

/// Which of a report's rows to keep.
#[derive(InputObject, Debug, Default)]
pub struct ReportRowFilter {
    /// Only these stores (at most 1000 ids).
    pub store_ids: Option<Vec<String>>,
    /// Minutes up in the last hour within this range.
    pub uptime_last_hour: Option<FigureRange>,
    /// Hours up in the last day within this range.
    pub uptime_last_day: Option<FigureRange>,
    /// Hours up in the last week within this range.
    pub uptime_last_week: Option<FigureRange>,
    /// Minutes down in the last hour within this range.
    pub downtime_last_hour: Option<FigureRange>,
    /// Hours down in the last day within this range.
    pub downtime_last_day: Option<FigureRange>,
    /// Hours down in the last week within this range.
    pub downtime_last_week: Option<FigureRange>,
}

impl ReportRowFilter {
    fn into_filter(self) -> Result<RowFilter, Error> {
        let ranges = [
            (Figure::UptimeLastHour, self.uptime_last_hour),
            (Figure::UptimeLastDay, self.uptime_last_day),
            (Figure::UptimeLastWeek, self.uptime_last_week),
            (Figure::DowntimeLastHour, self.downtime_last_hour),
            (Figure::DowntimeLastDay, self.downtime_last_day),
            (Figure::DowntimeLastWeek, self.downtime_last_week),
        ];
        let mut filter = RowFilter::default();
        filter.store_ids = self.store_ids;
        for (figure, range) in ranges {
            if let Some(range) = range {
                filter.range(
                    figure,
                    hundredths(range.min, f64::ceil)?,
                    hundredths(range.max, f64::floor)?,
                );
            }
        }
        Ok(filter)
    }
}

/// A range's end in the stored unit (hundredths), rounded inward (`ceil` for a minimum,
/// `floor` for a maximum) unless it is a whole number of hundredths give or take float
/// noise: 0.3 is 30, not 31.
fn hundredths(value: Option<f64>, inward: fn(f64) -> f64) -> Result<i32, Error> {
    let Some(value) = value else {
        return Ok(if inward(0.5) == 1.0 { i32::MIN } else { i32::MAX });
    };
    if !value.is_finite() {
        return Err(Error::BadInput(format!("{value} is not a figure")));
    }
    let scaled = value * 100.0;
    let nearest = scaled.round();
    let stored = if (scaled - nearest).abs() < 1e-6 {
        nearest
    } else {
        inward(scaled)
    };
    Ok(stored.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32)
}

/// A row's key in its order: its store id in store-id order, else the figure's stored value
/// and the store id.
fn row_key(order: RowOrder, row: &RowRecord) -> String {
    match order {
        RowOrder::StoreId => row.store_id.clone(),
        RowOrder::Figure(figure) => format!("{}:{}", row.figures.get(figure), row.store_id),
    }
}

/// The row a cursor of `list` (a report's rows in one order) points at: its figure (0 in
/// store-id order) and store id.
fn parse_row_cursor(cursor: &str, list: &str, order: RowOrder) -> Result<(i32, String), Error> {
    let key = super::cursor::decode(cursor, list)?;
    match order {
        RowOrder::StoreId => Ok((0, key)),
        RowOrder::Figure(_) => {
            let bad = || Error::BadInput(format!("{cursor:?} is not a cursor of rows in this order"));
            let (value, store) = key.split_once(':').ok_or_else(bad)?;
            Ok((value.parse().map_err(|_| bad())?, store.to_string()))
        }
    }
}

/// A row of a report: one store's figures in it.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct ReportRow {
    /// The row's global id (`ReportRow:<report id>:<store id>`): unique across reports,
    /// for normalised caches; `node(id:)` reads it back.
    #[graphql(owned)]
    pub id: ID,
    /// The store and its figures.
    #[graphql(flatten)]
    pub figures: StoreUptime,
}

impl ReportRow {
    pub(crate) fn of(report: uuid::Uuid, store_id: &str, figures: Rounded) -> ReportRow {
        ReportRow {
            id: ID(format!("{ROW_PREFIX}{report}:{store_id}")),
            figures: StoreUptime::of(store_id, figures),
        }
    }
}

/// How a report row's global id starts.
pub(crate) const ROW_PREFIX: &str = "ReportRow:";

impl StoreUptime {
    pub(crate) fn of(store_id: &str, figures: Rounded) -> StoreUptime {
        let [uh, ud, uw, dh, dd, dw] = figures.values();
        StoreUptime {
            store_id: ID(store_id.to_string()),
            uptime_last_hour: uh,
            uptime_last_day: ud,
            uptime_last_week: uw,
            downtime_last_hour: dh,
            downtime_last_day: dd,
            downtime_last_week: dw,
        }
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
