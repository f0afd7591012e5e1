//! The bundled web chat channel: customers post messages and receive the
//! agents' replies on a WebSocket (CONTRACT.md "Web chat channel").

use super::{AppError, JsonBody, Shared};
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use switchboard_core::{Command, CustomerMessage, Event};

/// Longest visitor id accepted.
const MAX_VISITOR_LEN: usize = 128;
/// Longest visitor display name accepted, in characters.
const MAX_NAME_CHARS: usize = 100;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/channels/webchat/{tenant}/messages", post(post_message))
        .route("/channels/webchat/{tenant}/events", get(events))
}

#[derive(Deserialize)]
struct MessageBody {
    visitor: String,
    text: String,
    #[serde(default)]
    name: Option<String>,
    /// Context for routing (a pre-chat form: `language`, `tags`…).
    #[serde(default)]
    cad: BTreeMap<String, String>,
}

/// Most CAD variables a visitor may give, and their sizes.
pub const MAX_CAD_ENTRIES: usize = 16;
pub const MAX_CAD_KEY_BYTES: usize = 64;
pub const MAX_CAD_VALUE_CHARS: usize = 256;

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
    Ok(())
}

fn check_visitor(v: &str) -> Result<(), AppError> {
    if v.is_empty() || v.len() > MAX_VISITOR_LEN || v.chars().any(char::is_control) {
        return Err(AppError::Unprocessable(format!(
            "visitor must be 1 to {MAX_VISITOR_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

async fn post_message(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody<MessageBody>,
) -> Result<Response, AppError> {
    let t = state.tenant(&tenant)?;
    let Some(webchat) = &t.config.webchat else {
        return Err(AppError::NotFound("channel"));
    };
    check_visitor(&body.visitor)?;
    check_cad(&body.cad)?;
    if body
        .name
        .as_deref()
        .is_some_and(|n| n.chars().count() > MAX_NAME_CHARS)
    {
        return Err(AppError::Unprocessable(format!(
            "name is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    let out = t
        .execute(Command::CustomerMessage(CustomerMessage {
            channel: "webchat".into(),
            customer: body.visitor.clone(),
            customer_name: body.name,
            text: body.text,
            source: webchat.source.clone(),
            queue: webchat.queue.clone(),
            cad: body.cad,
            external_id: None,
        }))
        .await?;
    let conversation = out
        .events()
        .find_map(|e| match e {
            Event::Message { conversation, .. } => Some(*conversation),
            _ => None,
        })
        .ok_or(AppError::Conflict("message not stored".into()))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "conversation": conversation })),
    )
        .into_response())
}

#[derive(Deserialize)]
struct VisitorQuery {
    visitor: String,
}

async fn events(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Query(q): Query<VisitorQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let t = state.tenant(&tenant)?.clone();
    if t.config.webchat.is_none() {
        return Err(AppError::NotFound("channel"));
    }
    check_visitor(&q.visitor)?;
    Ok(ws
        .max_message_size(16 * 1024)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| visitor_socket(socket, t, q.visitor)))
}

async fn visitor_socket(mut socket: WebSocket, t: Arc<crate::tenant::Tenant>, visitor: String) {
    let mut sub = t.hub.join_visitor(&visitor);
    super::pump(&mut socket, &mut sub.rx).await;
    t.hub.leave_visitor(&visitor, sub.id);
}
