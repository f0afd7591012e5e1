//! `GET /api/attachments/{id}`: a customer's attachment, for agents of the
//! tenant that received it (see `crate::attachments`).

use super::agent::Agent;
use super::{AppError, Shared};
use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub fn routes() -> Router<Shared> {
    Router::new().route("/api/attachments/{id}", get(attachment))
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

async fn attachment(agent: Agent, Path(id): Path<String>) -> Result<Response, AppError> {
    if !crate::attachments::valid_id(&id) {
        return Err(AppError::Status(
            axum::http::StatusCode::BAD_REQUEST,
            "an attachment id is 32 lower-case hex digits".into(),
        ));
    }
    let t = agent.tenant.clone();
    let storage = t.attachments();
    let tenant = t.id().to_string();
    let found = tokio::task::spawn_blocking(move || storage.load(&tenant, &id))
        .await
        .map_err(|_| AppError::Conflict("attachment task failed".into()))?;
    let Some((meta, content)) = found else {
        return Err(AppError::NotFound("attachment"));
    };
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
    Ok((
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
        .into_response())
}
