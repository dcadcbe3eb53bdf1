//! Incidents: the stores down now and before, and every change as it happens.

use std::sync::Arc;

use futures::Stream;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::auth::Caller;
use super::{AppState, Result};
use crate::db::incidents::{
    self, IncidentEvent, IncidentFilter, IncidentOrder, IncidentRecord, RankedIncident,
};

/// Up to `limit` incidents passing `filter` that the caller may read, in `order`, after
/// the one with key `after`. A token scoped to store groups reads their stores' alone.
pub async fn list_incidents(
    state: &AppState,
    caller: &Caller,
    filter: &IncidentFilter,
    order: IncidentOrder,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> Result<Vec<RankedIncident>> {
    let filter = in_scope(filter, caller);
    Ok(incidents::list(&state.db, &filter, order, after, limit).await?)
}

/// How many incidents pass `filter` among those the caller may read, on every page.
pub async fn count_incidents(state: &AppState, caller: &Caller, filter: &IncidentFilter) -> Result<i64> {
    Ok(incidents::count(&state.db, &in_scope(filter, caller)).await?)
}

fn in_scope(filter: &IncidentFilter, caller: &Caller) -> IncidentFilter {
    IncidentFilter {
        groups: caller.groups().map(<[String]>::to_vec),
        ..filter.clone()
    }
}

/// The incident `id`, if there is one and the caller may read it (another group's store's
/// is absent to a scoped token, as an id that names nothing).
pub async fn incident(state: &AppState, caller: &Caller, id: Uuid) -> Result<Option<IncidentRecord>> {
    let Some(found) = incidents::by_id(&state.db, id).await? else {
        return Ok(None);
    };
    if caller.groups().is_some() && super::store(state, caller, &found.store_id).await?.is_none() {
        return Ok(None);
    }
    Ok(Some(found))
}

/// Every incident opened, resolved or withdrawn from now on, in any process, that the
/// caller may hear of (a token scoped to store groups: their stores' alone). A listener too
/// slow to keep up misses events rather than holding the others back.
pub fn incident_events(
    state: &AppState,
    caller: &Caller,
) -> impl Stream<Item = Arc<IncidentEvent>> + Send + use<> {
    let scope = caller.groups().map(<[String]>::to_vec);
    let mut events = state.events.incident_events();
    async_stream::stream! {
        loop {
            match events.recv().await {
                Ok(event) if event.visible_to(scope.as_deref()) => yield event,
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    }
}
