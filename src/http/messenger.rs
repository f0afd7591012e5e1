//! The Facebook Messenger channel (CONTRACT.md "Facebook Messenger"): the
//! webhook subscription handshake and signed webhook deliveries.
//!
//! The host checks `X-Hub-Signature-256` natively and in constant time
//! before anything else (401, nothing stored); the tenant's `messenger`
//! adapter script turns the payload into customer messages on the path
//! every adapter channel shares (`http::inbound`): stored before the 200.

use super::{AppError, Shared};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::BTreeMap;
use switchboard_core::channel::{HttpRequest, Verdict};
use switchboard_core::lua::sb::verify_sha256_signature;

pub const CHANNEL: &str = "messenger";

pub fn routes() -> Router<Shared> {
    Router::new().route(
        "/channels/messenger/{tenant}/webhook",
        get(handshake).post(webhook),
    )
}

fn unavailable(e: impl std::fmt::Display, tenant: &str) -> Response {
    tracing::warn!(tenant = %tenant, error = %e, "messenger adapter failed");
    (StatusCode::SERVICE_UNAVAILABLE, "adapter unavailable").into_response()
}

async fn handshake(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, AppError> {
    let t = state.tenant(&tenant)?.clone();
    if t.config.messenger.is_none() {
        return Err(AppError::NotFound("channel"));
    }
    let req = HttpRequest {
        method: "GET".into(),
        path: format!("/channels/messenger/{tenant}/webhook"),
        query,
        ..Default::default()
    };
    let verdict = tokio::task::spawn_blocking(move || {
        let gen = t.generation();
        gen.channel(CHANNEL).map(|a| a.verify(&req))
    })
    .await
    .map_err(|_| AppError::Conflict("adapter task failed".into()))?;
    Ok(match verdict {
        Some(Ok(Verdict::Respond(r))) => super::inbound::respond(r),
        Some(Ok(Verdict::Accept)) => (StatusCode::FORBIDDEN, "verification failed").into_response(),
        Some(Err(e)) => unavailable(e, &tenant),
        None => return Err(AppError::NotFound("channel")),
    })
}

async fn webhook(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let t = state.tenant(&tenant)?.clone();
    let Some(cfg) = t.config.messenger.clone() else {
        return Err(AppError::NotFound("channel"));
    };
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !verify_sha256_signature(cfg.app_secret.as_bytes(), &body, signature) {
        tracing::info!(tenant = %tenant, "messenger webhook with a bad or missing signature");
        return Err(AppError::Unauthorized);
    }
    let req = super::inbound::adapter_request(
        "POST",
        format!("/channels/messenger/{tenant}/webhook"),
        BTreeMap::new(),
        &headers,
        &body,
    );
    let entry = super::inbound::Entry {
        channel: CHANNEL.into(),
        source: cfg.page_name.clone(),
        queue: cfg.queue.clone(),
    };
    super::inbound::handle(t, entry, req).await
}
