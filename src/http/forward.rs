//! Any node serves any request: a request for a tenant that another node
//! of the cluster owns is forwarded to that node, WebSockets included.
//!
//! The tenant of a request is read from its path
//! (`/admin/tenants/{t}/…`, `/channels/{channel}/{t}/…`, `/chat/{t}`),
//! else from the login body's `tenant`, else from the agent's session
//! token or WebSocket ticket, which start with `{tenant}.`
//! (`auth::token_tenant`). A request with no tenant (health, metrics,
//! pages, `/admin/cluster`) is served here.
//!
//! HTTP requests are replayed on the owner (same method, path, query,
//! headers and body) and its answer is given back as it is. WebSocket
//! upgrades are accepted here and piped, frame by frame, to a WebSocket
//! opened to the owner with the same path, query and credentials; when
//! either side closes, both are closed, and desktops reconnect by
//! themselves (to whichever node, which forwards to the owner of the
//! moment).
//!
//! **Invariant:** a request is forwarded at most once: the forwarded copy
//! carries [`FORWARDED`], and a node that does not own the tenant answers
//! such a request 503 with `Retry-After` (ownership is moving) instead of
//! forwarding it again. No loop, no silent loss.

use super::{AppError, Shared, MAX_BODY_BYTES};
use crate::cluster::Route;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite;

/// Header marking a request forwarded by another node (its value: that
/// node's id).
pub const FORWARDED: &str = "x-switchboard-forwarded";

/// The client's address, as the forwarding node saw it.
pub const CLIENT: &str = "x-switchboard-client";
/// Proof that [`CLIENT`] was set by a node of the cluster: HMAC-SHA256,
/// keyed by the admin token every node shares, of `{node}|{address}`.
pub const PROOF: &str = "x-switchboard-proof";

fn proof(state: &Shared, node: &str, addr: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(state.admin_token.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(node.as_bytes());
    mac.update(b"|");
    mac.update(addr.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The address of the client a request comes from: the peer, or, for a
/// request another node forwarded with a valid proof, the client that
/// node saw (so login limits per address count the real client, not the
/// forwarding node).
pub fn client_addr(
    state: &Shared,
    headers: &axum::http::HeaderMap,
    peer: std::net::SocketAddr,
) -> String {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let (Some(node), Some(addr), Some(sent)) = (get(FORWARDED), get(CLIENT), get(PROOF)) {
        if super::same_secret(&proof(state, node, addr), sent) {
            return addr.to_string();
        }
    }
    peer.ip().to_string()
}

/// Longest wait for the owner's answer to a forwarded request.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Headers that belong to one connection, never forwarded.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

/// The tenant a path names, if it names one.
fn tenant_of_path(path: &str) -> Option<&str> {
    let mut segs = path.trim_start_matches('/').split('/');
    match (segs.next(), segs.next(), segs.next()) {
        (Some("admin"), Some("tenants"), Some(t)) => Some(t),
        (Some("channels"), Some(_), Some(t)) => Some(t),
        (Some("chat"), Some(t), None) => Some(t),
        _ => None,
    }
    .filter(|t| !t.is_empty())
}

/// The tenant an agent's credential names: the bearer token, or the
/// `?token=` / `?ticket=` of a WebSocket.
fn tenant_of_credential(parts: &Parts) -> Option<String> {
    let from = |t: &str| crate::auth::token_tenant(t).map(str::to_string);
    if let Some(t) = super::bearer(parts) {
        return from(&t);
    }
    ["ticket", "token"]
        .iter()
        .find_map(|k| super::query_param(parts, k))
        .and_then(|t| from(&t))
}

fn is_websocket(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The middleware: serve here, forward to the owner, or 503 while the
/// tenant moves.
pub async fn forward(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if state.node.cluster.is_none() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let mut tenant = if path.starts_with("/api/") {
        tenant_of_credential(&parts)
    } else {
        tenant_of_path(path).map(str::to_string)
    };
    let mut body = body;
    if tenant.is_none() && parts.method == Method::POST && path == "/api/login" {
        let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(_) => return AppError::PayloadTooLarge.into_response(),
        };
        tenant = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("tenant")?.as_str().map(str::to_string));
        body = Body::from(bytes);
    }
    let Some(tenant) = tenant else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    match state.tenants.locate(&tenant) {
        Route::Here(_) | Route::Unknown => next.run(Request::from_parts(parts, body)).await,
        Route::Moving => AppError::Moving.into_response(),
        Route::Forward { node, url } => {
            if parts.headers.contains_key(FORWARDED) {
                // The node that forwarded this thought we own the tenant:
                // ownership is changing. Never forward twice.
                return AppError::Moving.into_response();
            }
            tracing::debug!(tenant = %tenant, to = %node, path = %parts.uri.path(), "forwarding");
            state.metrics.forwarded.inc();
            if is_websocket(&parts) {
                forward_socket(state, parts, &url).await
            } else {
                forward_http(&state, parts, body, &url).await
            }
        }
    }
}

/// Replay the request on the owner; give its answer back as it is.
async fn forward_http(state: &Shared, parts: Parts, body: Body, url: &str) -> Response {
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return AppError::PayloadTooLarge.into_response(),
    };
    let target = format!(
        "{url}{}",
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut req = state.forwarder.request(parts.method.clone(), target);
    for (k, v) in &parts.headers {
        if !hop_by_hop(k) && k != CLIENT && k != PROOF {
            req = req.header(k, v);
        }
    }
    if let Some(peer) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        let addr = peer.0.ip().to_string();
        req = req
            .header(PROOF, proof(state, &state.node.id, &addr))
            .header(CLIENT, addr);
    }
    let answer = req
        .header(FORWARDED, state.node.id.as_str())
        // An owner that stopped (paused, cut off) loses the tenant within
        // a lease: do not hold the client longer than that.
        .timeout(FORWARD_TIMEOUT)
        .body(bytes)
        .send()
        .await;
    let resp = match answer {
        Ok(r) => r,
        Err(e) => {
            // The owner is gone or unreachable: it is about to lose the
            // tenant; the client retries.
            tracing::warn!(error = %e.without_url(), "forwarding failed");
            return AppError::Moving.into_response();
        }
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e.without_url(), "forwarded answer cut");
            return AppError::Moving.into_response();
        }
    };
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = status;
    for (k, v) in &headers {
        if !hop_by_hop(k) {
            out.headers_mut().append(k, v.clone());
        }
    }
    out
}

/// Accept the WebSocket here and pipe it to one opened to the owner. The
/// owner answers first: a refusal (401, 404, 503) is given back as it is,
/// so clients see what they would see on the owner.
async fn forward_socket(state: Shared, mut parts: Parts, url: &str) -> Response {
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let target = format!(
        "{}{}",
        url.replacen("http", "ws", 1),
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut req = match tungstenite::client::IntoClientRequest::into_client_request(target) {
        Ok(r) => r,
        Err(_) => return AppError::Moving.into_response(),
    };
    for name in [header::AUTHORIZATION, header::USER_AGENT, header::ORIGIN] {
        if let Some(v) = parts.headers.get(&name) {
            req.headers_mut().insert(name, v.clone());
        }
    }
    if let Ok(v) = state.node.id.parse() {
        req.headers_mut().insert(FORWARDED, v);
    }
    let upstream = match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => ws,
        Err(tungstenite::Error::Http(resp)) => {
            let status =
                StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = resp.body().clone().unwrap_or_default();
            let mut out = (status, body).into_response();
            if let Some(ct) = resp.headers().get(header::CONTENT_TYPE) {
                if let Ok(v) = ct.to_str() {
                    if let Ok(v) = v.parse() {
                        out.headers_mut().insert(header::CONTENT_TYPE, v);
                    }
                }
            }
            if let Some(ra) = resp.headers().get(header::RETRY_AFTER) {
                if let Ok(v) = ra.to_str().unwrap_or("1").parse() {
                    out.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            return out;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the owner's WebSocket");
            return AppError::Moving.into_response();
        }
    };
    upgrade
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| pipe(socket, upstream))
}

type Upstream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Copy frames both ways until either side closes, then close both.
async fn pipe(mut client: WebSocket, upstream: Upstream) {
    let (mut up_tx, mut up_rx) = upstream.split();
    let mut close: Option<CloseFrame> = None;
    loop {
        tokio::select! {
            from_client = client.recv() => match from_client {
                Some(Ok(WsMessage::Text(t))) => {
                    if up_tx.send(tungstenite::Message::text(t.as_str())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(WsMessage::Binary(b))) => {
                    if up_tx.send(tungstenite::Message::binary(b)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
            },
            from_owner = up_rx.next() => match from_owner {
                Some(Ok(tungstenite::Message::Text(t))) => {
                    if client.send(WsMessage::Text(t.as_str().into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(tungstenite::Message::Binary(b))) => {
                    if client.send(WsMessage::Binary(b)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(tungstenite::Message::Close(frame))) => {
                    close = frame.map(|f| CloseFrame {
                        code: u16::from(f.code),
                        reason: f.reason.as_str().into(),
                    });
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
        }
    }
    let _ = up_tx.close().await;
    let _ = client.send(WsMessage::Close(close)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_are_read_from_paths() {
        assert_eq!(tenant_of_path("/admin/tenants/acme/reload"), Some("acme"));
        assert_eq!(
            tenant_of_path("/channels/messenger/acme/webhook"),
            Some("acme")
        );
        assert_eq!(tenant_of_path("/chat/acme"), Some("acme"));
        assert_eq!(tenant_of_path("/chat/acme/x"), None);
        assert_eq!(tenant_of_path("/admin/cluster"), None);
        assert_eq!(tenant_of_path("/admin/tenants/"), None);
        assert_eq!(tenant_of_path("/healthz"), None);
    }
}
