//! The mutation root: what can be done.

use async_graphql::{Context, ID, InputObject, Object};

use super::caller;
use super::data::{DataLoadNode, FileLoadNode, RejectedRow};
use super::groups::GroupNode;
use super::report::{ReportNode, TriggerReportInput};
use super::store::StoreStatus;
use super::tokens::{CreateTokenInput, CreatedToken, TokenNode};
use super::webhook::{self, CreateWebhookInput, WebhookNode, WebhookWithSecret};
use crate::service::auth::{self, Outcome};
use crate::service::{self, AppState, Error};

pub struct Mutation;

/// The polls `deletePolls` removes: at least one field must be given.
#[derive(InputObject)]
pub struct DeletePollsInput {
    /// Only these stores' polls; default: every store's.
    pub store_ids: Option<Vec<ID>>,
    /// Only polls at or after this instant.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Only polls before this instant.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
}

/// A poll for `recordPolls`: a row of the status file.
#[derive(InputObject)]
pub struct PollInput {
    /// The store polled.
    pub store_id: ID,
    /// What the poll found.
    pub status: StoreStatus,
    /// When it was polled.
    pub timestamp_utc: chrono::DateTime<chrono::Utc>,
}

/// What storing pushed polls did (`POST /polls` answers the same, as JSON).
#[derive(async_graphql::SimpleObject)]
pub struct RecordedPolls {
    /// The batch's load in `dataset.loads` (its file says `push by <token>`).
    pub load: FileLoadNode,
    /// Polls received (rows of the batch).
    pub received: i64,
    /// New polls stored.
    pub accepted: i64,
    /// Polls stored already, or given twice: left as they were.
    pub duplicates: i64,
    /// Polls refused, each with its place in the list (from 1) and why; the others were
    /// stored.
    pub rejected: Vec<RejectedRow>,
    /// The data version after the batch (unchanged when nothing was new).
    pub data_version: i64,
    /// The newest poll stored: a report's default *now*.
    pub newest_poll: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<service::PushOutcome> for RecordedPolls {
    fn from(pushed: service::PushOutcome) -> Self {
        RecordedPolls {
            received: pushed.record.rows_read,
            accepted: pushed.accepted(),
            duplicates: pushed.duplicates(),
            rejected: pushed
                .rejected
                .into_iter()
                .map(|r| RejectedRow {
                    line: r.line as i64,
                    reason: r.reason,
                    raw: r.raw,
                })
                .collect(),
            data_version: pushed.data_version,
            newest_poll: pushed.newest_poll.and_then(crate::domain::Timestamp::to_datetime),
            load: FileLoadNode(pushed.record),
        }
    }
}

/// What can be done: compute a report, reload the data or remove polls, manage API tokens.
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
        let record = service::trigger_report(state, &caller(ctx), interpolation, input.as_of).await?;
        Ok(ReportNode::new(record))
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
        let record = service::cancel_report(state, service::parse_report_id(&id)?).await?;
        Ok(ReportNode::new(record))
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
        let reload = service::reload_now(state, &caller(ctx), force).await?;
        let data_version = service::data_version(state).await?;
        Ok(DataLoadNode {
            files: reload.files.into_iter().map(|f| f.record).collect(),
            data_version,
        })
    }

    /// Deletes polls (admins only): those of `storeIds` (every store when not given) from
    /// `from` (inclusive) to `to` (exclusive), at least one of the three given; a poll
    /// dated in the future by a clock gone wrong, say. Recorded as a status load (its
    /// `rowsDeleted`), which changes the data version; the newest poll, a report's default
    /// *now*, is read anew. A poll still in the status file comes back if the file is read
    /// whole again (polls more than `--max-clock-skew` ahead of the clock never do).
    async fn delete_polls(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which polls.")] input: DeletePollsInput,
    ) -> async_graphql::Result<DataLoadNode> {
        let state = ctx.data_unchecked::<AppState>();
        let caller = caller(ctx);
        let record = service::delete_polls(
            state,
            &caller,
            input
                .store_ids
                .map(|ids| ids.into_iter().map(|id| id.0).collect()),
            input.from,
            input.to,
        )
        .await?;
        let data_version = service::data_version(state).await?;
        Ok(DataLoadNode {
            files: vec![record],
            data_version,
        })
    }

    /// Stores polls as they happen (operators and admins), at most 10,000 at once (bigger
    /// batches go to `POST /polls`): one transaction, all or nothing; a poll stored
    /// already stays as it was and counts as a duplicate, so a batch can be sent again
    /// safely. Recorded as a load, which changes the data version when anything is new.
    async fn record_polls(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The polls, in any order.")] polls: Vec<PollInput>,
    ) -> async_graphql::Result<RecordedPolls> {
        let state = ctx.data_unchecked::<AppState>();
        let polls = polls
            .into_iter()
            .map(|p| (p.store_id.0, p.status == StoreStatus::Active, p.timestamp_utc))
            .collect();
        Ok(service::record_polls(state, &caller(ctx), polls).await?.into())
    }

    /// Creates an API token (admins only) and returns it with its secret, which is shown
    /// this once.
    async fn create_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Its name, role, optional store groups and expiry.")] input: CreateTokenInput,
    ) -> async_graphql::Result<CreatedToken> {
        let state = ctx.data_unchecked::<AppState>();
        let (record, secret) = auth::create(
            state,
            &input.name,
            input.role.into(),
            input.groups.as_deref(),
            input.expires_at,
        )
        .await?;
        auth::audit(&caller(ctx), "createToken", Outcome::Created(&record));
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
        let uuid = uuid::Uuid::parse_str(&id)
            .map_err(|_| Error::BadInput(format!("{:?} is not a token id (a UUID)", id.as_str())))?;
        let record = auth::revoke(state, uuid).await?;
        auth::audit(&caller(ctx), "revokeToken", Outcome::Revoked(&record));
        Ok(TokenNode(record))
    }

    /// Makes a store group hold exactly these stores, creating it if new (admins only). Each
    /// id must name a known store. A store-groups file, where there is one, replaces every
    /// group at its next changed load.
    async fn set_group_stores(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The group's name (1 to 100 characters).")] group: String,
        #[graphql(
            desc = "Its stores, all of them (at most 100000; a request body of 1 MB holds about 45,000 ids of 19 digits: a larger group comes from the store-groups file)."
        )]
        store_ids: Vec<ID>,
    ) -> async_graphql::Result<GroupNode> {
        let state = ctx.data_unchecked::<AppState>();
        let ids = store_ids.into_iter().map(|id| id.0).collect();
        let group = service::set_group_stores(state, &caller(ctx), &group, ids).await?;
        Ok(GroupNode(group))
    }

    /// Renames a store group (admins only), in the tokens scoped to it too.
    async fn rename_group(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The group's name.")] group: String,
        #[graphql(desc = "Its new name (1 to 100 characters), not another group's.")] new_name: String,
    ) -> async_graphql::Result<GroupNode> {
        let state = ctx.data_unchecked::<AppState>();
        let group = service::rename_group(state, &caller(ctx), &group, &new_name).await?;
        Ok(GroupNode(group))
    }

    /// Deletes a store group (admins only); its stores stay. Refused while a token is
    /// scoped to it: revoke those first. Returns the group as it was.
    async fn delete_group(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The group's name.")] group: String,
    ) -> async_graphql::Result<GroupNode> {
        let state = ctx.data_unchecked::<AppState>();
        let group = service::delete_group(state, &caller(ctx), &group).await?;
        Ok(GroupNode(group))
    }

    /// Adds a webhook (admins only): every incident event of the types it names is posted
    /// to its URL, signed. Returns its signing secret, shown this once.
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Its URL, description and event types.")] input: CreateWebhookInput,
    ) -> async_graphql::Result<WebhookWithSecret> {
        let state = ctx.data_unchecked::<AppState>();
        let who = caller(ctx);
        let created_by = who.token.as_ref().map_or("anonymous", |t| t.name.as_str());
        let created = service::create_webhook(
            state,
            created_by,
            &input.url,
            &input.description,
            webhook::event_names(&input.events),
        )
        .await?;
        Ok(WebhookWithSecret {
            webhook: WebhookNode(created.webhook, None),
            secret: created.secret,
        })
    }

    /// Gives a webhook a new signing secret (admins only), shown this once. For 24 hours the
    /// old secret signs too (both signatures in `webhook-signature`), so that the receiver
    /// can change over without missing a delivery.
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The webhook's id.")] id: ID,
    ) -> async_graphql::Result<WebhookWithSecret> {
        let state = ctx.data_unchecked::<AppState>();
        let rotated = service::rotate_webhook_secret(state, webhook::webhook_id(&id)?).await?;
        let mut found = webhook::with_last_deliveries(state, vec![rotated.webhook]).await?;
        Ok(WebhookWithSecret {
            webhook: found.remove(0),
            secret: rotated.secret,
        })
    }

    /// Deletes a webhook and its deliveries' records (admins only); attempts still queued
    /// are dropped. Returns its id.
    async fn delete_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The webhook's id.")] id: ID,
    ) -> async_graphql::Result<ID> {
        let state = ctx.data_unchecked::<AppState>();
        service::delete_webhook(state, webhook::webhook_id(&id)?).await?;
        Ok(id)
    }

    /// Delivers an event to a webhook again, from a first attempt (admins only): after a
    /// receiver's outage outlasted the retries, say.
    async fn redeliver(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The webhook's id.")] webhook_id: ID,
        #[graphql(desc = "The event's id (`webhook-id`, a delivery's `eventId`).")] event_id: ID,
    ) -> async_graphql::Result<bool> {
        let state = ctx.data_unchecked::<AppState>();
        let event = uuid::Uuid::parse_str(&event_id)
            .map_err(|_| Error::BadInput(format!("{:?} is not an event id (a UUID)", event_id.as_str())))?;
        service::redeliver(state, webhook::webhook_id(&webhook_id)?, event).await?;
        Ok(true)
    }
}
