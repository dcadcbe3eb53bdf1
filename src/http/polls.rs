//! `POST /polls`: a batch of polls pushed as they happen, as `text/csv` (the status file's
//! columns, header first) or `application/x-ndjson`, plain, gzip or zstd.

use poem::error::ReadBodyError;
use poem::http::{StatusCode, header};
use poem::web::Data;
use poem::{Body, Request, Response, handler};

use super::{error, json};
use crate::domain::access::Action;
use crate::input::push::{BatchFormat, Encoding, MAX_BODY_BYTES, MAX_POLLS};
use crate::service::{self, AppState};

/// Stores the batch and answers what came of it: `received` (rows), `accepted` (new
/// polls), `duplicates`, `rejected` (each with its line and reason), the new `dataVersion`
/// and `newestPoll`.
#[handler]
pub async fn push(req: &Request, body: Body, state: Data<&AppState>) -> Response {
    let caller = match super::allowed(req, &state, Action::PushPolls).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let text = |name| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("(not text)"))
    };
    let content_type = text(header::CONTENT_TYPE).unwrap_or_default();
    let Some(format) = BatchFormat::of_media_type(content_type) else {
        return unsupported(format!(
            "send the polls as text/csv (the status file's columns, header first) or application/x-ndjson, not {content_type:?}"
        ));
    };
    let Some(encoding) = Encoding::of_header(text(header::CONTENT_ENCODING)) else {
        return unsupported(
            "the body's Content-Encoding is not read here: send it plain, gzip or zstd".to_string(),
        );
    };
    let key = match idempotency_key(text(header::HeaderName::from_static(IDEMPOTENCY_KEY))) {
        Ok(key) => key,
        Err(refused) => return error::response(service::Error::BadInput(refused)),
    };
    let bytes = match body.into_bytes_limit(MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(ReadBodyError::PayloadTooLarge) => {
            return error::response(service::Error::TooLarge(format!(
                "the body is over {MAX_BODY_BYTES} bytes; one batch may have at most {MAX_POLLS} polls: split it"
            )));
        }
        // A client that went away mid-body (or a broken chunk) sent no batch; not a large one.
        Err(unread) => {
            return error::response(service::Error::BadInput(format!(
                "the body ended before it was whole: {unread}"
            )));
        }
    };
    match service::push_polls(&state, &caller, bytes, format, encoding, key).await {
        Ok(pushed) => replayed(
            pushed.replayed,
            json(
                StatusCode::OK,
                serde_json::json!({
                    "load": pushed.record.id,
                    "received": pushed.record.rows_read,
                    "accepted": pushed.accepted(),
                    "duplicates": pushed.duplicates(),
                    "rejected": pushed.rejected.iter().map(|r| serde_json::json!({
                        "line": r.line, "reason": r.reason, "raw": r.raw,
                    })).collect::<Vec<_>>(),
                    "dataVersion": pushed.data_version,
                    "newestPoll": pushed.newest_poll.and_then(crate::domain::Timestamp::to_datetime),
                }),
            ),
        ),
        Err(failed) => error::response(failed),
    }
}

/// The header of the IETF Idempotency-Key draft.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The key of an `Idempotency-Key` header: a structured-field string (`"…"`; a bare token
/// is taken too), 1 to 255 printable ASCII characters.
fn idempotency_key(header: Option<&str>) -> Result<Option<String>, String> {
    let Some(value) = header else {
        return Ok(None);
    };
    let value = value.trim();
    let key = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(
            "Idempotency-Key must be a quoted string of 1 to 255 printable ASCII characters".to_string(),
        );
    }
    Ok(Some(key.to_string()))
}

/// Says so on an answer read back for a batch sent again with its idempotency key.
fn replayed(replayed: bool, mut response: Response) -> Response {
    if replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            poem::http::HeaderValue::from_static("true"),
        );
    }
    response
}

/// 415: a media type or encoding no batch comes in. The service's errors have no variant
/// for it (no other door takes bodies it cannot read), so it is answered here, in the shape
/// of [`error::response`]'s answers.
fn unsupported(message: String) -> Response {
    json(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        serde_json::json!({ "error": message, "code": "UNSUPPORTED_MEDIA_TYPE" }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idempotency_key_is_a_quoted_string_of_1_to_255_printable_characters() {
        assert_eq!(idempotency_key(None), Ok(None));
        assert_eq!(idempotency_key(Some("\"a b\"")), Ok(Some("a b".to_string())));
        assert_eq!(idempotency_key(Some("bare")), Ok(Some("bare".to_string())));
        let longest = "k".repeat(255);
        assert_eq!(
            idempotency_key(Some(&format!("\"{longest}\""))),
            Ok(Some(longest.clone()))
        );
        assert!(idempotency_key(Some(&format!("\"{longest}k\""))).is_err());
        assert!(idempotency_key(Some("\"\"")).is_err());
        assert!(idempotency_key(Some("\"tab\there\"")).is_err());
    }
}
