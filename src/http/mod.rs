//! The HTTP server: `app(state)` builds the router; feature routers live in
//! the submodules (agent API, web chat and Messenger channels, admin API).
//!
//! **Boundary:** handlers turn requests into core commands and core results
//! into responses; no domain rule lives here.

pub mod admin;
pub mod agent;
pub mod attachments;
pub mod cluster;
pub mod forward;
pub mod inbound;
pub mod messenger;
pub mod plugin_channels;
pub mod supervisor;
pub mod web;
pub mod webchat;

use crate::auth::Sessions;
use crate::clock::Clock;
use crate::passwords::Passwords;
use crate::store::Store;
use crate::tenant::Tenant;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::sync::Arc;
use switchboard_core::CommandError;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Shared state of the server.
#[derive(Debug)]
pub struct AppState {
    /// Every configured tenant and where it is served (here, on another
    /// node of the cluster, or moving).
    pub tenants: crate::cluster::Registry,
    pub sessions: Arc<Sessions>,
    /// Web chat visitor tokens.
    pub visitors: crate::visitors::VisitorTokens,
    /// Each agent's credential and the bounded pool that checks passwords.
    pub passwords: Passwords,
    pub admin_token: String,
    pub clock: Arc<Clock>,
    pub test_clock: bool,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Messenger customers' profiles (User Profile API), cached.
    pub profiles: Arc<crate::profiles::Profiles>,
    /// Messenger sender actions (`mark_seen`, `typing_on`), throttled.
    pub sender_actions: Arc<crate::sender_actions::SenderActions>,
    /// This node (a server alone is a node of one).
    pub node: Arc<crate::cluster::Node>,
    /// Forwards requests to the node that owns their tenant.
    pub forwarder: reqwest::Client,
}

pub type Shared = Arc<AppState>;

impl AppState {
    /// The tenant `id` if this node serves it; 404 for a tenant not
    /// configured, 503 with `Retry-After` for one served elsewhere or
    /// moving between nodes (requests for another node's tenant are
    /// forwarded before they reach a handler: `forward.rs`).
    pub fn tenant(&self, id: &str) -> Result<Arc<Tenant>, AppError> {
        match self.tenants.locate(id) {
            crate::cluster::Route::Here(t) => Ok(t),
            crate::cluster::Route::Unknown => Err(AppError::NotFound("tenant")),
            crate::cluster::Route::Forward { .. } | crate::cluster::Route::Moving => {
                Err(AppError::Moving)
            }
        }
    }
}

/// Build the router.
pub fn app(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi))
        .merge(agent::routes())
        .merge(attachments::routes())
        .merge(webchat::routes())
        .merge(messenger::routes())
        .merge(plugin_channels::routes())
        .merge(admin::routes())
        .merge(cluster::routes())
        .merge(supervisor::routes())
        .merge(web::routes())
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::forward,
        ))
        .layer(axum::middleware::from_fn(json_errors))
        .with_state(state)
}

/// What the router answers for a path it does not serve.
async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> AppError {
    AppError::Status(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {}", uri.path()),
    )
}

/// Longest plain-text error body turned into JSON; anything longer is cut.
const MAX_PLAIN_ERROR_BYTES: usize = 4 * 1024;

/// Every error answer is JSON `{"error": …}`: the ones our handlers give
/// already are; this turns the rest (axum's rejections of paths, queries,
/// bodies, missing WebSocket upgrades, 405 for a wrong method, a channel
/// adapter's plain-text refusal) into the same shape, keeping the status
/// and headers such as `Allow` and `Retry-After`. The web pages' HTML 404
/// stays HTML.
async fn json_errors(req: Request, next: axum::middleware::Next) -> Response {
    use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let content_type = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/json") || content_type.starts_with("text/html") {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = match axum::body::to_bytes(body, MAX_PLAIN_ERROR_BYTES).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.insert(
        CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    let body = json!({ "error": message }).to_string();
    Response::from_parts(parts, axum::body::Body::from(body))
}

async fn healthz() -> &'static str {
    "ok"
}

/// Prometheus text exposition; gauges are read from state now.
async fn metrics(State(state): State<Shared>) -> Response {
    use crate::metrics::{tenant_labels, QueueLabels};
    for t in state.tenants.values() {
        let depths = t.read(|e| {
            e.queues()
                .map(|q| (q.id.clone(), e.queue_depth(&q.id)))
                .collect::<Vec<_>>()
        });
        for (queue, n) in depths {
            state
                .metrics
                .queue_depth
                .get_or_create(&QueueLabels {
                    tenant: t.id().to_string(),
                    queue,
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for f in t.generation().report() {
            let labels = crate::metrics::ScriptLabels {
                tenant: t.id().to_string(),
                script: f.file.clone(),
            };
            let calls = i64::try_from(f.calls).unwrap_or(i64::MAX);
            let errors = i64::try_from(f.errors).unwrap_or(i64::MAX);
            state.metrics.script_calls.get_or_create(&labels).set(calls);
            state
                .metrics
                .script_errors
                .get_or_create(&labels)
                .set(errors);
        }
        let reads = t.hub.console.engine_reads();
        state
            .metrics
            .console_engine_reads
            .get_or_create(&tenant_labels(t.id()))
            .set(i64::try_from(reads).unwrap_or(i64::MAX));
        state
            .metrics
            .agent_sockets
            .get_or_create(&tenant_labels(t.id()))
            .set(i64::try_from(t.hub.agent_connections()).unwrap_or(i64::MAX));
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// The OpenAPI description of the HTTP API (docs/openapi.json).
async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("../../docs/openapi.json"),
    )
        .into_response()
}

/// Every error a client can see. Internal details are logged, never sent.
#[derive(Debug)]
pub enum AppError {
    BadRequest(String),
    Unauthorized,
    /// 401 with a reason the client can act on.
    UnauthorizedBecause(String),
    /// Any other status with its message (an extractor's rejection).
    Status(StatusCode, String),
    NotFound(&'static str),
    Conflict(String),
    Unprocessable(String),
    PayloadTooLarge,
    TooManyRequests(u64),
    /// Too much work queued (password checks): retry after the seconds.
    Busy(u64),
    /// The journal could not store the change: retry later.
    Unavailable,
    /// The tenant is moving between nodes of the cluster (or is served by
    /// another node that could not be reached): 503 with `Retry-After`;
    /// nothing was changed.
    Moving,
}

impl From<crate::tenant::ExecuteError> for AppError {
    fn from(e: crate::tenant::ExecuteError) -> Self {
        match e {
            crate::tenant::ExecuteError::Command(c) => c.into(),
            crate::tenant::ExecuteError::Storage(m) => {
                tracing::error!(error = %m, "journal unavailable");
                AppError::Unavailable
            }
            crate::tenant::ExecuteError::Moved => AppError::Moving,
        }
    }
}

impl From<CommandError> for AppError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::NotFound(what) => AppError::NotFound(what),
            CommandError::Conflict(m) => AppError::Conflict(m),
            CommandError::Invalid(m) => AppError::Unprocessable(m),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized".to_string()),
            AppError::UnauthorizedBecause(m) => (StatusCode::UNAUTHORIZED, m),
            AppError::Status(status, m) => (status, m),
            AppError::NotFound(what) => (StatusCode::NOT_FOUND, format!("{what} not found")),
            AppError::Conflict(m) => (StatusCode::CONFLICT, m),
            AppError::Unprocessable(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
            AppError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {MAX_BODY_BYTES} bytes"),
            ),
            AppError::TooManyRequests(secs) => {
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(json!({ "error": format!("too many attempts: retry in {secs} s") })),
                )
                    .into_response();
                if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                    r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
                }
                return r;
            }
            AppError::Busy(secs) => {
                let mut r = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({ "error": format!("too many logins at once: retry in {secs} s") })),
                )
                    .into_response();
                if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                    r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
                }
                return r;
            }
            AppError::Moving => {
                let mut r = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({ "error": "this tenant is moving between nodes; nothing was changed for you, retry in 1 s" })),
                )
                    .into_response();
                r.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("1"),
                );
                return r;
            }
            AppError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "storage is unavailable; nothing was changed for you, retry later".to_string(),
            ),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

/// A JSON body whose errors come back as our JSON errors (400 for bad JSON,
/// 413 for too large).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes =
            axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|e: BytesRejection| {
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        AppError::PayloadTooLarge
                    } else {
                        AppError::BadRequest(e.body_text())
                    }
                })?;
        // Every body of this API is an object. serde would also read a
        // struct from an array of its fields in order (`[null, null]`),
        // which no client means: refused before it gets that far.
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|&b| b != b'{') {
            return Err(AppError::BadRequest(
                "invalid JSON body: expected a JSON object".into(),
            ));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))
    }
}

/// Forward hub frames to a WebSocket until either side closes. What the
/// client sends is ignored (pings are answered by the library).
pub async fn pump(
    socket: &mut axum::extract::ws::WebSocket,
    rx: &mut tokio::sync::mpsc::Receiver<Arc<str>>,
) {
    pump_with(socket, rx, |_| {}).await;
}

/// [`pump`], handing each text frame the client sends to `on_text`.
pub async fn pump_with(
    socket: &mut axum::extract::ws::WebSocket,
    rx: &mut tokio::sync::mpsc::Receiver<Arc<str>>,
    mut on_text: impl FnMut(&str),
) {
    use axum::extract::ws::Message;
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Some(f) => {
                    if socket.send(Message::Text(f.as_ref().into())).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(Message::Text(text))) => on_text(text.as_str()),
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Compare secrets in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The bearer token of a request's `Authorization` header. The scheme is
/// case-insensitive (RFC 7235: `bearer`, `Bearer`, `BEARER`); the token is
/// taken exactly as sent after the separating spaces (no trimming, so a
/// secret compared against it must match byte for byte).
pub fn bearer(parts: &axum::http::request::Parts) -> Option<String> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    (!token.is_empty()).then(|| token.to_string())
}

/// A query parameter of the request, decoded (for WebSocket upgrades only:
/// browsers cannot set headers on them).
pub fn query_param(parts: &axum::http::request::Parts, name: &str) -> Option<String> {
    let q = parts.uri.query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}
