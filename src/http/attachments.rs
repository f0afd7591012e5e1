//! Attachments over HTTP (see `crate::attachments`):
//! `GET /api/attachments/{id}` for agents of the tenant that holds it, and
//! `POST /api/conversations/{id}/attachments`, an agent's upload for a
//! reply in a conversation they take part in. The checks of an upload
//! (size, content sniffed, name cleaned, nothing stored when refused) are
//! [`store_upload`], shared with the web chat visitor's upload.

use super::agent::Agent;
use super::{AppError, Shared};
use crate::attachments::Meta;
use crate::tenant::Tenant;
use axum::extract::{Path, Query};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use switchboard_core::model::{
    Attachment, ConversationId, ConversationState, MAX_REPLY_ATTACHMENTS,
};

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/attachments/{id}", get(attachment))
        .route(
            "/api/conversations/{id}/attachments",
            post(agent_upload).layer(axum::extract::DefaultBodyLimit::max(
                crate::attachments::MAX_UPLOAD_BYTES,
            )),
        )
}

/// A file name safe inside a quoted `Content-Disposition` value.
fn safe_name(name: &str) -> String {
    let n: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .filter(|c| !matches!(c, '"' | '\\' | '/' | ';'))
        .take(100)
        .collect();
    if n.trim().is_empty() {
        "attachment".into()
    } else {
        n
    }
}

/// 400 unless `id` is an attachment id.
pub(super) fn check_id(id: &str) -> Result<(), AppError> {
    if crate::attachments::valid_id(id) {
        Ok(())
    } else {
        Err(AppError::Status(
            StatusCode::BAD_REQUEST,
            "an attachment id is 32 lower-case hex digits".into(),
        ))
    }
}

/// The stored attachment `id` of tenant `t`, off the async threads.
pub(super) async fn load(t: &Tenant, id: &str) -> Result<Option<(Meta, Vec<u8>)>, AppError> {
    let storage = t.attachments();
    let (tenant, id) = (t.id().to_string(), id.to_string());
    tokio::task::spawn_blocking(move || storage.load(&tenant, &id))
        .await
        .map_err(|_| AppError::Conflict("attachment task failed".into()))
}

/// The content as a response: its checked type, `Content-Disposition`
/// (inline for pictures, sound and video), `nosniff`, private caching.
pub(super) fn serve(meta: &Meta, content: Vec<u8>) -> Response {
    let inline = meta.mime.starts_with("image/")
        || meta.mime.starts_with("video/")
        || meta.mime.starts_with("audio/");
    let disposition = format!(
        "{}; filename=\"{}\"",
        if inline { "inline" } else { "attachment" },
        safe_name(meta.name.as_deref().unwrap_or("attachment"))
    );
    let mime = HeaderValue::from_str(&meta.mime)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    (
        [
            (header::CONTENT_TYPE, mime),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=3600"),
            ),
        ],
        content,
    )
        .into_response()
}

async fn attachment(agent: Agent, Path(id): Path<String>) -> Result<Response, AppError> {
    check_id(&id)?;
    let Some((meta, content)) = load(&agent.tenant, &id).await? else {
        return Err(AppError::NotFound("attachment"));
    };
    Ok(serve(&meta, content))
}

/// Check and store an uploaded file for tenant `t`: at most
/// [`crate::attachments::MAX_UPLOAD_BYTES`] (413), not empty (422), a
/// picture (PNG, JPEG, GIF, WebP) or a PDF known by its first bytes (415).
/// `meta` says who may use it; its type, size and cleaned `name` are set
/// here. Nothing is stored when the file is refused.
pub(super) async fn store_upload(
    t: &Tenant,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    name: Option<&str>,
    meta: Meta,
) -> Result<(String, Meta), AppError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::Status(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "an attachment is at most {} MiB",
                    crate::attachments::MAX_UPLOAD_BYTES / (1024 * 1024)
                ),
            )
        } else {
            AppError::BadRequest(e.body_text())
        }
    })?;
    if body.is_empty() {
        return Err(AppError::Unprocessable("the file is empty".into()));
    }
    let Some((mime, _)) = crate::attachments::sniff(&body) else {
        return Err(AppError::Status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "only pictures (PNG, JPEG, GIF, WebP) and PDF documents can be attached".into(),
        ));
    };
    let meta = Meta {
        mime: mime.into(),
        name: name.and_then(crate::attachments::clean_name),
        size: body.len() as u64,
        ..meta
    };
    let storage = t.attachments();
    let tenant = t.id().to_string();
    let stored = meta.clone();
    let id = tokio::task::spawn_blocking(move || storage.save(&tenant, body.to_vec(), &stored))
        .await
        .map_err(|_| AppError::Unavailable)?
        .map_err(|e| {
            tracing::warn!(tenant = %t.id(), error = %e, "upload not stored");
            AppError::Unavailable
        })?;
    Ok((id, meta))
}

#[derive(Deserialize)]
pub(super) struct NameQuery {
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /api/conversations/{id}/attachments[?name=F]`, the file as the
/// body (same limits as a visitor's upload): only for a conversation the
/// agent takes part in and may write to (404 otherwise, as for an unknown
/// id). → 201 `{id, type, url, name, mime, size}`; the id then goes in a
/// reply's `attachments`.
async fn agent_upload(
    a: Agent,
    Path(id): Path<ConversationId>,
    Query(q): Query<NameQuery>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, AppError> {
    let customer = a.tenant.read(|e| {
        e.conversation(id)
            .filter(|c| {
                c.participants().iter().any(|p| p == &a.agent)
                    && matches!(
                        c.state,
                        ConversationState::Active
                            | ConversationState::ConferenceRequested
                            | ConversationState::Conference
                    )
            })
            .map(|c| c.customer.clone())
    });
    let Some(customer) = customer else {
        return Err(AppError::NotFound("conversation"));
    };
    let meta = Meta {
        mime: String::new(),
        name: None,
        size: 0,
        owner: None,
        conversation: Some(id),
        customer: Some(customer),
    };
    let (file, meta) = store_upload(&a.tenant, body, q.name.as_deref(), meta).await?;
    Ok((
        StatusCode::CREATED,
        Json(crate::attachments::upload_attachment(&file, &meta)),
    )
        .into_response())
}

/// The attachments a reply in conversation `conversation` names by id:
/// each uploaded by an agent for that conversation (422 otherwise: another
/// conversation's, a customer's or an unknown id answer alike).
pub(super) async fn reply_attachments(
    t: &Tenant,
    conversation: ConversationId,
    ids: Vec<String>,
) -> Result<Vec<Attachment>, AppError> {
    if ids.len() > MAX_REPLY_ATTACHMENTS {
        return Err(AppError::Unprocessable(format!(
            "at most {MAX_REPLY_ATTACHMENTS} attachments per reply"
        )));
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let storage = t.attachments();
    let tenant = t.id().to_string();
    tokio::task::spawn_blocking(move || {
        ids.iter()
            .map(|id| {
                storage
                    .load_meta(&tenant, id)
                    .filter(|m| m.conversation == Some(conversation))
                    .map(|m| crate::attachments::upload_attachment(id, &m))
                    .ok_or_else(|| {
                        AppError::Unprocessable(format!(
                            "attachment {id:?} was not uploaded for this conversation"
                        ))
                    })
            })
            .collect()
    })
    .await
    .map_err(|_| AppError::Unavailable)?
}
