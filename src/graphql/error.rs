//! The API's one error type, and the codes every GraphQL error carries.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ErrorExtensions, Response, ServerError, ServerResult, ValidationResult, Variables};

/// An error as a client sees it: its fault (with a message and a code), or ours (logged
/// with its causes, shown as "internal error").
///
/// Deliberately not `Display`: async-graphql turns any `Display` error into a GraphQL
/// error by its message, which would skip the code and show internal causes to clients.
/// This one converts only through [`ErrorExtensions::extend`].
#[derive(Debug)]
pub enum ApiError {
    BadInput(String),
    NotFound(String),
    /// Too much asked of the server, or by this caller, already: retry in `retry_after`
    /// seconds (HTTP 429 with `Retry-After`).
    TooManyRequests {
        message: String,
        retry_after: u64,
    },
    /// No usable token, or one whose role may not (HTTP 401 or 403).
    Denied(crate::service::auth::Denied),
    /// The socket has this many subscriptions already.
    TooManySubscriptions(usize),
    /// The database is down or saturated: retry later (HTTP 503 with `Retry-After`).
    Unavailable(anyhow::Error),
    Internal(anyhow::Error),
}

/// How long a client is told to wait before retrying a `SERVICE_UNAVAILABLE` request.
pub const RETRY_AFTER_SECONDS: u64 = 5;

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        if let Some(full) = e.downcast_ref::<crate::service::QueueFull>() {
            ApiError::TooManyRequests {
                message: full.to_string(),
                retry_after: RETRY_AFTER_SECONDS,
            }
        } else if let Some(limited) = e.downcast_ref::<crate::service::rate::RateLimited>() {
            ApiError::TooManyRequests {
                message: limited.to_string(),
                retry_after: limited.seconds(),
            }
        } else if let Some(bad) = e.downcast_ref::<crate::service::auth::BadTokenRequest>() {
            ApiError::BadInput(bad.to_string())
        } else if let Some(bad) = e.downcast_ref::<crate::service::BadSpan>() {
            ApiError::BadInput(bad.to_string())
        } else if let Some(not) = e.downcast_ref::<crate::service::NotCancelled>() {
            match not {
                crate::service::NotCancelled::Unknown(_) => ApiError::NotFound(not.to_string()),
                crate::service::NotCancelled::Finished(_) => ApiError::BadInput(not.to_string()),
            }
        } else if crate::service::database_unavailable(&e) {
            ApiError::Unavailable(e)
        } else {
            ApiError::Internal(e)
        }
    }
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadInput(_) => "BAD_USER_INPUT",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Unavailable(_) => "SERVICE_UNAVAILABLE",
            ApiError::TooManySubscriptions(_) => "TOO_MANY_SUBSCRIPTIONS",
            ApiError::TooManyRequests { .. } => "TOO_MANY_REQUESTS",
            ApiError::Denied(denied) => denied.code(),
            ApiError::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        let message = match self {
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                "internal error".to_string()
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = format!("{cause:#}"), "database unavailable");
                "the database is unavailable or busy: retry later".to_string()
            }
            ApiError::TooManySubscriptions(max) => format!(
                "this socket has {max} subscriptions already, the most it may have: complete one first, or open another socket"
            ),
            ApiError::BadInput(message)
            | ApiError::NotFound(message)
            | ApiError::TooManyRequests { message, .. } => message.clone(),
            ApiError::Denied(denied) => denied.message().to_string(),
        };
        let retry = match self {
            ApiError::Unavailable(_) => Some(RETRY_AFTER_SECONDS),
            ApiError::TooManyRequests { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        async_graphql::Error::new(message).extend_with(|_, e| {
            e.set("code", self.code());
            if let Some(retry) = retry {
                e.set("retryAfter", retry);
            }
        })
    }
}

/// A refusal as the GraphQL error a client sees, for the doors that refuse a request before
/// it runs.
pub(crate) fn denied_error(denied: crate::service::auth::Denied) -> ServerError {
    ApiError::Denied(denied)
        .extend()
        .into_server_error(async_graphql::Pos::default())
}

/// An error of ours that stopped a request before it ran (the database down, say), as the
/// GraphQL error a client sees.
pub(crate) fn failed_error(error: anyhow::Error) -> ServerError {
    ApiError::from(error)
        .extend()
        .into_server_error(async_graphql::Pos::default())
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        e.extend()
    }
}

/// Gives a code to the errors async-graphql raises itself, by the step that raised them:
/// the document does not parse (`GRAPHQL_PARSE_FAILED`); it does not fit the schema or its
/// limits (`GRAPHQL_VALIDATION_FAILED`); an argument's value, given inline or as a
/// variable, is not one its type takes (`BAD_USER_INPUT`). Errors of ours carry their code
/// already; every error a client sees has one.
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

/// The start of the message of async-graphql's one validation rule about argument values
/// (`ArgumentsOfCorrectType`), which also checks the variables' values; a test pins it.
const ARGUMENT_VALUE: &str = "Invalid value for argument";

/// The longest error message sent: a parse error's excerpt of the query is cut there.
const MAX_MESSAGE: usize = 300;

fn set_code(error: &mut ServerError, code: &'static str) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
}

#[async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|mut e| {
            set_code(&mut e, "GRAPHQL_PARSE_FAILED");
            // The parser quotes the offending line, which may be the whole document.
            if e.message.len() > MAX_MESSAGE {
                let mut end = MAX_MESSAGE;
                while !e.message.is_char_boundary(end) {
                    end -= 1;
                }
                e.message.truncate(end);
                e.message.push('…');
            }
            e
        })
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|mut errors| {
            for e in &mut errors {
                let code = if e.message.starts_with(ARGUMENT_VALUE) {
                    "BAD_USER_INPUT"
                } else {
                    "GRAPHQL_VALIDATION_FAILED"
                };
                set_code(e, code);
            }
            errors
        })
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        // Our resolvers' errors have a code; one without is async-graphql's own, raised
        // turning an argument into its Rust type (a DateTime that is no date, say).
        let mut response = next.run(ctx, operation_name).await;
        for e in &mut response.errors {
            set_code(e, "BAD_USER_INPUT");
        }
        response
    }

    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        // What is left failed between validation and execution: no operation of the name
        // asked for, or several and no name.
        let mut response = next.run(ctx).await;
        for e in &mut response.errors {
            set_code(e, "GRAPHQL_VALIDATION_FAILED");
        }
        response
    }
}
