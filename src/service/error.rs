//! The service's one error type. Every service function answers [`Result`]; what an error
//! means to a client is decided here, once, and each door (`graphql::error`,
//! `http::error`) answers every variant with one exhaustive `match`, so that a new kind
//! of error cannot reach a client as a silent "internal error" through one door and
//! correctly through the other.

use std::time::Duration;

use super::auth::Denied;

/// What a client is told to wait before retrying when the server is busy (a full queue, a
/// database down or saturated).
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// Why a service call failed.
///
/// Deliberately not `Display`: async-graphql turns any `Display` error into a GraphQL
/// error by its message, which would skip the code and could show internal causes. A door
/// reads [`Error::message`] and picks its code by variant.
#[derive(Debug)]
pub enum Error {
    /// The caller asked for something that cannot be (HTTP 400, `BAD_USER_INPUT`).
    BadInput(String),
    /// No such report, token or store (HTTP 404, `NOT_FOUND`).
    NotFound(String),
    /// More than one request may carry: a batch over its cap, named in the message (HTTP
    /// 413, `PAYLOAD_TOO_LARGE`).
    TooLarge(String),
    /// An `Idempotency-Key` sent before with another request (HTTP 422,
    /// `IDEMPOTENCY_KEY_REUSED`).
    KeyReused(String),
    /// No usable token, or one whose role may not (HTTP 401 or 403).
    Denied(Denied),
    /// The caller is over its rate limit: retry in `retry_after` (HTTP 429).
    RateLimited { message: String, retry_after: Duration },
    /// This many reports wait for a worker already, the most the server queues (HTTP 429).
    QueueFull { waiting: i64 },
    /// The database is down or saturated: retry later (HTTP 503); not a bug of ours.
    Unavailable(anyhow::Error),
    /// Anything else: a bug or a fault of ours, logged with its causes and shown as
    /// "internal error" (HTTP 500).
    Internal(anyhow::Error),
}

/// What every service function answers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Its code: GraphQL's `extensions.code`, which REST answers carry too (both doors
    /// read it here).
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadInput(_) => "BAD_USER_INPUT",
            Error::NotFound(_) => "NOT_FOUND",
            Error::TooLarge(_) => "PAYLOAD_TOO_LARGE",
            Error::KeyReused(_) => "IDEMPOTENCY_KEY_REUSED",
            Error::Denied(Denied::Unauthenticated { .. }) => "UNAUTHENTICATED",
            Error::Denied(Denied::Forbidden(_)) => "FORBIDDEN",
            Error::RateLimited { .. } | Error::QueueFull { .. } => "TOO_MANY_REQUESTS",
            Error::Unavailable(_) => "SERVICE_UNAVAILABLE",
            Error::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The message a client is shown: never an internal cause, never a server path.
    pub fn message(&self) -> String {
        match self {
            Error::BadInput(message)
            | Error::NotFound(message)
            | Error::TooLarge(message)
            | Error::KeyReused(message) => message.clone(),
            Error::RateLimited { message, .. } => message.clone(),
            Error::Denied(denied) => denied.message().to_string(),
            Error::QueueFull { waiting } => format!(
                "{waiting} reports are waiting for a worker already, the most this server queues: retry in a few seconds"
            ),
            Error::Unavailable(_) => "the database is unavailable or busy: retry later".to_string(),
            Error::Internal(_) => "internal error".to_string(),
        }
    }

    /// How long the client should wait before trying again, in whole seconds (what
    /// `Retry-After` says), for the errors that pass with time.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after, .. } => Some(whole_seconds(*retry_after)),
            Error::QueueFull { .. } | Error::Unavailable(_) => Some(RETRY_AFTER_SECONDS),
            Error::BadInput(_)
            | Error::NotFound(_)
            | Error::TooLarge(_)
            | Error::KeyReused(_)
            | Error::Denied(_)
            | Error::Internal(_) => None,
        }
    }

    /// Logs what the client is not shown: an internal error with its cause chain (an
    /// error), an outage (a warning). The doors call this as they answer.
    pub fn log(&self) {
        match self {
            Error::Internal(cause) => tracing::error!(error = format!("{cause:#}"), "internal error"),
            Error::Unavailable(cause) => {
                tracing::warn!(error = format!("{cause:#}"), "database unavailable")
            }
            Error::BadInput(_)
            | Error::NotFound(_)
            | Error::TooLarge(_)
            | Error::KeyReused(_)
            | Error::Denied(_)
            | Error::RateLimited { .. }
            | Error::QueueFull { .. } => {}
        }
    }

    /// An error of ours (or the database's): an outage when `cause` says the database is
    /// down or saturated, else internal.
    pub(crate) fn of(cause: anyhow::Error) -> Error {
        if crate::db::unavailable(&cause) {
            Error::Unavailable(cause)
        } else {
            Error::Internal(cause)
        }
    }
}

/// A wait in whole seconds, rounded up, at least 1.
pub(crate) fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

impl From<anyhow::Error> for Error {
    fn from(cause: anyhow::Error) -> Self {
        Error::of(cause)
    }
}

impl From<sqlx::Error> for Error {
    fn from(cause: sqlx::Error) -> Self {
        Error::of(cause.into())
    }
}

impl From<std::io::Error> for Error {
    fn from(cause: std::io::Error) -> Self {
        Error::Internal(cause.into())
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(cause: tokio::task::JoinError) -> Self {
        Error::Internal(cause.into())
    }
}

impl From<Denied> for Error {
    fn from(denied: Denied) -> Self {
        Error::Denied(denied)
    }
}

/// For the command line, which reports any error with its causes.
impl From<Error> for anyhow::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Unavailable(cause) | Error::Internal(cause) => cause,
            other => anyhow::anyhow!(other.message()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_rounded_up_to_whole_seconds() {
        let limited = |ms| Error::RateLimited {
            message: String::new(),
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(limited(1).retry_after(), Some(1));
        assert_eq!(limited(10_000).retry_after(), Some(10));
        assert_eq!(limited(10_001).retry_after(), Some(11));
    }

    #[test]
    fn an_outage_is_told_apart_from_a_bug() {
        assert!(matches!(
            Error::from(sqlx::Error::PoolTimedOut),
            Error::Unavailable(_)
        ));
        assert!(matches!(
            Error::from(sqlx::Error::RowNotFound),
            Error::Internal(_)
        ));
        let wrapped = anyhow::Error::from(sqlx::Error::PoolClosed).context("reading a report");
        assert!(matches!(Error::from(wrapped), Error::Unavailable(_)));
    }

    #[test]
    fn internal_causes_are_never_shown() {
        let error = Error::from(anyhow::anyhow!("cannot read /srv/secret/path"));
        assert_eq!(error.message(), "internal error");
    }
}
