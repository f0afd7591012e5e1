//! The admin API, behind the admin bearer token (CONTRACT.md "Admin API").

mod accounts;
mod shadow;

use super::{bearer, same_secret, AppError, JsonBody, Shared};
use crate::config::Role;
use crate::tenant::message_json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use switchboard_core::model::ConversationId;
use switchboard_core::Command;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/admin/tenants/{tenant}/queues/{queue}",
            delete(delete_queue).put(accounts::edit_queue),
        )
        .route(
            "/admin/tenants/{tenant}/queues",
            get(accounts::queues).post(accounts::create_queue),
        )
        .route(
            "/admin/tenants/{tenant}/agents",
            get(accounts::agents).post(accounts::create_agent),
        )
        .route(
            "/admin/tenants/{tenant}/agents/{agent}",
            put(accounts::edit_agent),
        )
        .route(
            "/admin/tenants/{tenant}/idle-reasons",
            get(accounts::idle_reasons).put(accounts::set_idle_reasons),
        )
        .route("/admin/tenants/{tenant}/conversations", get(conversations))
        .route(
            "/admin/tenants/{tenant}/conversations/{id}/messages",
            get(transcript),
        )
        .route(
            "/admin/tenants/{tenant}/settings",
            put(settings).get(show_settings),
        )
        .route("/admin/tenants/{tenant}/reload", post(reload))
        .route("/admin/tenants/{tenant}/scripts", get(scripts))
        .route("/admin/tenants/{tenant}/scripts/source", get(script_source))
        .route("/admin/clock/advance", post(advance_clock))
        .route("/admin/journal/fail-next", post(fail_next_commit))
        .route("/admin/engine/panic-next", post(panic_next_command))
        .route(
            "/admin/tenants/{tenant}/shadow",
            put(shadow::start).get(shadow::show).delete(shadow::stop),
        )
        .route("/admin/tenants/{tenant}/replay", post(shadow::replay))
}

/// Proof of the right to administer: the platform's admin token (every
/// route), or, on a tenant's own routes (`/admin/tenants/{tenant}/…`), the
/// session of one of that tenant's agents with the `admin` role (the
/// console). Anyone else's session is refused with 403. `by` says who, for
/// the audit trail: the admin's agent id, or `platform` for the token.
#[derive(Debug)]
pub struct Admin {
    pub by: String,
}

impl FromRequestParts<Shared> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, AppError> {
        if bearer(parts).is_some_and(|t| same_secret(&t, &state.admin_token)) {
            return Ok(Admin {
                by: "platform".into(),
            });
        }
        let Some(tenant) = parts
            .uri
            .path()
            .strip_prefix("/admin/tenants/")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_owned)
        else {
            return Err(AppError::Unauthorized);
        };
        let agent = super::agent::Agent::from_request_parts(parts, state).await?;
        if agent.tenant.id() == tenant && agent.tenant.role_of(&agent.agent) >= Role::Admin {
            Ok(Admin { by: agent.agent })
        } else {
            Err(AppError::Status(
                StatusCode::FORBIDDEN,
                "this needs the admin role in this tenant".into(),
            ))
        }
    }
}

async fn delete_queue(
    _: Admin,
    State(state): State<Shared>,
    Path((tenant, queue)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    let t = state.tenant(&tenant)?;
    let out = t
        .execute(Command::DeleteQueue {
            queue: queue.clone(),
        })
        .await?;
    let interrupted = out
        .events()
        .filter(|e| e.type_name() == "conversation_interrupted")
        .count();
    let dropped = out
        .events()
        .filter(|e| e.type_name() == "conversation_dropped")
        .count();
    tracing::info!(tenant = %tenant, queue = %queue, interrupted, dropped, "queue deleted");
    Ok(Json(
        json!({"deleted": queue, "interrupted": interrupted, "dropped": dropped}),
    ))
}

async fn conversations(
    _: Admin,
    State(state): State<Shared>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, AppError> {
    let t = state.tenant(&tenant)?;
    Ok(Json(t.read(|e| {
        Value::Array(
            e.conversations()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "state": c.state.name(),
                        "queue": c.queue,
                        "channel": c.channel,
                        // What agents see of it: masked when the tenant
                        // masks (an SMS customer's id is a phone number).
                        "customer": c.customer_handle,
                        "customer_name": c.customer_name,
                        "owner": c.owner,
                        "guest": c.guest,
                        "received_at": crate::clock::rfc3339(c.received_at),
                    })
                })
                .collect(),
        )
    })))
}

async fn transcript(
    _: Admin,
    State(state): State<Shared>,
    Path((tenant, id)): Path<(String, ConversationId)>,
) -> Result<Json<Value>, AppError> {
    let t = state.tenant(&tenant)?;
    let live = t.read(|e| {
        e.conversation(id)
            .map(|c| c.messages.iter().map(message_json).collect::<Vec<_>>())
    });
    if let Some(messages) = live {
        return Ok(Json(Value::Array(messages)));
    }
    // Archived (closed a while ago): rebuild the transcript from the journal.
    journal_transcript(&state, &tenant, id)
        .await?
        .map(|messages| Json(Value::Array(messages)))
        .ok_or(AppError::NotFound("conversation"))
}

/// The transcript of conversation `id` rebuilt from the journal, where it
/// was stored masked as the tenant said then (redactions applied); `None`
/// when the journal has no event of it.
pub(crate) async fn journal_transcript(
    state: &Shared,
    tenant: &str,
    id: ConversationId,
) -> Result<Option<Vec<Value>>, AppError> {
    let store = state.store.clone();
    let tenant_id = tenant.to_string();
    let bodies = tokio::task::spawn_blocking(move || store.conversation_events(&tenant_id, id))
        .await
        .map_err(|_| AppError::Unavailable)?
        .map_err(|e| {
            tracing::error!(error = %e, "reading the journal");
            AppError::Unavailable
        })?;
    if bodies.is_empty() {
        return Ok(None);
    }
    let language = state.tenant(tenant)?.read(|e| e.settings().language);
    let events: Vec<switchboard_core::Event> = bodies
        .iter()
        .filter_map(|b| serde_json::from_str(b).ok())
        .collect();
    Ok(Some(
        switchboard_core::engine::transcript_of(&events, language)
            .iter()
            .map(message_json)
            .collect(),
    ))
}

#[derive(Deserialize)]
struct SettingsBody {
    mask: bool,
}

/// Turn masking on or off for what comes in from now on: a journaled
/// command, so the setting survives a restart; audited with who did it
/// (the platform token or a tenant admin from the console).
async fn settings(
    admin: Admin,
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody<SettingsBody>,
) -> Result<Json<Value>, AppError> {
    let t = state.tenant(&tenant)?;
    t.execute(Command::SetMasking {
        by: admin.by.clone(),
        mask: body.mask,
    })
    .await?;
    tracing::info!(tenant = %tenant, by = %admin.by, mask = body.mask, "settings changed");
    Ok(Json(json!({"mask": body.mask})))
}

/// `GET /admin/tenants/{tenant}/settings` → `{"mask"}`: the tenant's
/// current settings (the console's masking switch).
async fn show_settings(
    _: Admin,
    State(state): State<Shared>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, AppError> {
    let t = state.tenant(&tenant)?;
    let mask = t.read(|e| e.settings().mask);
    Ok(Json(json!({ "mask": mask })))
}

/// Build, validate and swap in a new generation of the tenant's scripts:
/// 200 `{"generation"}`, or 422 `{"errors":[{"file","line","message"}]}`
/// with the old generation still serving.
async fn reload(
    _: Admin,
    State(state): State<Shared>,
    Path(tenant): Path<String>,
) -> Result<Response, AppError> {
    let t = state.tenant(&tenant)?.clone();
    let result = tokio::task::spawn_blocking(move || t.reload())
        .await
        .map_err(|_| AppError::Conflict("reload task failed".into()))?;
    Ok(match result {
        Ok(generation) => Json(json!({ "generation": generation })).into_response(),
        Err(errors) => {
            tracing::info!(tenant = %tenant, errors = errors.len(), "reload refused");
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "errors": errors })),
            )
                .into_response()
        }
    })
}

/// Each script and plugin role of the live generation with its calls,
/// errors and last errors (plugin entries marked `trusted_code`), and each
/// plugin's library, version and trusted-code note.
async fn scripts(
    _: Admin,
    State(state): State<Shared>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, AppError> {
    let t = state.tenant(&tenant)?;
    let g = t.generation();
    let plugins = g.plugin_reports();
    let trusted: std::collections::HashSet<&str> =
        plugins.iter().map(|p| p.file.as_str()).collect();
    let scripts: Vec<Value> = g
        .report()
        .into_iter()
        .map(|r| {
            let last: Vec<Value> = r
                .last_errors
                .iter()
                .map(|f| json!({"file": f.file, "line": f.line, "message": f.message, "kind": f.kind, "at": crate::clock::rfc3339(f.at)}))
                .collect();
            json!({"file": r.file, "role": r.role, "generation": r.generation, "calls": r.calls, "errors": r.errors, "last_errors": last, "trusted_code": trusted.contains(r.file.as_str())})
        })
        .collect();
    let shadow = t.shadow().map(|s| s.summary());
    Ok(Json(
        json!({ "tenant": tenant, "generation": g.number(), "scripts": scripts, "plugins": plugins, "shadow": shadow }),
    ))
}

#[derive(Deserialize)]
struct SourceQuery {
    file: String,
}

/// `GET /admin/tenants/{tenant}/scripts/source?file=F`: the text of one
/// script of the live generation (`file` as `scripts` lists it), as its
/// folder (or the bundled set) holds it now, read-only. Any other name,
/// a path outside the folder included, answers 404.
async fn script_source(
    _: Admin,
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    axum::extract::Query(q): axum::extract::Query<SourceQuery>,
) -> Result<Json<Value>, AppError> {
    let t = state.tenant(&tenant)?.clone();
    let live = t.generation().report().iter().any(|r| r.file == q.file);
    if !live {
        return Err(AppError::NotFound("script"));
    }
    let config = t.config.clone();
    let file = q.file.clone();
    let source = tokio::task::spawn_blocking(move || {
        crate::scripts::spec_of(&config)
            .ok()
            .and_then(|spec| spec.files.0.get(&file).cloned())
    })
    .await
    .map_err(|_| AppError::Unavailable)?
    .ok_or(AppError::NotFound("script"))?;
    Ok(Json(json!({ "file": q.file, "source": source })))
}

/// Largest step of the test clock: time arithmetic stays far from overflow.
const MAX_ADVANCE_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

#[derive(Deserialize)]
struct AdvanceBody {
    ms: u64,
}

/// Move the test clock forward and run due timers (config `test_clock`).
async fn advance_clock(
    _: Admin,
    State(state): State<Shared>,
    JsonBody(body): JsonBody<AdvanceBody>,
) -> Result<Json<Value>, AppError> {
    if !state.test_clock {
        return Err(AppError::NotFound("test clock"));
    }
    if body.ms > MAX_ADVANCE_MS {
        return Err(AppError::Unprocessable(format!(
            "ms must be at most {MAX_ADVANCE_MS} (ten years)"
        )));
    }
    state.clock.advance(body.ms);
    for t in state.tenants.values() {
        t.tick().await;
    }
    Ok(Json(
        json!({"now": crate::clock::rfc3339(state.clock.now())}),
    ))
}

/// Make the journal's next commit fail, to test what a failed commit
/// leaves (config `test_clock`, like the test clock; else 404).
async fn fail_next_commit(_: Admin, State(state): State<Shared>) -> Result<Json<Value>, AppError> {
    if !state.test_clock {
        return Err(AppError::NotFound("test hook"));
    }
    if let Some(t) = state.tenants.values().next() {
        // One journal writer serves every tenant.
        t.fail_next_commit();
    }
    Ok(Json(json!({"fail_next": true})))
}

/// Make every tenant's next command panic under its engine lock, to test
/// that the engine is rebuilt from the journal (config `test_clock`; else
/// 404).
async fn panic_next_command(
    _: Admin,
    State(state): State<Shared>,
) -> Result<Json<Value>, AppError> {
    if !state.test_clock {
        return Err(AppError::NotFound("test hook"));
    }
    for t in state.tenants.values() {
        t.panic_next_command();
    }
    Ok(Json(json!({"panic_next": true})))
}
