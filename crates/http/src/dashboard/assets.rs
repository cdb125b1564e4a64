//! The dashboard's static files, compiled into the binary and served with a year of caching:
//! their URLs carry a hash of the contents (`?v=`), so a new release busts the cache.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("../../assets/dashboard.css");
/// htmx 2.0.11 (`npm pack htmx.org@2`, `dist/htmx.min.js`; 0BSD, see `assets/htmx-LICENSE`).
const HTMX: &str = include_str!("../../assets/htmx-2.0.11.min.js");
/// The bulk report's CSV download (hand-written).
const REPORT_JS: &str = include_str!("../../assets/report.js");

/// A short hash of every asset: changes whenever one does.
pub(super) fn version() -> &'static str {
    static VERSION: LazyLock<String> = LazyLock::new(|| {
        // FNV-1a, 64 bits: a cache key, not a security property.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in CSS.bytes().chain(HTMX.bytes()).chain(REPORT_JS.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    });
    &VERSION
}

pub(super) async fn serve(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "dashboard.css" => (CSS, "text/css; charset=utf-8"),
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "report.js" => (REPORT_JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
