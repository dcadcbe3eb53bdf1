//! Who may call from a browser on another origin: nobody unless `--cors-origin` names it.
//!
//! poem's `Cors` refuses a request whose `Origin` it does not allow, and knows nothing of
//! the request's own host; but browsers send `Origin` on same-origin POSTs and WebSocket
//! upgrades too (GraphiQL's, for one). So a request whose `Origin` is the host it was sent
//! to is not a CORS request: [`SameOrigin`] takes its `Origin` off before `Cors` looks.
//! Every answer says `Vary: Origin`, so that no cache serves one origin's answer to another.

use poem::http::{HeaderValue, Method, header};
use poem::middleware::Cors;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

/// CORS for `origins` (none: no cross-origin access), with only the methods and headers
/// the API uses.
pub(crate) fn cors(origins: &[String]) -> Cors {
    let allowed: Vec<String> = origins
        .iter()
        .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
        .collect();
    Cors::new()
        .allow_origins_fn(move |origin| allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)))
        .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::ACCEPT,
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            header::RANGE,
        ])
        // A browser app reads the download's name and validators only if it is told it may.
        .expose_headers([
            header::CONTENT_DISPOSITION,
            header::ETAG,
            header::LAST_MODIFIED,
            header::CONTENT_RANGE,
            header::RETRY_AFTER,
        ])
}

/// Takes a same-origin request's `Origin` off (see the module docs) and adds
/// `Vary: Origin` to every answer.
pub(crate) struct SameOrigin;

impl<E: Endpoint> Middleware<E> for SameOrigin {
    type Output = SameOriginEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        SameOriginEndpoint(ep)
    }
}

pub(crate) struct SameOriginEndpoint<E>(E);

impl<E: Endpoint> Endpoint for SameOriginEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Response> {
        let same = match (req.headers().get(header::ORIGIN), req.headers().get(header::HOST)) {
            (Some(origin), Some(host)) => is_same_origin(origin, host),
            _ => false,
        };
        if same {
            req.headers_mut().remove(header::ORIGIN);
        }
        let mut response = match self.0.call(req).await {
            Ok(response) => response.into_response(),
            Err(error) => error.into_response(),
        };
        let varies = response.headers().get_all(header::VARY).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("origin"))
        });
        if !varies {
            response
                .headers_mut()
                .append(header::VARY, HeaderValue::from_static("Origin"));
        }
        Ok(response)
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the `host` (`host[:port]`) the request
/// was sent to. The scheme is not compared: behind a TLS proxy the page is `https` and
/// the server sees plain HTTP.
fn is_same_origin(origin: &HeaderValue, host: &HeaderValue) -> bool {
    let (Ok(origin), Ok(host)) = (origin.to_str(), host.to_str()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_the_same_only_when_it_names_the_host() {
        let same = |origin: &str, host: &str| {
            is_same_origin(
                &HeaderValue::from_str(origin).unwrap(),
                &HeaderValue::from_str(host).unwrap(),
            )
        };
        assert!(same("http://127.0.0.1:8000", "127.0.0.1:8000"));
        assert!(same("https://Monitor.example", "monitor.example"));
        assert!(!same("http://127.0.0.1:8001", "127.0.0.1:8000"));
        assert!(!same("https://evil.example", "monitor.example"));
        assert!(!same("null", "monitor.example"));
    }
}
