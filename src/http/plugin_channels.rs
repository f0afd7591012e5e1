//! Webhooks of channels served by native plugins (`[[tenants.plugins]]`
//! with the `channel` role): `GET|POST /channels/{channel}/{tenant}/webhook`.
//!
//! The built-in routes keep their own handlers: axum matches the static
//! `/channels/messenger/…` segment before this one, and `webchat` and
//! `messenger` cannot be plugin channels (`Config::validate`). After the
//! host's signature check (when configured), the request takes the path
//! every adapter channel shares (`http::inbound`).

use super::{AppError, Shared};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use std::collections::BTreeMap;

pub fn routes() -> Router<Shared> {
    Router::new().route(
        "/channels/{channel}/{tenant}/webhook",
        get(webhook).post(webhook),
    )
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
    let req = super::inbound::adapter_request(
        method.as_str(),
        format!("/channels/{channel}/{tenant}/webhook"),
        query,
        &headers,
        &body,
    );
    let entry = super::inbound::Entry {
        queue: entry
            .queue
            .clone()
            .unwrap_or_else(|| t.config.default_queue.clone()),
        source: entry.source.clone().unwrap_or_else(|| channel.clone()),
        channel,
        names: None,
    };
    super::inbound::handle(t, entry, req).await
}
