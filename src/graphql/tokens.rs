//! The GraphQL types of API tokens: what admins see of them (never a secret, except the new
//! one's, once).

use async_graphql::{Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::domain::access;
use crate::service::TokenRecord;

/// What a token may do; each role may do all that the ones before it may.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
#[graphql(remote = "access::Role")]
pub enum Role {
    /// Reads: queries, subscriptions, report downloads.
    Viewer,
    /// Also triggers (and cancels) reports.
    Operator,
    /// Also reloads the data and manages tokens.
    Admin,
}

/// A token to create.
#[derive(InputObject, Debug)]
pub struct CreateTokenInput {
    /// Who or what it is for (1 to 200 characters), as the audit log shows it.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When it stops working (default: never). Must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
    /// The store groups it sees, alone (a viewer's or operator's token); none: the whole
    /// fleet. Each must have a store, as the store-groups file says.
    pub groups: Option<Vec<String>>,
}

pub struct TokenNode(pub TokenRecord);

/// An API token, sent as `Authorization: Bearer <secret>` (or in a WebSocket's
/// `connection_init` payload). Only its hash is stored: its secret is never shown again.
#[Object(name = "ApiToken")]
impl TokenNode {
    /// The token's id (a UUID): what `revokeToken` takes and the audit log names.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Who or what it is for.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// What it may do.
    async fn role(&self) -> Role {
        self.0.role.into()
    }

    /// The store groups it sees, alone; null: the whole fleet.
    async fn groups(&self) -> Option<&[String]> {
        self.0.groups.as_deref()
    }

    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it was last used (written at most once a minute per server process).
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }

    /// When it stops working; null: never.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }

    /// When it was revoked; null: it was not.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }

    /// Whether it works now: neither revoked nor expired.
    async fn active(&self) -> bool {
        self.0.revoked_at.is_none() && self.0.expires_at.is_none_or(|at| at > Utc::now())
    }
}

/// A new token, with its secret: shown this once.
#[derive(SimpleObject)]
pub struct CreatedToken {
    /// The token.
    pub token: TokenNode,
    /// Its secret (`sm_` and 64 hex digits), to send as `Authorization: Bearer <secret>`.
    /// It cannot be read again: keep it where you keep passwords.
    pub secret: String,
}
