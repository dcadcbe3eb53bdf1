//! A finished report's CSV as a download that browsers, CDNs and `curl -C -` handle well: it
//! never changes, so it has a strong ETag (its result's id), Last-Modified, a Cache-Control
//! that says so, 304 to a conditional request, and byte ranges (206).

use chrono::{DateTime, Utc};
use poem::http::{HeaderMap, HeaderValue, StatusCode, header};
use poem::web::{Data, Path, Query};
use poem::{Request, Response, handler};
use uuid::Uuid;

use super::{error, json};
use crate::domain::access::Action;
use crate::domain::{ReportRecord, ReportStatus};
use crate::service::auth::{self, Caller, LinkParams, Outcome};
use crate::service::{self, AppState, Error};

/// `GET /reports/{id}.csv`: the finished report as a file; 404 for an unknown id, 409
/// while it is not complete. A viewer's token, or the signature of a link `csvUrl` gave.
#[handler]
pub(crate) async fn report_file(
    req: &Request,
    Path(file): Path<String>,
    Query(link): Query<LinkParams>,
    state: Data<&AppState>,
) -> Response {
    let Some(id) = file.strip_suffix(".csv").and_then(|id| Uuid::parse_str(id).ok()) else {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": format!("no report file {file:?}") }),
        );
    };
    let caller = if link.given() {
        let operation = format!("GET {} (signed link)", req.uri().path());
        match auth::check_link(&state, id, &link, super::address(req)).await {
            Ok(caller) => {
                auth::audit(&caller, &operation, Outcome::Allowed);
                caller
            }
            Err(failed) => {
                if let Error::Denied(denied) = &failed {
                    let anonymous = Caller::anonymous(super::address(req));
                    auth::audit(&anonymous, &operation, Outcome::Refused(denied));
                }
                return error::response(failed);
            }
        }
    } else {
        match super::allowed(req, &state, Action::Read).await {
            Ok(caller) => caller,
            Err(refused) => return refused,
        }
    };
    let record = match service::find_report(&state, id).await {
        Ok(record) => record,
        Err(failed) => return error::response(failed),
    };
    if record.status != ReportStatus::Complete {
        return json(
            StatusCode::CONFLICT,
            serde_json::json!({ "error": "the report is not complete", "status": record.status.name() }),
        );
    }
    csv_download(req.headers(), &state, &caller, &record).await
}

/// The CSV of a COMPLETE report for the caller, answering the request's conditions and
/// range. The fleet's file never changes: its ETag is its result's id and it may be kept a
/// year. A scoped caller's slice changes with the groups: its ETag is its content's hash,
/// it has no Last-Modified, and a cache must ask again before using it.
pub(crate) async fn csv_download(
    request: &HeaderMap,
    state: &AppState,
    caller: &Caller,
    record: &ReportRecord,
) -> Response {
    let scoped = caller.groups().is_some();
    let modified = (!scoped).then(|| record.finished_at.unwrap_or(record.created_at));
    let (etag, body) = if scoped {
        match service::report_csv(state, caller, record).await {
            Ok(body) => (content_etag(record, &body), Some(body)),
            Err(failed) => return error::response(failed),
        }
    } else {
        (format!("\"{}\"", record.result_id()), None)
    };
    let mut response = if not_modified(request, &etag, modified) {
        Response::builder().status(StatusCode::NOT_MODIFIED).finish()
    } else {
        let body = match body {
            Some(body) => body,
            None => match service::report_csv(state, caller, record).await {
                Ok(body) => body,
                Err(failed) => return error::response(failed),
            },
        };
        ranged(request, &etag, modified, body.into_bytes())
    };
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(header::ETAG, etag);
    if let Some(modified) = modified {
        set(header::LAST_MODIFIED, http_date(modified));
    }
    set(
        header::CACHE_CONTROL,
        // A shared cache must not hand a file that needed a token to whoever asks next.
        if scoped {
            "private, no-cache".into()
        } else if auth::tokens_required(state) {
            "private, max-age=31536000, immutable".into()
        } else {
            "public, max-age=31536000, immutable".into()
        },
    );
    set(
        header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"{}.csv\"", record.id),
    );
    response
}

/// A scoped slice's ETag: its result's id and a hash of its bytes.
fn content_etag(record: &ReportRecord, body: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(body.as_bytes());
    format!("\"{}-{}\"", record.result_id(), hex::encode(&digest[..12]))
}

/// Whether the client's copy is current: `If-None-Match` names this ETag (or `*`), or,
/// without it, `If-Modified-Since` is no earlier than the last change (when it is known).
fn not_modified(request: &HeaderMap, etag: &str, modified: Option<DateTime<Utc>>) -> bool {
    if let Some(tags) = request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return tags
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag);
    }
    request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
        .zip(modified)
        .is_some_and(|(since, modified)| modified.timestamp() <= since.timestamp())
}

/// The whole body (200), or the one byte range asked for (206), or 416 when it lies past
/// the end. Several ranges, or a stale `If-Range`, get the whole body, as RFC 9110 allows.
fn ranged(request: &HeaderMap, etag: &str, modified: Option<DateTime<Utc>>, body: Vec<u8>) -> Response {
    let len = body.len() as u64;
    let whole = |body: Vec<u8>| {
        Response::builder()
            .status(StatusCode::OK)
            .content_type("text/csv; charset=utf-8")
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::CONTENT_LENGTH, len)
            .body(body)
    };
    let Some(range) = request.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return whole(body);
    };
    let current = match request.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(condition) => condition == etag || modified.is_some_and(|m| condition == http_date(m)),
    };
    match byte_range(range, len) {
        Some(Some((first, last))) if current => Response::builder()
            .status(StatusCode::PARTIAL_CONTENT)
            .content_type("text/csv; charset=utf-8")
            .header(header::CONTENT_RANGE, format!("bytes {first}-{last}/{len}"))
            .header(header::CONTENT_LENGTH, last - first + 1)
            .body(body[first as usize..=last as usize].to_vec()),
        Some(None) if current => Response::builder()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{len}"))
            .finish(),
        _ => whole(body),
    }
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` of a body of `len` bytes: `None` for a header
/// this does not serve as a range (another unit, several ranges), `Some(None)` for one
/// past the end, else the first and last byte.
fn byte_range(header: &str, len: u64) -> Option<Option<(u64, u64)>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        (suffix > 0 && len > 0).then(|| (len.saturating_sub(suffix), len - 1))
    } else {
        let first: u64 = first.parse().ok()?;
        let last = if last.is_empty() {
            len.saturating_sub(1)
        } else {
            let last: u64 = last.parse().ok()?;
            if last < first {
                return None;
            }
            last.min(len.saturating_sub(1))
        };
        (first < len).then_some((first, last))
    };
    Some(range)
}

/// An instant as HTTP writes dates (IMF-fixdate).
fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_are_read_as_rfc_9110_writes_them() {
        assert_eq!(byte_range("bytes=0-9", 100), Some(Some((0, 9))));
        assert_eq!(byte_range("bytes=90-", 100), Some(Some((90, 99))));
        assert_eq!(byte_range("bytes=-10", 100), Some(Some((90, 99))));
        assert_eq!(byte_range("bytes=-500", 100), Some(Some((0, 99))));
        assert_eq!(byte_range("bytes=50-500", 100), Some(Some((50, 99))));
        assert_eq!(byte_range("bytes=100-", 100), Some(None));
        assert_eq!(byte_range("bytes=0-1,5-6", 100), None);
        assert_eq!(byte_range("items=0-1", 100), None);
        assert_eq!(byte_range("bytes=9-3", 100), None);
    }

    #[test]
    fn http_dates_are_imf_fixdates() {
        let at = DateTime::parse_from_rfc3339("2023-01-25T18:13:22.479Z")
            .unwrap()
            .to_utc();
        assert_eq!(http_date(at), "Wed, 25 Jan 2023 18:13:22 GMT");
        assert_eq!(
            DateTime::parse_from_rfc2822(&http_date(at)).unwrap().timestamp(),
            at.timestamp()
        );
    }
}
