//! A tenant administered over HTTP: agents (accounts, passwords, enabled),
//! queues and idle reasons. Every change is an engine command whose events
//! are journaled with who made it (docs/console.md, "Administration").
//! Passwords are hashed here, before the engine; no answer carries a hash.

use super::Admin;
use crate::auth::hash_password;
use crate::http::{AppError, JsonBody, Shared};
use crate::tenant::Tenant;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use switchboard_core::model::{Millis, Role};
use switchboard_core::{AgentProfile, Command, Engine};

/// Shortest and longest password accepted, in characters.
const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 256;

fn agent_json(e: &Engine, id: &str) -> Option<Value> {
    let a = e.agent(id)?;
    Some(json!({
        "id": a.config.id,
        "name": a.config.name,
        "capacity": a.config.capacity,
        "queues": a.config.queues,
        "skills": a.config.skills,
        "role": e.role_of(id).name(),
        "enabled": !e.is_disabled(id),
        "state": a.state.name(),
    }))
}

fn queue_json(e: &Engine, id: &str) -> Option<Value> {
    let q = e.queue(id)?;
    Some(json!({"id": q.id, "name": q.name, "rona_timeout_ms": q.rona_timeout_ms}))
}

/// Hash a password off the async threads (argon2 costs tens of ms).
async fn hashed(password: String) -> Result<String, AppError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(AppError::Unprocessable(format!(
            "password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        )));
    }
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| AppError::Unavailable)?
        .map_err(|e| {
            tracing::error!(error = %e, "hashing a password");
            AppError::Unavailable
        })
}

/// `GET /admin/tenants/{tenant}/agents`: every agent with its account
/// (never its password or hash).
pub async fn agents(
    _: Admin,
    State(state): State<Shared>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, AppError> {
    let t = state.tenant(&tenant)?;
    Ok(Json(t.read(|e| {
        Value::Array(
            e.agents()
                .filter_map(|a| agent_json(e, &a.config.id))
                .collect(),
        )
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    id: String,
    name: String,
    #[serde(default = "one")]
    capacity: u32,
    #[serde(default)]
    queues: Vec<String>,
    #[serde(default)]
    skills: Vec<String>,
    #[serde(default)]
    role: Role,
    password: String,
}

fn one() -> u32 {
    1
}

/// `POST /admin/tenants/{tenant}/agents`: 201 with the new agent.
pub async fn create_agent(
    admin: Admin,
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody<NewAgent>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let t = state.tenant(&tenant)?;
    let password_hash = hashed(body.password).await?;
    t.execute(Command::CreateAgent {
        by: admin.by.clone(),
        agent: body.id.clone(),
        profile: AgentProfile {
            name: body.name,
            capacity: body.capacity,
            queues: body.queues,
            skills: body.skills,
            role: body.role,
        },
        password_hash: password_hash.into(),
    })
    .await?;
    tracing::info!(tenant = %tenant, agent = %body.id, by = %admin.by, "agent created");
    let v = t.read(|e| agent_json(e, &body.id));
    Ok((StatusCode::CREATED, Json(v.unwrap_or(Value::Null))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentChange {
    name: Option<String>,
    capacity: Option<u32>,
    queues: Option<Vec<String>>,
    skills: Option<Vec<String>>,
    role: Option<Role>,
    password: Option<String>,
    enabled: Option<bool>,
}

/// `PUT /admin/tenants/{tenant}/agents/{agent}`: change what is given
/// (profile fields, `password`, `enabled`); 200 with the agent. Disabling
/// logs the agent out and ends its sessions; it is refused (409) while
/// the agent holds conversations or owes wrap-ups.
pub async fn edit_agent(
    admin: Admin,
    State(state): State<Shared>,
    Path((tenant, agent)): Path<(String, String)>,
    JsonBody(body): JsonBody<AgentChange>,
) -> Result<Json<Value>, AppError> {
    let t = state.tenant(&tenant)?.clone();
    let current = t.read(|e| {
        e.agent(&agent).map(|a| AgentProfile {
            name: a.config.name.clone(),
            capacity: a.config.capacity,
            queues: a.config.queues.clone(),
            skills: a.config.skills.clone(),
            role: e.role_of(&agent),
        })
    });
    let current = current.ok_or(AppError::NotFound("agent"))?;
    // Hashed first: a refused password changes nothing.
    let password_hash = match body.password {
        Some(p) => Some(hashed(p).await?),
        None => None,
    };
    let edits = body.name.is_some()
        || body.capacity.is_some()
        || body.queues.is_some()
        || body.skills.is_some()
        || body.role.is_some();
    if edits {
        let profile = AgentProfile {
            name: body.name.unwrap_or(current.name),
            capacity: body.capacity.unwrap_or(current.capacity),
            queues: body.queues.unwrap_or(current.queues),
            skills: body.skills.unwrap_or(current.skills),
            role: body.role.unwrap_or(current.role),
        };
        t.execute(Command::EditAgent {
            by: admin.by.clone(),
            agent: agent.clone(),
            profile,
        })
        .await?;
    }
    if let Some(password_hash) = password_hash {
        t.execute(Command::SetPassword {
            by: admin.by.clone(),
            agent: agent.clone(),
            password_hash: password_hash.into(),
        })
        .await?;
    }
    if let Some(enabled) = body.enabled {
        t.execute(Command::SetAgentEnabled {
            by: admin.by.clone(),
            agent: agent.clone(),
            enabled,
        })
        .await?;
        if !enabled {
            end_sessions(&state, &t, &agent);
        }
    }
    tracing::info!(tenant = %tenant, agent = %agent, by = %admin.by, "agent changed");
    t.read(|e| agent_json(e, &agent))
        .map(Json)
        .ok_or(AppError::NotFound("agent"))
}

/// A disabled agent's sessions end at once and its sockets close.
fn end_sessions(state: &Shared, t: &Tenant, agent: &str) {
    for s in state.sessions.revoke_agent(t.id(), agent) {
        t.hub.close_session(&s.agent, &s.id);
    }
}

/// `GET /admin/tenants/{tenant}/queues`.
pub async fn queues(
    _: Admin,
    State(state): State<Shared>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, AppError> {
    let t = state.tenant(&tenant)?;
    Ok(Json(t.read(|e| {
        Value::Array(e.queues().filter_map(|q| queue_json(e, &q.id)).collect())
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewQueue {
    id: String,
    name: String,
    #[serde(default = "default_rona")]
    rona_timeout_ms: Millis,
}

fn default_rona() -> Millis {
    switchboard_core::model::DEFAULT_RONA_TIMEOUT_MS
}

/// `POST /admin/tenants/{tenant}/queues`: 201 with the new queue.
pub async fn create_queue(
    admin: Admin,
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody<NewQueue>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let t = state.tenant(&tenant)?;
    t.execute(Command::SaveQueue {
        by: admin.by.clone(),
        queue: body.id.clone(),
        name: body.name,
        rona_timeout_ms: body.rona_timeout_ms,
        create: true,
    })
    .await?;
    tracing::info!(tenant = %tenant, queue = %body.id, by = %admin.by, "queue created");
    let v = t.read(|e| queue_json(e, &body.id));
    Ok((StatusCode::CREATED, Json(v.unwrap_or(Value::Null))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueChange {
    name: Option<String>,
    rona_timeout_ms: Option<Millis>,
}

/// `PUT /admin/tenants/{tenant}/queues/{queue}`: change its name or RONA
/// timeout; 200 with the queue.
pub async fn edit_queue(
    admin: Admin,
    State(state): State<Shared>,
    Path((tenant, queue)): Path<(String, String)>,
    JsonBody(body): JsonBody<QueueChange>,
) -> Result<Json<Value>, AppError> {
    let t = state.tenant(&tenant)?;
    let current = t
        .read(|e| e.queue(&queue).cloned())
        .ok_or(AppError::NotFound("queue"))?;
    t.execute(Command::SaveQueue {
        by: admin.by.clone(),
        queue: queue.clone(),
        name: body.name.unwrap_or(current.name),
        rona_timeout_ms: body.rona_timeout_ms.unwrap_or(current.rona_timeout_ms),
        create: false,
    })
    .await?;
    tracing::info!(tenant = %tenant, queue = %queue, by = %admin.by, "queue changed");
    t.read(|e| queue_json(e, &queue))
        .map(Json)
        .ok_or(AppError::NotFound("queue"))
}

/// `GET /admin/tenants/{tenant}/idle-reasons`: `{"reasons": [...]}`.
pub async fn idle_reasons(
    _: Admin,
    State(state): State<Shared>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, AppError> {
    let t = state.tenant(&tenant)?;
    Ok(Json(
        json!({"reasons": t.read(|e| e.idle_reasons().to_vec())}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdleReasons {
    reasons: Vec<String>,
}

/// `PUT /admin/tenants/{tenant}/idle-reasons`: replace the list.
pub async fn set_idle_reasons(
    admin: Admin,
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody<IdleReasons>,
) -> Result<Json<Value>, AppError> {
    let t = state.tenant(&tenant)?;
    t.execute(Command::SetIdleReasons {
        by: admin.by.clone(),
        reasons: body.reasons,
    })
    .await?;
    tracing::info!(tenant = %tenant, by = %admin.by, "idle reasons replaced");
    Ok(Json(
        json!({"reasons": t.read(|e| e.idle_reasons().to_vec())}),
    ))
}
