//! The dashboard at `/`: plain HTML, CSS and ES modules (`dashboard/`), compiled into the
//! binary, that use only the public GraphQL API. No build step and nothing from another
//! site: a fresh clone serves it as it is.

use poem::http::{StatusCode, header};
use poem::web::Path;
use poem::{Response, handler};

const PAGE: &str = include_str!("dashboard/index.html");

/// Each file the page loads: its name under `/dashboard/`, type and bytes.
const FILES: [(&str, &str, &[u8]); 4] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("dashboard/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("dashboard/api.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_bytes!("dashboard/chart.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("dashboard/style.css"),
    ),
];

/// `GET /`: the page. Its files come from here only, its data from the API and its
/// WebSocket; nothing inline runs.
#[handler]
pub(crate) fn page() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/html; charset=utf-8")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        )
        .header(header::CACHE_CONTROL, "no-cache")
        .body(PAGE)
}

/// `GET /dashboard/{file}`: a file of the page. They change with the binary, and the page
/// names them without a version: browsers check them again each time (cheap, and never stale).
#[handler]
pub(crate) fn file(Path(name): Path<String>) -> Response {
    super::embedded_file(&FILES, &name, "no-cache", "dashboard")
}
