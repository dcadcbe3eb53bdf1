//! The GraphQL types of one store: what the input files say of it, and its polls.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::incident::{self, IncidentCount, IncidentNode, IncidentOrder};
use super::report::{Interpolation, StoreUptime};
use super::{cursor, page, page_size};
use crate::domain::{HoursRow, Ticks};
use crate::service::{self, AppState, Error, IncidentFilter, StoreInfo};

pub struct StoreNode(pub StoreInfo);

/// How a store's global id starts.
pub(crate) const STORE_PREFIX: &str = "Store:";

/// A store, as the input files describe it and the reports read it.
#[Object(name = "Store")]
impl StoreNode {
    /// The store's global id (`Store:<store id>`), for normalised caches; `node(id:)`
    /// reads it back.
    pub(crate) async fn id(&self) -> ID {
        ID(format!("{STORE_PREFIX}{}", self.0.record.store_id))
    }

    /// The store's id, as the input files spell it.
    async fn store_id(&self) -> ID {
        ID(self.0.record.store_id.clone())
    }

    /// The IANA time zone its business hours are read in.
    async fn timezone(&self) -> &'static str {
        self.0.zone.name()
    }

    /// Whether that zone is the default (America/Chicago): the time-zone file has no row
    /// for the store, or one naming no known zone.
    async fn timezone_defaulted(&self) -> bool {
        self.0.zone_defaulted
    }

    /// Its weekly business hours as loaded, by day; empty means open around the clock.
    async fn business_hours(&self) -> Vec<BusinessHours> {
        self.0.hours.iter().map(BusinessHours::from).collect()
    }

    /// Whether the hours are the default, open around the clock: the business-hours file
    /// has no row for the store.
    async fn business_hours_defaulted(&self) -> bool {
        self.0.hours.is_empty()
    }

    /// Its six figures, computed now by the same engine as a report's row with this `asOf`
    /// and interpolation (equal to that row); null when it has no poll at or before the
    /// report's *now*.
    async fn uptime(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The report's *now*; default: the newest poll.")] as_of: Option<DateTime<Utc>>,
        #[graphql(desc = "How status is read between polls.", default)] interpolation: Interpolation,
    ) -> async_graphql::Result<Option<StoreUptime>> {
        let state = ctx.data_unchecked::<AppState>();
        let figures = service::store_uptime(state, &self.0, as_of, interpolation.into()).await?;
        Ok(figures.map(|f| StoreUptime::of(&self.0.record.store_id, f)))
    }

    /// The pieces its figures are made of: `[from, to)` (default: the week before the
    /// report's *now*) cut where being open or its interpolated status changes, in order,
    /// without gaps or overlaps. Summing the open, ACTIVE pieces of the last hour, day and
    /// week gives exactly `uptime`'s figures before rounding: instants are exact (NEAREST
    /// switches halfway between polls, which may fall on half a microsecond). Empty when
    /// it has no poll at or before *now*; at most 31 days at once.
    async fn timeline(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The report's *now*; default: the newest poll.")] as_of: Option<DateTime<Utc>>,
        #[graphql(desc = "Where the timeline starts; default: a week before `to`.")] from: Option<
            DateTime<Utc>,
        >,
        #[graphql(desc = "Where it ends; default: the report's *now*.")] to: Option<DateTime<Utc>>,
        #[graphql(desc = "How status is read between polls.", default)] interpolation: Interpolation,
    ) -> async_graphql::Result<Vec<TimelineSegment>> {
        let state = ctx.data_unchecked::<AppState>();
        let segments =
            service::store_timeline(state, &self.0, as_of, (from, to), interpolation.into()).await?;
        Ok(segments
            .into_iter()
            .map(|s| TimelineSegment {
                // Ticks are half-microseconds.
                start: Ticks(s.span.start).to_datetime(),
                end: Ticks(s.span.end).to_datetime(),
                open: s.open,
                status: if s.active {
                    StoreStatus::Active
                } else {
                    StoreStatus::Inactive
                },
            })
            .collect())
    }

    /// Its incidents, newest first, a page at a time.
    async fn incidents(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only open (true) or resolved (false) incidents.")] open: Option<bool>,
        #[graphql(desc = "Page size, at most 1000 (default 100).")] first: Option<i32>,
        #[graphql(desc = "The cursor of the incident to start after.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, IncidentNode, IncidentCount>> {
        let filter = IncidentFilter {
            open,
            store_ids: Some(vec![self.0.record.store_id.clone()]),
            since: None,
            groups: None,
        };
        incident::incidents(ctx, filter, IncidentOrder::NewestFirst, first, after).await
    }

    /// Its polls, oldest first, a page at a time.
    async fn polls(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only polls at or after this instant.")] from: Option<DateTime<Utc>>,
        #[graphql(desc = "Only polls before this instant.")] to: Option<DateTime<Utc>>,
        #[graphql(desc = "Page size, at most 1000 (default 100).")] first: Option<i32>,
        #[graphql(desc = "The cursor of the poll to start after.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Poll>> {
        let limit = page_size(first)?;
        // A cursor carries its store: one of another store's polls is refused.
        let list = format!("polls:{}", self.0.record.store_id);
        let after_at = after
            .as_deref()
            .map(|c| {
                let key = cursor::decode(c, &list)?;
                DateTime::parse_from_rfc3339(&key)
                    .map(|at| at.with_timezone(&Utc))
                    .map_err(|_| Error::BadInput(format!("{c:?} is not a cursor of this list")))
            })
            .transpose()?;
        let state = ctx.data_unchecked::<AppState>();
        let polls = service::store_polls(state, &self.0.record, from, to, after_at, limit + 1).await?;
        Ok(page(polls, limit, after_at.is_some(), |p| {
            let node = Poll {
                at: p.at,
                status: if p.active {
                    StoreStatus::Active
                } else {
                    StoreStatus::Inactive
                },
            };
            let key = p.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            (cursor::encode(&list, &key), node)
        }))
    }
}

/// A piece of a store's timeline: throughout it, the store was open or not, and up or not.
#[derive(SimpleObject, Debug, Clone)]
pub struct TimelineSegment {
    /// Where it starts (included).
    pub start: DateTime<Utc>,
    /// Where it ends (excluded): the next piece's start.
    pub end: DateTime<Utc>,
    /// Inside business hours.
    pub open: bool,
    /// The status interpolated from the polls (SPEC §2).
    pub status: StoreStatus,
}

/// Whether a store was up.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum StoreStatus {
    /// Up: taking orders.
    Active,
    /// Down.
    Inactive,
}

/// One poll of a store.
#[derive(SimpleObject, Debug, Clone)]
pub struct Poll {
    /// When it was polled.
    pub at: DateTime<Utc>,
    /// What the poll found.
    pub status: StoreStatus,
}

/// A day of the week.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum Weekday {
    /// Day 0 of the input files.
    Monday,
    /// Day 1.
    Tuesday,
    /// Day 2.
    Wednesday,
    /// Day 3.
    Thursday,
    /// Day 4.
    Friday,
    /// Day 5.
    Saturday,
    /// Day 6.
    Sunday,
}

/// One row of a store's weekly hours, in its local time.
#[derive(SimpleObject, Debug, Clone)]
pub struct BusinessHours {
    /// The day it opens.
    pub day: Weekday,
    /// When it opens (`HH:MM:SS`, with microseconds when there are any).
    pub start: String,
    /// When it closes: at or before `start` means the next day, `23:59` and later the
    /// day's closing midnight.
    pub end: String,
}

impl From<&HoursRow> for BusinessHours {
    fn from(row: &HoursRow) -> Self {
        let day = match row.day.number() {
            0 => Weekday::Monday,
            1 => Weekday::Tuesday,
            2 => Weekday::Wednesday,
            3 => Weekday::Thursday,
            4 => Weekday::Friday,
            5 => Weekday::Saturday,
            _ => Weekday::Sunday,
        };
        BusinessHours {
            day,
            start: row.start.to_string(),
            end: row.end.to_string(),
        }
    }
}
