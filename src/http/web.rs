//! The bundled web pages: the agent desktop at `/` and the customer web chat
//! at `/chat/{tenant}`, with their scripts and styles, embedded in the
//! binary so that `cargo run --release` serves them (plain files, no build
//! step; the sources are in `web/`).
//!
//! **Invariant:** every response of this router carries a strict
//! Content-Security-Policy (scripts, styles and connections from this origin
//! only, nothing inline) and `X-Content-Type-Options: nosniff`, so customer
//! text can never run as script even if it reached the page as markup (the
//! pages also only ever render it with `textContent`).

use super::Shared;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// A file of `web/`, embedded.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

const DESKTOP_HTML: &[u8] = include_bytes!("../../web/index.html");
const CHAT_HTML: &[u8] = include_bytes!("../../web/chat.html");
const NOT_FOUND_HTML: &[u8] = include_bytes!("../../web/404.html");
const CONSOLE_HTML: &[u8] = include_bytes!("../../web/console.html");

/// What `/assets/{name}` serves.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: CSS,
        body: include_bytes!("../../web/app.css"),
    },
    Asset {
        name: "i18n.js",
        content_type: JS,
        body: include_bytes!("../../web/i18n.js"),
    },
    Asset {
        name: "desktop.js",
        content_type: JS,
        body: include_bytes!("../../web/desktop.js"),
    },
    Asset {
        name: "chat.js",
        content_type: JS,
        body: include_bytes!("../../web/chat.js"),
    },
    Asset {
        name: "console.js",
        content_type: JS,
        body: include_bytes!("../../web/console.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: SVG,
        body: include_bytes!("../../web/favicon.svg"),
    },
];

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(desktop))
        .route("/chat/{tenant}", get(chat))
        .route("/console", get(console))
        .route("/assets/{name}", get(asset))
        .layer(middleware::from_fn(security_headers))
}

fn page(status: StatusCode, content_type: &'static str, body: &'static [u8]) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, content_type),
            // Small files on the same host: always revalidate, so a new
            // binary's pages are picked up at once.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn desktop() -> Response {
    page(StatusCode::OK, HTML, DESKTOP_HTML)
}

/// The supervisors' console (its data needs a supervisor's session).
async fn console() -> Response {
    page(StatusCode::OK, HTML, CONSOLE_HTML)
}

/// The customer chat of a tenant that has the web chat channel.
async fn chat(State(state): State<Shared>, Path(tenant): Path<String>) -> Response {
    let has_webchat = state
        .tenants
        .get(&tenant)
        .is_some_and(|t| t.config.webchat.is_some());
    if has_webchat {
        page(StatusCode::OK, HTML, CHAT_HTML)
    } else {
        page(StatusCode::NOT_FOUND, HTML, NOT_FOUND_HTML)
    }
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => page(StatusCode::OK, a.content_type, a.body),
        None => page(StatusCode::NOT_FOUND, HTML, NOT_FOUND_HTML),
    }
}

/// The Content-Security-Policy of the pages. `'self'` covers same-origin
/// WebSockets in current browsers; the explicit `ws:`/`wss:` sources for the
/// request's own host keep older ones working.
fn content_security_policy(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| is_plain_host(h));
    let connect = match host {
        Some(h) => format!("'self' ws://{h} wss://{h}"),
        None => "'self'".to_string(),
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// A `Host` header safe to copy into the policy: a name or address and a
/// port, nothing that could end or extend a directive.
fn is_plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

async fn security_headers(req: Request, next: Next) -> Response {
    let csp = content_security_policy(req.headers());
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_the_request_host_for_websockets() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        let csp = content_security_policy(&h);
        assert!(csp.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"));
        assert!(csp.starts_with("default-src 'self';"));
        assert!(!csp.contains("unsafe-inline"));
    }

    #[test]
    fn a_host_header_cannot_inject_directives() {
        let mut h = HeaderMap::new();
        h.insert(
            header::HOST,
            HeaderValue::from_static("evil.example; script-src *"),
        );
        let csp = content_security_policy(&h);
        assert!(csp.contains("connect-src 'self';"));
        assert!(!csp.contains("evil"));
    }

    #[test]
    fn every_asset_has_a_body() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.name);
        }
    }
}
