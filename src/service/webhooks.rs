//! Webhooks (admins): endpoints told of incidents, their secrets and their deliveries.

use std::collections::HashMap;
use std::net::SocketAddr;

use chrono::{TimeDelta, Utc};
use uuid::Uuid;

use super::{AppState, Error, Result};
use crate::db::webhooks::{self, DeliveryRecord, NewWebhook, WebhookRecord};
use crate::domain::destination;
use crate::domain::webhook::Secret;
use crate::jobs::deliver;
/// What webhooks may reach, and how deliveries are retried (`serve`'s and `worker`'s flags).
#[derive(Clone, Debug, Default)]
pub struct WebhookSettings {
    /// `--webhook-allow-private`: loopback, private and link-local addresses too.
    pub allow_private: bool,
    /// `--webhook-retry-schedule`.
    pub retry_schedule: crate::domain::webhook::RetrySchedule,
}

/// The event types a webhook may receive.
pub const EVENT_TYPES: [&str; 2] = ["incident.opened", "incident.resolved"];

/// How long a rotated secret still signs beside the new one.
pub const ROTATION_OVERLAP: TimeDelta = TimeDelta::hours(24);

/// A webhook with its signing secret, shown this once.
pub struct WithSecret {
    pub webhook: WebhookRecord,
    pub secret: String,
}

/// Adds a webhook, after checking that its URL is one it may reach.
pub async fn create_webhook(
    state: &AppState,
    created_by: &str,
    url: &str,
    description: &str,
    events: Vec<String>,
) -> Result<WithSecret> {
    check_url(url, state.webhooks.allow_private).await?;
    if description.chars().count() > 500 {
        return Err(Error::BadInput("a description is at most 500 characters".into()));
    }
    let mut events = events;
    events.sort();
    events.dedup();
    if events.is_empty() {
        return Err(Error::BadInput(format!(
            "name at least one event type: {}",
            EVENT_TYPES.join(", ")
        )));
    }
    let secret = new_secret();
    let webhook = webhooks::insert(
        &state.db,
        &NewWebhook {
            id: Uuid::new_v4(),
            url,
            description,
            events: &events,
            secret: &secret,
            created_by,
        },
    )
    .await?;
    tracing::info!(webhook = %webhook.id, url = %without_secrets(&webhook.url), "webhook created");
    Ok(WithSecret { webhook, secret })
}

/// `url` as logs may show it: scheme, host, port and path, without the user, password,
/// query or fragment, where receivers put their tokens.
pub fn without_secrets(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => "(not a URL)".to_string(),
    }
}

/// A new secret of 32 random bytes, as `whsec_…`.
fn new_secret() -> String {
    let mut bytes = vec![0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's random source works");
    Secret::from_bytes(bytes)
        .expect("32 bytes make a secret")
        .reveal()
}

/// Whether `url` is one a webhook may have: http or https, a host that resolves only to
/// public addresses (unless `allow_private`). Checked again at every delivery.
async fn check_url(url: &str, allow_private: bool) -> Result<()> {
    if url.len() > 2048 {
        return Err(Error::BadInput("a webhook URL is at most 2048 bytes".into()));
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|e| Error::BadInput(format!("{url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::BadInput(format!(
            "a webhook URL is http:// or https://, not {}://",
            parsed.scheme()
        )));
    }
    let Some(host) = parsed.host_str() else {
        return Err(Error::BadInput(format!("{url:?} names no host")));
    };
    if allow_private {
        return Ok(());
    }
    if let Some(ip) = deliver::literal_address(&parsed) {
        return destination::check(ip)
            .map_err(|refused| Error::BadInput(refusal(&format!("{ip} is {}", refused.words()))));
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| Error::BadInput(format!("cannot look up {host:?}: a webhook's host must resolve")))?
        .collect();
    deliver::check_all(host, &found).map_err(|why| Error::BadInput(refusal(&why)))
}

fn refusal(why: &str) -> String {
    format!(
        "{why}: webhooks reach public addresses only (a server started with --webhook-allow-private reaches private ones too)"
    )
}

/// Every webhook, newest first.
pub async fn list_webhooks(state: &AppState) -> Result<Vec<WebhookRecord>> {
    Ok(webhooks::list(&state.db).await?)
}

/// The webhook `id`.
pub async fn webhook(state: &AppState, id: Uuid) -> Result<Option<WebhookRecord>> {
    Ok(webhooks::get(&state.db, id).await?)
}

/// Each of these webhooks' newest delivery attempt.
pub async fn last_deliveries(state: &AppState, ids: &[Uuid]) -> Result<HashMap<Uuid, DeliveryRecord>> {
    let found = webhooks::last_deliveries(&state.db, ids).await?;
    Ok(found.into_iter().map(|d| (d.webhook, d)).collect())
}

/// Up to `limit` of the webhook's delivery attempts, newest first, before the one `before`.
pub async fn deliveries(
    state: &AppState,
    id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<DeliveryRecord>> {
    Ok(webhooks::deliveries(&state.db, id, before, limit).await?)
}

/// Gives the webhook a new secret; the old one signs beside it for [`ROTATION_OVERLAP`].
pub async fn rotate_webhook_secret(state: &AppState, id: Uuid) -> Result<WithSecret> {
    let secret = new_secret();
    let webhook = webhooks::rotate(&state.db, id, &secret, Utc::now() + ROTATION_OVERLAP)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no webhook {id}")))?;
    tracing::info!(webhook = %id, "webhook secret rotated");
    Ok(WithSecret { webhook, secret })
}

/// Deletes the webhook and its deliveries' records; attempts queued are dropped.
pub async fn delete_webhook(state: &AppState, id: Uuid) -> Result<()> {
    if !webhooks::delete(&state.db, id).await? {
        return Err(Error::NotFound(format!("no webhook {id}")));
    }
    tracing::info!(webhook = %id, "webhook deleted");
    Ok(())
}

/// Queues the event's delivery to the webhook anew, from its first attempt.
pub async fn redeliver(state: &AppState, webhook: Uuid, event: Uuid) -> Result<()> {
    if webhooks::get(&state.db, webhook).await?.is_none() {
        return Err(Error::NotFound(format!("no webhook {webhook}")));
    }
    if crate::db::incidents::event(&state.db, event).await?.is_none() {
        return Err(Error::NotFound(format!("no event {event}")));
    }
    deliver::redeliver(&state.db, event, webhook).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::without_secrets;

    #[test]
    fn a_url_for_the_logs_keeps_no_credentials_query_or_fragment() {
        assert_eq!(
            without_secrets("https://alice:S3cret@hooks.example:8443/in/x?token=t#f"),
            "https://hooks.example:8443/in/x"
        );
        assert_eq!(without_secrets("http://h.example"), "http://h.example/");
        assert_eq!(without_secrets("::"), "(not a URL)");
    }
}
