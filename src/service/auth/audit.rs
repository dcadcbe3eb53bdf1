//! The audit log: a line for each call that changes something, was refused, or came with a
//! token: who (never the secret), what, and what came of it.

use std::fmt;

use super::{Caller, Denied};
use crate::db::tokens::TokenRecord;

/// What came of an audited call.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// The call was let through (a REST call, a signed link).
    Allowed,
    /// A subscription was let start.
    Started,
    /// A socket's token was accepted.
    Accepted,
    /// Refused before anything ran.
    Refused(&'a Denied),
    /// A socket was closed: its token stopped working.
    Closed(&'a Denied),
    /// A GraphQL operation ran; the codes of its errors (none: it succeeded).
    Ran { error_codes: &'a [String] },
    /// A token was created.
    Created(&'a TokenRecord),
    /// A token was revoked.
    Revoked(&'a TokenRecord),
}

impl fmt::Display for Outcome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Allowed => f.write_str("allowed"),
            Outcome::Started => f.write_str("started"),
            Outcome::Accepted => f.write_str("accepted"),
            Outcome::Refused(denied) => write!(f, "refused: {}", denied.message()),
            Outcome::Closed(denied) => write!(f, "closed: {}", denied.message()),
            Outcome::Ran { error_codes: [] } => f.write_str("ok"),
            Outcome::Ran { error_codes } => write!(f, "errors: {}", error_codes.join(", ")),
            Outcome::Created(token) => {
                write!(f, "created {} token {:?} ({})", token.role, token.name, token.id)
            }
            Outcome::Revoked(token) => {
                write!(f, "revoked {} token {:?} ({})", token.role, token.name, token.id)
            }
        }
    }
}

/// Writes the audit log's line for `operation` of `caller`.
pub fn audit(caller: &Caller, operation: &str, outcome: Outcome<'_>) {
    let (id, name, role) = match &caller.token {
        Some(t) => (Some(t.id), Some(t.name.as_str()), Some(t.role.name())),
        None => (None, None, None),
    };
    let ran = matches!(outcome, Outcome::Ran { .. });
    let mut outcome = outcome.to_string();
    // What a call did: a socket's caller lives as long as the socket, so its count is not
    // one operation's.
    let outside = caller.out_of_scope.load(std::sync::atomic::Ordering::Relaxed);
    if ran && outside > 0 {
        outcome.push_str(&format!(
            "; {outside} store{} outside its groups asked for, answered as absent",
            if outside == 1 { "" } else { "s" }
        ));
    }
    tracing::info!(
        target: "audit",
        token_id = id.map(tracing::field::display),
        token_name = name,
        role,
        address = caller.address.map(tracing::field::display),
        operation,
        outcome,
        "{caller}: {operation}: {outcome}"
    );
}
