//! Sending the channel requests the engine decided (agent replies): the
//! host does all network I/O, retries with back-off on 5xx and network
//! errors, and reports a reply that did not get through back to the engine
//! as `Command::DeliveryFailed` (journaled: the agents see
//! `delivery_failed`, the transcript a system line).
//!
//! **Invariant:** the request URL (it carries the page access token) and
//! body (customer-facing text) are never logged.

use crate::tenant::{Outgoing, Tenant};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::channel::OutgoingRequest;
use switchboard_core::model::DeliveryFailure;

/// Attempts per request (the first plus retries).
pub const ATTEMPTS: u32 = 4;
/// First back-off; doubled after each failed attempt.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait for one attempt.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Send the tenant's outgoing requests, in order, until the process ends.
pub async fn run_outbox(tenant: Arc<Tenant>) {
    let Some(mut rx) = tenant.take_outbox() else {
        return;
    };
    let client = match reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(tenant = %tenant.id(), error = %e, "cannot build the HTTP client");
            return;
        }
    };
    while let Some(job) = rx.recv().await {
        if !tenant.lease.valid() {
            // Deposed (or handed over): the tenant's new owner serves its
            // customers now; this node sends nothing more for it.
            tracing::warn!(tenant = %tenant.id(), conversation = job.conversation, "reply not sent: this node no longer owns the tenant");
            return;
        }
        if let Err((kind, detail)) = send(&client, &job).await {
            tracing::warn!(tenant = %tenant.id(), conversation = job.conversation, channel = %job.channel, reason = kind.name(), detail = %detail, "reply not delivered");
            tenant
                .delivery_failed(job.conversation, job.message, kind)
                .await;
        }
    }
}

/// Whether the request says its body is JSON (or says nothing).
fn json_content(request: &OutgoingRequest) -> bool {
    request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_none_or(|ct| ct == "application/json" || ct.ends_with("+json"))
}

/// The body as the adapter means it: a JSON string with a non-JSON
/// content type (a form, as the SMS adapter builds) goes raw, unquoted;
/// anything else as JSON.
fn with_body(req: reqwest::RequestBuilder, request: &OutgoingRequest) -> reqwest::RequestBuilder {
    match &request.body {
        serde_json::Value::Null => req,
        serde_json::Value::String(s) if !json_content(request) => req.body(s.clone()),
        body => req.json(body),
    }
}

/// Send with retries; on failure, its kind and a detail for the log.
async fn send(client: &reqwest::Client, job: &Outgoing) -> Result<(), (DeliveryFailure, String)> {
    let method = reqwest::Method::from_bytes(job.request.method.as_bytes()).map_err(|_| {
        (
            DeliveryFailure::InvalidRequest,
            format!("invalid method {:?}", job.request.method),
        )
    })?;
    if reqwest::Url::parse(&job.request.url).is_err() {
        return Err((DeliveryFailure::InvalidRequest, "invalid URL".into()));
    }
    let mut backoff = FIRST_BACKOFF;
    let mut last = (DeliveryFailure::Unreachable, String::new());
    for attempt in 1..=ATTEMPTS {
        let mut req = client.request(method.clone(), &job.request.url);
        for (k, v) in &job.request.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        req = with_body(req, &job.request);
        match req.send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) if resp.status().is_server_error() => {
                last = (
                    DeliveryFailure::Unavailable,
                    format!("the channel answered {}", resp.status().as_u16()),
                );
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                let detail = resp
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                    .unwrap_or_default();
                return Err((
                    DeliveryFailure::Rejected,
                    format!("the channel refused the message ({status}) {detail}")
                        .trim()
                        .to_string(),
                ));
            }
            Err(e) => {
                // Without the URL: it holds the access token.
                last = (
                    DeliveryFailure::Unreachable,
                    format!("network error: {}", e.without_url()),
                );
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    let (kind, detail) = last;
    Err((kind, format!("{detail} after {ATTEMPTS} attempts")))
}
