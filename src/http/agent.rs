//! The agent API: login, the event WebSocket, state, conversation actions
//! and the directory (CONTRACT.md "Agent API").

use super::{bearer, AppError, JsonBody, Shared};
use crate::auth::verify_password;
use crate::tenant::{add_conversation_details, agent_frame, Tenant};
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use switchboard_core::model::{ConversationId, TransferTarget};
use switchboard_core::Command;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/agent/events", get(events))
        .route("/api/agent/state", put(set_state))
        .route("/api/directory", get(directory))
        .route("/api/conversations/{id}", get(conversation))
        .route("/api/conversations/{id}/accept", post(accept))
        .route("/api/conversations/{id}/messages", post(send_message))
        .route("/api/conversations/{id}/transfer", post(transfer))
        .route("/api/conversations/{id}/conference", post(conference))
        .route(
            "/api/conversations/{id}/conference/end",
            post(end_conference),
        )
        .route(
            "/api/conversations/{id}/conference/leave",
            post(leave_conference),
        )
        .route("/api/conversations/{id}/end", post(end))
        .route("/api/conversations/{id}/wrapup", post(wrapup))
}

/// An authenticated agent session.
#[derive(Debug)]
pub struct Agent {
    pub tenant: Arc<Tenant>,
    pub agent: String,
    pub token: String,
}

impl FromRequestParts<Shared> for Agent {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, AppError> {
        let token = bearer(parts).ok_or(AppError::Unauthorized)?;
        let session = state
            .sessions
            .get(&token, state.clock.now())
            .ok_or(AppError::Unauthorized)?;
        let tenant = state.tenant(&session.tenant)?.clone();
        Ok(Agent {
            tenant,
            agent: session.agent,
            token,
        })
    }
}

#[derive(Deserialize)]
struct LoginBody {
    tenant: String,
    agent: String,
    password: String,
}

async fn login(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Json<Value>, AppError> {
    let now = state.clock.now();
    let addr = peer.ip().to_string();
    if let Some(secs) = state
        .sessions
        .locked_out(&body.tenant, &body.agent, &addr, now)
    {
        return Err(AppError::TooManyRequests(secs));
    }
    let hash = state
        .passwords
        .get(&(body.tenant.clone(), body.agent.clone()))
        .cloned();
    // Verify even for unknown accounts (against a fixed hash) so that the
    // answer and its timing are the same for "no such agent" and "wrong
    // password".
    let ok = {
        let password = body.password.clone();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| UNKNOWN_ACCOUNT_HASH.to_string());
        tokio::task::spawn_blocking(move || verify_password(&hash, &password) && known)
            .await
            .unwrap_or(false)
    };
    let tenant = state.tenants.get(&body.tenant);
    let (true, Some(tenant)) = (ok, tenant) else {
        state
            .sessions
            .record_failure(&body.tenant, &body.agent, &addr, now);
        tracing::info!(tenant = %body.tenant, "failed login");
        return Err(AppError::Unauthorized);
    };
    state.sessions.clear_failures(&body.tenant, &body.agent);
    tenant
        .execute(Command::Login {
            agent: body.agent.clone(),
        })
        .await?;
    let token = state
        .sessions
        .create(&body.tenant, &body.agent, now)
        .map_err(|e| {
            tracing::error!(error = %e, "could not store a session");
            AppError::Unavailable
        })?;
    let name = tenant.read(|e| e.agent(&body.agent).map(|a| a.config.name.clone()));
    tracing::info!(tenant = %body.tenant, agent = %body.agent, "agent logged in");
    Ok(Json(json!({
        "token": token,
        "tenant": body.tenant,
        "agent": body.agent,
        "name": name.unwrap_or_else(|| body.agent.clone()),
    })))
}

/// argon2 hash of a random password nobody knows, verified against when the
/// account does not exist.
const UNKNOWN_ACCOUNT_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c3dpdGNoYm9hcmQtbm8tYWNjb3VudA$ZYBd/MU9h0wZq8GNVvAbnr6RmDBqJYM2cnBU6RlYcbI";

async fn logout(State(state): State<Shared>, a: Agent) -> Result<StatusCode, AppError> {
    a.tenant
        .execute(Command::Logout {
            agent: a.agent.clone(),
        })
        .await?;
    state.sessions.revoke(&a.token);
    Ok(StatusCode::NO_CONTENT)
}

/// Everything the desktop shows, to draw itself after a (re)connect.
async fn me(a: Agent) -> Result<Json<Value>, AppError> {
    let v = a.tenant.read(|e| {
        let Some(agent) = e.agent(&a.agent) else {
            return Err(AppError::NotFound("agent"));
        };
        let mut conversations = Vec::new();
        for c in e.conversations().filter(|c| c.concerns(&a.agent)) {
            let mut map = Map::new();
            map.insert("conversation".into(), json!(c.id));
            add_conversation_details(e, c, &mut map);
            let offered = c.offer.as_ref().filter(|o| o.agent == a.agent);
            map.insert(
                "offer".into(),
                match offered {
                    Some(o) => {
                        json!({"kind": o.kind, "expires_at": crate::clock::rfc3339(o.expires_at)})
                    }
                    None => Value::Null,
                },
            );
            map.insert("preview".into(), json!(c.preview));
            map.insert(
                "wrapup_pending".into(),
                json!(agent.wrapups.contains(&c.id)),
            );
            if agent.wrapups.contains(&c.id) {
                map.insert(
                    "reasons".into(),
                    json!(a.tenant.wrapup_reasons(&c.queue).to_vec()),
                );
            }
            conversations.push(Value::Object(map));
        }
        Ok(json!({
            "tenant": a.tenant.id(),
            "agent": agent.config.id,
            "name": agent.config.name,
            "state": agent.state.name(),
            "reason": agent.state.reason(),
            "capacity": agent.config.capacity,
            "idle_reasons": a.tenant.config.idle_reasons,
            "mask": e.settings().mask,
            "conversations": conversations,
        }))
    })?;
    Ok(Json(v))
}

async fn events(a: Agent, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(64 * 1024)
        // Agents send almost nothing: small buffers keep each idle
        // connection to a few KiB (10,000 desktops under 1 GiB).
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| agent_socket(socket, a))
}

async fn agent_socket(mut socket: WebSocket, a: Agent) {
    let mut sub = a.tenant.hub.join_agent(&a.agent);
    // First frame: the agent's current state, so the desktop starts right.
    let hello = a.tenant.read(|e| {
        e.agent(&a.agent).map(|ag| {
            json!({"type": "agent_state", "agent": ag.config.id, "state": ag.state.name(), "reason": ag.state.reason()})
        })
    });
    if let Some(h) = hello {
        if socket
            .send(WsMessage::Text(h.to_string().into()))
            .await
            .is_err()
        {
            a.tenant.hub.leave_agent(&a.agent, sub.id);
            return;
        }
    }
    super::pump(&mut socket, &mut sub.rx).await;
    a.tenant.hub.leave_agent(&a.agent, sub.id);
}

#[derive(Deserialize)]
struct StateBody {
    state: String,
    #[serde(default)]
    reason: Option<String>,
}

async fn set_state(a: Agent, JsonBody(body): JsonBody<StateBody>) -> Result<Json<Value>, AppError> {
    let cmd = match body.state.as_str() {
        "available" => Command::SetAvailable {
            agent: a.agent.clone(),
        },
        "idle" => Command::SetIdle {
            agent: a.agent.clone(),
            reason: body.reason.unwrap_or_default(),
        },
        other => {
            return Err(AppError::Unprocessable(format!(
                "state must be \"available\" or \"idle\", not {other:?}"
            )))
        }
    };
    a.tenant.execute(cmd).await?;
    let v = a.tenant.read(|e| {
        e.agent(&a.agent)
            .map(|ag| json!({"state": ag.state.name(), "reason": ag.state.reason()}))
    });
    Ok(Json(v.unwrap_or(Value::Null)))
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    search: Option<String>,
}

/// Queues and agents of the tenant with each agent's current state: the
/// transfer and conference lists.
async fn directory(a: Agent, Query(q): Query<SearchQuery>) -> Json<Value> {
    let needle = q.search.unwrap_or_default().to_lowercase();
    let matches = |s: &str, id: &str| {
        needle.is_empty()
            || s.to_lowercase().contains(&needle)
            || id.to_lowercase().contains(&needle)
    };
    let v = a.tenant.read(|e| {
        let queues: Vec<Value> = e
            .queues()
            .filter(|qc| matches(&qc.name, &qc.id))
            .map(|qc| {
                let waiting = e
                    .waiting()
                    .filter(|id| e.conversation(*id).is_some_and(|c| c.queue == qc.id))
                    .count();
                json!({"id": qc.id, "name": qc.name, "waiting": waiting})
            })
            .collect();
        let agents: Vec<Value> = e
            .agents()
            .filter(|ag| ag.config.id != a.agent && matches(&ag.config.name, &ag.config.id))
            .map(|ag| {
                json!({
                    "id": ag.config.id,
                    "name": ag.config.name,
                    "state": ag.state.name(),
                    "reason": ag.state.reason(),
                    "load": ag.load(),
                    "capacity": ag.config.capacity,
                    "available": ag.state.name() == "available" && ag.load() < ag.config.capacity,
                })
            })
            .collect();
        json!({"queues": queues, "agents": agents})
    });
    Json(v)
}

async fn conversation(a: Agent, Path(id): Path<ConversationId>) -> Result<Json<Value>, AppError> {
    a.tenant.read(|e| match e.conversation(id) {
        Some(c) if c.concerns(&a.agent) => {
            let mut map = Map::new();
            map.insert("conversation".into(), json!(c.id));
            add_conversation_details(e, c, &mut map);
            Ok(Json(Value::Object(map)))
        }
        _ => Err(AppError::NotFound("conversation")),
    })
}

/// Answer of a successful action: the events it caused for this agent.
fn done(a: &Agent, out: switchboard_core::Output) -> Response {
    let events: Vec<Value> = a.tenant.read(|e| {
        out.emitted
            .iter()
            .filter(|em| em.audience.agents.contains(&a.agent))
            .map(|em| agent_frame(e, &em.event))
            .collect()
    });
    (StatusCode::OK, Json(json!({ "events": events }))).into_response()
}

async fn accept(a: Agent, Path(id): Path<ConversationId>) -> Result<Response, AppError> {
    let out = a
        .tenant
        .execute(Command::Accept {
            agent: a.agent.clone(),
            conversation: id,
        })
        .await?;
    Ok(done(&a, out))
}

#[derive(Deserialize)]
struct TextBody {
    text: String,
}

async fn send_message(
    a: Agent,
    Path(id): Path<ConversationId>,
    JsonBody(body): JsonBody<TextBody>,
) -> Result<Response, AppError> {
    let out = a
        .tenant
        .execute(Command::AgentMessage {
            agent: a.agent.clone(),
            conversation: id,
            text: body.text,
        })
        .await?;
    Ok(done(&a, out))
}

#[derive(Deserialize)]
struct TransferBody {
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    agent: Option<String>,
}

async fn transfer(
    a: Agent,
    Path(id): Path<ConversationId>,
    JsonBody(body): JsonBody<TransferBody>,
) -> Result<Response, AppError> {
    let to = match (body.queue, body.agent) {
        (Some(q), None) => TransferTarget::Queue(q),
        (None, Some(ag)) => TransferTarget::Agent(ag),
        _ => {
            return Err(AppError::Unprocessable(
                "give exactly one of \"queue\" or \"agent\"".into(),
            ))
        }
    };
    let out = a
        .tenant
        .execute(Command::Transfer {
            agent: a.agent.clone(),
            conversation: id,
            to,
        })
        .await?;
    Ok(done(&a, out))
}

#[derive(Deserialize)]
struct ConferenceBody {
    agent: String,
}

async fn conference(
    a: Agent,
    Path(id): Path<ConversationId>,
    JsonBody(body): JsonBody<ConferenceBody>,
) -> Result<Response, AppError> {
    let out = a
        .tenant
        .execute(Command::InviteToConference {
            agent: a.agent.clone(),
            conversation: id,
            invitee: body.agent,
        })
        .await?;
    Ok(done(&a, out))
}

async fn end_conference(a: Agent, Path(id): Path<ConversationId>) -> Result<Response, AppError> {
    let out = a
        .tenant
        .execute(Command::EndConference {
            agent: a.agent.clone(),
            conversation: id,
        })
        .await?;
    Ok(done(&a, out))
}

async fn leave_conference(a: Agent, Path(id): Path<ConversationId>) -> Result<Response, AppError> {
    let out = a
        .tenant
        .execute(Command::LeaveConference {
            agent: a.agent.clone(),
            conversation: id,
        })
        .await?;
    Ok(done(&a, out))
}

async fn end(a: Agent, Path(id): Path<ConversationId>) -> Result<Response, AppError> {
    let out = a
        .tenant
        .execute(Command::End {
            agent: a.agent.clone(),
            conversation: id,
        })
        .await?;
    Ok(done(&a, out))
}

#[derive(Deserialize)]
struct WrapupBody {
    reason: String,
}

async fn wrapup(
    a: Agent,
    Path(id): Path<ConversationId>,
    JsonBody(body): JsonBody<WrapupBody>,
) -> Result<Response, AppError> {
    let out = a
        .tenant
        .execute(Command::WrapUp {
            agent: a.agent.clone(),
            conversation: id,
            reason: body.reason,
        })
        .await?;
    Ok(done(&a, out))
}
