//! One store's story: what the input files say of it, and its polls.

use chrono::{DateTime, Utc};

use super::auth::Caller;
use super::data::check_kept;
use super::{AppState, Error, Result, instant};
use crate::db::stores::{self, PollRecord, StoreRecord};
use crate::db::{loads, snapshot};
use crate::domain::report::Rounded;
use crate::domain::{Engine, HoursRow, Interpolation, Interval, Poll, Segment, Timestamp, Zone, reads_from};

/// A store as the reports see it.
#[derive(Clone, Debug)]
pub struct StoreInfo {
    pub record: StoreRecord,
    /// The zone its local times are read in.
    pub zone: Zone,
    /// Whether that zone is the default (America/Chicago): no row, or one naming no zone.
    pub zone_defaulted: bool,
    /// Its weekly hours as loaded; none means open around the clock.
    pub hours: Vec<HoursRow>,
}

/// The store `store_id`, if any input file has named it and `caller` sees it: a store
/// outside a scoped token's groups is `None`, as one that does not exist (which ids exist
/// is no one else's business).
pub async fn store(state: &AppState, caller: &Caller, store_id: &str) -> Result<Option<StoreInfo>> {
    check_store_id(store_id)?;
    let Some(record) = stores::by_store_id(&state.db, store_id).await? else {
        return Ok(None);
    };
    if let Some(groups) = caller.groups()
        && !stores::in_groups(&state.db, record.id, groups).await?
    {
        caller.asked_outside_scope(store_id);
        return Ok(None);
    }
    let hours = snapshot::hours_of_store(&state.db, record.id).await?;
    let named = snapshot::zone_of_store(&state.db, record.id).await?;
    // As a report reads it: a zone that does not parse is the default.
    let zone = named.and_then(|name| name.parse::<Zone>().ok());
    Ok(Some(StoreInfo {
        zone: zone.unwrap_or_default(),
        zone_defaulted: zone.is_none(),
        hours,
        record,
    }))
}

/// Up to `limit` of the store's polls in `[from, to)` after `after`, oldest first.
pub async fn store_polls(
    state: &AppState,
    store: &StoreRecord,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    after: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<PollRecord>> {
    let from = from.map(|at| instant("from", at)).transpose()?;
    let to = to.map(|at| instant("to", at)).transpose()?;
    let after = after.map(|at| instant("after", at)).transpose()?;
    Ok(stores::polls_of(&state.db, store.id, from, to, after, limit).await?)
}

/// The store's six figures, rounded as a report's row: the same engine, *now* as a report
/// with this `as_of` would have it (the newest poll when not given). `None` when the
/// store has no poll at or before *now*, as a report has no row for it.
pub async fn store_uptime(
    state: &AppState,
    store: &StoreInfo,
    as_of: Option<DateTime<Utc>>,
    interpolation: Interpolation,
) -> Result<Option<Rounded>> {
    let Some((now, until)) = report_now(state, as_of).await? else {
        return Ok(None);
    };
    let from = reads_from(now).to_datetime().unwrap_or(until);
    check_kept(&state.db, from, || {
        format!("the uptime as of {}", until.to_rfc3339())
    })
    .await?;
    let polls = engine_polls(state, store, from, until).await?;
    let uptime = Engine::new(now, interpolation).store(&polls, &store.hours, store.zone);
    Ok(uptime.as_ref().map(Rounded::from))
}

/// The longest timeline asked for at once.
pub const MAX_TIMELINE: chrono::TimeDelta = chrono::TimeDelta::days(31);

/// The pieces of `[from, to)` (default: the week before *now*) for the store, as a report
/// with this `as_of` and interpolation reads it; none without a poll at or before *now*.
pub async fn store_timeline(
    state: &AppState,
    store: &StoreInfo,
    as_of: Option<DateTime<Utc>>,
    span: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    interpolation: Interpolation,
) -> Result<Vec<Segment>> {
    let span = (
        span.0.map(|at| instant("from", at)).transpose()?,
        span.1.map(|at| instant("to", at)).transpose()?,
    );
    let Some((now, until)) = report_now(state, as_of).await? else {
        return Ok(Vec::new());
    };
    let to = span.1.unwrap_or(until);
    // Within the supported range, a week back cannot overflow.
    let from = span.0.unwrap_or(to - chrono::TimeDelta::weeks(1));
    if to <= from || to - from > MAX_TIMELINE {
        return Err(Error::BadInput(format!(
            "from must come before to, at most {} days apart",
            MAX_TIMELINE.num_days()
        )));
    }
    check_kept(&state.db, from, || "the timeline".to_string()).await?;
    let polls = engine_polls(state, store, from, until).await?;
    let span = Interval::new(Timestamp::from_datetime(from).0, Timestamp::from_datetime(to).0);
    Ok(Engine::new(now, interpolation).timeline(&polls, &store.hours, store.zone, span))
}

/// A report's *now* for this `as_of` (the newest poll when not given), as the engine and
/// as an instant; `None` before any poll.
async fn report_now(
    state: &AppState,
    as_of: Option<DateTime<Utc>>,
) -> Result<Option<(Timestamp, DateTime<Utc>)>> {
    let as_of = as_of.map(|at| instant("asOf", at)).transpose()?;
    let now = loads::report_now(&state.db, as_of.map(Timestamp::from_datetime)).await?;
    Ok(now.and_then(|now| Some((now, now.to_datetime()?))))
}

/// The store's polls the engine needs for figures from `from` to `until`.
async fn engine_polls(
    state: &AppState,
    store: &StoreInfo,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Poll>> {
    Ok(stores::polls_from(&state.db, store.record.id, from, until)
        .await?
        .into_iter()
        .map(|p| Poll {
            at: Timestamp::from_datetime(p.at),
            active: p.active,
        })
        .collect())
}

/// A store id as a client wrote it: one no store can have (a NUL, which PostgreSQL's text
/// cannot hold, or over [`MAX_STORE_ID_BYTES`](crate::domain::store_id::MAX_STORE_ID_BYTES))
/// is bad input, said before any statement sees it.
pub fn check_store_id(store_id: &str) -> Result<()> {
    crate::domain::store_id::check(store_id)
        .map_err(|reason| Error::BadInput(format!("not a store id: {reason}")))
}
