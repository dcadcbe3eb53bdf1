//! The subscription root: what can be followed as it happens.

use std::sync::Arc;

use async_graphql::futures_util::{Stream, StreamExt};
use async_graphql::{Context, ID, Subscription};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::broadcast::error::RecvError;

use super::data::DatasetNode;
use super::error::ApiError;
use super::incident::IncidentEventNode;
use super::report::{ReportNode, ReportsFilter};
use crate::service::{self, AppState};

pub struct SubscriptionRoot;

/// The subscriptions one WebSocket may have at once: the socket puts this in its
/// connection data, and each subscription holds a slot until it ends.
#[derive(Clone)]
pub struct SubscriptionSlots(Arc<tokio::sync::Semaphore>, usize);

impl SubscriptionSlots {
    pub fn new(max: usize) -> Self {
        SubscriptionSlots(Arc::new(tokio::sync::Semaphore::new(max)), max)
    }
}

/// A slot of the socket's for a new subscription, held until it ends; `None` where there is
/// no socket (a subscription over HTTP, in tests).
fn slot(ctx: &Context<'_>) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
    let Some(SubscriptionSlots(slots, max)) = ctx.data_opt::<SubscriptionSlots>() else {
        return Ok(None);
    };
    match slots.clone().try_acquire_owned() {
        Ok(permit) => Ok(Some(permit)),
        Err(_) => Err(ApiError::TooManySubscriptions(*max)),
    }
}

/// What can be followed as it happens.
#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The data after each reload that changed it (scheduled, `reloadData` or `ingest`,
    /// in any process), from now on; a reload that changed nothing is not passed on.
    async fn dataset(&self, ctx: &Context<'_>) -> async_graphql::Result<impl Stream<Item = DatasetNode>> {
        let state = ctx.data_unchecked::<AppState>().clone();
        let slot = slot(ctx)?;
        let mut changes = service::dataset_changes(&state);
        Ok(async_stream::stream! {
            let _held = slot;
            // The fields read the data as it is now: reloads missed by a slow client are
            // made up for by the next one it hears.
            while let Ok(_) | Err(RecvError::Lagged(_)) = changes.recv().await {
                yield DatasetNode;
            }
        })
    }

    /// Every incident opened, resolved or withdrawn from now on, whichever process stored
    /// the polls, in the order they were recorded: the events webhooks deliver (a token
    /// scoped to store groups hears of their stores alone). A client too slow to keep up
    /// misses events rather than holding the others back.
    async fn incidents(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only events of these stores.")] store_ids: Option<Vec<ID>>,
    ) -> async_graphql::Result<impl Stream<Item = IncidentEventNode>> {
        let state = ctx.data_unchecked::<AppState>();
        let slot = slot(ctx)?;
        let events = service::incident_events(state, &super::caller(ctx));
        Ok(async_stream::stream! {
            let _held = slot;
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                if store_ids.as_ref().is_none_or(|ids| ids.iter().any(|id| id.0 == event.incident.store_id)) {
                    yield IncidentEventNode(event);
                }
            }
        })
    }

    /// Every change of any report (queued, started, progress, finished) from now on,
    /// whichever process makes it, as long as the subscription lasts. A client too slow to
    /// keep up misses changes rather than holding the others back.
    async fn reports(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only reports of this status and interpolation.")] filter: Option<ReportsFilter>,
    ) -> async_graphql::Result<impl Stream<Item = ReportNode>> {
        let state = ctx.data_unchecked::<AppState>().clone();
        let slot = slot(ctx)?;
        let filter: service::ReportFilter = filter.unwrap_or_default().into();
        let mut changes = service::report_changes(&state);
        Ok(async_stream::stream! {
            let _held = slot;
            loop {
                match changes.recv().await {
                    Ok(record) if filter.keeps(&record) => yield ReportNode::new((*record).clone()),
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }

    /// The report's current state, then each change; ends once it is finished (COMPLETE,
    /// FAILED or CANCELLED). Works whichever process runs the report.
    async fn report(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The report's id, as triggerReport returned it.")] id: ID,
    ) -> async_graphql::Result<impl Stream<Item = ReportNode>> {
        let state = ctx.data_unchecked::<AppState>().clone();
        let uuid = service::parse_report_id(&id)?;
        let slot = slot(ctx)?;
        // Listen before reading, so that no change falls between the two.
        let (mut events, following) = service::follow(&state, uuid);
        let first = service::followed_report(&state, uuid)
            .await?
            .ok_or_else(|| service::not_found(uuid))?;
        Ok(async_stream::stream! {
            let _held = (slot, following);
            let mut last = first.clone();
            yield ReportNode::new(first);
            // A lost notice is made up for by the process's one recheck of the followed
            // reports (`db::events`), which sends the report's state again.
            while !last.status.is_final() {
                let next = match events.recv().await {
                    Ok(record) if record.id == uuid => (*record).clone(),
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                };
                if next.is_newer_than(&last) {
                    last = next.clone();
                    yield ReportNode::new(next);
                }
            }
        })
    }
}
