//! The GraphQL types of incidents: when a store was down within its business hours.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::store::StoreNode;
use super::{caller, cursor, page_size, page_with};
use crate::service::{self, AppState, Error, EventKind, IncidentEvent, IncidentFilter, IncidentRecord};

/// How an incident's global id starts.
pub(crate) const INCIDENT_PREFIX: &str = "Incident:";

pub struct IncidentNode(pub IncidentRecord);

/// A period a store was down within its business hours: from the first of the inactive
/// polls in a row that opened it (`--down-after`, default 2) to the first of the active
/// ones that resolved it (`--up-after`, default 1). Polls outside business hours do not
/// count.
#[Object(name = "Incident")]
impl IncidentNode {
    /// The incident's global id (`Incident:<uuid>`); `node(id:)` reads it back.
    pub(crate) async fn id(&self) -> ID {
        ID(format!("{INCIDENT_PREFIX}{}", self.0.id))
    }

    /// The id of the store that was down, as the input files spell it.
    async fn store_id(&self) -> ID {
        ID(self.0.store_id.clone())
    }

    /// The store that was down.
    async fn store(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<StoreNode>> {
        let state = ctx.data_unchecked::<AppState>();
        Ok(service::store(state, &caller(ctx), &self.0.store_id)
            .await?
            .map(StoreNode))
    }

    /// The first inactive poll of the run that opened it.
    async fn opened_at(&self) -> DateTime<Utc> {
        self.0.opened_at
    }

    /// The first active poll of the run that resolved it; null while the store is down.
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }

    /// Whether the store is still down.
    async fn open(&self) -> bool {
        self.0.resolved_at.is_none()
    }

    /// The inactive polls within business hours from its opening to its resolution (or so
    /// far).
    async fn inactive_polls(&self) -> i32 {
        self.0.inactive_polls
    }
}

/// Which incidents a list shows; every field left out keeps all.
#[derive(InputObject, Default)]
#[graphql(name = "IncidentsFilter")]
pub struct IncidentsFilter {
    /// Only open incidents (true) or only resolved ones (false).
    open: Option<bool>,
    /// Only incidents of these stores.
    store_ids: Option<Vec<ID>>,
    /// Only incidents going on at or after this instant: open, or resolved after it.
    since: Option<DateTime<Utc>>,
}

impl IncidentsFilter {
    pub(crate) fn into_filter(self) -> Result<IncidentFilter, Error> {
        let store_ids = self
            .store_ids
            .map(|ids| {
                ids.into_iter()
                    .map(|id| service::check_store_id(&id).map(|()| id.0))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let since = self.since.map(|at| service::instant("since", at)).transpose()?;
        Ok(IncidentFilter {
            open: self.open,
            store_ids,
            since,
            groups: None,
        })
    }
}

/// The order of a list of incidents.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq, Default)]
pub enum IncidentOrder {
    /// Newest opening first.
    #[default]
    NewestFirst,
    /// Open incidents first, the store down longest first; then resolved ones, the longest
    /// first.
    WorstFirst,
}

impl From<IncidentOrder> for service::IncidentOrder {
    fn from(order: IncidentOrder) -> Self {
        match order {
            IncidentOrder::NewestFirst => service::IncidentOrder::Newest,
            IncidentOrder::WorstFirst => service::IncidentOrder::Worst,
        }
    }
}

/// How many incidents a list matches, all pages together.
#[derive(SimpleObject, Debug, Default)]
pub struct IncidentCount {
    /// The incidents that pass the filter, on every page.
    pub total_count: i64,
}

/// A page of incidents, the list's name for its cursors beside it.
pub(crate) async fn incidents(
    ctx: &Context<'_>,
    filter: IncidentFilter,
    order: IncidentOrder,
    first: Option<i32>,
    after: Option<String>,
) -> async_graphql::Result<Connection<String, IncidentNode, IncidentCount>> {
    let limit = page_size(first)?;
    let caller = caller(ctx);
    // A cursor names its order, filter and scope (hashed: a filter may name many stores):
    // one of another list is refused.
    let filtered = xxhash_rust::xxh3::xxh3_64(format!("{filter:?}{:?}", caller.groups()).as_bytes());
    let list = format!("incidents:{order:?}:{filtered:x}");
    let after_key = after.as_deref().map(|c| parse_cursor(c, &list)).transpose()?;
    let state = ctx.data_unchecked::<AppState>();
    let total_count = if ctx.look_ahead().field("totalCount").exists() {
        service::count_incidents(state, &caller, &filter).await?
    } else {
        0
    };
    let found = service::list_incidents(state, &caller, &filter, order.into(), after_key, limit + 1).await?;
    Ok(page_with(
        found,
        limit,
        after_key.is_some(),
        IncidentCount { total_count },
        |r| {
            let key = format!("{}|{}", r.rank, r.incident.id);
            (cursor::encode(&list, &key), IncidentNode(r.incident))
        },
    ))
}

fn parse_cursor(cursor: &str, list: &str) -> Result<(i64, Uuid), Error> {
    let key = cursor::decode(cursor, list)?;
    let bad = || Error::BadInput(format!("{cursor:?} is not a cursor of this list"));
    let (rank, id) = key.split_once('|').ok_or_else(bad)?;
    Ok((
        rank.parse().map_err(|_| bad())?,
        Uuid::parse_str(id).map_err(|_| bad())?,
    ))
}

/// What happened to an incident.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum IncidentEventType {
    /// The store went down (or an incident thought resolved is open again: a late poll).
    Opened,
    /// The store came back up.
    Resolved,
    /// Polls that came late show the store was not down: the incident is gone.
    Withdrawn,
}

/// An incident opened, resolved or withdrawn.
pub struct IncidentEventNode(pub std::sync::Arc<IncidentEvent>);

/// An incident opened, resolved or withdrawn: the event webhooks deliver, as it happened.
#[Object(name = "IncidentEvent")]
impl IncidentEventNode {
    /// The event's id: a webhook delivery's `webhook-id`, the same on every retry.
    async fn event_id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// What happened.
    async fn r#type(&self) -> IncidentEventType {
        match self.0.kind {
            EventKind::Opened => IncidentEventType::Opened,
            EventKind::Resolved => IncidentEventType::Resolved,
            EventKind::Withdrawn => IncidentEventType::Withdrawn,
        }
    }

    /// When the server recorded it.
    async fn at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The incident as it was then.
    async fn incident(&self) -> IncidentNode {
        IncidentNode(self.0.incident.clone())
    }
}
