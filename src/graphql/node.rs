//! Relay's global object identification: every object a normalised cache (Apollo, urql,
//! Relay) keeps has an `id` unique across types, and `node(id:)` reads it back.

use async_graphql::{Context, ID, Interface};

use super::incident::{INCIDENT_PREFIX, IncidentNode};
use super::report::{ROW_PREFIX, ReportNode, ReportRow};
use super::store::{STORE_PREFIX, StoreNode};
use crate::service::{self, AppState, Error, RowFilter, RowPage};

/// An object with an id unique across every type: a report's is its UUID, a store's
/// `Store:<store id>`, a report row's `ReportRow:<report id>:<store id>`, an incident's
/// `Incident:<uuid>`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "The object's global id."))]
pub enum Node {
    Report(ReportNode),
    Store(StoreNode),
    ReportRow(ReportRow),
    Incident(IncidentNode),
}

/// The object with global id `id`, if it exists and the caller sees it. A token scoped to
/// store groups sees reports, its stores, their incidents and their rows of reports;
/// another store's are absent to it, as an id that names nothing.
pub(crate) async fn node(ctx: &Context<'_>, id: &ID) -> Result<Option<Node>, Error> {
    let state = ctx.data_unchecked::<AppState>();
    let caller = super::caller(ctx);
    if let Some(incident) = id.strip_prefix(INCIDENT_PREFIX) {
        let Ok(incident) = uuid::Uuid::parse_str(incident) else {
            return Ok(None);
        };
        let found = service::incident(state, &caller, incident).await?;
        return Ok(found.map(|i| Node::Incident(IncidentNode(i))));
    }
    if let Some(store_id) = id.strip_prefix(STORE_PREFIX) {
        if service::check_store_id(store_id).is_err() {
            return Ok(None);
        }
        let found = service::store(state, &caller, store_id).await?;
        return Ok(found.map(|s| Node::Store(StoreNode(s))));
    }
    if let Some(rest) = id.strip_prefix(ROW_PREFIX) {
        let Some((report, store_id)) = rest.split_once(':') else {
            return Ok(None);
        };
        if service::check_store_id(store_id).is_err() {
            return Ok(None);
        }
        let Ok(report) = uuid::Uuid::parse_str(report) else {
            return Ok(None);
        };
        let Some(record) = service::get_report(state, report).await? else {
            return Ok(None);
        };
        let filter = RowFilter::stores(vec![store_id.to_string()]);
        let page = RowPage {
            limit: 1,
            ..RowPage::default()
        };
        let row = service::report_rows(state, &caller, &record, &filter, &page)
            .await?
            .pop();
        return Ok(row.map(|r| Node::ReportRow(ReportRow::of(report, &r.store_id, r.figures))));
    }
    let Ok(report) = uuid::Uuid::parse_str(id) else {
        return Ok(None);
    };
    Ok(service::get_report(state, report)
        .await?
        .map(|r| Node::Report(ReportNode::new(r))))
}
