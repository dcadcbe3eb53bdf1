//! The GraphQL API: queries, mutations and the report subscription, built by one function
//! that the server, the tests and the SDL export share. Resolvers reach the rest of the
//! service only through [`crate::service`].

mod access;
mod cost;
mod cursor;
mod data;
mod error;
mod groups;
mod incident;
mod mutation;
mod node;
mod query;
mod report;
mod store;
mod subscription;
mod tokens;
mod webhook;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, ID, OutputType, Schema};
use chrono::{DateTime, Utc};

use crate::service::auth::Caller;
use crate::service::{self, AppState};
pub(crate) use access::{actions, operation_kind};
use cost::CostLimits;
pub(crate) use cost::precheck;
pub use cost::{MAX_COST, MAX_DEPTH, MAX_INTROSPECTION_DEPTH, WHOLE_REPORT_COST};
pub(crate) use error::request_error;
use error::{ApiError, ErrorCodes};
pub use mutation::Mutation;
pub use query::Query;
use report::ReportNode;
pub use subscription::{SubscriptionRoot, SubscriptionSlots};

/// The schema type.
pub type AppSchema = Schema<Query, Mutation, SubscriptionRoot>;

/// The largest page any list returns.
pub const MAX_PAGE: i32 = 1000;
/// What `__schema { description }` says.
const DESCRIPTION: &str = "store-monitor: how much of their business hours each store was offline. Trigger a \
     report with `triggerReport`, follow it with the `report` subscription, read its rows or CSV \
     with the `report` query; `dataset` shows the data reports are computed from.";

/// The schema, serving `state`.
pub(crate) fn schema(state: AppState) -> AppSchema {
    limited(Schema::build(Query, Mutation, SubscriptionRoot).data(state))
}

fn limited(builder: async_graphql::SchemaBuilder<Query, Mutation, SubscriptionRoot>) -> AppSchema {
    // Depth and cost are ours (`cost`): async-graphql's own limits would refuse the
    // standard introspection query and count a page of a thousand as one field.
    builder
        .override_output_type_description::<Connection<String, ReportNode>>(
            "A page of reports, newest first: `edges` (with cursors) or `nodes`, and `pageInfo` to go on.",
        )
        .override_output_type_description::<Edge<String, ReportNode, async_graphql::connection::EmptyFields>>(
            "A report, with the cursor to ask for the reports after it.",
        )
        .override_output_type_description::<Connection<String, report::ReportRow, report::RowCount>>(
            "A page of a report's rows in the order asked: `edges` (with cursors) or `nodes`, `pageInfo` to go on, and `totalCount`.",
        )
        .override_output_type_description::<Edge<String, report::ReportRow, async_graphql::connection::EmptyFields>>(
            "A report's row, with the cursor to ask for the rows after it.",
        )
        .override_output_type_description::<Connection<String, store::Poll>>(
            "A page of a store's polls, oldest first: `edges` (with cursors) or `nodes`, and `pageInfo` to go on.",
        )
        .override_output_type_description::<Edge<String, store::Poll, async_graphql::connection::EmptyFields>>(
            "A poll, with the cursor to ask for the polls after it.",
        )
        .override_output_type_description::<Connection<String, incident::IncidentNode, incident::IncidentCount>>(
            "A page of incidents in the order asked: `edges` (with cursors) or `nodes`, `pageInfo` to go on, and `totalCount`.",
        )
        .override_output_type_description::<Edge<String, incident::IncidentNode, async_graphql::connection::EmptyFields>>(
            "An incident, with the cursor to ask for the incidents after it.",
        )
        .override_output_type_description::<Connection<String, webhook::WebhookDelivery>>(
            "A page of a webhook's delivery attempts, newest first: `edges` (with cursors) or `nodes`, and `pageInfo` to go on.",
        )
        .override_output_type_description::<Edge<String, webhook::WebhookDelivery, async_graphql::connection::EmptyFields>>(
            "A delivery attempt, with the cursor to ask for the attempts after it.",
        )
        .override_output_type_description::<DateTime<Utc>>(
            "An instant, written in RFC 3339 (`2023-01-25T18:13:22.479Z`); one without a zone is refused.",
        )
        .extension(ErrorCodes)
        .extension(CostLimits)
        .extension(SchemaDescription)
        // Last, so that it runs inside the cost check: it writes each parsed document into
        // its span with every fragment spread inlined, which for a document that fans out
        // is exponential (10^7 fields for 7 levels took 2 s, 30 levels for ever).
        .extension(async_graphql::extensions::Tracing)
        .finish()
}

/// The schema with its limits and error codes but nothing to serve: for the SDL,
/// introspection, and the tests of what is refused before any resolver runs.
pub fn bare_schema() -> AppSchema {
    limited(Schema::build(Query, Mutation, SubscriptionRoot))
}

/// Answers `__schema { description }` with this schema's own (async-graphql gives every
/// schema the same generic text).
struct SchemaDescription;

impl async_graphql::extensions::ExtensionFactory for SchemaDescription {
    fn create(&self) -> std::sync::Arc<dyn async_graphql::extensions::Extension> {
        std::sync::Arc::new(SchemaDescription)
    }
}

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for SchemaDescription {
    async fn resolve(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        info: async_graphql::extensions::ResolveInfo<'_>,
        next: async_graphql::extensions::NextResolve<'_>,
    ) -> async_graphql::ServerResult<Option<async_graphql::Value>> {
        if info.parent_type == "__Schema" && info.name == "description" {
            return Ok(Some(async_graphql::Value::String(DESCRIPTION.to_string())));
        }
        next.run(ctx, info).await
    }
}

/// The SDL of the schema, as committed in `schema.graphql`.
pub fn sdl() -> String {
    bare_schema().sdl()
}

/// `first` checked against the page limit.
fn page_size(first: Option<i32>) -> Result<i64, service::Error> {
    match first {
        None => Ok(100),
        Some(n) if (0..=MAX_PAGE).contains(&n) => Ok(i64::from(n)),
        Some(n) => Err(service::Error::BadInput(format!(
            "first must be between 0 and {MAX_PAGE}, not {n}"
        ))),
    }
}

/// A page of a list fetched with one item more than `limit`, which tells whether there is
/// a next page; `edge` gives each item's cursor and node.
fn page<T, N: OutputType>(
    items: Vec<T>,
    limit: i64,
    has_previous: bool,
    edge: impl FnMut(T) -> (String, N),
) -> Connection<String, N> {
    page_with(items, limit, has_previous, EmptyFields, edge)
}

/// [`page`], with the connection's own fields (a count, say).
fn page_with<T, N: OutputType, F: async_graphql::ObjectType>(
    mut items: Vec<T>,
    limit: i64,
    has_previous: bool,
    fields: F,
    edge: impl FnMut(T) -> (String, N),
) -> Connection<String, N, F> {
    let has_next = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let mut page = Connection::with_additional_fields(has_previous, has_next, fields);
    page.edges.extend(
        items
            .into_iter()
            .map(edge)
            .map(|(cursor, node)| Edge::new(cursor, node)),
    );
    page
}

/// A nullable field's value, or null with its error beside it: GraphQL nulls only the field
/// that failed, where a returned error would null the whole `data`.
fn null_on_error<T>(ctx: &Context<'_>, result: Result<T, impl Into<ApiError>>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            let error = async_graphql::ErrorExtensions::extend(&e.into()).into_server_error(ctx.item.pos);
            ctx.add_error(ctx.set_error_path(error));
            None
        }
    }
}

/// The report with this id; `NOT_FOUND` when there is none.
async fn find_report(state: &AppState, id: &ID) -> Result<crate::domain::ReportRecord, service::Error> {
    service::find_report(state, service::parse_report_id(id)?).await
}

/// The caller of the request being resolved (anonymous when the door put none in: the
/// schema served without one only in tests).
fn caller<'a>(ctx: &'a Context<'_>) -> std::borrow::Cow<'a, Caller> {
    match ctx.data_opt::<Caller>() {
        Some(caller) => std::borrow::Cow::Borrowed(caller),
        None => std::borrow::Cow::Owned(Caller::anonymous(None)),
    }
}
