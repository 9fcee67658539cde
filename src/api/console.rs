//! The web console's files (built by `console/build.mjs` into
//! `console/dist/`, embedded here so the binary needs no npm and works
//! offline), served at `/` and `/console/…` with a strict Content Security
//! Policy: scripts and styles only from this server, no framing.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../../console/dist/index.html");
const APP_JS: &str = include_str!("../../console/dist/app.js");
const APP_CSS: &str = include_str!("../../console/dist/app.css");

/// CodeMirror and uPlot set inline styles, hence `'unsafe-inline'` for
/// styles only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

fn file(body: &'static str, content_type: &'static str, cache: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

pub async fn index() -> Response {
    file(INDEX, "text/html; charset=utf-8", "no-cache")
}

pub async fn app_js() -> Response {
    file(APP_JS, "text/javascript; charset=utf-8", "no-cache")
}

pub async fn app_css() -> Response {
    file(APP_CSS, "text/css; charset=utf-8", "no-cache")
}
