//! The GraphiQL page and its files, served by the binary itself: it works offline and
//! loads nothing from another site (`vendor/graphiql/README.md` says what is there).

use poem::http::{StatusCode, header};
use poem::web::Path;
use poem::{Response, handler};

const PAGE: &str = include_str!("graphiql.html");

/// Each file the page loads: its name under `/graphiql/`, type and bytes.
const FILES: [(&str, &str, &[u8]); 5] = [
    (
        "setup.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphiql.js"),
    ),
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../vendor/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../vendor/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../vendor/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../vendor/graphiql/react-dom.production.min.js"),
    ),
];

/// The page, for a browser that opens `/graphql`.
pub(crate) fn page() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/html; charset=utf-8")
        // The page's files come from here only; the API from here and its WebSocket.
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; font-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'",
        )
        .body(PAGE)
}

/// `GET /graphiql/{file}`: a file of the page. They change only with the binary, whose
/// version is in the URL's cache key: a day of caching is safe and saves the reloads.
#[handler]
pub(crate) fn file(Path(name): Path<String>) -> Response {
    super::embedded_file(&FILES, &name, "public, max-age=86400", "GraphiQL")
}
