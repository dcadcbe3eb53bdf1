//! Compression of what the API sends: zstd, Brotli or gzip, whichever the client ranks
//! highest in `Accept-Encoding` (on a tie: zstd, then Brotli, then gzip).
//!
//! poem's own middleware would also compress 101, 206 and 304 answers, misses `zstd` in
//! `Accept-Encoding`, and unpacks compressed request bodies of any size; this one does
//! none of that.

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::web::{Compress, CompressionAlgo};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

/// Bodies smaller than this go as they are: compressing them saves nothing.
const MIN_BYTES: usize = 1024;

pub(crate) struct Compression;

impl<E: Endpoint> Middleware<E> for Compression {
    type Output = CompressionEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        CompressionEndpoint { ep }
    }
}

pub(crate) struct CompressionEndpoint<E> {
    ep: E,
}

impl<E: Endpoint> Endpoint for CompressionEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let algo = negotiate(req.headers().get_all(header::ACCEPT_ENCODING).iter());
        let head = req.method() == Method::HEAD;
        let mut resp = self.ep.call(req).await?.into_response();
        if head || !compressible(&resp) {
            return Ok(resp);
        }
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("accept-encoding"));
        let Some(algo) = algo else {
            return Ok(resp);
        };
        let body = resp.take_body().into_bytes().await?;
        if body.len() < MIN_BYTES {
            resp.set_body(body);
            return Ok(resp);
        }
        resp.set_body(body);
        Ok(Compress::new(resp, algo).into_response())
    }
}

/// Whole answers of text (JSON, CSV, HTML): not partial or empty ones, not an upgrade to
/// WebSocket, not what is encoded already.
fn compressible(resp: &Response) -> bool {
    let whole =
        resp.status() == StatusCode::OK || resp.status().is_client_error() || resp.status().is_server_error();
    let text = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t.starts_with("text/") || t.contains("json")
        });
    whole && text && !resp.headers().contains_key(header::CONTENT_ENCODING)
}

/// The coding the client ranks highest among those it accepts (`q` above 0).
fn negotiate<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Option<CompressionAlgo> {
    let mut best: Option<(u32, u8, CompressionAlgo)> = None;
    for (name, q) in super::weighted(values.filter_map(|v| v.to_str().ok())) {
        let (rank, algo) = match name.as_str() {
            "zstd" | "*" => (3, CompressionAlgo::ZSTD),
            "br" => (2, CompressionAlgo::BR),
            "gzip" | "x-gzip" => (1, CompressionAlgo::GZIP),
            _ => continue,
        };
        if q > 0 && best.as_ref().is_none_or(|&(bq, br, _)| (q, rank) > (bq, br)) {
            best = Some((q, rank, algo));
        }
    }
    best.map(|(_, _, algo)| algo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(header: &str) -> Option<CompressionAlgo> {
        negotiate(std::iter::once(&HeaderValue::from_str(header).unwrap()))
    }

    #[test]
    fn the_client_ranks_the_codings() {
        assert_eq!(pick("gzip, deflate, br, zstd"), Some(CompressionAlgo::ZSTD));
        assert_eq!(pick("gzip, deflate, br"), Some(CompressionAlgo::BR));
        assert_eq!(pick("gzip"), Some(CompressionAlgo::GZIP));
        assert_eq!(pick("br;q=0.5, gzip;q=0.8"), Some(CompressionAlgo::GZIP));
        assert_eq!(pick("identity"), None);
        assert_eq!(pick("gzip;q=0"), None);
        assert_eq!(pick("deflate"), None);
    }
}
