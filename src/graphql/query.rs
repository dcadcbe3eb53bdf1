//! The query root: what can be read.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::data::DatasetNode;
use super::groups::{GroupNode, Me};
use super::incident::{self, IncidentCount, IncidentNode, IncidentOrder, IncidentsFilter};
use super::report::{Interpolation, ReportNode, ReportsFilter};
use super::tokens::TokenNode;
use super::webhook::{self, WebhookNode};
use super::{cursor, find_report, node, null_on_error, page, page_size, store};
use crate::service::{self, AppState, Error};

pub struct Query;

/// What can be read: reports and the data they are computed from.
#[Object]
impl Query {
    /// A report by id.
    async fn report(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The report's id, as triggerReport returned it.")] id: ID,
    ) -> Option<ReportNode> {
        let state = ctx.data_unchecked::<AppState>();
        null_on_error(ctx, find_report(state, &id).await.map(ReportNode::new))
    }

    /// The newest COMPLETE report (of this interpolation, if given); null while there is none.
    async fn latest_report(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only reports read with this interpolation.")] interpolation: Option<Interpolation>,
    ) -> async_graphql::Result<Option<ReportNode>> {
        let state = ctx.data_unchecked::<AppState>();
        let latest = service::latest_report(state, interpolation.map(Into::into)).await?;
        Ok(latest.map(ReportNode::new))
    }

    /// Reports, newest first.
    async fn reports(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, at most 1000 (default 100).")] first: Option<i32>,
        #[graphql(desc = "The cursor of the report to start after.")] after: Option<String>,
        #[graphql(desc = "Only reports of this status and interpolation.")] filter: Option<ReportsFilter>,
    ) -> async_graphql::Result<Connection<String, ReportNode>> {
        let limit = page_size(first)?;
        let after_key = after.as_deref().map(parse_cursor).transpose()?;
        let state = ctx.data_unchecked::<AppState>();
        let records =
            service::list_reports(state, filter.unwrap_or_default().into(), limit + 1, after_key).await?;
        Ok(page(records, limit, after.is_some(), |r| {
            let key = format!("{}|{}", r.created_at.to_rfc3339(), r.id);
            (cursor::encode(REPORTS, &key), ReportNode::new(r))
        }))
    }

    /// The object with this global id (a report's, a store's or a report row's), as Relay's
    /// object identification asks; null when there is none.
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The object's global id (its `id`).")] id: ID,
    ) -> async_graphql::Result<Option<node::Node>> {
        Ok(node::node(ctx, &id).await?)
    }

    /// A store by its id; null for a store no input file has named.
    async fn store(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The store's id, as the input files spell it.")] id: String,
    ) -> async_graphql::Result<Option<store::StoreNode>> {
        let state = ctx.data_unchecked::<AppState>();
        Ok(service::store(state, &super::caller(ctx), &id)
            .await?
            .map(store::StoreNode))
    }

    /// When stores were down within their business hours (incidents), newest first or worst
    /// first, a page at a time.
    async fn incidents(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only open or resolved incidents, of these stores, since an instant.")]
        filter: Option<IncidentsFilter>,
        #[graphql(desc = "Newest first (the default) or worst first.", default)] order: IncidentOrder,
        #[graphql(desc = "Page size, at most 1000 (default 100).")] first: Option<i32>,
        #[graphql(desc = "The cursor of the incident to start after.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, IncidentNode, IncidentCount>> {
        let filter = filter.unwrap_or_default().into_filter()?;
        incident::incidents(ctx, filter, order, first, after).await
    }

    /// The data in the database: row counts, newest poll, the latest loads.
    async fn dataset(&self) -> DatasetNode {
        DatasetNode
    }

    /// Every webhook, newest first, each with its newest delivery (admins only).
    async fn webhooks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<WebhookNode>> {
        let state = ctx.data_unchecked::<AppState>();
        let found = service::list_webhooks(state).await?;
        Ok(webhook::with_last_deliveries(state, found).await?)
    }

    /// A webhook by id, with its deliveries (admins only); null when there is none.
    async fn webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The webhook's id, as createWebhook returned it.")] id: ID,
    ) -> async_graphql::Result<Option<WebhookNode>> {
        let state = ctx.data_unchecked::<AppState>();
        let Some(found) = service::webhook(state, webhook::webhook_id(&id)?).await? else {
            return Ok(None);
        };
        Ok(webhook::with_last_deliveries(state, vec![found]).await?.pop())
    }

    /// The store groups by name, a page at a time: every one, or a scoped token's own.
    async fn store_groups(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many, at most 1000 (default 100).")] first: Option<i32>,
        #[graphql(desc = "The group name to start after (the last of the previous page).")] after: Option<
            String,
        >,
    ) -> async_graphql::Result<Vec<GroupNode>> {
        let limit = page_size(first)?;
        let state = ctx.data_unchecked::<AppState>();
        let groups = service::list_groups(state, &super::caller(ctx), after.as_deref(), limit).await?;
        Ok(groups.into_iter().map(GroupNode).collect())
    }

    /// Who is asking: the token's name, role and the store groups it sees (null: the whole
    /// fleet).
    async fn me(&self, ctx: &Context<'_>) -> Me {
        Me::of(ctx)
    }

    /// Every API token, newest first, revoked and expired ones included (admins only).
    async fn tokens(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TokenNode>> {
        let state = ctx.data_unchecked::<AppState>();
        let tokens = service::auth::list(state).await?;
        Ok(tokens.into_iter().map(TokenNode).collect())
    }
}

/// The list `reports`' cursors name.
const REPORTS: &str = "reports";

fn parse_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), Error> {
    let key = cursor::decode(cursor, REPORTS)?;
    let bad = || Error::BadInput(format!("{cursor:?} is not a cursor of this list"));
    let (at, id) = key.split_once('|').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at)
        .map_err(|_| bad())?
        .with_timezone(&Utc);
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}
