//! The agent API: login, the event WebSocket, state, conversation actions
//! and the directory (CONTRACT.md "Agent API").

use super::{bearer, query_param, AppError, JsonBody, Shared};
use crate::auth::Session;
use crate::passwords::Busy;
use crate::sender_actions::Action as SenderAction;
use crate::tenant::{add_conversation_details, agent_frame, agent_name, Tenant};
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
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
use switchboard_core::model::{AgentState, ConversationId, TransferTarget};
use switchboard_core::Command;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/logout/all", post(logout_all))
        .route("/api/agent/events/ticket", post(ticket))
        .route("/api/me", get(me))
        .route("/api/agent/events", get(events))
        .route("/api/agent/state", put(set_state))
        .route("/api/directory", get(directory))
        .route("/api/responses", get(responses))
        .route("/api/conversations/{id}", get(conversation))
        .route("/api/conversations/{id}/history", get(history))
        .route("/api/conversations/{id}/typing", post(typing))
        .route("/api/conversations/{id}/seen", post(seen))
        .route(
            "/api/conversations/{id}/history/{past}",
            get(history_transcript),
        )
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

/// An authenticated agent session, from the `Authorization: Bearer`
/// header only: a token in a URL ends up in proxy and browser logs, so
/// `?token=` is accepted on the WebSocket route alone ([`SocketAgent`]).
#[derive(Debug)]
pub struct Agent {
    pub tenant: Arc<Tenant>,
    pub agent: String,
    /// The session's id (hash of its token).
    pub session: String,
}

impl FromRequestParts<Shared> for Agent {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, AppError> {
        let token = bearer(parts).ok_or(AppError::Unauthorized)?;
        let session = state
            .sessions
            .get(&token, state.clock.now())
            .ok_or(AppError::Unauthorized)?;
        agent_of(state, session)
    }
}

/// The agent of a live session. A session whose agent is logged out is
/// ended here: no session answers `/api/me` while refusing actions.
fn agent_of(state: &Shared, session: Session) -> Result<Agent, AppError> {
    let tenant = state.tenant(&session.tenant)?.clone();
    let logged_out = tenant.read(|e| {
        e.is_disabled(&session.agent)
            || e.agent(&session.agent)
                .is_some_and(|a| a.state == AgentState::LoggedOut)
    });
    if logged_out {
        state.sessions.revoke(&session.id);
        tenant.hub.close_session(&session.agent, &session.id);
        return Err(AppError::Unauthorized);
    }
    Ok(Agent {
        tenant,
        agent: session.agent,
        session: session.id,
    })
}

/// The agent opening the event WebSocket: a bearer header, a one-time
/// `?ticket=` (from `POST /api/agent/events/ticket`), or `?token=`
/// (CONTRACT.md keeps it for WebSocket clients that cannot set headers).
#[derive(Debug)]
pub struct SocketAgent(pub Agent);

impl FromRequestParts<Shared> for SocketAgent {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, AppError> {
        let now = state.clock.now();
        let session = if let Some(t) = bearer(parts) {
            state.sessions.get(&t, now)
        } else if let Some(ticket) = query_param(parts, "ticket") {
            state.sessions.redeem_ticket(&ticket, now)
        } else if let Some(t) = query_param(parts, "token") {
            state.sessions.get(&t, now)
        } else {
            None
        };
        let session = session.ok_or(AppError::Unauthorized)?;
        agent_of(state, session).map(SocketAgent)
    }
}

#[derive(Deserialize)]
struct LoginBody {
    tenant: String,
    agent: String,
    password: String,
}

/// Log in. The attempt is reserved against the limits (per account and
/// per address) before the password is checked, in one step, so parallel
/// guesses cannot all be evaluated; a success gives its slot back. Password
/// checks run on a bounded pool: past its queue the answer is 503 with
/// `Retry-After`.
async fn login(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Json<Value>, AppError> {
    let now = state.clock.now();
    let addr = super::forward::client_addr(&state, &headers, peer);
    // Names typed by the client are logged escaped: no forged log lines.
    let (t, ag) = (body.tenant.escape_debug(), body.agent.escape_debug());
    let attempt = match state
        .sessions
        .reserve_attempt(&body.tenant, &body.agent, &addr, now)
    {
        Ok(a) => a,
        Err(secs) => {
            tracing::warn!(tenant = %t, agent = %ag, client = %addr, "login refused: too many attempts");
            return Err(AppError::TooManyRequests(secs));
        }
    };
    // An admin-set password (a journal event) wins over the configured
    // one; a disabled agent is checked like any other, then refused like
    // a wrong password.
    let (set_hash, disabled) = state
        .tenants
        .get(&body.tenant)
        .map(|t| {
            t.read(|e| {
                (
                    e.password_hash(&body.agent)
                        .map(std::sync::Arc::<str>::from),
                    e.is_disabled(&body.agent),
                )
            })
        })
        .unwrap_or((None, false));
    let ok = match state
        .passwords
        .verify_account(&body.tenant, &body.agent, &body.password, set_hash)
        .await
        .map(|ok| ok && !disabled)
    {
        Ok(ok) => ok,
        Err(Busy) => {
            // Not evaluated: it does not count against the limits.
            state.sessions.forgive(&attempt);
            tracing::warn!(tenant = %t, agent = %ag, client = %addr, "login refused: password checks are saturated");
            return Err(AppError::Busy(1));
        }
    };
    let tenant = state.tenants.get(&body.tenant);
    let (true, Some(tenant)) = (ok, tenant) else {
        state.sessions.failed(&attempt);
        tracing::warn!(tenant = %t, agent = %ag, client = %addr, "failed login");
        return Err(AppError::Unauthorized);
    };
    state.sessions.forgive(&attempt);
    // The session exists before the agent is logged in: the timer never
    // sees a logged-in agent without one (it would log it out again).
    let token = state
        .sessions
        .create(&body.tenant, &body.agent, now)
        .map_err(|e| {
            tracing::error!(error = %e, "could not store a session");
            AppError::Unavailable
        })?;
    let logged_in = tenant
        .execute(Command::Login {
            agent: body.agent.clone(),
        })
        .await;
    if let Err(e) = logged_in {
        if let Some(s) = state.sessions.get(&token, now) {
            state.sessions.revoke(&s.id);
        }
        return Err(e.into());
    }
    // The desktop has the grace period to connect its socket.
    tenant.hub.away_unless_connected(&body.agent, now);
    tenant.timer.notify_one();
    let name = tenant.read(|e| agent_name(e, &body.agent));
    tracing::info!(tenant = %body.tenant, agent = %body.agent, client = %addr, "agent logged in");
    Ok(Json(json!({
        "token": token,
        "tenant": body.tenant,
        "agent": body.agent,
        "name": name,
    })))
}

/// `?all=true|false` on `POST /api/logout`; anything else is a 400.
#[derive(Deserialize)]
struct LogoutQuery {
    all: Option<bool>,
}

/// End this session (`?all=true`: every session of the agent, as
/// `POST /api/logout/all`). The agent is logged out (its offers go back to
/// the queue) when no other session of it remains; with conversations or
/// wrap-ups still open that is refused (409) and nothing changes.
async fn logout(
    State(state): State<Shared>,
    a: Agent,
    Query(q): Query<LogoutQuery>,
) -> Result<Response, AppError> {
    if q.all == Some(true) {
        return logout_all(State(state), a).await;
    }
    let others = state
        .sessions
        .others(a.tenant.id(), &a.agent, &a.session, state.clock.now());
    if others == 0 {
        a.tenant
            .execute(Command::Logout {
                agent: a.agent.clone(),
            })
            .await?;
    }
    state.sessions.revoke(&a.session);
    a.tenant.hub.close_session(&a.agent, &a.session);
    tracing::info!(tenant = %a.tenant.id(), agent = %a.agent, "session ended (logout)");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Log the agent out and end every one of its sessions (every device),
/// closing their sockets: 200 `{"sessions": N}`.
async fn logout_all(State(state): State<Shared>, a: Agent) -> Result<Response, AppError> {
    a.tenant
        .execute(Command::Logout {
            agent: a.agent.clone(),
        })
        .await?;
    let ended = state.sessions.revoke_agent(a.tenant.id(), &a.agent);
    for s in &ended {
        a.tenant.hub.close_session(&s.agent, &s.id);
    }
    tracing::info!(tenant = %a.tenant.id(), agent = %a.agent, sessions = ended.len(), "every session ended (logout all)");
    Ok(Json(json!({ "sessions": ended.len() })).into_response())
}

/// A one-time ticket to open the event WebSocket without putting the
/// session token in a URL: `GET /api/agent/events?ticket=T` within 30 s.
async fn ticket(State(state): State<Shared>, a: Agent) -> Json<Value> {
    let now = state.clock.now();
    let ticket = state.sessions.issue_ticket(&a.session, now);
    Json(json!({
        "ticket": ticket,
        "expires_at": crate::clock::rfc3339(now + crate::auth::TICKET_TTL_MS),
    }))
}

/// Everything the desktop shows, to draw itself after a (re)connect.
async fn me(a: Agent) -> Result<Json<Value>, AppError> {
    let v = a.tenant.read(|e| {
        let Some(agent) = e.agent(&a.agent) else {
            return Err(AppError::NotFound("agent"));
        };
        let mut conversations = Vec::new();
        for c in e.conversations_of(&a.agent) {
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
            "role": e.role_of(&a.agent).name(),
            "idle_reasons": e.idle_reasons(),
            "mask": e.settings().mask,
            "messenger_reply_window_ms": a.tenant.config.messenger.as_ref().map(reply_window_ms),
            "conversations": conversations,
        }))
    })?;
    Ok(Json(v))
}

/// How long after the customer's last message a Messenger reply may go:
/// 7 days with the `HUMAN_AGENT` tag, else 24 hours (the desktop's
/// countdown; the adapter enforces the same).
fn reply_window_ms(m: &crate::config::MessengerConfig) -> u64 {
    const HOUR: u64 = 3_600_000;
    if m.human_agent_tag {
        7 * 24 * HOUR
    } else {
        24 * HOUR
    }
}

async fn events(
    State(state): State<Shared>,
    SocketAgent(a): SocketAgent,
    ws: WebSocketUpgrade,
) -> Response {
    ws.max_message_size(64 * 1024)
        // Agents send almost nothing: small buffers keep each idle
        // connection to a few KiB (10,000 desktops under 1 GiB).
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| agent_socket(socket, a, state))
}

/// Close code sent when the socket's session ended (logout, expiry).
const SESSION_ENDED: u16 = 4001;

async fn agent_socket(mut socket: WebSocket, a: Agent, state: Shared) {
    let mut sub = a.tenant.hub.join_agent(&a.agent, &a.session);
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
            a.tenant.hub.leave_agent(&a.agent, sub.id, a.tenant.now());
            a.tenant.timer.notify_one();
            return;
        }
    }
    super::pump(&mut socket, &mut sub.rx).await;
    a.tenant.hub.leave_agent(&a.agent, sub.id, a.tenant.now());
    // The away grace period may now be the next deadline.
    a.tenant.timer.notify_one();
    if !a.tenant.lease.valid() {
        // The tenant moved to another node: the session goes on there.
        let frame = CloseFrame {
            code: TENANT_MOVED,
            reason: "tenant moved: reconnect".into(),
        };
        let _ = socket.send(WsMessage::Close(Some(frame))).await;
    } else if !state.sessions.is_live(&a.session, state.clock.now()) {
        let frame = CloseFrame {
            code: SESSION_ENDED,
            reason: "session ended".into(),
        };
        let _ = socket.send(WsMessage::Close(Some(frame))).await;
    }
}

/// Close code sent when the tenant moved to another node of the cluster
/// (1012, "service restart"): reconnect, the session goes on.
pub const TENANT_MOVED: u16 = 1012;

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
struct ResponsesQuery {
    conversation: ConversationId,
    #[serde(default)]
    language: Option<String>,
}

/// The tenant's canned responses offered in a conversation's queue (and
/// language, when asked), placeholders filled: the customer's name as the
/// agent sees it (masked when the tenant masks), the agent's name, the
/// queue's name. Only for a conversation the agent takes part in.
async fn responses(a: Agent, Query(q): Query<ResponsesQuery>) -> Result<Json<Value>, AppError> {
    let generation = a.tenant.generation();
    let list = generation.responses();
    a.tenant.read(|e| {
        let c = e
            .conversation(q.conversation)
            .filter(|c| c.concerns(&a.agent))
            .ok_or(AppError::NotFound("conversation"))?;
        let own_name = agent_name(e, &a.agent);
        let queue_name = e
            .queue(&c.queue)
            .map(|qc| qc.name.clone())
            .unwrap_or_else(|| c.queue.clone());
        let items: Vec<Value> = list
            .iter()
            .filter(|r| r.applies_to(&c.queue, q.language.as_deref()))
            .map(|r| {
                json!({
                    "code": r.code,
                    "title": r.title,
                    "text": r.fill(&c.customer_name, &own_name, &queue_name),
                    "language": r.language,
                })
            })
            .collect();
        Ok(Json(json!({ "conversation": c.id, "responses": items })))
    })
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
                let waiting = e.queue_depth(&qc.id);
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
                    "available": ag.can_take_more(),
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

/// The agent is typing a reply: a web chat visitor's page shows it
/// (`{"type":"typing", conversation, agent}` on its socket); a Messenger
/// customer gets a `typing_on` sender action (at most one per conversation
/// every [`crate::sender_actions::EVERY_MS`]). Not journaled. 404 unless
/// the agent takes part in the conversation; 409 once it is not active.
/// On other channels nothing is sent (204 all the same).
async fn typing(
    State(state): State<Shared>,
    a: Agent,
    Path(id): Path<ConversationId>,
) -> Result<StatusCode, AppError> {
    let (channel, customer, name) = active_participant(&a, id)?;
    if channel == switchboard_core::channel::WEBCHAT {
        let frame: Arc<str> = json!({"type": "typing", "conversation": id, "agent": name})
            .to_string()
            .into();
        a.tenant.hub.to_visitor(&customer, &frame);
    } else if channel == crate::http::messenger::CHANNEL {
        messenger_action(&state, &a, id, &customer, SenderAction::TypingOn).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The agent opened (selected) the conversation on its desktop: a
/// Messenger customer gets a `mark_seen` sender action (throttled as
/// `typing`). Not journaled; 404 / 409 as `typing`; 204 on every channel.
async fn seen(
    State(state): State<Shared>,
    a: Agent,
    Path(id): Path<ConversationId>,
) -> Result<StatusCode, AppError> {
    let (channel, customer, _) = active_participant(&a, id)?;
    if channel == crate::http::messenger::CHANNEL {
        messenger_action(&state, &a, id, &customer, SenderAction::MarkSeen).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The channel, the customer's raw id and the agent's display name of an
/// active conversation `a` takes part in.
fn active_participant(a: &Agent, id: ConversationId) -> Result<(String, String, String), AppError> {
    a.tenant.read(|e| match e.conversation(id) {
        Some(c) if c.participants().contains(&a.agent) => {
            use switchboard_core::model::ConversationState as S;
            if !matches!(c.state, S::Active | S::ConferenceRequested | S::Conference) {
                return Err(AppError::Conflict("the conversation is not active".into()));
            }
            let name = agent_name(e, &a.agent);
            Ok((c.channel.clone(), c.customer.clone(), name))
        }
        _ => Err(AppError::NotFound("conversation")),
    })
}

/// A sender action to a Messenger customer: best-effort (a failure is
/// counted, the agent's request succeeds all the same).
async fn messenger_action(
    state: &Shared,
    a: &Agent,
    id: ConversationId,
    psid: &str,
    action: SenderAction,
) {
    let Some(cfg) = a.tenant.config.messenger.as_ref() else {
        return;
    };
    let now = a.tenant.now();
    state
        .sender_actions
        .send(a.tenant.id(), cfg, id, psid, action, now)
        .await;
}

/// The customer's earlier conversations on the same channel identity
/// (most recent first): when, which queue, who, wrap-up reasons. Only for
/// an agent the current conversation concerns.
async fn history(a: Agent, Path(id): Path<ConversationId>) -> Result<Json<Value>, AppError> {
    a.tenant.read(|e| match e.conversation(id) {
        Some(c) if c.concerns(&a.agent) => {
            let past: Vec<Value> = e
                .history_of(id)
                .into_iter()
                .map(|p| {
                    let labels = a.tenant.wrapup_reasons(&p.queue);
                    let reasons: Vec<&str> = p
                        .wrapup_reasons
                        .iter()
                        .map(|code| {
                            labels
                                .iter()
                                .find(|r| &r.code == code)
                                .map_or(code.as_str(), |r| r.label.as_str())
                        })
                        .collect();
                    json!({
                        "conversation": p.conversation,
                        "opened_at": p.opened_at,
                        "closed_at": p.closed_at,
                        "queue": p.queue,
                        "queue_name": e.queue(&p.queue).map(|q| q.name.clone()),
                        "agent": p.agent,
                        "agent_name": p.agent.as_deref().and_then(|x| e.agent(x)).map(|x| x.config.name.clone()),
                        "wrapup_reasons": reasons,
                        "interrupted_reason": p.interrupted_reason,
                    })
                })
                .collect();
            Ok(Json(json!({ "conversations": past })))
        }
        _ => Err(AppError::NotFound("conversation")),
    })
}

/// The transcript of one of the customer's earlier conversations, from
/// the journal (masked as it was stored). 404 unless `past` is in the
/// history of a conversation that concerns the agent.
async fn history_transcript(
    a: Agent,
    State(state): State<Shared>,
    Path((id, past)): Path<(ConversationId, ConversationId)>,
) -> Result<Json<Value>, AppError> {
    let allowed = a.tenant.read(|e| {
        e.conversation(id).is_some_and(|c| c.concerns(&a.agent))
            && e.history_of(id).iter().any(|p| p.conversation == past)
    });
    if !allowed {
        return Err(AppError::NotFound("conversation"));
    }
    let messages = super::admin::journal_transcript(&state, a.tenant.id(), past)
        .await?
        .ok_or(AppError::NotFound("conversation"))?;
    Ok(Json(json!({ "conversation": past, "messages": messages })))
}

/// The one path of an agent's action on a conversation: the command
/// `make` builds for the session's agent (authenticated by the [`Agent`]
/// extractor), run on its tenant and answered once journaled: 200
/// `{"events": [...]}`, the events it caused for this agent; a refusal is
/// the engine's 404 / 409 / 422, a failed commit or a tenant on the move
/// 503 (`AppError` from `ExecuteError`).
async fn act(a: &Agent, make: impl FnOnce(String) -> Command) -> Result<Response, AppError> {
    let out = a.tenant.execute(make(a.agent.clone())).await?;
    let events: Vec<Value> = a.tenant.read(|e| {
        out.emitted
            .iter()
            .filter(|em| em.audience.agents.contains(&a.agent))
            .map(|em| agent_frame(e, &em.event))
            .collect()
    });
    Ok((StatusCode::OK, Json(json!({ "events": events }))).into_response())
}

async fn accept(a: Agent, Path(id): Path<ConversationId>) -> Result<Response, AppError> {
    act(&a, |agent| Command::Accept {
        agent,
        conversation: id,
    })
    .await
}

#[derive(Deserialize)]
struct ReplyBody {
    /// May be left out or blank when the reply carries attachments.
    #[serde(default)]
    text: String,
    /// Ids of files uploaded for this conversation
    /// (`POST /api/conversations/{id}/attachments`).
    #[serde(default)]
    attachments: Vec<String>,
}

async fn send_message(
    a: Agent,
    Path(id): Path<ConversationId>,
    JsonBody(body): JsonBody<ReplyBody>,
) -> Result<Response, AppError> {
    let attachments =
        super::attachments::reply_attachments(&a.tenant, id, body.attachments).await?;
    act(&a, |agent| Command::AgentMessage {
        agent,
        conversation: id,
        text: body.text,
        attachments,
    })
    .await
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
    act(&a, |agent| Command::Transfer {
        agent,
        conversation: id,
        to,
    })
    .await
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
    act(&a, |agent| Command::InviteToConference {
        agent,
        conversation: id,
        invitee: body.agent,
    })
    .await
}

async fn end_conference(a: Agent, Path(id): Path<ConversationId>) -> Result<Response, AppError> {
    act(&a, |agent| Command::EndConference {
        agent,
        conversation: id,
    })
    .await
}

async fn leave_conference(a: Agent, Path(id): Path<ConversationId>) -> Result<Response, AppError> {
    act(&a, |agent| Command::LeaveConference {
        agent,
        conversation: id,
    })
    .await
}

async fn end(a: Agent, Path(id): Path<ConversationId>) -> Result<Response, AppError> {
    act(&a, |agent| Command::End {
        agent,
        conversation: id,
    })
    .await
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
    act(&a, |agent| Command::WrapUp {
        agent,
        conversation: id,
        reason: body.reason,
    })
    .await
}
