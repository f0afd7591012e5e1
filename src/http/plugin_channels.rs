//! Webhooks of channels served by native plugins (`[[tenants.plugins]]`
//! with the `channel` role): `GET|POST /channels/{channel}/{tenant}/webhook`.
//!
//! The built-in routes keep their own handlers: axum matches the static
//! `/channels/messenger/…` segment before this one, and `webchat` and
//! `messenger` cannot be plugin channels (`Config::validate`). The plugin
//! verifies and parses the request off the async workers; each message is
//! then run through `Tenant::execute` (durable) before the adapter's
//! answer is given, so a channel redelivers what was not stored, and the
//! channel's message id goes along as `external_id` so a redelivery is
//! stored once.
//!
//! **Invariant:** nothing of the request (customer text, numbers) is
//! logged, only the tenant, channel and outcome.

use super::{AppError, Shared};
use crate::tenant::ExecuteError;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::BTreeMap;
use switchboard_core::channel::{ChannelEvent, HttpRequest, HttpResponse, Inbound, Verdict};
use switchboard_core::{Command, CommandError, CustomerMessage};

pub fn routes() -> Router<Shared> {
    Router::new().route(
        "/channels/{channel}/{tenant}/webhook",
        get(webhook).post(webhook),
    )
}

fn respond(r: HttpResponse) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, r.content_type)], r.body).into_response()
}

enum Parsed {
    /// Answer the request now (the adapter decided so).
    Answer(HttpResponse),
    Messages(Inbound),
}

async fn webhook(
    State(state): State<Shared>,
    Path((channel, tenant)): Path<(String, String)>,
    method: Method,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let t = state.tenant(&tenant)?.clone();
    let Some(entry) = t
        .config
        .plugins
        .iter()
        .find(|p| p.channel.as_deref() == Some(channel.as_str()))
        .cloned()
    else {
        return Err(AppError::NotFound("channel"));
    };
    // The host checks the channel's signature before anything else: 401
    // and nothing stored.
    if let Some(check) = &entry.signature {
        if !check.verify(&headers, &body) {
            tracing::info!(tenant = %tenant, channel = %channel, "webhook with a bad or missing signature");
            return Err(AppError::Unauthorized);
        }
    }
    let req = HttpRequest {
        method: method.as_str().to_string(),
        path: format!("/channels/{channel}/{tenant}/webhook"),
        query,
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: body.to_vec(),
    };
    let parsing = t.clone();
    let name = channel.clone();
    // A plugin call may take CPU time: off the async workers.
    let parsed = tokio::task::spawn_blocking(move || -> Result<Parsed, String> {
        let gen = parsing.generation();
        let Some(adapter) = gen.channel(&name) else {
            return Err("no adapter loaded".into());
        };
        match adapter.verify(&req) {
            Ok(Verdict::Accept) => {}
            Ok(Verdict::Respond(r)) => return Ok(Parsed::Answer(r)),
            Err(e) => return Err(e.to_string()),
        }
        adapter
            .inbound(&req)
            .map(Parsed::Messages)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| AppError::Conflict("adapter task failed".into()))?;
    let inbound = match parsed {
        Ok(Parsed::Answer(r)) => return Ok(respond(r)),
        Ok(Parsed::Messages(inbound)) => inbound,
        Err(e) => {
            tracing::warn!(tenant = %tenant, channel = %channel, error = %e, "channel adapter failed");
            return Ok((StatusCode::SERVICE_UNAVAILABLE, "adapter unavailable").into_response());
        }
    };
    let queue = entry
        .queue
        .clone()
        .unwrap_or_else(|| t.config.default_queue.clone());
    let source = entry.source.clone().unwrap_or_else(|| channel.clone());
    for ChannelEvent::Message(m) in inbound.events {
        let command = Command::CustomerMessage(CustomerMessage {
            channel: channel.clone(),
            customer: m.customer,
            customer_name: m.customer_name,
            text: m.text,
            source: source.clone(),
            queue: queue.clone(),
            cad: m.cad,
            external_id: m.external_id,
        });
        // Durable before the answer: channels redeliver what is not acknowledged.
        match t.execute(command).await {
            Ok(_) => {}
            // A message the engine will never take (empty, too long):
            // acknowledge it, or the channel would resend it forever.
            Err(ExecuteError::Command(CommandError::Invalid(reason))) => {
                tracing::info!(tenant = %tenant, channel = %channel, reason = %reason, "channel message refused");
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant, channel = %channel, "channel message not stored");
                return Err(e.into());
            }
        }
    }
    Ok(respond(inbound.response))
}
