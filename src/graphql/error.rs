//! The API's one error type, and the codes every GraphQL error carries.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest};
use async_graphql::{ErrorExtensions, Response};

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
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadInput(_) => "BAD_USER_INPUT",
            ApiError::NotFound(_) => "NOT_FOUND",
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
            ApiError::BadInput(message) | ApiError::NotFound(message) => message.clone(),
        };
        async_graphql::Error::new(message).extend_with(|_, e| e.set("code", self.code()))
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        e.extend()
    }
}

/// Gives a code to the errors async-graphql raises itself (syntax, validation, argument
/// values), so that every error a client sees has `extensions.code`.
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

#[async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for error in &mut response.errors {
            if error.extensions.as_ref().is_some_and(|x| x.get("code").is_some()) {
                continue;
            }
            let code = classify(&error.message);
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", code);
        }
        response
    }
}

/// The code of an error async-graphql raised, from its message.
pub fn classify(message: &str) -> &'static str {
    if message.starts_with("Failed to parse") || message.contains("Invalid value for argument") {
        "BAD_USER_INPUT"
    } else if message.starts_with(" --> ") || message.contains("expected ") && message.contains("line") {
        "GRAPHQL_PARSE_FAILED"
    } else {
        "GRAPHQL_VALIDATION_FAILED"
    }
}
