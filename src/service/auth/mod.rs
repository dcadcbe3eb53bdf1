//! Who is calling, and whether they may: the caller's token (kept as a hash), and the one
//! check every route and operation goes through ([`authorize`]). Managing tokens is in
//! `tokens`, signed report links in `links`, the audit log in `audit`.
//!
//! A token is `sm_` and 64 hex digits (256 random bits); only its SHA-256 is stored, so a
//! leaked database leaks no usable token. A process keeps the tokens it has read for
//! [`KNOWN_FOR`], so that a busy client costs no query per request; a revocation is
//! announced through PostgreSQL (`db::tokens::REVOKED_CHANNEL`) and every process forgets
//! the token as it hears it, the revoking one before it answers. An expiry is checked on
//! every use.

mod audit;
mod links;
mod tokens;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use uuid::Uuid;

pub use self::audit::{Outcome, audit};
pub use self::links::{LinkParams, check_link, report_link};
pub use self::tokens::{
    Revocation, create, create_token, find_token, list, list_tokens, revoke, revoke_token, usable_tokens,
};
use super::{AppState, Error, Result};
use crate::db::Pool;
use crate::db::events::ReportEvents;
use crate::db::tokens::TokenRecord;
use crate::domain::access::{Action, Role};

/// Whether callers need a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Every call but introspection needs a token whose role allows it.
    Required,
    /// Calls without a token may do anything (a token, when sent, is still checked).
    Off,
}

/// How long a process trusts what it read of a token, should a revocation's notice be lost
/// without the listener noticing.
const KNOWN_FOR: Duration = Duration::from_secs(2);
/// How often a token's `last_used_at` is written, at most, per process.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
const SECRET_PREFIX: &str = "sm_";

/// The part of the application that knows about callers.
#[derive(Clone)]
pub struct Access {
    pub mode: AuthMode,
    key: Arc<[u8]>,
    touched: Arc<Mutex<HashMap<Uuid, Instant>>>,
    known: Arc<Mutex<Known>>,
}

/// Tokens read lately, by their secret's hash, and when.
type Known = HashMap<[u8; 32], (TokenRecord, Instant)>;

impl Access {
    /// Reads (or makes, if this is the first process) the key that signs report links, and
    /// forgets each token `events` says was revoked.
    pub async fn load(pool: &Pool, mode: AuthMode, events: &ReportEvents) -> Result<Access> {
        crate::db::tokens::offer_signing_key(pool, &random_bytes::<32>()?).await?;
        let key = crate::db::tokens::signing_key(pool).await?;
        let access = Access {
            mode,
            key: key.into(),
            touched: Default::default(),
            known: Default::default(),
        };
        let mut revocations = events.revocations();
        let forgetful = access.clone();
        tokio::spawn(async move {
            loop {
                match revocations.recv().await {
                    Ok(id) => forgetful.forget(id),
                    Err(broadcast::error::RecvError::Lagged(_)) => forgetful.forget(None),
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Ok(access)
    }

    /// Forgets the token `id` (`None`: every token) so that its next use reads it again.
    fn forget(&self, id: Option<Uuid>) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        match id {
            Some(id) => known.retain(|_, (record, _)| record.id != id),
            None => known.clear(),
        }
    }

    fn known(&self, secret_sha256: &[u8; 32]) -> Option<TokenRecord> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(secret_sha256)
            .filter(|(_, read)| read.elapsed() < KNOWN_FOR)
            .map(|(record, _)| record.clone())
    }

    fn remember(&self, secret_sha256: [u8; 32], record: &TokenRecord) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= 10_000 {
            known.clear();
        }
        known.insert(secret_sha256, (record.clone(), Instant::now()));
    }
}

/// Makes this process read the tokens `ids` again at their next use (their scope changed).
pub(crate) fn forget_tokens(state: &AppState, ids: &[Uuid]) {
    for id in ids {
        state.access.forget(Some(*id));
    }
}

/// Who made a request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token it came with, if any.
    pub token: Option<TokenUse>,
    /// The client's address, when known.
    pub address: Option<IpAddr>,
    /// How many stores outside its groups it asked for, answered as absent (the audit
    /// line of its call says so).
    pub out_of_scope: Arc<AtomicU32>,
}

/// A token that was accepted.
#[derive(Clone, Debug)]
pub struct TokenUse {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    /// The store groups it sees; `None`: the whole fleet.
    pub groups: Option<Vec<String>>,
    /// What identifies it on the next lookup (a WebSocket re-checks before each operation).
    secret_sha256: [u8; 32],
}

impl Caller {
    pub fn anonymous(address: Option<IpAddr>) -> Caller {
        Caller {
            token: None,
            address,
            out_of_scope: Arc::default(),
        }
    }

    /// Counts an ask for a store outside the caller's groups, in its audit line, the log
    /// and the metrics.
    pub fn asked_outside_scope(&self, store: &str) {
        self.out_of_scope.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::metrics().out_of_scope();
        tracing::info!(target: "audit", caller = %self, store, "a store outside the caller's groups, answered as absent");
    }

    /// The store groups the caller sees; `None`: the whole fleet (anonymous callers see
    /// what the server's `--auth` lets them, the fleet).
    pub fn groups(&self) -> Option<&[String]> {
        self.token.as_ref().and_then(|t| t.groups.as_deref())
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.token, self.address) {
            (Some(t), _) => match &t.groups {
                Some(groups) => write!(
                    f,
                    "token {:?} ({}, {}, groups {})",
                    t.name,
                    t.id,
                    t.role,
                    groups.join(", ")
                ),
                None => write!(f, "token {:?} ({}, {})", t.name, t.id, t.role),
            },
            (None, Some(address)) => write!(f, "anonymous at {address}"),
            (None, None) => f.write_str("anonymous"),
        }
    }
}

/// Why a call is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// No usable token: none sent where one is needed, or one that is unknown, revoked or
    /// expired (HTTP 401, `UNAUTHENTICATED`).
    Unauthenticated { reason: String, token_sent: bool },
    /// A token whose role may not do this (HTTP 403, `FORBIDDEN`).
    Forbidden(String),
}

impl Denied {
    pub fn code(&self) -> &'static str {
        match self {
            Denied::Unauthenticated { .. } => "UNAUTHENTICATED",
            Denied::Forbidden(_) => "FORBIDDEN",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Denied::Unauthenticated { reason, .. } | Denied::Forbidden(reason) => reason,
        }
    }

    /// The `WWW-Authenticate` header of a 401 (RFC 6750).
    pub fn challenge(&self) -> Option<String> {
        match self {
            Denied::Unauthenticated {
                token_sent: false, ..
            } => Some("Bearer realm=\"store-monitor\"".to_string()),
            Denied::Unauthenticated { reason, .. } => Some(format!(
                "Bearer realm=\"store-monitor\", error=\"invalid_token\", error_description=\"{}\"",
                reason.replace(['"', '\\'], "'")
            )),
            Denied::Forbidden(_) => None,
        }
    }
}

/// The caller of a request that sent `credentials` (an `Authorization` header's value, or
/// a WebSocket's `connection_init` one; `None`: nothing sent). Fails with
/// [`Error::Denied`] for a token that is not usable.
pub async fn authenticate(
    state: &AppState,
    credentials: Option<&str>,
    address: Option<IpAddr>,
) -> Result<Caller> {
    let Some(credentials) = credentials.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(Caller::anonymous(address));
    };
    let secret = match credentials.split_once(' ') {
        Some((scheme, secret)) if scheme.eq_ignore_ascii_case("bearer") => secret.trim(),
        Some(_) => {
            return Err(invalid("only Bearer tokens are accepted (Authorization: Bearer sm_…)").into());
        }
        None => credentials,
    };
    if !well_formed(secret) {
        return Err(invalid("that is not a store-monitor API token (sm_ and 64 hex digits)").into());
    }
    let token = check(state, hash(secret)).await?;
    tracing::debug!(target: "audit", token = %token.id, name = %token.name, "token accepted");
    Ok(Caller {
        token: Some(token),
        address,
        out_of_scope: Arc::default(),
    })
}

/// Looks the caller's token up again: a WebSocket does before each operation and when the
/// token is announced changed, so that a token revoked while the socket is open stops
/// working at once. A token whose store groups changed (a group renamed, or another renamed
/// to its old name) is refused too: the caller was made with the old groups, and would go
/// on reading them.
pub async fn recheck(state: &AppState, caller: &Caller) -> Result<()> {
    let Some(token) = &caller.token else {
        return Ok(());
    };
    let now = check(state, token.secret_sha256).await?;
    if now.groups != token.groups {
        return Err(invalid(&format!(
            "the token's store groups changed (now {}): connect again to see them",
            now.groups
                .as_deref()
                .map_or("the whole fleet".to_string(), |g| g.join(", "))
        ))
        .into());
    }
    Ok(())
}

/// Notices of tokens revoked or regrouped, from every process: a token's id, or `None` when
/// some may have been missed.
pub fn token_notices(state: &AppState) -> tokio::sync::broadcast::Receiver<Option<Uuid>> {
    state.events.revocations()
}

/// Whether a token notice (revoked or regrouped: its id; `None`: some may have been missed)
/// may concern `caller`; if so its token is read afresh at the next [`recheck`], whatever
/// this process remembered of it.
pub fn notice_concerns(state: &AppState, caller: &Caller, notice: Option<Uuid>) -> bool {
    let Some(token) = &caller.token else {
        return false;
    };
    if notice.is_some_and(|id| id != token.id) {
        return false;
    }
    state.access.forget(Some(token.id));
    true
}

async fn check(state: &AppState, secret_sha256: [u8; 32]) -> Result<TokenUse> {
    let record = match state.access.known(&secret_sha256) {
        Some(record) => record,
        None => {
            let record = crate::db::tokens::by_secret(&state.db, &secret_sha256)
                .await?
                .ok_or_else(|| invalid("unknown token"))?;
            state.access.remember(secret_sha256, &record);
            record
        }
    };
    usable(&record, Utc::now())?;
    touch(state, record.id);
    Ok(TokenUse {
        id: record.id,
        name: record.name,
        role: record.role,
        groups: record.groups,
        secret_sha256,
    })
}

fn usable(record: &TokenRecord, now: DateTime<Utc>) -> Result<(), Denied> {
    if let Some(at) = record.revoked_at {
        return Err(invalid(&format!("the token was revoked at {}", at.to_rfc3339())));
    }
    match record.expires_at {
        Some(at) if at <= now => Err(invalid(&format!("the token expired at {}", at.to_rfc3339()))),
        _ => Ok(()),
    }
}

/// Writes the token's last use, at most once a minute per process, off the request's path.
fn touch(state: &AppState, id: Uuid) {
    let due = {
        let mut touched = state.access.touched.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let due = touched
            .get(&id)
            .is_none_or(|at| now.duration_since(*at) >= TOUCH_EVERY);
        if due {
            touched.insert(id, now);
        }
        due
    };
    if due {
        let db = state.db.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::db::tokens::touch(&db, id).await {
                tracing::debug!(token = %id, error = %e, "could not record the token's use");
            }
        });
    }
}

fn invalid(reason: &str) -> Denied {
    Denied::Unauthenticated {
        reason: reason.to_string(),
        token_sent: true,
    }
}

/// Whether this server needs callers to send a token.
pub fn tokens_required(state: &AppState) -> bool {
    state.access.mode == AuthMode::Required
}

/// Whether `caller` may do every one of `actions`: the one check of the whole API.
pub fn authorize(state: &AppState, caller: &Caller, actions: &[Action]) -> Result<(), Denied> {
    for &action in actions {
        let Some(needed) = action.needs() else {
            continue;
        };
        match &caller.token {
            Some(token) if token.groups.is_some() && !action.open_to_scoped() => {
                return Err(Denied::Forbidden(format!(
                    "the token {:?} is scoped to store groups, and \"{}\" needs a token of the whole fleet \
                     (scoped tokens read their stores, push their polls and queue reports)",
                    token.name,
                    action.name(),
                )));
            }
            Some(token) if token.role.may(action) => {}
            Some(token) => {
                return Err(Denied::Forbidden(format!(
                    "the token {:?} is {} token, and \"{}\" needs {} token{}",
                    token.name,
                    with_article(token.role),
                    action.name(),
                    with_article(needed),
                    if needed == Role::Admin { "" } else { " or better" },
                )));
            }
            None if state.access.mode == AuthMode::Off => {}
            None => {
                return Err(Denied::Unauthenticated {
                    reason: format!(
                        "\"{}\" needs an API token: send Authorization: Bearer <token> ({} token or better)",
                        action.name(),
                        with_article(needed)
                    ),
                    token_sent: false,
                });
            }
        }
    }
    Ok(())
}

/// "a viewer", "an operator", "an admin".
fn with_article(role: Role) -> String {
    let article = if role.name().starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {}", role.name())
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn well_formed(secret: &str) -> bool {
    secret
        .strip_prefix(SECRET_PREFIX)
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Internal(anyhow::anyhow!("no randomness from the OS: {e}")))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_secrets_are_looked_up() {
        assert!(well_formed(&format!("sm_{}", "ab".repeat(32))));
        assert!(!well_formed(&format!("sm_{}", "ab".repeat(31))));
        assert!(!well_formed(&format!("xx_{}", "ab".repeat(32))));
        assert!(!well_formed(&format!("sm_{}", "zz".repeat(32))));
    }
}
