//! The bundled web chat channel: customers post messages and receive the
//! agents' replies on a WebSocket (CONTRACT.md "Web chat channel").
//!
//! The server issues each visitor's identity (`crate::visitors`): a message
//! without a token starts a new visitor and is answered with its
//! `visitor_token`; later messages carry `Authorization: Bearer <token>`,
//! and the events socket takes `?visitor_token=`. A client-chosen `visitor`
//! field is only a label (CAD variable `visitor`): it never identifies
//! anyone, so a message without a token is always a new visitor.

use super::{AppError, JsonBody, Shared};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use switchboard_core::model::SERVER_CAD_KEYS;
use switchboard_core::{Command, CustomerMessage, Event};

/// Longest visitor label accepted.
const MAX_VISITOR_LEN: usize = 128;
/// Longest visitor display name accepted, in characters.
const MAX_NAME_CHARS: usize = 100;
/// The CAD variable that keeps a visitor's label.
pub const LABEL_CAD_KEY: &str = "visitor";

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/channels/webchat/{tenant}/messages", post(post_message))
        .route(
            "/channels/webchat/{tenant}/attachments",
            post(upload).layer(axum::extract::DefaultBodyLimit::max(
                crate::attachments::MAX_UPLOAD_BYTES,
            )),
        )
        .route(
            "/channels/webchat/{tenant}/attachments/{id}",
            get(visitor_attachment),
        )
        .route("/channels/webchat/{tenant}/events", get(events))
        .route("/channels/webchat/{tenant}/leave", post(leave))
}

/// `POST /channels/webchat/{tenant}/leave`, the visitor's token as bearer:
/// the visitor closed the chat while waiting. Its open conversation is
/// dropped as abandoned → 200 `{"conversation": ID}`; 404 when it has
/// none, 409 once an agent has it (the agent ends it), 401 without a
/// valid token.
async fn leave(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let t = state.tenant(&tenant)?;
    if t.config.webchat.is_none() {
        return Err(AppError::NotFound("channel"));
    }
    let Some(visitor) =
        bearer_header(&headers)?.and_then(|token| state.visitors.check(&tenant, token))
    else {
        return Err(AppError::Unauthorized);
    };
    let out = t
        .execute(Command::CustomerLeft {
            channel: switchboard_core::channel::WEBCHAT.into(),
            customer: visitor.customer,
        })
        .await?;
    let conversation = out
        .events()
        .find_map(|e| match e {
            Event::ConversationDropped { conversation, .. } => Some(*conversation),
            _ => None,
        })
        .ok_or(AppError::Conflict("nothing was stored".into()))?;
    Ok(Json(json!({ "conversation": conversation })).into_response())
}

#[derive(Deserialize)]
struct MessageBody {
    /// A label for a new visitor (the site's own id for it, say); never an
    /// identity.
    #[serde(default)]
    visitor: Option<String>,
    /// May be empty when the message carries attachments.
    #[serde(default)]
    text: String,
    #[serde(default)]
    name: Option<String>,
    /// Ids of files this visitor uploaded (`POST …/attachments`).
    #[serde(default)]
    attachments: Vec<String>,
    /// Context for routing (a pre-chat form: `language`, `tags`…).
    #[serde(default)]
    cad: BTreeMap<String, String>,
}

/// Most attachments on one web chat message.
pub const MAX_ATTACHMENTS: usize = 10;

/// Most CAD variables a visitor may give, and their sizes.
pub const MAX_CAD_ENTRIES: usize = 16;
pub const MAX_CAD_KEY_BYTES: usize = 64;
pub const MAX_CAD_VALUE_CHARS: usize = 256;

/// Whether a visitor may set CAD variable `key` (the server's own are
/// refused, not overridden: the visitor learns why).
fn reserved(key: &str) -> bool {
    key == LABEL_CAD_KEY || SERVER_CAD_KEYS.contains(&key)
}

fn check_cad(cad: &BTreeMap<String, String>) -> Result<(), AppError> {
    let bad = cad.len() > MAX_CAD_ENTRIES
        || cad.iter().any(|(k, v)| {
            k.is_empty()
                || k.len() > MAX_CAD_KEY_BYTES
                || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                || v.chars().count() > MAX_CAD_VALUE_CHARS
                || v.chars().any(char::is_control)
        });
    if bad {
        return Err(AppError::Unprocessable(format!(
            "cad: at most {MAX_CAD_ENTRIES} entries, keys of letters, digits and '_' up to {MAX_CAD_KEY_BYTES} bytes, values up to {MAX_CAD_VALUE_CHARS} characters"
        )));
    }
    if let Some(k) = cad.keys().find(|k| reserved(k)) {
        return Err(AppError::Unprocessable(format!(
            "cad: {k:?} is set by the server and cannot be given by a visitor"
        )));
    }
    Ok(())
}

fn check_label(v: &str) -> Result<(), AppError> {
    if v.is_empty() || v.len() > MAX_VISITOR_LEN || v.chars().any(char::is_control) {
        return Err(AppError::Unprocessable(format!(
            "visitor must be 1 to {MAX_VISITOR_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

/// The token of an `Authorization: Bearer <token>` header (scheme
/// case-insensitive); `Err` for another scheme or an unreadable header.
fn bearer_header(headers: &HeaderMap) -> Result<Option<&str>, AppError> {
    let Some(h) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = h.to_str().map_err(|_| AppError::Unauthorized)?;
    match v.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(AppError::Unauthorized),
    }
}

async fn post_message(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<MessageBody>,
) -> Result<Response, AppError> {
    let t = state.tenant(&tenant)?;
    let Some(webchat) = &t.config.webchat else {
        return Err(AppError::NotFound("channel"));
    };
    // Who is writing: the visitor of a valid token, else a new visitor.
    let (visitor, new_token) = match bearer_header(&headers)? {
        Some(token) => match state.visitors.check(&tenant, token) {
            Some(v) => (v, None),
            None => return Err(AppError::Unauthorized),
        },
        None => {
            let (token, v) = state.visitors.issue(&tenant);
            (v, Some(token))
        }
    };
    let mut cad = body.cad;
    check_cad(&cad)?;
    if let Some(label) = body.visitor {
        check_label(&label)?;
        cad.insert(LABEL_CAD_KEY.into(), label);
    }
    if body
        .name
        .as_deref()
        .is_some_and(|n| n.chars().count() > MAX_NAME_CHARS)
    {
        return Err(AppError::Unprocessable(format!(
            "name is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    let attachments = {
        let (storage, tenant, customer, ids) = (
            t.attachments(),
            tenant.clone(),
            visitor.customer.clone(),
            body.attachments.clone(),
        );
        tokio::task::spawn_blocking(move || own_uploads(&storage, &tenant, &customer, &ids))
            .await
            .map_err(|_| AppError::Unavailable)??
    };
    let out = t
        .execute(Command::CustomerMessage(CustomerMessage {
            channel: switchboard_core::channel::WEBCHAT.into(),
            customer: visitor.customer,
            customer_name: body.name,
            text: body.text,
            source: webchat.source.clone(),
            queue: webchat.queue.clone(),
            cad,
            external_id: None,
            attachments,
            // The visitor's clock is not trusted: arrival time it is.
            sent_at: None,
        }))
        .await?;
    let conversation = out
        .events()
        .find_map(|e| match e {
            Event::Message { conversation, .. } => Some(*conversation),
            _ => None,
        })
        .ok_or(AppError::Conflict("message not stored".into()))?;
    let body = match new_token {
        Some(token) => json!({ "conversation": conversation, "visitor_token": token }),
        None => json!({ "conversation": conversation }),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// The visitor's own uploads named by `ids`, as a message carries them;
/// 422 for more than [`MAX_ATTACHMENTS`], or an id that is not one of the
/// visitor's uploads (another visitor's answers the same as an unknown one).
fn own_uploads(
    storage: &crate::attachments::Storage,
    tenant: &str,
    customer: &str,
    ids: &[String],
) -> Result<Vec<switchboard_core::model::Attachment>, AppError> {
    if ids.len() > MAX_ATTACHMENTS {
        return Err(AppError::Unprocessable(format!(
            "at most {MAX_ATTACHMENTS} attachments per message"
        )));
    }
    ids.iter()
        .map(|id| {
            let meta = storage
                .load_meta(tenant, id)
                .filter(|m| m.owner.as_deref() == Some(customer))
                .ok_or_else(|| {
                    AppError::Unprocessable(format!("attachment {id:?} is not one of your uploads"))
                })?;
            Ok(crate::attachments::upload_attachment(id, &meta))
        })
        .collect()
}

/// `POST /channels/webchat/{tenant}/attachments[?name=F]`, the visitor's
/// token as bearer (none: a new visitor, whose token the answer gives),
/// the file as the body: a picture (PNG, JPEG, GIF,
/// WebP) or a PDF of at most 10 MiB, known by its content, not by its name
/// or declared type. → 201 `{id, type, url, name, mime, size}`; the id
/// then goes in a message's `attachments`.
async fn upload(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<super::attachments::NameQuery>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, AppError> {
    let t = state.tenant(&tenant)?;
    if t.config.webchat.is_none() {
        return Err(AppError::NotFound("channel"));
    }
    // As with messages: a visitor's token continues it; none starts a new
    // visitor (who may attach a picture before writing anything).
    let (visitor, new_token) = match bearer_header(&headers)? {
        Some(token) => match state.visitors.check(&tenant, token) {
            Some(v) => (v, None),
            None => return Err(AppError::Unauthorized),
        },
        None => {
            let (token, v) = state.visitors.issue(&tenant);
            (v, Some(token))
        }
    };
    let meta = crate::attachments::Meta {
        mime: String::new(),
        name: None,
        size: 0,
        owner: Some(visitor.customer),
        conversation: None,
        customer: None,
    };
    let (id, meta) = super::attachments::store_upload(&t, body, q.name.as_deref(), meta).await?;
    let mut answer = json!(crate::attachments::upload_attachment(&id, &meta));
    if let Some(token) = new_token {
        answer["visitor_token"] = json!(token);
    }
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /channels/webchat/{tenant}/attachments/{id}`, the visitor's token
/// as bearer or `?visitor_token=` (a picture in a page cannot send a
/// header): the visitor's own upload, or a file an agent sent in one of
/// their conversations. Anything else, another visitor's included,
/// answers 404 like an unknown id.
async fn visitor_attachment(
    State(state): State<Shared>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let t = state.tenant(&tenant)?;
    if t.config.webchat.is_none() {
        return Err(AppError::NotFound("channel"));
    }
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    let token = match bearer_header(&headers)? {
        Some(token) => Some(token.to_string()),
        None => params
            .into_iter()
            .find(|(k, _)| k == "visitor_token")
            .map(|(_, v)| v),
    };
    let Some(visitor) = token.and_then(|tok| state.visitors.check(&tenant, &tok)) else {
        return Err(AppError::Unauthorized);
    };
    super::attachments::check_id(&id)?;
    match super::attachments::load(&t, &id).await? {
        Some((meta, content)) if meta.visible_to_visitor(&visitor.customer) => {
            Ok(super::attachments::serve(&meta, content))
        }
        _ => Err(AppError::NotFound("attachment")),
    }
}

/// Where a web chat visitor fetches attachment `id` (with its token).
pub fn visitor_url(tenant: &str, id: &str) -> String {
    format!("/channels/webchat/{tenant}/attachments/{id}")
}

/// `GET /channels/webchat/{tenant}/events?visitor_token=T`. The token is
/// checked before the upgrade, so a request without a valid one gets a
/// JSON 401 whether or not it asked for a WebSocket.
async fn events(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let t = state.tenant(&tenant)?.clone();
    if t.config.webchat.is_none() {
        return Err(AppError::NotFound("channel"));
    }
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    let token = params
        .iter()
        .find(|(k, _)| k == "visitor_token")
        .map(|(_, v)| v.as_str());
    let Some(visitor) = token.and_then(|tok| state.visitors.check(&tenant, tok)) else {
        if token.is_none() && params.iter().any(|(k, _)| k == "visitor") {
            return Err(AppError::UnauthorizedBecause(
                "a visitor id is not a credential: connect with ?visitor_token= from the answer to your first message".into(),
            ));
        }
        return Err(AppError::Unauthorized);
    };
    let ws = ws.map_err(|e| AppError::Status(e.status(), e.body_text()))?;
    Ok(ws
        .max_message_size(16 * 1024)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| visitor_socket(socket, t, visitor.customer)))
}

/// The visitor read what the agents wrote so far: their replies in its
/// open conversation are marked read (a journaled `receipt` event to the
/// agents, only when it changes something; no conversation is opened).
/// Runs beside the socket so the pump never waits for the journal.
fn read_mark(t: &Arc<crate::tenant::Tenant>, customer: &str) {
    let command = switchboard_core::Command::CustomerReceipt {
        channel: switchboard_core::channel::WEBCHAT.into(),
        customer: customer.to_string(),
        status: switchboard_core::model::Receipt::Read,
        watermark: t.now(),
    };
    let t = t.clone();
    tokio::spawn(async move {
        if t.execute(command).await.is_err() {
            tracing::info!(tenant = %t.id(), "web chat read mark not stored");
        }
    });
}

/// Least time between two typing signals of one visitor passed on to the
/// agents (the page sends one every few seconds while the visitor types).
pub const TYPING_EVERY_MS: u64 = 2_000;

async fn visitor_socket(mut socket: WebSocket, t: Arc<crate::tenant::Tenant>, visitor: String) {
    let mut sub = t.hub.join_visitor(&visitor);
    let mut last_typing: Option<u64> = None;
    let tenant = t.clone();
    let customer = visitor.clone();
    super::pump_with(&mut socket, &mut sub.rx, move |text| {
        // `{"type":"typing"}`: the visitor is typing; `{"type":"read"}`:
        // the visitor's page is visible with every agent message shown.
        // Anything else a visitor sends on its socket is ignored.
        let kind = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v["type"].as_str().map(str::to_string));
        if kind.as_deref() == Some("read") {
            read_mark(&tenant, &customer);
            return;
        }
        let typing = kind.as_deref() == Some("typing");
        let now = tenant.now();
        if !typing || last_typing.is_some_and(|at| now.saturating_sub(at) < TYPING_EVERY_MS) {
            return;
        }
        last_typing = Some(now);
        let told = tenant.read(|e| {
            e.open_conversation_of(switchboard_core::channel::WEBCHAT, &customer)
                .map(|c| (c.id, c.participants()))
        });
        if let Some((conversation, agents)) = told {
            let frame: Arc<str> = json!({"type": "customer_typing", "conversation": conversation})
                .to_string()
                .into();
            for agent in agents {
                tenant.hub.to_agent(&agent, &frame);
            }
        }
    })
    .await;
    t.hub.leave_visitor(&visitor, sub.id);
}
