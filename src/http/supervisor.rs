//! The supervisors' API (docs/console.md): the live overview of a tenant,
//! its WebSocket, and the reports. Every route checks the caller's role
//! (`supervisor` or `admin`, else 403) and serves only the caller's own
//! tenant: the session names it, no route takes a tenant.

use super::agent::{Agent, SocketAgent};
use super::{AppError, JsonBody, Shared};
use crate::config::Role;
use crate::console::COALESCE_MS;
use crate::tenant::{add_conversation_details, Subscription, Tenant};
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::model::{ConversationId, Millis};
use switchboard_core::Command;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/supervisor/overview", get(overview))
        .route("/api/supervisor/events", get(events))
        .route("/api/supervisor/agents/{id}/state", put(set_agent_state))
        .route("/api/supervisor/conversations/{id}", get(conversation))
        .route(
            "/api/supervisor/conversations/{id}/move",
            post(move_conversation),
        )
        .route(
            "/api/supervisor/conversations/{id}/close",
            post(close_conversation),
        )
        .route(
            "/api/supervisor/conversations/{id}/join",
            post(join_conversation),
        )
        .route("/api/reports/queues", get(report_queues))
        .route("/api/reports/agents", get(report_agents))
}

impl Tenant {
    /// The role of one of the tenant's agents (`agent` when unknown), as
    /// the engine holds it: seeded from the file, then changed by admins'
    /// journaled events.
    pub fn role_of(&self, agent: &str) -> Role {
        self.read(|e| e.role_of(agent))
    }
}

/// A supervisor's (or admin's) session, from the bearer header.
#[derive(Debug)]
pub struct Supervisor {
    pub tenant: Arc<Tenant>,
    pub agent: String,
    pub role: Role,
}

fn supervisor_of(a: Agent) -> Result<Supervisor, AppError> {
    let role = a.tenant.role_of(&a.agent);
    if role < Role::Supervisor {
        return Err(AppError::Status(
            StatusCode::FORBIDDEN,
            "this needs the supervisor or admin role".into(),
        ));
    }
    Ok(Supervisor {
        tenant: a.tenant,
        agent: a.agent,
        role,
    })
}

impl FromRequestParts<Shared> for Supervisor {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, AppError> {
        supervisor_of(Agent::from_request_parts(parts, state).await?)
    }
}

#[derive(Deserialize)]
struct StateBody {
    state: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `PUT /api/supervisor/agents/{id}/state` `{"state", "reason"?}`: force
/// an agent's state (`available`, `idle`, `logged_out`). A logged-out
/// agent's sessions end, as when it logs out itself.
async fn set_agent_state(
    State(state): State<Shared>,
    s: Supervisor,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<StateBody>,
) -> Result<Json<Value>, AppError> {
    s.tenant
        .execute(Command::SupervisorSetState {
            supervisor: s.agent.clone(),
            agent: id.clone(),
            state: body.state,
            reason: body.reason,
        })
        .await?;
    let v = s.tenant.read(|e| {
        e.agent(&id)
            .map(|ag| json!({"agent": id, "state": ag.state.name(), "reason": ag.state.reason()}))
    });
    if v.as_ref().and_then(|v| v["state"].as_str()) == Some("logged_out") {
        for session in state.sessions.revoke_agent(s.tenant.id(), &id) {
            s.tenant.hub.close_session(&session.agent, &session.id);
        }
    }
    v.map(Json).ok_or(AppError::NotFound("agent"))
}

/// The conversation as an agent sees it (masked transcript, participants),
/// for any conversation of the supervisor's tenant.
fn conversation_view(tenant: &Tenant, id: ConversationId) -> Result<Value, AppError> {
    tenant.read(|e| match e.conversation(id) {
        Some(c) => {
            let mut map = Map::new();
            map.insert("conversation".into(), json!(c.id));
            add_conversation_details(e, c, &mut map);
            Ok(Value::Object(map))
        }
        None => Err(AppError::NotFound("conversation")),
    })
}

/// `GET /api/supervisor/conversations/{id}`: monitor (read only).
async fn conversation(
    s: Supervisor,
    Path(id): Path<ConversationId>,
) -> Result<Json<Value>, AppError> {
    conversation_view(&s.tenant, id).map(Json)
}

#[derive(Deserialize)]
struct MoveBody {
    queue: String,
}

/// `POST /api/supervisor/conversations/{id}/move` `{"queue"}`.
async fn move_conversation(
    s: Supervisor,
    Path(id): Path<ConversationId>,
    JsonBody(body): JsonBody<MoveBody>,
) -> Result<Json<Value>, AppError> {
    s.tenant
        .execute(Command::MoveConversation {
            supervisor: s.agent.clone(),
            conversation: id,
            queue: body.queue,
        })
        .await?;
    conversation_view(&s.tenant, id).map(Json)
}

#[derive(Deserialize)]
struct CloseBody {
    reason: String,
}

/// `POST /api/supervisor/conversations/{id}/close` `{"reason"}`.
async fn close_conversation(
    s: Supervisor,
    Path(id): Path<ConversationId>,
    JsonBody(body): JsonBody<CloseBody>,
) -> Result<Json<Value>, AppError> {
    s.tenant
        .execute(Command::CloseConversation {
            supervisor: s.agent.clone(),
            conversation: id,
            reason: body.reason,
        })
        .await?;
    conversation_view(&s.tenant, id).map(Json)
}

/// `POST /api/supervisor/conversations/{id}/join`: the supervisor joins
/// an active conversation as its third participant, and writes in it from
/// the desktop.
async fn join_conversation(
    s: Supervisor,
    Path(id): Path<ConversationId>,
) -> Result<Json<Value>, AppError> {
    s.tenant
        .execute(Command::JoinConversation {
            supervisor: s.agent.clone(),
            conversation: id,
        })
        .await?;
    conversation_view(&s.tenant, id).map(Json)
}

/// `GET /api/supervisor/overview`: from the console's projection, not the
/// engine.
async fn overview(s: Supervisor) -> Json<Value> {
    Json(s.tenant.hub.console.overview(s.tenant.now()))
}

/// `WS /api/supervisor/events?token=` (or `?ticket=`, as the agent
/// socket): the whole overview first, then `overview_changes` (what
/// changed since the socket's last frame), at most one frame per
/// [`COALESCE_MS`]; a socket too far behind gets a whole overview again.
async fn events(
    State(state): State<Shared>,
    SocketAgent(a): SocketAgent,
    ws: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let session = a.session.clone();
    let s = supervisor_of(a)?;
    Ok(ws
        .max_message_size(4 * 1024)
        .on_upgrade(move |socket| console_socket(socket, s, session, state)))
}

/// Close code sent when the socket's session ended (as the agent socket).
const SESSION_ENDED: u16 = 4001;

async fn console_socket(mut socket: WebSocket, s: Supervisor, session: String, state: Shared) {
    // Joined as the agent's socket: it keeps the supervisor present (no
    // logout after the away grace) and ends with the session. Agent frames
    // are not for the console: drained.
    let mut sub = s.tenant.hub.join_agent(&s.agent, &session);
    let mut changes = s.tenant.hub.console.subscribe();
    changes.mark_changed();
    // The projection's version this socket's page reflects.
    let mut shown: Option<u64> = None;
    let mut ended = false;
    let mut monitor: Option<(ConversationId, Subscription)> = None;
    loop {
        tokio::select! {
            frame = next_monitored(&mut monitor) => match frame {
                Some(frame) => {
                    if socket.send(WsMessage::Text(frame.to_string().into())).await.is_err() {
                        break;
                    }
                }
                // Too slow: cut off; the page asks again.
                None => stop_monitor(&s.tenant, &mut monitor),
            },
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                // Nothing shown changed (a message, a receipt): no frame.
                let Some(frame) = s.tenant.hub.console.frame(shown, s.tenant.now()) else {
                    continue;
                };
                if socket.send(WsMessage::Text(frame.frame)).await.is_err() {
                    break;
                }
                shown = Some(frame.version);
                // Coalesce: whatever happens meanwhile goes in the next frame.
                tokio::time::sleep(Duration::from_millis(COALESCE_MS)).await;
            }
            frame = sub.rx.recv() => {
                if frame.is_none() {
                    ended = true;
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(WsMessage::Text(text))) => {
                    let answer = console_request(&s.tenant, &text, &mut monitor);
                    if let Some(answer) = answer {
                        if socket.send(WsMessage::Text(answer.to_string().into())).await.is_err() {
                            break;
                        }
                    }
                }
                Some(Ok(_)) => {}
            },
        }
    }
    stop_monitor(&s.tenant, &mut monitor);
    s.tenant.hub.leave_agent(&s.agent, sub.id, s.tenant.now());
    s.tenant.timer.notify_one();
    if !s.tenant.lease.valid() {
        let frame = CloseFrame {
            code: super::agent::TENANT_MOVED,
            reason: "tenant moved: reconnect".into(),
        };
        let _ = socket.send(WsMessage::Close(Some(frame))).await;
    } else if ended || !state.sessions.is_live(&session, state.clock.now()) {
        let frame = CloseFrame {
            code: SESSION_ENDED,
            reason: "session ended".into(),
        };
        let _ = socket.send(WsMessage::Close(Some(frame))).await;
    }
}

/// The next frame of the monitored conversation; never, when none is.
async fn next_monitored(monitor: &mut Option<(ConversationId, Subscription)>) -> Option<Arc<str>> {
    match monitor {
        Some((_, sub)) => sub.rx.recv().await,
        None => std::future::pending().await,
    }
}

fn stop_monitor(tenant: &Tenant, monitor: &mut Option<(ConversationId, Subscription)>) {
    if let Some((id, sub)) = monitor.take() {
        tenant.hub.leave_monitor(id, sub.id);
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ConsoleRequest {
    /// Follow one conversation: `monitor_started` with its transcript,
    /// then `{"type":"monitor","event":…}` for each of its events.
    Monitor {
        conversation: ConversationId,
    },
    Unmonitor,
}

/// A frame the console sent: start or stop monitoring. The answer to send
/// back, if any.
fn console_request(
    tenant: &Tenant,
    text: &str,
    monitor: &mut Option<(ConversationId, Subscription)>,
) -> Option<Value> {
    let request = match serde_json::from_str::<ConsoleRequest>(text) {
        Ok(r) => r,
        Err(_) => {
            return Some(json!({"type": "error", "error": "unknown request"}));
        }
    };
    stop_monitor(tenant, monitor);
    match request {
        ConsoleRequest::Unmonitor => None,
        ConsoleRequest::Monitor { conversation } => {
            // Subscribed before the transcript is read: nothing is missed.
            let sub = tenant.hub.join_monitor(conversation);
            match conversation_view(tenant, conversation) {
                Ok(view) => {
                    *monitor = Some((conversation, sub));
                    Some(json!({"type": "monitor_started", "conversation": view}))
                }
                Err(_) => {
                    tenant.hub.leave_monitor(conversation, sub.id);
                    Some(json!({"type": "error", "error": "conversation not found"}))
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct Period {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

const DAY_MS: Millis = 86_400_000;

fn parse_time(s: &str, what: &str) -> Result<Millis, AppError> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| AppError::BadRequest(format!("`{what}` is not an RFC 3339 time")))?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    Millis::try_from(ms).map_err(|_| AppError::BadRequest(format!("`{what}` is out of range")))
}

/// The period asked for, `[from, to)`: today (UTC) by default.
fn period(p: &Period, now: Millis) -> Result<(Millis, Millis, bool), AppError> {
    let from = match &p.from {
        Some(f) => parse_time(f, "from")?,
        None => now - now % DAY_MS,
    };
    let to = match &p.to {
        Some(t) => parse_time(t, "to")?,
        None => from.saturating_add(DAY_MS),
    };
    if to < from {
        return Err(AppError::BadRequest("`to` is before `from`".into()));
    }
    let csv = match p.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(AppError::BadRequest("`format` is `json` or `csv`".into())),
    };
    Ok((from, to, csv))
}

fn csv_response(name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        body,
    )
        .into_response()
}

async fn report_queues(s: Supervisor, Query(p): Query<Period>) -> Result<Response, AppError> {
    let now = s.tenant.now();
    let (from, to, csv) = period(&p, now)?;
    let queues: Vec<String> = s
        .tenant
        .config
        .queues
        .iter()
        .map(|q| q.id.clone())
        .collect();
    let rows = {
        let mut r = crate::console::lock(&s.tenant.hub.console.reports);
        r.advance(now);
        r.queues(from, to, &queues)
    };
    if csv {
        return Ok(csv_response("queues", crate::reports::queues_csv(&rows)));
    }
    Ok(Json(json!({
        "from": crate::clock::rfc3339(from),
        "to": crate::clock::rfc3339(to),
        "queues": rows,
    }))
    .into_response())
}

async fn report_agents(s: Supervisor, Query(p): Query<Period>) -> Result<Response, AppError> {
    let now = s.tenant.now();
    let (from, to, csv) = period(&p, now)?;
    let agents: Vec<String> = s
        .tenant
        .config
        .agents
        .iter()
        .map(|a| a.id.clone())
        .collect();
    let rows = {
        let mut r = crate::console::lock(&s.tenant.hub.console.reports);
        r.advance(now);
        r.agents(from, to, &agents)
    };
    if csv {
        return Ok(csv_response("agents", crate::reports::agents_csv(&rows)));
    }
    Ok(Json(json!({
        "from": crate::clock::rfc3339(from),
        "to": crate::clock::rfc3339(to),
        "agents": rows,
    }))
    .into_response())
}
