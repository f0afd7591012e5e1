//! Sending the channel requests the engine decided (agent replies): the
//! host does all network I/O, retries with back-off on 5xx and network
//! errors, and reports a reply that did not get through back to the engine
//! as `Command::DeliveryFailed` (journaled: the agents see
//! `delivery_failed`, the transcript a system line).
//!
//! Every reply is in the store's outbox from the commit that decided it
//! until it is marked sent (the channel's 2xx, or its failure journaled),
//! under the tenant's epoch. At start the outbox sends what is pending
//! first, each request built again by the channel's adapter as of when the
//! reply was decided (so no access token is stored): a reply committed by
//! a node that died (or by this one before a restart) is sent by whichever
//! node owns the tenant next. **Invariant:** what was marked sent is never
//! sent again; the one window left is a crash between the channel's 2xx
//! and the mark.
//!
//! **Invariant:** the request URL (it carries the page access token) and
//! body (customer-facing text) are never logged.

use crate::store::{OutboxId, OutboxRow};
use crate::tenant::{Outgoing, Tenant};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::channel::{Outbound, OutboundContext, OutboundMessage, OutgoingRequest};
use switchboard_core::model::{is_blank, Attachment, DeliveryFailure};

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
    // What the store holds as not yet sent, sent first; replies committed
    // since are in the queue too, and are skipped there.
    let pending = match tenant.outbox_pending().await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(tenant = %tenant.id(), error = %e, "cannot read the outbox: replies left pending are not sent");
            Vec::new()
        }
    };
    let recovered: HashSet<OutboxId> = pending.iter().map(|r| r.id).collect();
    if !pending.is_empty() {
        tracing::info!(tenant = %tenant.id(), replies = pending.len(), "sending replies committed and not yet sent");
    }
    // Replies done with, marked in the store together: when the queue has
    // nothing more ready, or every MARK_BATCH (a mark is a transaction,
    // and one per reply made the outbox fall behind under load).
    let mut done: Vec<OutboxId> = Vec::new();
    for row in pending {
        let job = match rebuild(&tenant, &row) {
            Ok(job) => job,
            Err(kind) => {
                tracing::warn!(tenant = %tenant.id(), conversation = row.conversation, channel = %row.channel, reason = kind.name(), "pending reply cannot be built again");
                if !tenant.lease.valid() {
                    return;
                }
                let message = usize::try_from(row.message).unwrap_or(usize::MAX);
                if tenant
                    .delivery_failed(row.conversation, message, kind)
                    .await
                {
                    done.push(row.id);
                }
                continue;
            }
        };
        match deliver(&tenant, &client, job).await {
            Some(Some(id)) => done.push(id),
            Some(None) => {}
            None => return mark_sent(&tenant, &mut done).await,
        }
        if done.len() >= MARK_BATCH {
            mark_sent(&tenant, &mut done).await;
        }
    }
    mark_sent(&tenant, &mut done).await;
    while let Some(job) = rx.recv().await {
        if recovered.contains(&job.id) {
            continue;
        }
        match deliver(&tenant, &client, job).await {
            Some(Some(id)) => done.push(id),
            Some(None) => {}
            None => return mark_sent(&tenant, &mut done).await,
        }
        if rx.is_empty() || done.len() >= MARK_BATCH {
            mark_sent(&tenant, &mut done).await;
        }
    }
    mark_sent(&tenant, &mut done).await;
}

/// Most replies marked sent in one store transaction.
const MARK_BATCH: usize = 256;

/// Send one reply (or journal its failure): `Some(Some(id))` when it is
/// done with and may be marked sent, `Some(None)` when it is not settled
/// (it stays pending), `None` once this node no longer owns the tenant.
async fn deliver(
    tenant: &Tenant,
    client: &reqwest::Client,
    job: Outgoing,
) -> Option<Option<OutboxId>> {
    if !tenant.lease.valid() {
        // Deposed (or handed over): the tenant's new owner serves its
        // customers now (and sends what is left in the outbox); this node
        // sends nothing more for it.
        tracing::warn!(tenant = %tenant.id(), conversation = job.conversation, "reply not sent: this node no longer owns the tenant");
        return None;
    }
    match send_reply(tenant, client, &job).await {
        Ok(()) => Some(Some(job.id)),
        Err((kind, detail)) => {
            tracing::warn!(tenant = %tenant.id(), conversation = job.conversation, channel = %job.channel, reason = kind.name(), detail = %detail, "reply not delivered");
            let settled = tenant
                .delivery_failed(job.conversation, job.message, kind)
                .await;
            Some(settled.then_some(job.id))
        }
    }
}

/// Record in the store that the replies `done` are done with (and empty it).
async fn mark_sent(tenant: &Tenant, done: &mut Vec<OutboxId>) {
    if done.is_empty() {
        return;
    }
    let ids = std::mem::take(done);
    let (first, count) = (ids[0].seq, ids.len());
    if let Err(e) = tenant.outbox_sent(ids).await {
        // Stale: the new owner sends them (the window of a duplicate, said
        // in ARCHITECTURE.md); otherwise they are sent again after a restart.
        tracing::warn!(tenant = %tenant.id(), seq = first, replies = count, error = %e, "replies not marked sent");
    }
}

/// The request of a pending reply, built by its channel's adapter as of
/// when the engine decided it.
fn rebuild(tenant: &Tenant, row: &OutboxRow) -> Result<Outgoing, DeliveryFailure> {
    let message = OutboundMessage {
        conversation: row.conversation,
        customer: row.customer.clone(),
        author: row.author.clone(),
        text: row.text.clone(),
    };
    let last_customer_message_at = tenant.read(|e| {
        e.conversation(row.conversation)
            .and_then(|c| c.customer_wrote_at)
    });
    let ctx = OutboundContext {
        now: row.at,
        last_customer_message_at,
    };
    let generation = tenant.generation();
    let adapter = generation
        .channel(&row.channel)
        .ok_or(DeliveryFailure::NoAdapter)?;
    match adapter.outbound(&message, &ctx) {
        Ok(Outbound::Send(request)) => Ok(Outgoing {
            conversation: row.conversation,
            channel: row.channel.clone(),
            message: usize::try_from(row.message).unwrap_or(usize::MAX),
            request,
            attachments: reply_attachments(tenant, row),
            send_text: !is_blank(&row.text),
            id: row.id,
        }),
        Ok(Outbound::Refuse(_)) => Err(DeliveryFailure::Rejected),
        Ok(Outbound::Push) | Err(_) => Err(DeliveryFailure::AdapterFailed),
    }
}

/// The files of a pending reply, as its message in the transcript keeps
/// them (by id: the content is read from the tenant's storage).
fn reply_attachments(tenant: &Tenant, row: &OutboxRow) -> Vec<Attachment> {
    let index = usize::try_from(row.message).unwrap_or(usize::MAX);
    tenant.read(|e| {
        e.conversation(row.conversation)
            .and_then(|c| c.messages.get(index))
            .map(|m| m.attachments.clone())
            .unwrap_or_default()
    })
}

/// A reply: each attachment first, then its text (if any). The first
/// that fails ends it, with its reason.
async fn send_reply(
    tenant: &Tenant,
    client: &reqwest::Client,
    job: &Outgoing,
) -> Result<(), (DeliveryFailure, String)> {
    for a in &job.attachments {
        let part = attachment_request(tenant, &job.request, a).await?;
        send(client, &job.request, Some(&part)).await?;
    }
    if job.send_text || job.attachments.is_empty() {
        send(client, &job.request, None).await?;
    }
    Ok(())
}

/// A multipart body ready to send: its content type and bytes.
struct Multipart {
    content_type: String,
    body: Vec<u8>,
}

/// The type Meta's Send API gives an attachment (`image`, `audio`,
/// `video` or `file`), from its content type.
fn send_api_type(mime: &str) -> &'static str {
    match mime.split('/').next().unwrap_or("") {
        "image" => "image",
        "audio" => "audio",
        "video" => "video",
        _ => "file",
    }
}

/// One attachment as Meta's Send API takes a file in the same call that
/// sends it (Messenger Platform, "Send a message with an attachment",
/// upload from a file): `POST /me/messages` as `multipart/form-data`, the
/// adapter's own fields (`recipient`, `messaging_type`, `tag`: objects as
/// JSON text), `message` =
/// `{"attachment":{"type":T,"payload":{"is_reusable":false}}}` and the
/// content as `filedata`, to the URL the adapter built (access token and
/// `appsecret_proof` included). A request whose body is not a JSON object
/// with a `recipient` cannot carry a file: the reply fails as
/// `invalid_request`.
async fn attachment_request(
    tenant: &Tenant,
    request: &OutgoingRequest,
    a: &Attachment,
) -> Result<Multipart, (DeliveryFailure, String)> {
    let Some(fields) = request
        .body
        .as_object()
        .filter(|o| o.contains_key("recipient"))
    else {
        return Err((
            DeliveryFailure::InvalidRequest,
            "the channel's request cannot carry an attachment".into(),
        ));
    };
    let storage = tenant.attachments();
    let (tenant_id, id) = (tenant.id().to_string(), a.id.clone());
    let found = tokio::task::spawn_blocking(move || storage.load(&tenant_id, &id))
        .await
        .ok()
        .flatten();
    let Some((meta, content)) = found else {
        return Err((
            DeliveryFailure::InvalidRequest,
            "the attachment is no longer stored".into(),
        ));
    };
    let boundary = format!("switchboard-{}", hex::encode(rand::random::<[u8; 12]>()));
    let mut body = Vec::with_capacity(content.len() + 1024);
    let mut field = |name: &str, value: &str| {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    };
    for (k, v) in fields {
        if k == "message" {
            continue;
        }
        match v {
            serde_json::Value::String(s) => field(k, s),
            other => field(k, &other.to_string()),
        }
    }
    let message = serde_json::json!({
        "attachment": {"type": send_api_type(&meta.mime), "payload": {"is_reusable": false}}
    });
    field("message", &message.to_string());
    let name: String = meta
        .name
        .as_deref()
        .unwrap_or("attachment")
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\\'))
        .collect();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"filedata\"; filename=\"{name}\"\r\nContent-Type: {}\r\n\r\n",
            meta.mime
        )
        .as_bytes(),
    );
    body.extend_from_slice(&content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Ok(Multipart {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        body,
    })
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

/// Send with retries (the adapter's body, or `multipart` in its place);
/// on failure, its kind and a detail for the log.
async fn send(
    client: &reqwest::Client,
    request: &OutgoingRequest,
    multipart: Option<&Multipart>,
) -> Result<(), (DeliveryFailure, String)> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
        (
            DeliveryFailure::InvalidRequest,
            format!("invalid method {:?}", request.method),
        )
    })?;
    if reqwest::Url::parse(&request.url).is_err() {
        return Err((DeliveryFailure::InvalidRequest, "invalid URL".into()));
    }
    let mut backoff = FIRST_BACKOFF;
    let mut last = (DeliveryFailure::Unreachable, String::new());
    for attempt in 1..=ATTEMPTS {
        let mut req = client.request(method.clone(), &request.url);
        for (k, v) in &request.headers {
            if multipart.is_some() && k.eq_ignore_ascii_case("content-type") {
                continue;
            }
            req = req.header(k.as_str(), v.as_str());
        }
        req = match multipart {
            Some(m) => req
                .header(reqwest::header::CONTENT_TYPE, m.content_type.as_str())
                .body(m.body.clone()),
            None => with_body(req, request),
        };
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
