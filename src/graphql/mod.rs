//! The GraphQL API: queries, mutations and the report subscription, built by one function
//! that the server, the tests and the SDL export share. Resolvers reach the rest of the
//! service only through [`crate::service`].

mod access;
mod cost;
mod data;
mod error;
mod node;
mod report;
mod store;
mod tokens;

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::futures_util::Stream;
use async_graphql::{Context, ID, Object, OutputType, Schema, Subscription};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::ReportRecord;
use crate::service::auth::Caller;
use crate::service::{self, AppState};
pub(crate) use access::actions;
use cost::CostLimits;
pub(crate) use cost::precheck;
pub use cost::{MAX_COST, MAX_DEPTH, MAX_INTROSPECTION_DEPTH, WHOLE_REPORT_COST};
use data::{DataLoadNode, DatasetNode};
pub use error::RETRY_AFTER_SECONDS;
use error::{ApiError, ErrorCodes};
pub(crate) use error::{denied_error, failed_error};
use report::{Interpolation, ReportNode, ReportsFilter, TriggerReportInput};
use tokens::{CreateTokenInput, CreatedToken, TokenNode};

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
fn page_size(first: Option<i32>) -> Result<i64, ApiError> {
    match first {
        None => Ok(100),
        Some(n) if (0..=MAX_PAGE).contains(&n) => Ok(i64::from(n)),
        Some(n) => Err(ApiError::BadInput(format!(
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
fn null_on_error<T>(ctx: &Context<'_>, result: Result<T, ApiError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            let error = async_graphql::ErrorExtensions::extend(&e).into_server_error(ctx.item.pos);
            ctx.add_error(ctx.set_error_path(error));
            None
        }
    }
}

fn parse_id(id: &ID) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id)
        .map_err(|_| ApiError::BadInput(format!("{:?} is not a report id (a UUID)", id.as_str())))
}

async fn find_report(state: &AppState, id: &ID) -> Result<ReportRecord, ApiError> {
    let uuid = parse_id(id)?;
    service::get_report(state, uuid)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no report with id {uuid}")))
}

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
        null_on_error(ctx, find_report(state, &id).await.map(ReportNode))
    }

    /// The newest COMPLETE report (of this interpolation, if given); null while there is none.
    async fn latest_report(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only reports read with this interpolation.")] interpolation: Option<Interpolation>,
    ) -> async_graphql::Result<Option<ReportNode>> {
        let state = ctx.data_unchecked::<AppState>();
        let latest = service::latest_report(state, interpolation.map(Into::into))
            .await
            .map_err(ApiError::from)?;
        Ok(latest.map(ReportNode))
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
        let cursor = after.as_deref().map(parse_cursor).transpose()?;
        let state = ctx.data_unchecked::<AppState>();
        let records = service::list_reports(state, filter.unwrap_or_default().into(), limit + 1, cursor)
            .await
            .map_err(ApiError::from)?;
        Ok(page(records, limit, after.is_some(), |r| {
            (format!("{}|{}", r.created_at.to_rfc3339(), r.id), ReportNode(r))
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
        let found = service::store(state, &id).await.map_err(ApiError::from)?;
        Ok(found.map(store::StoreNode))
    }

    /// The data in the database: row counts, newest poll, the latest loads.
    async fn dataset(&self) -> DatasetNode {
        DatasetNode
    }

    /// Every API token, newest first, revoked and expired ones included (admins only).
    async fn tokens(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TokenNode>> {
        let state = ctx.data_unchecked::<AppState>();
        let tokens = service::auth::list_tokens(&state.db)
            .await
            .map_err(ApiError::from)?;
        Ok(tokens.into_iter().map(TokenNode).collect())
    }
}

/// The caller of the request being resolved (anonymous when the door put none in: the
/// schema served without one only in tests).
fn caller<'a>(ctx: &'a Context<'_>) -> std::borrow::Cow<'a, Caller> {
    match ctx.data_opt::<Caller>() {
        Some(caller) => std::borrow::Cow::Borrowed(caller),
        None => std::borrow::Cow::Owned(Caller::anonymous(None)),
    }
}

fn parse_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let bad = || ApiError::BadInput(format!("{cursor:?} is not a cursor of this list"));
    let (at, id) = cursor.split_once('|').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at)
        .map_err(|_| bad())?
        .with_timezone(&Utc);
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

pub struct Mutation;

/// What can be done: compute a report, reload the data, manage API tokens.
#[Object]
impl Mutation {
    /// Queues a report and returns it at once (PENDING, or COMPLETE when an equal report
    /// is already finished). Follow it with the `report` subscription or query.
    async fn trigger_report(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to compute; default: as of the newest poll, NEAREST.")] input: Option<
            TriggerReportInput,
        >,
    ) -> async_graphql::Result<ReportNode> {
        let state = ctx.data_unchecked::<AppState>();
        let input = input.unwrap_or_default();
        let interpolation = input.interpolation.unwrap_or_default().into();
        let record = service::trigger_report(state, &caller(ctx), interpolation, input.as_of)
            .await
            .map_err(ApiError::from)?;
        Ok(ReportNode(record))
    }

    /// Stops a PENDING or RUNNING report (operators and admins): it is CANCELLED at once,
    /// and a worker computing it stops within a second and writes no file. A report that
    /// is finished already is `BAD_USER_INPUT`.
    async fn cancel_report(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The report's id, as triggerReport returned it.")] id: ID,
    ) -> async_graphql::Result<ReportNode> {
        let state = ctx.data_unchecked::<AppState>();
        let uuid = parse_id(&id)?;
        let record = service::cancel_report(state, uuid)
            .await
            .map_err(ApiError::from)?;
        Ok(ReportNode(record))
    }

    /// Reloads the input files now (as the schedule does), and says what it did. A business
    /// hours or time-zone file that would leave more than a share of the stores it covers
    /// (the server's `--max-snapshot-loss`, a fifth by default) without rows is refused (its load FAILED, nothing changed), as a half-copied file
    /// would be, unless `force`.
    async fn reload_data(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Accept files that would drop many stores' hours or time zones.",
            default = false
        )]
        force: bool,
    ) -> async_graphql::Result<DataLoadNode> {
        let state = ctx.data_unchecked::<AppState>();
        let reload = service::reload_now(state, &caller(ctx), force)
            .await
            .map_err(ApiError::from)?;
        let data_version = service::data_version(state).await.map_err(ApiError::from)?;
        Ok(DataLoadNode {
            files: reload.files.into_iter().map(|f| f.record).collect(),
            data_version,
        })
    }

    /// Creates an API token (admins only) and returns it with its secret, which is shown
    /// this once.
    async fn create_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Its name, role and optional expiry.")] input: CreateTokenInput,
    ) -> async_graphql::Result<CreatedToken> {
        let state = ctx.data_unchecked::<AppState>();
        let (record, secret) =
            service::auth::create_token(&state.db, &input.name, input.role.into(), input.expires_at)
                .await
                .map_err(ApiError::from)?;
        service::auth::audit(
            &caller(ctx),
            "createToken",
            &format!("created {} token {:?} ({})", record.role, record.name, record.id),
        );
        Ok(CreatedToken {
            token: TokenNode(record),
            secret: secret.0,
        })
    }

    /// Revokes an API token (admins only): it is refused from its next use on, on every
    /// server, and the report links given to it stop working. Revoking a revoked token
    /// changes nothing.
    async fn revoke_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token's id.")] id: ID,
    ) -> async_graphql::Result<TokenNode> {
        let state = ctx.data_unchecked::<AppState>();
        let uuid = Uuid::parse_str(&id)
            .map_err(|_| ApiError::BadInput(format!("{:?} is not a token id (a UUID)", id.as_str())))?;
        let record = service::auth::revoke(state, uuid)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("no token with id {uuid}")))?;
        service::auth::audit(
            &caller(ctx),
            "revokeToken",
            &format!("revoked {} token {:?} ({})", record.role, record.name, record.id),
        );
        Ok(TokenNode(record))
    }
}

pub struct SubscriptionRoot;

/// The subscriptions one WebSocket may have at once: the socket puts this in its
/// connection data, and each subscription holds a slot until it ends.
#[derive(Clone)]
pub struct SubscriptionSlots(Arc<tokio::sync::Semaphore>, usize);

impl SubscriptionSlots {
    pub fn new(max: usize) -> Self {
        SubscriptionSlots(Arc::new(tokio::sync::Semaphore::new(max)), max)
    }

    fn take(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.0
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::TooManySubscriptions(self.1))
    }
}

/// What can be followed as it happens.
#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The data after each reload that changed it (scheduled, `reloadData` or `ingest`,
    /// in any process), from now on; a reload that changed nothing is not passed on.
    async fn dataset(&self, ctx: &Context<'_>) -> async_graphql::Result<impl Stream<Item = DatasetNode>> {
        let state = ctx.data_unchecked::<AppState>().clone();
        let slot = match ctx.data_opt::<SubscriptionSlots>() {
            Some(slots) => Some(slots.take()?),
            None => None,
        };
        let mut changes = service::dataset_changes(&state);
        Ok(async_stream::stream! {
            let _held = slot;
            // The fields read the data as it is now: reloads missed by a slow client are
            // made up for by the next one it hears.
            while let Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) = changes.recv().await {
                yield DatasetNode;
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
        let slot = match ctx.data_opt::<SubscriptionSlots>() {
            Some(slots) => Some(slots.take()?),
            None => None,
        };
        let filter: service::ReportFilter = filter.unwrap_or_default().into();
        let mut changes = service::report_changes(&state);
        Ok(async_stream::stream! {
            let _held = slot;
            loop {
                match changes.recv().await {
                    Ok(record) => {
                        let wanted = filter.status.is_none_or(|s| s == record.status)
                            && filter.interpolation.is_none_or(|i| i == record.interpolation);
                        if wanted {
                            yield ReportNode((*record).clone());
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }

    /// The report's current state, then each change; ends after COMPLETE or FAILED.
    /// Works whichever process runs the report.
    async fn report(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The report's id, as triggerReport returned it.")] id: ID,
    ) -> async_graphql::Result<impl Stream<Item = ReportNode>> {
        let state = ctx.data_unchecked::<AppState>().clone();
        let uuid = parse_id(&id)?;
        // Over WebSocket, each socket has so many subscriptions at once.
        let slot = match ctx.data_opt::<SubscriptionSlots>() {
            Some(slots) => Some(slots.take()?),
            None => None,
        };
        // Listen before reading, so that no change falls between the two.
        let (mut events, following) = service::follow(&state, uuid);
        let first = service::followed_report(&state, uuid)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("no report with id {uuid}")))?;
        Ok(async_stream::stream! {
            let _held = (slot, following);
            let mut last = first.clone();
            yield ReportNode(first);
            // A lost notice is made up for by the process's one recheck of the followed
            // reports (`db::events`), which sends the report again: no timer here.
            while !last.status.is_final() {
                let next = tokio::select! {
                    event = events.recv() => match event {
                        Ok(record) if record.id == uuid => Some((*record).clone()),
                        // Missed notices: the next recheck sends the report's state again.
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => None,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                };
                if let Some(next) = next
                    && next.is_newer_than(&last)
                {
                    last = next.clone();
                    yield ReportNode(next);
                }
            }
        })
    }
}
