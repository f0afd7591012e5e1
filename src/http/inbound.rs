//! What every adapter channel's webhook does once the host has checked the
//! request's signature: the adapter verifies and parses it (on the worker
//! for a small body, on a blocking thread for a big batch), then each message goes through `Tenant::execute` (durable)
//! before the adapter's answer is given, so the channel redelivers what was
//! not stored, and the channel's message id travels as `external_id` so a
//! redelivery is stored once. Used by the Messenger route and the routes of
//! plugin channels.
//!
//! **Invariant:** nothing of the request (customer text, numbers) is logged,
//! only the tenant, channel and outcome.

use super::AppError;
use crate::tenant::{ExecuteError, Tenant};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::sync::Arc;
use switchboard_core::channel::{ChannelEvent, HttpRequest, HttpResponse, Inbound, Received};
use switchboard_core::{Command, CommandError, CustomerMessage};

/// Where a channel's new conversations go.
#[derive(Debug, Clone)]
pub struct Entry {
    pub channel: String,
    /// Shown as the offer's source (the page name, `SMS`…).
    pub source: String,
    pub queue: String,
    /// Where customers' names come from when the adapter gives none
    /// (Messenger: the User Profile API).
    pub names: Option<Names>,
}

/// The Messenger profile lookup, for a channel whose messages carry no name
/// (with the tenant's `messenger` settings).
#[derive(Debug, Clone)]
pub struct Names {
    pub profiles: std::sync::Arc<crate::profiles::Profiles>,
}

/// The request as adapters see it (header names in lower case).
pub fn adapter_request(
    method: &str,
    path: String,
    query: BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> HttpRequest {
    HttpRequest {
        method: method.to_string(),
        path,
        query,
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: body.to_vec(),
    }
}

/// An adapter's answer as an HTTP response.
pub fn respond(r: HttpResponse) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, r.content_type)], r.body).into_response()
}

enum Parsed {
    /// Answer the request now (the adapter decided so).
    Answer(HttpResponse),
    Messages(Inbound),
}

/// Verify and parse `req` with the tenant's adapter for `entry.channel`,
/// store each message, then give the adapter's answer.
pub async fn handle(t: Arc<Tenant>, entry: Entry, req: HttpRequest) -> Result<Response, AppError> {
    handle_all(t, entry, vec![req]).await
}

/// [`handle`] for one delivery cut into several requests (a big batch, in
/// chunks the adapter can take): each in order; an adapter's early answer
/// (a refusal) ends it; else the last request's answer is given once every
/// message of every chunk is stored.
pub async fn handle_all(
    t: Arc<Tenant>,
    entry: Entry,
    requests: Vec<HttpRequest>,
) -> Result<Response, AppError> {
    let mut last = None;
    for req in requests {
        match handle_one(t.clone(), &entry, req).await? {
            Handled::Answer(r) => return Ok(r),
            Handled::Stored(r) => last = Some(r),
        }
    }
    Ok(last.unwrap_or_else(|| respond(HttpResponse::text(200, "EVENT_RECEIVED"))))
}

enum Handled {
    /// The adapter answered before parsing: give it now.
    Answer(Response),
    /// Every message stored; the adapter's answer.
    Stored(Response),
}

/// Bodies up to this size are parsed by the adapter on the async worker
/// that received them; bigger ones (batches) go to a blocking thread.
/// A webhook of one message is well under it, and an adapter call is
/// budgeted (`instructions_per_call`, a few milliseconds at most), like the
/// routing calls `Tenant::execute` already makes on the worker: measured
/// with `cargo run --release --example webhook_ratio`, the hop to the
/// blocking pool and back cost more (thread wake-ups, the Lua state's lock
/// contended by several blocking threads) than the call itself.
const INLINE_BODY: usize = 16 * 1024;

fn parse(t: &Tenant, channel: &str, req: &HttpRequest) -> Result<Parsed, String> {
    let gen = t.generation();
    let Some(adapter) = gen.channel(channel) else {
        return Err("no adapter loaded".into());
    };
    match adapter.receive(req) {
        Ok(Received::Answer(r)) => Ok(Parsed::Answer(r)),
        Ok(Received::Messages(m)) => Ok(Parsed::Messages(m)),
        Err(e) => Err(e.to_string()),
    }
}

async fn handle_one(t: Arc<Tenant>, entry: &Entry, req: HttpRequest) -> Result<Handled, AppError> {
    let parsed = if req.body.len() <= INLINE_BODY {
        parse(&t, &entry.channel, &req)
    } else {
        let parsing = t.clone();
        let name = entry.channel.clone();
        tokio::task::spawn_blocking(move || parse(&parsing, &name, &req))
            .await
            .map_err(|_| AppError::Conflict("adapter task failed".into()))?
    };
    let inbound = match parsed {
        Ok(Parsed::Answer(r)) => return Ok(Handled::Answer(respond(r))),
        Ok(Parsed::Messages(inbound)) => inbound,
        Err(e) => {
            tracing::warn!(tenant = %t.id(), channel = %entry.channel, error = %e, "channel adapter failed");
            return Err(AppError::Status(
                StatusCode::SERVICE_UNAVAILABLE,
                "channel adapter unavailable".into(),
            ));
        }
    };
    for ChannelEvent::Message(mut m) in inbound.events {
        let messenger = t.config.messenger.as_ref();
        if let (None, Some(names), Some(cfg)) = (&m.customer_name, &entry.names, messenger) {
            // At most profiles::LOOKUP_TIMEOUT; cached after the first.
            m.customer_name = names.profiles.name_of(t.id(), cfg, &m.customer).await;
        }
        let command = Command::CustomerMessage(CustomerMessage {
            channel: entry.channel.clone(),
            customer: m.customer,
            customer_name: m.customer_name,
            text: m.text,
            source: entry.source.clone(),
            queue: entry.queue.clone(),
            cad: m.cad,
            external_id: m.external_id,
            sent_at: m.sent_at,
            attachments: crate::attachments::store_inbound(
                &t.attachments(),
                t.id(),
                std::mem::take(&mut m.attachments),
            )
            .await,
        });
        // Durable before the answer: channels redeliver what is not acknowledged.
        match t.execute(command).await {
            Ok(_) => {}
            // A message the engine will never take (empty, too long):
            // acknowledge it, or the channel would resend it forever.
            Err(ExecuteError::Command(CommandError::Invalid(reason))) => {
                tracing::info!(tenant = %t.id(), channel = %entry.channel, reason = %reason, "channel message refused");
            }
            Err(e) => {
                tracing::warn!(tenant = %t.id(), channel = %entry.channel, "channel message not stored");
                return Err(e.into());
            }
        }
    }
    Ok(Handled::Stored(respond(inbound.response)))
}
