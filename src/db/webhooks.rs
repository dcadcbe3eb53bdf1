//! Webhooks and their deliveries (`webhooks`, `webhook_deliveries`).

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

/// A webhook as the API shows it: never its secret.
#[derive(Clone, Debug, FromRow)]
pub struct WebhookRecord {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    /// Until when the secret before the last rotation also signs.
    pub previous_until: Option<DateTime<Utc>>,
}

/// What a delivery needs of a webhook: where, and the secrets that sign.
#[derive(Clone, FromRow)]
pub(crate) struct Endpoint {
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_until: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
}

/// A new webhook.
pub(crate) struct NewWebhook<'a> {
    pub id: Uuid,
    pub url: &'a str,
    pub description: &'a str,
    pub events: &'a [String],
    pub secret: &'a str,
    pub created_by: &'a str,
}

pub(crate) async fn insert(db: impl PgExecutor<'_>, new: &NewWebhook<'_>) -> sqlx::Result<WebhookRecord> {
    sqlx::query_as(
        "INSERT INTO webhooks (id, url, description, events, secret, created_by)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id, url, description, events, created_at, created_by, disabled_at, disabled_reason,
                   previous_until",
    )
    .bind(new.id)
    .bind(new.url)
    .bind(new.description)
    .bind(new.events)
    .bind(new.secret)
    .bind(new.created_by)
    .fetch_one(db)
    .await
}

/// Every webhook, newest first.
pub(crate) async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<WebhookRecord>> {
    sqlx::query_as(
        "SELECT id, url, description, events, created_at, created_by, disabled_at, disabled_reason, previous_until
         FROM webhooks ORDER BY created_at DESC, id",
    )
    .fetch_all(db)
    .await
}

pub(crate) async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<WebhookRecord>> {
    sqlx::query_as(
        "SELECT id, url, description, events, created_at, created_by, disabled_at, disabled_reason, previous_until
         FROM webhooks WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

pub(crate) async fn endpoint(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Endpoint>> {
    sqlx::query_as(
        "SELECT url, secret, previous_secret, previous_until, disabled_at FROM webhooks WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Makes `secret` the webhook's secret; the one before signs too until `overlap_until`.
pub(crate) async fn rotate(
    db: impl PgExecutor<'_>,
    id: Uuid,
    secret: &str,
    overlap_until: DateTime<Utc>,
) -> sqlx::Result<Option<WebhookRecord>> {
    sqlx::query_as(
        "UPDATE webhooks SET previous_secret = secret, previous_until = $3, secret = $2 WHERE id = $1
         RETURNING id, url, description, events, created_at, created_by, disabled_at, disabled_reason,
                   previous_until",
    )
    .bind(id)
    .bind(secret)
    .bind(overlap_until)
    .fetch_optional(db)
    .await
}

/// Deletes the webhook and its deliveries; `false` if there was none.
pub(crate) async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query("DELETE FROM webhooks WHERE id = $1")
        .bind(id)
        .execute(db)
        .await
        .map(|r| r.rows_affected() == 1)
}

/// Stops sending to the webhook, saying why.
pub(crate) async fn disable(db: impl PgExecutor<'_>, id: Uuid, reason: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhooks SET disabled_at = now(), disabled_reason = $2 WHERE id = $1 AND disabled_at IS NULL",
    )
    .bind(id)
    .bind(reason)
    .execute(db)
    .await
    .map(drop)
}

/// One attempt of a delivery.
#[derive(Clone, Debug, FromRow)]
pub struct DeliveryRecord {
    pub id: i64,
    pub webhook: Uuid,
    pub event: Uuid,
    /// The event's type, as the body's `type` says it (`incident.opened`, …).
    pub event_type: Option<String>,
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub status: Option<i32>,
    pub duration_ms: i32,
    pub outcome: String,
    pub error: Option<String>,
    pub next_at: Option<DateTime<Utc>>,
}

/// An attempt to record.
pub(crate) struct Attempt<'a> {
    pub webhook: Uuid,
    pub event: Uuid,
    pub attempt: i32,
    pub status: Option<i32>,
    pub duration_ms: i32,
    pub outcome: &'a str,
    pub error: Option<&'a str>,
    pub next_at: Option<DateTime<Utc>>,
}

pub(crate) async fn record(db: impl PgExecutor<'_>, attempt: &Attempt<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (webhook, event, attempt, status, duration_ms, outcome, error, next_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(attempt.webhook)
    .bind(attempt.event)
    .bind(attempt.attempt)
    .bind(attempt.status)
    .bind(attempt.duration_ms)
    .bind(attempt.outcome)
    .bind(attempt.error)
    .bind(attempt.next_at)
    .execute(db)
    .await
    .map(drop)
}

/// Up to `limit` attempts at the webhook's deliveries, newest first, before attempt `before`.
pub(crate) async fn deliveries(
    db: impl PgExecutor<'_>,
    webhook: Uuid,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<DeliveryRecord>> {
    sqlx::query_as(
        "SELECT d.id, d.webhook, d.event, 'incident.' || CASE e.kind WHEN 'opened' THEN 'opened' ELSE 'resolved' END
                    AS event_type,
                d.attempt, d.at, d.status, d.duration_ms, d.outcome, d.error, d.next_at
         FROM webhook_deliveries d LEFT JOIN incident_events e ON e.id = d.event
         WHERE d.webhook = $1 AND ($2::bigint IS NULL OR d.id < $2)
         ORDER BY d.id DESC LIMIT $3",
    )
    .bind(webhook)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Each webhook's newest attempt.
pub(crate) async fn last_deliveries(
    db: impl PgExecutor<'_>,
    webhooks: &[Uuid],
) -> sqlx::Result<Vec<DeliveryRecord>> {
    sqlx::query_as(
        "SELECT d.id, d.webhook, d.event, 'incident.' || CASE e.kind WHEN 'opened' THEN 'opened' ELSE 'resolved' END
                    AS event_type,
                d.attempt, d.at, d.status, d.duration_ms, d.outcome, d.error, d.next_at
         FROM unnest($1::uuid[]) AS w (id)
         CROSS JOIN LATERAL (SELECT * FROM webhook_deliveries d WHERE d.webhook = w.id ORDER BY d.id DESC LIMIT 1) d
         LEFT JOIN incident_events e ON e.id = d.event",
    )
    .bind(webhooks)
    .fetch_all(db)
    .await
}

/// Deletes the records of delivery attempts made before `before`.
pub(crate) async fn prune_deliveries(db: impl PgExecutor<'_>, before: DateTime<Utc>) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM webhook_deliveries WHERE at < $1")
        .bind(before)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
}

/// The apalis queue of deliveries: one job an attempt.
pub const DELIVERY_QUEUE: &str = "store-monitor::webhook-delivery";

/// A job's failures apalis retries itself: a database that fails the job's bookkeeping. An
/// attempt whose receiver failed is a job that succeeded and queued the next attempt.
const DELIVERY_JOB_ATTEMPTS: i32 = 3;

/// One attempt to deliver `event` to `webhook`, as apalis's JSON codec stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryJob {
    pub event: Uuid,
    pub webhook: Uuid,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Queued again by `redeliver`, maybe long after the event: told apart in the lag's
    /// metric. Absent from jobs queued otherwise, as from those of earlier releases.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redelivery: bool,
}

#[derive(FromRow)]
struct Subscriber {
    id: Uuid,
    events: Vec<String>,
}

/// Queues, on the caller's connection (in the transaction that wrote the events), the first
/// attempt of each event to each enabled webhook that receives its type; `events` are
/// (event id, type as the body says it).
pub(crate) async fn queue_deliveries(
    conn: &mut sqlx::PgConnection,
    events: &[(Uuid, &str)],
) -> sqlx::Result<usize> {
    let subscribers: Vec<Subscriber> =
        sqlx::query_as("SELECT id, events FROM webhooks WHERE disabled_at IS NULL")
            .fetch_all(&mut *conn)
            .await?;
    let mut jobs = Vec::new();
    for hook in &subscribers {
        for &(event, kind) in events {
            if hook.events.iter().any(|e| e == kind) {
                jobs.push(DeliveryJob {
                    event,
                    webhook: hook.id,
                    attempt: 1,
                    redelivery: false,
                });
            }
        }
    }
    queue_jobs(conn, &jobs, None).await?;
    Ok(jobs.len())
}

/// Queues `jobs`, to run after `delay` (or at once).
pub(crate) async fn queue_jobs(
    db: impl PgExecutor<'_>,
    jobs: &[DeliveryJob],
    delay: Option<std::time::Duration>,
) -> sqlx::Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    // apalis's ids are ULIDs: any 128 bits will do.
    let ids: Vec<String> = jobs
        .iter()
        .map(|_| ulid::Ulid(Uuid::new_v4().as_u128()).to_string())
        .collect();
    let bodies: Vec<Vec<u8>> = jobs
        .iter()
        .map(|j| serde_json::to_vec(j).expect("a job serializes"))
        .collect();
    super::queue::push_many(
        db,
        DELIVERY_QUEUE,
        &ids,
        &bodies,
        DELIVERY_JOB_ATTEMPTS,
        // An interval holds microseconds; a jittered delay has nanoseconds.
        std::time::Duration::from_micros(delay.unwrap_or_default().as_micros() as u64),
    )
    .await
}
