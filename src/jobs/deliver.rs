//! Webhook deliveries: each attempt an apalis job (`db::webhooks::DeliveryJob`), queued in
//! the transaction that wrote its event, so that deliveries survive restarts and spread over
//! the workers of every process. An attempt posts the event, signed as Standard Webhooks
//! writes it, with a 15 s timeout and no redirects followed, to an address checked against
//! the SSRF rule (`domain::destination`) when the host is looked up; then records what
//! came of it and, in the same transaction, queues the next attempt by the retry schedule,
//! or disables a webhook whose receiver answered 410.
//!
//! Each webhook has its share of this process's delivery workers (`jobs::lanes`; more while
//! its receiver is quick): a job whose webhook has no room is handed back to the queue for
//! later, and the worker takes the next, so that a slow or failing receiver delays only its
//! own deliveries.
//!
//! The workers read the queue as soon as a process commits events (`jobs::wake`, on the
//! notice `db::events` hears), and on a timer for what no notice announces: retries coming
//! due, jobs handed back, redeliveries. `store_monitor_webhook_delivery_lag_seconds` is the
//! time from an event to each attempt's answer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::{BoxDynError, Data, TaskId, WorkerContext};
use apalis_postgres::PostgresStorage;
use chrono::{SecondsFormat, Utc};
use serde_json::json;
use tracing::Instrument;
use uuid::Uuid;

use crate::db::incidents::{self, EventKind, IncidentEvent};
use crate::db::webhooks::{self, Attempt, DeliveryJob, Endpoint};
use crate::db::{Pool, queue};
use crate::domain::destination;
use crate::domain::webhook::{Answer, RetrySchedule, Secret, answer, signature_header};
use crate::jobs::lanes::Lanes;

/// How long a receiver has to answer.
const TIMEOUT: Duration = Duration::from_secs(15);

/// How often the delivery workers read the queue without a notice: what a retry coming due
/// (or a job handed back) may wait past its time. Four reads a second of one indexed query.
pub const RECHECK: Duration = Duration::from_millis(250);

/// What deliveries need: the database, one HTTP client for all (its connections kept per
/// host), the retry schedule, whether private addresses may be reached, and the webhooks'
/// lanes of this process's workers.
#[derive(Clone)]
pub struct DeliveryContext {
    pub pool: Pool,
    client: reqwest::Client,
    schedule: RetrySchedule,
    allow_private: bool,
    lanes: Arc<Lanes>,
}

impl DeliveryContext {
    /// The context of `workers` delivery workers.
    pub fn new(pool: Pool, schedule: RetrySchedule, allow_private: bool, workers: usize) -> Self {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            // A redirect could lead anywhere, a private address included: not followed.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(CheckedResolver { allow_private }))
            .user_agent(concat!("store-monitor/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client's settings are valid and rustls's roots are built in");
        DeliveryContext {
            pool,
            client,
            schedule,
            allow_private,
            lanes: Lanes::new(workers),
        }
    }
}

/// The queue's storage, the same in every process.
pub fn storage(pool: &Pool) -> PostgresStorage<DeliveryJob> {
    queue::storage(pool, webhooks::DELIVERY_QUEUE, 32, Duration::from_secs(5), 3)
}

/// The apalis handler. A receiver's failure is an outcome, recorded (and retried by the
/// schedule); only the database's failure fails the job, for apalis to run it again. A job
/// whose webhook has no room in its lane is handed back for later.
pub async fn handle(
    job: DeliveryJob,
    ctx: Data<DeliveryContext>,
    id: TaskId,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    let place = match ctx.lanes.enter(job.webhook, rand_unit()).await {
        Ok(place) => place,
        Err(wait) => return hand_back(&ctx, &job, &id, &worker, wait).await,
    };
    let span = tracing::info_span!("webhook delivery", event = %job.event, webhook = %job.webhook, attempt = job.attempt);
    let outcome = run(&ctx, job).instrument(span).await;
    drop(place);
    match outcome {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(event = %job.event, webhook = %job.webhook, attempt = job.attempt, error = format!("{e:#}"), "webhook delivery could not be recorded; apalis runs it again");
            Err(e.into())
        }
    }
}

/// Hands the job `id` back to the queue, to run `wait` from now (under a new id: see
/// `queue::hand_back`).
async fn hand_back(
    ctx: &DeliveryContext,
    job: &DeliveryJob,
    id: &TaskId,
    worker: &WorkerContext,
    wait: Duration,
) -> Result<(), BoxDynError> {
    let new_id = ulid::Ulid(Uuid::new_v4().as_u128()).to_string();
    match queue::hand_back(&ctx.pool, &id.to_string(), &new_id, worker.name(), wait).await {
        Ok(_) => {
            tracing::debug!(event = %job.event, webhook = %job.webhook, attempt = job.attempt, wait_ms = wait.as_millis() as u64, "no room in the webhook's lane: its delivery waits");
            Ok(())
        }
        Err(e) => {
            tracing::warn!(event = %job.event, webhook = %job.webhook, error = %e, "a webhook delivery could not be put off; apalis runs it again");
            Err(e.into())
        }
    }
}

/// What came of an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// The receiver answered 2xx.
    Delivered,
    /// It will be tried again at the attempt's `next`.
    Retrying { status: Option<u16>, next: u32 },
    /// No attempt is left, or the answer says another would fail as well.
    Failed { status: Option<u16> },
    /// The receiver answered 410: the webhook is disabled.
    Gone,
    /// The address is not one a webhook may reach.
    Refused,
    /// Nothing to send: the webhook was deleted or disabled, or the event pruned.
    Skipped,
}

/// Makes one attempt (a plain function: tests call it directly).
pub async fn run(ctx: &DeliveryContext, job: DeliveryJob) -> anyhow::Result<Delivered> {
    let Some(endpoint) = webhooks::endpoint(&ctx.pool, job.webhook).await? else {
        return Ok(Delivered::Skipped);
    };
    let Some(event) = incidents::event(&ctx.pool, job.event).await? else {
        return Ok(Delivered::Skipped);
    };
    if endpoint.disabled_at.is_some() {
        return Ok(Delivered::Skipped);
    }
    let started = Instant::now();
    let sent = send(ctx, &endpoint, &event).await;
    let lag = (Utc::now() - event.created_at).to_std().unwrap_or_default();
    let duration_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
    let (status, retry_after, error) = match &sent {
        Ok(answered) => (Some(answered.status), answered.retry_after, None),
        Err(failure) => (None, None, Some(failure.to_string())),
    };
    let mut attempt = Attempt {
        webhook: job.webhook,
        event: job.event,
        attempt: job.attempt as i32,
        status: status.map(i32::from),
        duration_ms,
        outcome: "delivered",
        error: error.as_deref(),
        next_at: None,
    };
    let mut tx = ctx.pool.begin().await?;
    let outcome = match (&sent, answer(status)) {
        (Err(SendError::Refused(_)), _) => {
            attempt.outcome = "refused";
            Delivered::Refused
        }
        (_, Answer::Delivered) => Delivered::Delivered,
        (_, Answer::Gone) => {
            attempt.outcome = "gone";
            webhooks::disable(&mut *tx, job.webhook, "the receiver answered 410 Gone").await?;
            Delivered::Gone
        }
        (_, Answer::Failed) => {
            attempt.outcome = "failed";
            Delivered::Failed { status }
        }
        (_, Answer::Retry) => match ctx.schedule.delay(job.attempt, retry_after, rand_unit()) {
            Some(delay) => {
                attempt.outcome = "retrying";
                attempt.next_at = Some(Utc::now() + delay);
                let next = DeliveryJob {
                    attempt: job.attempt + 1,
                    ..job
                };
                webhooks::queue_jobs(&mut *tx, &[next], Some(delay)).await?;
                Delivered::Retrying {
                    status,
                    next: next.attempt,
                }
            }
            None => {
                attempt.outcome = "failed";
                Delivered::Failed { status }
            }
        },
    };
    webhooks::record(&mut *tx, &attempt).await?;
    tx.commit().await?;
    let metrics = crate::telemetry::metrics();
    metrics.webhook_attempt(attempt.outcome, started.elapsed());
    metrics.webhook_lag(lag_label(&job), lag);
    tracing::info!(
        event = %job.event,
        webhook = %job.webhook,
        attempt = job.attempt,
        status,
        duration_ms,
        outcome = attempt.outcome,
        error = attempt.error,
        "webhook delivery"
    );
    Ok(outcome)
}

/// The lag metric's `attempt`.
fn lag_label(job: &DeliveryJob) -> &'static str {
    match (job.redelivery, job.attempt) {
        (true, _) => "redelivery",
        (false, 1) => "first",
        (false, _) => "retry",
    }
}

/// A number in `[0, 1)` for the retry's jitter.
fn rand_unit() -> f64 {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

/// The receiver's answer.
struct Answered {
    status: u16,
    retry_after: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unreachable(String),
}

/// The body a receiver gets: the event's type, when it happened, the incident then.
pub fn body(event: &IncidentEvent) -> serde_json::Value {
    let incident = &event.incident;
    let at = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    json!({
        "type": incidents::event_type(match event.kind {
            EventKind::Opened => "opened",
            EventKind::Resolved => "resolved",
            EventKind::Withdrawn => "withdrawn",
        }),
        "timestamp": at(event.created_at),
        "data": {
            "incident": {
                "id": format!("Incident:{}", incident.id),
                "storeId": incident.store_id,
                "openedAt": at(incident.opened_at),
                "resolvedAt": incident.resolved_at.map(at),
                "open": incident.resolved_at.is_none() && event.kind != EventKind::Withdrawn,
                "withdrawn": event.kind == EventKind::Withdrawn,
                "inactivePolls": incident.inactive_polls,
            },
            "store": { "storeId": incident.store_id, "id": format!("Store:{}", incident.store_id) },
        },
    })
}

async fn send(
    ctx: &DeliveryContext,
    endpoint: &Endpoint,
    event: &IncidentEvent,
) -> Result<Answered, SendError> {
    let url = reqwest::Url::parse(&endpoint.url).map_err(|e| SendError::Refused(format!("bad URL: {e}")))?;
    // A host written as an address is never looked up: checked here.
    if let Some(ip) = literal_address(&url)
        && !ctx.allow_private
        && let Err(refused) = destination::check(ip)
    {
        return Err(SendError::Refused(format!("{ip} is {}", refused.words())));
    }
    let body = serde_json::to_vec(&body(event)).expect("the body serializes");
    let id = event.id.to_string();
    let timestamp = Utc::now().timestamp();
    let current = Secret::parse(&endpoint.secret);
    let previous = endpoint
        .previous_secret
        .as_deref()
        .filter(|_| endpoint.previous_until.is_some_and(|until| until > Utc::now()))
        .and_then(Secret::parse);
    let secrets: Vec<&Secret> = current.iter().chain(previous.iter()).collect();
    let response = ctx
        .client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signature_header(&secrets, &id, timestamp, &body),
        )
        .body(body)
        .send()
        .await
        .map_err(describe)?;
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Ok(Answered {
        status: response.status().as_u16(),
        retry_after,
    })
}

/// Why a request got no answer, in words for the delivery's record: the resolver's refusal
/// as itself, other failures by their kind (never the full chain, which may name internals).
fn describe(e: reqwest::Error) -> SendError {
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<RefusedAddress>() {
            return SendError::Refused(refused.0.clone());
        }
        source = cause.source();
    }
    let what = if e.is_timeout() {
        "no answer within 15 s"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    };
    SendError::Unreachable(what.to_string())
}

/// The URL's host, if it is written as an address (`[…]` for IPv6).
pub fn literal_address(url: &reqwest::Url) -> Option<IpAddr> {
    url.host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Looks hosts up as the system does, then refuses any that resolves to an address a
/// webhook may not reach: checked where the connection is made, so that a name that changes
/// its answer after creation (DNS rebinding) still cannot lead inside.
struct CheckedResolver {
    allow_private: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RefusedAddress(String);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private {
                check_all(&host, &found).map_err(|e| Box::new(RefusedAddress(e)) as BoxDynError)?;
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether every address `host` resolved to is one a webhook may reach; else why not.
pub fn check_all(host: &str, found: &[SocketAddr]) -> Result<(), String> {
    for addr in found {
        if let Err(refused) = destination::check(addr.ip()) {
            return Err(format!("{host} resolves to {} ({})", addr.ip(), refused.words()));
        }
    }
    Ok(())
}

/// Queues the first attempt of `event` to `webhook` again (`redeliver`).
pub async fn redeliver(pool: &Pool, event: Uuid, webhook: Uuid) -> sqlx::Result<()> {
    webhooks::queue_jobs(
        pool,
        &[DeliveryJob {
            event,
            webhook,
            attempt: 1,
            redelivery: true,
        }],
        None,
    )
    .await
}
