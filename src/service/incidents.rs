//! Incidents: the stores down now and before, and every change as it happens.

use std::sync::Arc;

use tokio::sync::broadcast;
use uuid::Uuid;

use super::{AppState, Result};
use crate::db::incidents::{
    self, IncidentEvent, IncidentFilter, IncidentOrder, IncidentRecord, RankedIncident,
};

/// Up to `limit` incidents passing `filter`, in `order`, after the one with key `after`.
pub async fn list_incidents(
    state: &AppState,
    filter: &IncidentFilter,
    order: IncidentOrder,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> Result<Vec<RankedIncident>> {
    Ok(incidents::list(&state.db, filter, order, after, limit).await?)
}

/// How many incidents pass `filter`, on every page.
pub async fn count_incidents(state: &AppState, filter: &IncidentFilter) -> Result<i64> {
    Ok(incidents::count(&state.db, filter).await?)
}

/// The incident `id`, if there is one.
pub async fn incident(state: &AppState, id: Uuid) -> Result<Option<IncidentRecord>> {
    Ok(incidents::by_id(&state.db, id).await?)
}

/// Every incident opened, resolved or withdrawn from now on, in any process.
pub fn incident_events(state: &AppState) -> broadcast::Receiver<Arc<IncidentEvent>> {
    state.events.incident_events()
}
