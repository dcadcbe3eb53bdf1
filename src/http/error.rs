//! What a REST client sees of a service error: a status per variant, `Retry-After` for
//! what passes with time, `WWW-Authenticate` for a missing or bad token, and a JSON body
//! with the message and the same code GraphQL's `extensions.code` carries.

use poem::Response;
use poem::http::{StatusCode, header};

use super::json;
use crate::service::{self, Error};

/// The answer to a REST call that failed with `error` (logged first when it is ours).
pub(crate) fn response(error: Error) -> Response {
    error.log();
    let status = match &error {
        Error::BadInput(_) => StatusCode::BAD_REQUEST,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::KeyReused(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Denied(denied) => super::refusal_status(denied),
        Error::RateLimited { .. } | Error::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = json(
        status,
        serde_json::json!({ "error": error.message(), "code": error.code() }),
    );
    if let Some(seconds) = error.retry_after() {
        response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    }
    if let Error::Denied(denied) = &error {
        super::challenge(&mut response, denied);
    }
    response
}

/// 503 with `Retry-After`, and why, for a health check that fails.
pub(crate) fn unavailable(status: &str) -> Response {
    let mut response = json(
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::json!({ "status": status, "error": status }),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, service::RETRY_AFTER_SECONDS.into());
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::service::auth::Denied;

    /// Every variant, with the status, code and `Retry-After` a REST client gets.
    fn every_variant() -> Vec<(Error, u16, &'static str, Option<&'static str>)> {
        vec![
            (Error::BadInput("bad".into()), 400, "BAD_USER_INPUT", None),
            (Error::NotFound("none".into()), 404, "NOT_FOUND", None),
            (Error::TooLarge("big".into()), 413, "PAYLOAD_TOO_LARGE", None),
            (
                Error::KeyReused("again".into()),
                422,
                "IDEMPOTENCY_KEY_REUSED",
                None,
            ),
            (
                Error::Denied(Denied::Unauthenticated {
                    reason: "who".into(),
                    token_sent: false,
                }),
                401,
                "UNAUTHENTICATED",
                None,
            ),
            (
                Error::Denied(Denied::Forbidden("no".into())),
                403,
                "FORBIDDEN",
                None,
            ),
            (
                Error::RateLimited {
                    message: "slow down".into(),
                    retry_after: Duration::from_millis(2500),
                },
                429,
                "TOO_MANY_REQUESTS",
                Some("3"),
            ),
            (
                Error::QueueFull { waiting: 9 },
                429,
                "TOO_MANY_REQUESTS",
                Some("5"),
            ),
            (
                Error::Unavailable(anyhow::anyhow!("down")),
                503,
                "SERVICE_UNAVAILABLE",
                Some("5"),
            ),
            (
                Error::Internal(anyhow::anyhow!("/srv/secret")),
                500,
                "INTERNAL_SERVER_ERROR",
                None,
            ),
        ]
    }

    #[tokio::test]
    async fn each_variant_has_its_status_code_and_wait() {
        for (error, status, code, retry) in every_variant() {
            let message = error.message();
            let challenged = matches!(error, Error::Denied(Denied::Unauthenticated { .. }));
            let response = response(error);
            assert_eq!(response.status().as_u16(), status, "{code}");
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap().to_string());
            assert_eq!(retry_after.as_deref(), retry, "{code}");
            assert_eq!(
                response.headers().contains_key(header::WWW_AUTHENTICATE),
                challenged,
                "{code}"
            );
            let body: serde_json::Value =
                serde_json::from_slice(&response.into_body().into_vec().await.unwrap()).unwrap();
            assert_eq!(body["code"], code);
            assert_eq!(body["error"], message);
            assert!(
                !body.to_string().contains("/srv"),
                "no server path is shown: {body}"
            );
        }
    }
}
