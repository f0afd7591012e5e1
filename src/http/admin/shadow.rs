//! Trying a routing policy before it goes live: shadow routing
//! (`PUT|GET|DELETE /admin/tenants/{tenant}/shadow`) and journal replay
//! (`POST /admin/tenants/{tenant}/replay`). See `crate::shadow` and
//! `crate::replay`.

use super::Admin;
use crate::http::{AppError, JsonBody, Shared};
use crate::replay::{parse_time, Window};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use switchboard_core::lua::ScriptError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ShadowBody {
    routing: String,
}

fn refused(errors: Vec<ScriptError>) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({ "errors": errors })),
    )
        .into_response()
}

/// Load the candidate beside the live generation (validated like a
/// reload: 422 `{"errors":[{file, line, message}]}`) and start asking it
/// every routing decision; replaces a shadow already running.
pub(super) async fn start(
    _: Admin,
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody<ShadowBody>,
) -> Result<Response, AppError> {
    let t = state.tenant(&tenant)?.clone();
    let routing = body.routing;
    let now = t.now();
    let number = t.generation().number();
    let task_routing = routing.clone();
    let task_tenant = t.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        crate::generation::load_candidate(&task_tenant.config, &task_routing, None, number, now)
    })
    .await
    .map_err(|_| AppError::Conflict("loading the candidate failed".into()))?;
    let candidate = match loaded {
        Ok(c) => c,
        Err(errors) => {
            tracing::info!(tenant = %tenant, errors = errors.len(), "shadow policy refused");
            return Ok(refused(errors));
        }
    };
    let shadow =
        crate::shadow::Shadow::start(&tenant, &routing, now, candidate, &t.config.agent_configs())
            .map_err(|e| {
                tracing::error!(tenant = %tenant, error = %e, "cannot start the shadow thread");
                AppError::Unavailable
            })?;
    let report = shadow.report();
    t.set_shadow(Some(shadow));
    tracing::info!(tenant = %tenant, routing = %routing, "shadow policy started");
    Ok(Json(report).into_response())
}

pub(super) async fn show(
    _: Admin,
    State(state): State<Shared>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, AppError> {
    let t = state.tenant(&tenant)?;
    let shadow = t.shadow().ok_or(AppError::NotFound("shadow policy"))?;
    Ok(Json(shadow.report()))
}

/// Stop the shadow; answers its last report.
pub(super) async fn stop(
    _: Admin,
    State(state): State<Shared>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, AppError> {
    let t = state.tenant(&tenant)?;
    let shadow = t
        .set_shadow(None)
        .ok_or(AppError::NotFound("shadow policy"))?;
    tracing::info!(tenant = %tenant, "shadow policy stopped");
    Ok(Json(shadow.report()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplayBody {
    routing: String,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
}

/// Replay the tenant's journal against a candidate: the same JSON as
/// `switchboard scripts replay --json`.
pub(super) async fn replay(
    _: Admin,
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody<ReplayBody>,
) -> Result<Response, AppError> {
    let t = state.tenant(&tenant)?.clone();
    let time = |s: &Option<String>| {
        s.as_deref()
            .map(parse_time)
            .transpose()
            .map_err(AppError::Unprocessable)
    };
    let window = Window {
        since: time(&body.since)?,
        until: time(&body.until)?,
    };
    let now = t.now();
    let routing = body.routing;
    // The server's own store, SQLite or PostgreSQL: the journal it writes.
    let store = state.store.clone();
    let result = tokio::task::spawn_blocking(move || {
        let candidate =
            crate::generation::load_candidate(&t.config, &routing, None, 0, now).map_err(Ok)?;
        crate::replay::replay_journal(&*store, &t.config, &candidate, &routing, window).map_err(Err)
    })
    .await
    .map_err(|_| AppError::Conflict("the replay failed".into()))?;
    match result {
        Ok(report) => Ok(Json(report).into_response()),
        Err(Ok(errors)) => Ok(refused(errors)),
        Err(Err(e)) => {
            tracing::warn!(tenant = %tenant, error = %e, "replay failed");
            Err(AppError::Conflict(format!(
                "cannot replay the journal: {e:#}"
            )))
        }
    }
}
