//! The GraphQL types of webhooks (admins only): endpoints told of incidents, and their
//! deliveries. A secret is shown once, when it is made; never again.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{cursor, page, page_size};
use crate::service::{self, AppState, DeliveryRecord, Error, WebhookRecord};

/// An event type a webhook receives.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum WebhookEvent {
    /// `incident.opened`: a store went down.
    IncidentOpened,
    /// `incident.resolved`: a store came back up (or its incident was withdrawn).
    IncidentResolved,
}

impl WebhookEvent {
    fn name(self) -> &'static str {
        match self {
            WebhookEvent::IncidentOpened => "incident.opened",
            WebhookEvent::IncidentResolved => "incident.resolved",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "incident.opened" => Some(WebhookEvent::IncidentOpened),
            "incident.resolved" => Some(WebhookEvent::IncidentResolved),
            _ => None,
        }
    }
}

/// A webhook to create.
#[derive(InputObject, Debug)]
pub struct CreateWebhookInput {
    /// Where deliveries are posted: an http:// or https:// URL whose host resolves to public
    /// addresses only (unless the server allows private ones).
    pub url: String,
    /// What it is for, up to 500 characters.
    #[graphql(default)]
    pub description: String,
    /// The event types it receives (default: both).
    #[graphql(default_with = "vec![WebhookEvent::IncidentOpened, WebhookEvent::IncidentResolved]")]
    pub events: Vec<WebhookEvent>,
}

/// Whether a webhook is sent to.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum WebhookState {
    /// Deliveries are made.
    Active,
    /// Its receiver answered 410 Gone: nothing more is sent (create it again to resume).
    Disabled,
}

pub struct WebhookNode(pub WebhookRecord, pub Option<DeliveryRecord>);

/// An endpoint told of incidents: each event is posted to it as JSON, signed as Standard
/// Webhooks writes it (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
#[Object(name = "Webhook")]
impl WebhookNode {
    /// The webhook's id (a UUID).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Where deliveries are posted.
    async fn url(&self) -> &str {
        &self.0.url
    }

    /// What it is for.
    async fn description(&self) -> &str {
        &self.0.description
    }

    /// The event types it receives.
    async fn events(&self) -> Vec<WebhookEvent> {
        self.0
            .events
            .iter()
            .filter_map(|e| WebhookEvent::from_name(e))
            .collect()
    }

    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The name of the token that created it.
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }

    /// Whether it is sent to.
    async fn state(&self) -> WebhookState {
        if self.0.disabled_at.is_some() {
            WebhookState::Disabled
        } else {
            WebhookState::Active
        }
    }

    /// When it was disabled, and why.
    async fn disabled_at(&self) -> Option<DateTime<Utc>> {
        self.0.disabled_at
    }

    /// Why it was disabled.
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled_reason.as_deref()
    }

    /// Until when the secret before the last rotation also signs (null: none does).
    async fn previous_secret_until(&self) -> Option<DateTime<Utc>> {
        self.0.previous_until.filter(|until| *until > Utc::now())
    }

    /// Its newest delivery attempt, if any.
    async fn last_delivery(&self) -> Option<WebhookDelivery> {
        self.1.clone().map(WebhookDelivery::from)
    }

    /// Its delivery attempts, newest first, a page at a time.
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, at most 1000 (default 20).")] first: Option<i32>,
        #[graphql(desc = "The cursor of the attempt to start after.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, WebhookDelivery>> {
        let limit = first.map_or(Ok(20), |n| page_size(Some(n)))?;
        let list = format!("deliveries:{}", self.0.id);
        let before = after
            .as_deref()
            .map(|c| {
                cursor::decode(c, &list)?
                    .parse::<i64>()
                    .map_err(|_| Error::BadInput(format!("{c:?} is not a cursor of this list")))
            })
            .transpose()?;
        let state = ctx.data_unchecked::<AppState>();
        let found = service::deliveries(state, self.0.id, before, limit + 1).await?;
        Ok(page(found, limit, before.is_some(), |d| {
            (cursor::encode(&list, &d.id.to_string()), WebhookDelivery::from(d))
        }))
    }
}

/// What came of a delivery attempt.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// No answer, a 5xx or a 429: tried again at `nextAttemptAt`.
    Retrying,
    /// Another status (a 4xx, a redirect), or the last attempt failed: not tried again.
    Failed,
    /// The receiver answered 410 Gone: the webhook was disabled.
    Gone,
    /// The URL led to an address webhooks may not reach.
    Refused,
}

/// One attempt to deliver an event to a webhook.
#[derive(SimpleObject, Debug, Clone)]
pub struct WebhookDelivery {
    /// The event's id: the `webhook-id` header, the same on every attempt.
    pub event_id: ID,
    /// The event's type (`incident.opened`, `incident.resolved`); null once it is pruned.
    pub event_type: Option<String>,
    /// 1 for the first attempt.
    pub attempt: i32,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status; null when it gave none.
    pub http_status: Option<i32>,
    /// How long the receiver took, in milliseconds.
    pub duration_ms: i32,
    /// What came of it.
    pub outcome: DeliveryOutcome,
    /// Why it failed, when it did: no answer in time, a refused connection or address.
    pub error: Option<String>,
    /// When the next attempt runs, if one does.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<DeliveryRecord> for WebhookDelivery {
    fn from(d: DeliveryRecord) -> Self {
        WebhookDelivery {
            event_id: ID(d.event.to_string()),
            event_type: d.event_type,
            attempt: d.attempt,
            at: d.at,
            http_status: d.status,
            duration_ms: d.duration_ms,
            outcome: match d.outcome.as_str() {
                "delivered" => DeliveryOutcome::Delivered,
                "retrying" => DeliveryOutcome::Retrying,
                "gone" => DeliveryOutcome::Gone,
                "refused" => DeliveryOutcome::Refused,
                _ => DeliveryOutcome::Failed,
            },
            error: d.error,
            next_attempt_at: d.next_at,
        }
    }
}

/// A webhook and its signing secret, which is shown this once.
#[derive(SimpleObject)]
pub struct WebhookWithSecret {
    /// The webhook.
    pub webhook: WebhookNode,
    /// The signing secret, `whsec_…`: give it to the receiver's Standard Webhooks library.
    /// It is not shown again.
    pub secret: String,
}

/// A webhook's id, read.
pub(crate) fn webhook_id(id: &ID) -> Result<Uuid, Error> {
    Uuid::parse_str(id)
        .map_err(|_| Error::BadInput(format!("{:?} is not a webhook id (a UUID)", id.as_str())))
}

/// The input's event types, as stored.
pub(crate) fn event_names(events: &[WebhookEvent]) -> Vec<String> {
    events.iter().map(|e| e.name().to_string()).collect()
}

/// The webhooks with their newest deliveries.
pub(crate) async fn with_last_deliveries(
    state: &AppState,
    webhooks: Vec<WebhookRecord>,
) -> Result<Vec<WebhookNode>, Error> {
    let ids: Vec<Uuid> = webhooks.iter().map(|w| w.id).collect();
    let mut last = service::last_deliveries(state, &ids).await?;
    Ok(webhooks
        .into_iter()
        .map(|w| {
            let delivery = last.remove(&w.id);
            WebhookNode(w, delivery)
        })
        .collect())
}
