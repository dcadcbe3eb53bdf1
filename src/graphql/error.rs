//! What a GraphQL client sees of an error: the code every GraphQL error carries, mapped
//! once from the service's error (`graphql_error`) and given to async-graphql's own.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ErrorExtensions, Response, ServerError, ServerResult, ValidationResult, Variables};

use crate::service;

/// An error as a GraphQL client sees it: the service's, or this door's own.
///
/// Deliberately not `Display`, like [`service::Error`]: async-graphql turns any `Display`
/// error into a GraphQL error by its message, which would skip the code and could show
/// internal causes. Both convert only through [`graphql_error`].
#[derive(Debug)]
pub(crate) enum ApiError {
    Service(service::Error),
    /// The socket has this many subscriptions already.
    TooManySubscriptions(usize),
}

impl From<service::Error> for ApiError {
    fn from(e: service::Error) -> Self {
        ApiError::Service(e)
    }
}

/// The GraphQL error of a service error: its message, `extensions.code`, and
/// `extensions.retryAfter` (seconds) for what passes with time. Ours are logged first.
pub(crate) fn graphql_error(error: &service::Error) -> async_graphql::Error {
    error.log();
    let code = error.code();
    let retry = error.retry_after();
    async_graphql::Error::new(error.message()).extend_with(|_, e| {
        e.set("code", code);
        if let Some(retry) = retry {
            e.set("retryAfter", retry);
        }
    })
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        match self {
            ApiError::Service(error) => graphql_error(error),
            ApiError::TooManySubscriptions(max) => async_graphql::Error::new(format!(
                "this socket has {max} subscriptions already, the most it may have: complete one first, or open another socket"
            ))
            .extend_with(|_, e| e.set("code", "TOO_MANY_SUBSCRIPTIONS")),
        }
    }
}

/// A service error that stopped a request before it ran (a refusal, the database down), as
/// the GraphQL error a client sees: no location, since no part of the document failed.
pub(crate) fn request_error(error: service::Error) -> ServerError {
    let mut error = graphql_error(&error).into_server_error(async_graphql::Pos::default());
    error.locations.clear();
    error
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        e.extend()
    }
}

impl From<service::Error> for async_graphql::Error {
    fn from(e: service::Error) -> Self {
        graphql_error(&e)
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

/// What async-graphql says of a `DateTime` it cannot read names no format; this names the
/// one it takes.
const DATETIME_HINT: &str = " (an RFC 3339 instant with its offset, like \"2023-01-25T18:13:22Z\")";

fn set_code(error: &mut ServerError, code: &'static str) {
    if error.message.contains("\"DateTime\"") && !error.message.contains("RFC 3339") {
        error.message.push_str(DATETIME_HINT);
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::service::auth::Denied;

    #[test]
    fn each_service_error_has_its_code_and_wait() {
        let cases = [
            (service::Error::BadInput("bad".into()), "BAD_USER_INPUT", None),
            (service::Error::NotFound("none".into()), "NOT_FOUND", None),
            (service::Error::TooLarge("big".into()), "PAYLOAD_TOO_LARGE", None),
            (
                service::Error::KeyReused("again".into()),
                "IDEMPOTENCY_KEY_REUSED",
                None,
            ),
            (
                service::Error::Denied(Denied::Unauthenticated {
                    reason: "who".into(),
                    token_sent: true,
                }),
                "UNAUTHENTICATED",
                None,
            ),
            (
                service::Error::Denied(Denied::Forbidden("no".into())),
                "FORBIDDEN",
                None,
            ),
            (
                service::Error::RateLimited {
                    message: "slow".into(),
                    retry_after: Duration::from_secs(7),
                },
                "TOO_MANY_REQUESTS",
                Some(7),
            ),
            (
                service::Error::QueueFull { waiting: 3 },
                "TOO_MANY_REQUESTS",
                Some(5),
            ),
            (
                service::Error::Unavailable(anyhow::anyhow!("down")),
                "SERVICE_UNAVAILABLE",
                Some(5),
            ),
            (
                service::Error::Internal(anyhow::anyhow!("/srv/secret")),
                "INTERNAL_SERVER_ERROR",
                None,
            ),
        ];
        for (error, code, retry) in cases {
            let message = error.message();
            let shown = request_error(error);
            assert_eq!(shown.message, message);
            assert!(!shown.message.contains("/srv"));
            assert!(shown.locations.is_empty(), "no line 0, column 0: {shown:?}");
            let extensions = shown.extensions.unwrap();
            assert_eq!(extensions.get("code"), Some(&async_graphql::Value::from(code)));
            assert_eq!(
                extensions.get("retryAfter"),
                retry.map(async_graphql::Value::from).as_ref(),
                "{code}"
            );
        }
    }
}
