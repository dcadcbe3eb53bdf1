//! One store's story: what the input files say of it, and its polls.

use chrono::{DateTime, Utc};

use super::AppState;
use crate::db::snapshot;
use crate::db::stores::{self, PollRecord, StoreRecord};
use crate::domain::{HoursRow, Zone};

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

/// The store `store_id`, if any input file has named it.
pub async fn store(state: &AppState, store_id: &str) -> anyhow::Result<Option<StoreInfo>> {
    let Some(record) = stores::by_store_id(&state.db, store_id).await? else {
        return Ok(None);
    };
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
) -> anyhow::Result<Vec<PollRecord>> {
    Ok(stores::polls_of(&state.db, store.id, from, to, after, limit).await?)
}
