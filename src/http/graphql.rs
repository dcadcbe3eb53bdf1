//! GraphQL over HTTP as its spec writes it: `POST` with a JSON body, `GET` for queries,
//! `application/graphql-response+json` for clients that ask for it, and Apollo's automatic
//! persisted queries.
//!
//! Nothing a web page can send cross-site without a preflight runs an operation: a `POST`
//! must say `application/json` (a form, `text/plain` or multipart body is 415), and `GET`
//! runs queries only (a mutation is 405).

use async_graphql::{ServerError, Variables};
use poem::http::{HeaderMap, Method, StatusCode, header};
use poem::web::Data;
use poem::{Body, Request, Response, handler};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::persisted::PersistedQueries;
use crate::domain::access::Action;
use crate::graphql::AppSchema;
use crate::service::auth::{self, Caller, Outcome};
use crate::service::{AppState, Error, RETRY_AFTER_SECONDS};

/// The largest request body read.
const MAX_BODY: usize = 1 << 20;
const GRAPHQL_RESPONSE: &str = "application/graphql-response+json; charset=utf-8";
const JSON: &str = "application/json; charset=utf-8";

/// `GET` and `POST /graphql`.
#[handler]
pub(crate) async fn endpoint(
    req: &Request,
    body: Body,
    schema: Data<&AppSchema>,
    state: Data<&AppState>,
    persisted: Data<&PersistedQueries>,
    limit: Data<&ResponseLimit>,
) -> Response {
    let query_string = req.uri().query().unwrap_or_default();
    let operation_given = query_string.contains("query=") || query_string.contains("extensions=");
    if req.method() == Method::GET && !operation_given && accepts_html(req.headers()) {
        return super::graphiql::page();
    }
    let Some(media) = negotiate(req.headers()) else {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            "this endpoint answers application/graphql-response+json or application/json",
        );
    };
    let params = if req.method() == Method::GET {
        from_query_string(query_string)
    } else {
        from_body(req.headers(), body).await
    };
    let params = match params {
        Ok(params) => params,
        Err((status, message)) => return plain(status, &message),
    };
    let (mut request, to_persist) = match params.into_request(&persisted) {
        Ok(made) => made,
        // Apollo's clients read a missing persisted query from a 200 answer, as they do any
        // request error in application/json.
        Err(Unusable::NotPersisted(error)) => {
            return answer(media, async_graphql::Response::from_errors(vec![error]), &limit);
        }
        Err(Unusable::Malformed(error)) => {
            let mut response = answer(media, async_graphql::Response::from_errors(vec![error]), &limit);
            response.set_status(StatusCode::BAD_REQUEST);
            return response;
        }
    };
    if req.method() == Method::GET && !is_query(&mut request) {
        return Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "POST")
            .content_type("text/plain; charset=utf-8")
            .body("GET runs queries only: send mutations by POST");
    }
    if let Err(refusal) = crate::graphql::precheck(&mut request) {
        return answer(media, async_graphql::Response::from_errors(vec![refusal]), &limit);
    }
    // Who asks, and whether they may do all the operation asks, before any of it runs.
    let actions = crate::graphql::actions(&mut request);
    let kind = crate::graphql::operation_kind(&mut request);
    let operation = describe(&request, kind, &actions);
    let caller = match super::caller(req, &state).await {
        Ok(caller) => caller,
        Err(error) => {
            if let Error::Denied(denied) = &error {
                let anonymous = Caller::anonymous(super::address(req));
                auth::audit(&anonymous, &operation, Outcome::Refused(denied));
            }
            return refused(media, error, &limit);
        }
    };
    if let Err(denied) = auth::authorize(&state, &caller, &actions) {
        auth::audit(&caller, &operation, Outcome::Refused(&denied));
        return refused(media, denied.into(), &limit);
    }
    if let Some((hash, query)) = to_persist {
        persisted.keep(hash, query);
    }
    let audited = caller.token.is_some() || actions.iter().any(|a| a.changes());
    let request = request.data(caller.clone());
    let response = match tokio::time::timeout(REQUEST_BUDGET, schema.execute(request)).await {
        Ok(response) => response,
        Err(_) => async_graphql::Response::from_errors(vec![coded(
            &format!(
                "the request took longer than {} s and was stopped: ask for less",
                REQUEST_BUDGET.as_secs()
            ),
            "REQUEST_TIMEOUT",
        )]),
    };
    let codes = error_codes(&response);
    crate::telemetry::metrics().graphql_operation(kind, codes.first().map_or("ok", String::as_str));
    if audited {
        auth::audit(&caller, &operation, Outcome::Ran { error_codes: &codes });
    }
    answer(media, response, &limit)
}

/// The operation for the audit log: its type, name and root fields' actions.
fn describe(request: &async_graphql::Request, kind: &str, actions: &[Action]) -> String {
    let kind = if kind == "query" { "query" } else { "operation" };
    let name = request.operation_name.as_deref().unwrap_or("(unnamed)");
    let actions: Vec<&str> = actions.iter().map(|a| a.name()).collect();
    format!("GraphQL {kind} {name} [{}]", actions.join(", "))
}

/// The codes of an operation's errors, for the audit log.
fn error_codes(response: &async_graphql::Response) -> Vec<String> {
    response
        .errors
        .iter()
        .map(|e| {
            e.extensions.as_ref().and_then(|x| x.get("code")).map_or_else(
                || "?".to_string(),
                |c| c.to_string().trim_matches('"').to_string(),
            )
        })
        .collect()
}

/// A request that failed before it ran: refused, 401 (with `WWW-Authenticate`) or 403
/// whatever the media type, with the error and its code in the GraphQL response shape and
/// no `data` at all; any other error as GraphQL answers one (503 for an outage).
fn refused(media: &'static str, error: Error, limit: &ResponseLimit) -> Response {
    let Error::Denied(denied) = &error else {
        let error = crate::graphql::request_error(error);
        return answer(media, async_graphql::Response::from_errors(vec![error]), limit);
    };
    let status = super::refusal_status(denied);
    let mut response = Response::builder().status(status).content_type(media).finish();
    super::challenge(&mut response, denied);
    let body = serde_json::json!({ "errors": [crate::graphql::request_error(error)] });
    response.set_body(body.to_string());
    response
}

/// The longest a GraphQL request may run; past it, its work is dropped and the client told.
const REQUEST_BUDGET: std::time::Duration = std::time::Duration::from_secs(30);

/// The largest answer sent, in bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResponseLimit(pub usize);

/// What a client's request says, from a query string or a JSON body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

type Refusal = (StatusCode, String);

fn from_query_string(query: &str) -> Result<Params, Refusal> {
    let bad = |what: &str| (StatusCode::BAD_REQUEST, format!("{what} is not a JSON object"));
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("the query string cannot be read: {e}"),
        )
    })?;
    let mut params = Params::default();
    for (key, value) in pairs {
        match key.as_str() {
            "query" => params.query = Some(value),
            "operationName" => params.operation_name = Some(value).filter(|v| !v.is_empty()),
            "variables" if !value.is_empty() => {
                params.variables = Some(serde_json::from_str(&value).map_err(|_| bad("variables"))?)
            }
            "extensions" if !value.is_empty() => {
                params.extensions = Some(serde_json::from_str(&value).map_err(|_| bad("extensions"))?)
            }
            _ => {}
        }
    }
    Ok(params)
}

async fn from_body(headers: &HeaderMap, body: Body) -> Result<Params, Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("send the operation as application/json, not {content_type:?}"),
        ));
    }
    let bytes = body
        .into_bytes_limit(MAX_BODY)
        .await
        .map_err(|unread| match unread {
            poem::error::ReadBodyError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is over {MAX_BODY} bytes"),
            ),
            // A client that went away mid-body sent nothing too large.
            unread => (
                StatusCode::BAD_REQUEST,
                format!("the request body ended before it was whole: {unread}"),
            ),
        })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("the body is not a GraphQL request (one JSON object of query, variables, operationName, extensions): {e}"),
        )
    })
}

/// Why a request cannot run.
enum Unusable {
    /// Not a well-formed GraphQL-over-HTTP request (400 whatever the media type).
    Malformed(ServerError),
    /// A persisted query's hash this server has not been given the query of.
    NotPersisted(ServerError),
}

impl Params {
    /// The request to run, its query looked up by hash when it was persisted.
    /// The request these parameters make, and the query to persist under its hash once the
    /// caller is known to be allowed to run it (never before: an anonymous caller refused
    /// with 401 must not fill the server's memory).
    fn into_request(
        self,
        persisted: &PersistedQueries,
    ) -> Result<(async_graphql::Request, Option<(String, String)>), Unusable> {
        let hash = self
            .extensions
            .as_ref()
            .and_then(|e| e.get("persistedQuery"))
            .map(persisted_hash)
            .transpose()
            .map_err(Unusable::Malformed)?;
        let mut to_keep = None;
        let query = match (self.query.filter(|q| !q.is_empty()), hash) {
            (Some(query), Some(hash)) => {
                if hex::encode(Sha256::digest(query.as_bytes())) != hash {
                    let error = coded(
                        "the persisted query's sha256Hash is not the query's",
                        "BAD_REQUEST",
                    );
                    return Err(Unusable::Malformed(error));
                }
                to_keep = Some((hash, query.clone()));
                query
            }
            (Some(query), None) => query,
            (None, Some(hash)) => persisted.get(&hash).ok_or_else(|| {
                Unusable::NotPersisted(coded("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND"))
            })?,
            (None, None) => {
                return Err(Unusable::Malformed(coded(
                    "the request has no query",
                    "BAD_REQUEST",
                )));
            }
        };
        let mut request = async_graphql::Request::new(query);
        if let Some(name) = self.operation_name {
            request = request.operation_name(name);
        }
        if let Some(variables) = self.variables {
            request = request.variables(Variables::from_json(serde_json::Value::Object(variables)));
        }
        Ok((request, to_keep))
    }
}

/// The `sha256Hash` of Apollo's `persistedQuery` extension (version 1).
fn persisted_hash(value: &serde_json::Value) -> Result<String, ServerError> {
    let version = value.get("version").and_then(serde_json::Value::as_i64);
    let hash = value.get("sha256Hash").and_then(serde_json::Value::as_str);
    match (version, hash) {
        (Some(1), Some(hash)) => Ok(hash.to_ascii_lowercase()),
        _ => Err(coded(
            "persistedQuery must be { version: 1, sha256Hash }",
            "BAD_REQUEST",
        )),
    }
}

/// An error of this door's own, about the whole request: no location in the document.
fn coded(message: &str, code: &'static str) -> ServerError {
    let mut error = ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    error
}

/// Whether the operation the request selects is a query (what `GET` may run). A document
/// that does not parse, or names no operation of its own, is left to the schema to refuse.
fn is_query(request: &mut async_graphql::Request) -> bool {
    crate::graphql::operation_kind(request) == "query"
}

/// The media type to answer in: `application/graphql-response+json` when the client
/// lists it first, `application/json` when it lists that first, or accepts anything;
/// `None` when it accepts neither.
fn negotiate(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    let mut best: Option<(u32, &'static str)> = None;
    for (media, q) in super::weighted(std::iter::once(accept)) {
        let answer = match media.as_str() {
            "application/graphql-response+json" => GRAPHQL_RESPONSE,
            "application/json" | "application/*" | "*/*" => JSON,
            _ => continue,
        };
        if q > 0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, answer));
        }
    }
    best.map(|(_, media)| media)
}

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// The response in `media`. With `application/graphql-response+json`, a request that
/// failed before anything ran (no field error: no error has a path) is 400 and has no
/// `data`; `application/json` clients keep 200, as before. An answer over `limit` is
/// replaced by the error that says so (the cost limit keeps this rare: it is the backstop).
fn answer(media: &'static str, response: async_graphql::Response, limit: &ResponseLimit) -> Response {
    let request_error = !response.errors.is_empty()
        && response.data == async_graphql::Value::Null
        && response.errors.iter().all(|e| e.path.is_empty());
    let has_code = |wanted: &str| {
        response.errors.iter().any(|e| {
            e.extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .is_some_and(|code| *code == async_graphql::Value::from(wanted))
        })
    };
    // Whatever the media type: a client, a proxy or a load balancer can act on these.
    let retry_later = if has_code("SERVICE_UNAVAILABLE") {
        Some(StatusCode::SERVICE_UNAVAILABLE)
    } else if has_code("TOO_MANY_REQUESTS") {
        Some(StatusCode::TOO_MANY_REQUESTS)
    } else {
        None
    };
    let seconds = retry_after(&response.errors);
    let mut body = serde_json::to_value(&response).unwrap_or_default();
    let status = if let Some(status) = retry_later {
        status
    } else if media == GRAPHQL_RESPONSE && request_error {
        if let Some(object) = body.as_object_mut() {
            object.remove("data");
        }
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut text = body.to_string();
    if text.len() > limit.0 {
        let error = coded(
            &format!(
                "the answer is {} bytes, over the limit of {}: ask for fewer fields or smaller pages",
                text.len(),
                limit.0
            ),
            "RESPONSE_TOO_LARGE",
        );
        text = serde_json::json!({ "data": null, "errors": [error] }).to_string();
    }
    let response = Response::builder().status(status).content_type(media);
    if retry_later.is_some() {
        response.header(header::RETRY_AFTER, seconds).body(text)
    } else {
        response.body(text)
    }
}

/// The longest `retryAfter` the errors ask for (what `Retry-After` says).
fn retry_after(errors: &[ServerError]) -> u64 {
    errors
        .iter()
        .filter_map(|e| e.extensions.as_ref()?.get("retryAfter"))
        .filter_map(|v| match v {
            async_graphql::Value::Number(n) => n.as_u64(),
            _ => None,
        })
        .max()
        .unwrap_or(RETRY_AFTER_SECONDS)
}

fn plain(status: StatusCode, message: &str) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/plain; charset=utf-8")
        .body(message.to_string())
}

#[cfg(test)]
mod tests {
    use poem::http::HeaderValue;

    use super::*;

    fn accepting(accept: &str) -> Option<&'static str> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        negotiate(&headers)
    }

    #[test]
    fn the_answer_is_in_the_type_the_client_prefers() {
        assert_eq!(
            accepting("application/graphql-response+json, application/json;q=0.9"),
            Some(GRAPHQL_RESPONSE)
        );
        assert_eq!(accepting("application/json"), Some(JSON));
        assert_eq!(accepting("*/*"), Some(JSON));
        assert_eq!(
            accepting("application/json, application/graphql-response+json"),
            Some(JSON)
        );
        assert_eq!(accepting("text/html"), None);
        assert_eq!(negotiate(&HeaderMap::new()), Some(JSON));
    }

    #[test]
    fn query_strings_are_decoded() {
        let params = from_query_string("query=%7B%20a%20%7D&variables=&operationName=x+y").unwrap();
        assert_eq!(params.query.as_deref(), Some("{ a }"));
        assert_eq!(params.operation_name.as_deref(), Some("x y"));
        assert!(params.variables.is_none());
    }
}
