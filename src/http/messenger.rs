//! The Facebook Messenger channel (CONTRACT.md "Facebook Messenger"): the
//! webhook subscription handshake and signed webhook deliveries.
//!
//! The host checks `X-Hub-Signature-256` natively and in constant time
//! before anything else (401, nothing stored); the tenant's `messenger`
//! adapter script turns the payload into customer messages, each run
//! through `Tenant::execute` (the same path as web chat) before the 200.

use super::{AppError, Shared};
use crate::tenant::ExecuteError;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::BTreeMap;
use std::sync::Arc;
use switchboard_core::channel::{ChannelEvent, HttpRequest, HttpResponse, Verdict};
use switchboard_core::lua::sb::verify_sha256_signature;
use switchboard_core::{Command, CommandError, CustomerMessage};

pub const CHANNEL: &str = "messenger";

pub fn routes() -> Router<Shared> {
    Router::new().route(
        "/channels/messenger/{tenant}/webhook",
        get(handshake).post(webhook),
    )
}

fn respond(r: HttpResponse) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, r.content_type)], r.body).into_response()
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
        Some(Ok(Verdict::Respond(r))) => respond(r),
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
    let req = HttpRequest {
        method: "POST".into(),
        path: format!("/channels/messenger/{tenant}/webhook"),
        query: BTreeMap::new(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: body.to_vec(),
    };
    let tenant_id = tenant.clone();
    let parsing = t.clone();
    // Lua is CPU work: parse off the async workers.
    let parsed = tokio::task::spawn_blocking(move || parse(&parsing, &req))
        .await
        .map_err(|_| AppError::Conflict("adapter task failed".into()))?;
    let inbound = match parsed {
        Ok(Parsed::Answer(r)) => return Ok(respond(r)),
        Ok(Parsed::Messages(inbound)) => inbound,
        Err(e) => return Ok(unavailable(e, &tenant_id)),
    };
    for ChannelEvent::Message(m) in inbound.events {
        let command = Command::CustomerMessage(CustomerMessage {
            channel: CHANNEL.into(),
            customer: m.customer,
            customer_name: m.customer_name,
            text: m.text,
            source: cfg.page_name.clone(),
            queue: cfg.queue.clone(),
            cad: m.cad,
            external_id: m.external_id,
        });
        // Durable before the 200: Meta redelivers what is not acknowledged.
        match t.execute(command).await {
            Ok(_) => {}
            // A message the engine will never take (empty, too long):
            // acknowledge it, or Meta would resend it forever.
            Err(ExecuteError::Command(CommandError::Invalid(reason))) => {
                tracing::info!(tenant = %tenant_id, reason = %reason, "messenger message refused");
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant_id, "messenger message not stored");
                return Err(e.into());
            }
        }
    }
    Ok(respond(inbound.response))
}

enum Parsed {
    /// Answer the request now (the adapter decided so).
    Answer(HttpResponse),
    Messages(switchboard_core::channel::Inbound),
}

/// Verify and parse with the tenant's adapter.
fn parse(t: &Arc<crate::tenant::Tenant>, req: &HttpRequest) -> Result<Parsed, String> {
    let gen = t.generation();
    let Some(adapter) = gen.channel(CHANNEL) else {
        return Err("no messenger adapter loaded".into());
    };
    match adapter.verify(req) {
        Ok(Verdict::Accept) => {}
        Ok(Verdict::Respond(r)) => return Ok(Parsed::Answer(r)),
        Err(e) => return Err(e.to_string()),
    }
    adapter
        .inbound(req)
        .map(Parsed::Messages)
        .map_err(|e| e.to_string())
}
