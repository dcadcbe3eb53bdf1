//! Managing API tokens: create (the secret shown once), list, revoke.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{SECRET_PREFIX, hash, random_bytes};
use crate::db::Pool;
use crate::db::tokens::{self, NewToken, TokenRecord};
use crate::domain::access::Role;
use crate::service::{AppState, Error, Result};

/// A token's secret, shown once.
pub struct Secret(pub String);

/// Creates a token; its secret is returned here and never again.
pub async fn create_token(
    pool: &Pool,
    name: &str,
    role: Role,
    groups: Option<&[String]>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(TokenRecord, Secret)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Error::BadInput("a token's name is 1 to 200 characters".into()));
    }
    let groups = groups.map(|g| scope(role, g)).transpose()?;
    if let Some(groups) = &groups {
        let unknown = tokens::unknown_groups(pool, groups).await?;
        if !unknown.is_empty() {
            return Err(Error::BadInput(format!(
                "no store is in the group{} {}: groups come from the store-groups file or setGroupStores",
                if unknown.len() == 1 { "" } else { "s" },
                unknown
                    .iter()
                    .map(|g| format!("{g:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let expires_at = expires_at
        .map(|at| crate::service::instant("expiresAt", at))
        .transpose()?;
    if let Some(at) = expires_at.filter(|at| *at <= Utc::now()) {
        return Err(Error::BadInput(format!(
            "the expiry {} is in the past",
            at.to_rfc3339()
        )));
    }
    let secret = format!("{SECRET_PREFIX}{}", hex::encode(random_bytes::<32>()?));
    let digest = hash(&secret);
    let new = NewToken {
        id: Uuid::new_v4(),
        name,
        role,
        groups: groups.as_deref(),
        secret_sha256: &digest,
        expires_at,
    };
    let record = tokens::insert(pool, &new).await?;
    Ok((record, Secret(secret)))
}

/// The groups a token of `role` is scoped to, each named once, sorted.
fn scope(role: Role, groups: &[String]) -> Result<Vec<String>> {
    if role == Role::Admin {
        return Err(Error::BadInput(
            "an admin token manages the whole fleet: it cannot be scoped to store groups".into(),
        ));
    }
    let mut named: Vec<String> = groups.iter().map(|g| g.trim().to_string()).collect();
    named.sort();
    named.dedup();
    if named.is_empty() || named.iter().any(String::is_empty) {
        return Err(Error::BadInput(
            "a scoped token names at least one store group, none empty".into(),
        ));
    }
    Ok(named)
}

pub async fn list_tokens(pool: &Pool) -> Result<Vec<TokenRecord>> {
    Ok(tokens::all(pool).await?)
}

/// The shortest start of a token id that is looked up: `token list` shows whole ids, and
/// eight hex digits are what a person copies.
const MIN_PREFIX: usize = 4;

/// The token whose id is `id`, or starts with it (at least four hex digits, dashes as
/// `token list` prints them): none, or more than one, is a clear error.
pub async fn find_token(pool: &Pool, id: &str) -> Result<TokenRecord> {
    let id = id.trim().trim_end_matches('…').to_ascii_lowercase();
    if let Ok(uuid) = Uuid::parse_str(&id) {
        return tokens::by_id(pool, uuid).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "no token with id {uuid} (see `store-monitor token list`)"
            ))
        });
    }
    let digits = id.chars().filter(|c| *c != '-').count();
    if digits < MIN_PREFIX || !id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()) {
        return Err(Error::BadInput(format!(
            "{id:?} is not a token id: give the id `token list` shows, or its first {MIN_PREFIX} or more characters"
        )));
    }
    let mut found = tokens::by_id_prefix(pool, &id).await?;
    match found.len() {
        0 => Err(Error::NotFound(format!(
            "no token id starts with {id} (see `store-monitor token list`)"
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(Error::BadInput(format!(
            "more than one token id starts with {id}: give more of it"
        ))),
    }
}

/// What a revocation did.
pub enum Revocation {
    /// The token works no more, from now on.
    Revoked(TokenRecord),
    /// It had been revoked before (at its `revoked_at`): nothing changed.
    AlreadyRevoked(TokenRecord),
}

/// Revokes a token, in the database and every process.
pub async fn revoke_token(pool: &Pool, token: &TokenRecord) -> Result<Revocation> {
    if token.revoked_at.is_some() {
        return Ok(Revocation::AlreadyRevoked(token.clone()));
    }
    match tokens::revoke(pool, token.id).await? {
        Some(record) => Ok(Revocation::Revoked(record)),
        None => Err(Error::NotFound(format!("no token with id {}", token.id))),
    }
}

/// [`create_token`] from the API.
pub async fn create(
    state: &AppState,
    name: &str,
    role: Role,
    groups: Option<&[String]>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(TokenRecord, Secret)> {
    create_token(&state.db, name, role, groups, expires_at).await
}

/// [`list_tokens`] from the API.
pub async fn list(state: &AppState) -> Result<Vec<TokenRecord>> {
    list_tokens(&state.db).await
}

/// [`revoke_token`] from the API: this process forgets the token before it answers, not
/// when the notice comes back.
pub async fn revoke(state: &AppState, id: Uuid) -> Result<TokenRecord> {
    let token = tokens::by_id(&state.db, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no token with id {id}")))?;
    let revoked = match revoke_token(&state.db, &token).await? {
        Revocation::Revoked(record) | Revocation::AlreadyRevoked(record) => record,
    };
    state.access.forget(Some(id));
    Ok(revoked)
}

/// Tokens that work now.
pub async fn usable_tokens(pool: &Pool) -> Result<i64> {
    Ok(tokens::usable(pool).await?)
}
