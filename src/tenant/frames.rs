//! What goes on the wire: the JSON frames agents' desktops, supervisors'
//! consoles and web chat visitors receive for the engine's events, and the
//! name a command is logged under.
//!
//! **Invariant:** the frames carry what the engine made (masked when the
//! tenant masks); only a web chat visitor receives an agent's raw reply
//! (`tests/masking_surfaces.rs`).

use crate::clock::rfc3339;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use switchboard_core::channel::WEBCHAT;
use switchboard_core::engine::Engine;
use switchboard_core::model::{ConversationId, Party};
use switchboard_core::{Carrier, Command, Delivery, Event, Output};

/// A frame for one subscriber.
#[derive(Debug, Clone)]
pub(super) enum Target {
    Agent(String),
    Visitor(String),
    Monitor(ConversationId),
}

/// The frames an output sends: to agents (their projection of each event),
/// to web chat visitors (notices and the agents' raw replies) and to the
/// supervisors monitoring a conversation (`monitored`).
pub(super) fn frames(
    engine: &Engine,
    tenant: &str,
    out: &Output,
    now: u64,
    monitored: impl Fn(ConversationId) -> bool,
) -> Vec<(Target, Arc<str>)> {
    let mut frames = Vec::new();
    for emitted in &out.emitted {
        let ev = &emitted.event;
        if !emitted.audience.agents.is_empty() {
            let frame: Arc<str> = agent_frame(engine, ev).to_string().into();
            for agent in &emitted.audience.agents {
                frames.push((Target::Agent(agent.clone()), frame.clone()));
            }
        }
        if let Some(frame) = visitor_frame(engine, ev, emitted.audience.customer) {
            if let Some(c) = ev.conversation().and_then(|id| engine.conversation(id)) {
                if c.channel == WEBCHAT {
                    frames.push((
                        Target::Visitor(c.customer.clone()),
                        frame.to_string().into(),
                    ));
                }
            }
        }
    }
    for d in &out.deliveries {
        if d.carrier == Carrier::Push {
            let author = agent_name(engine, &d.author);
            let frame = json!({
                "type": "message",
                "conversation": d.conversation,
                "from": "agent",
                "author": author,
                "text": d.text,
                "at": rfc3339(now),
            });
            let frame = with_visitor_attachments(frame, tenant, d);
            frames.push((
                Target::Visitor(d.customer.clone()),
                frame.to_string().into(),
            ));
        }
    }
    // Supervisors monitoring a conversation get the agents' frame of each
    // of its events but its creation (which holds the customer's raw id).
    for e in &out.emitted {
        let Some(id) = e.event.conversation() else {
            continue;
        };
        if !matches!(e.event, Event::ConversationCreated { .. }) && monitored(id) {
            let frame = json!({"type": "monitor", "event": agent_frame(engine, &e.event)});
            frames.push((Target::Monitor(id), frame.to_string().into()));
        }
    }
    frames
}

pub(super) fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Login { .. } => "login",
        Command::Logout { .. } => "logout",
        Command::SetAvailable { .. } => "set_available",
        Command::SetIdle { .. } => "set_idle",
        Command::CustomerMessage(_) => "customer_message",
        Command::Accept { .. } => "accept",
        Command::AgentMessage { .. } => "agent_message",
        Command::Transfer { .. } => "transfer",
        Command::InviteToConference { .. } => "conference",
        Command::EndConference { .. } => "end_conference",
        Command::LeaveConference { .. } => "leave_conference",
        Command::End { .. } => "end",
        Command::WrapUp { .. } => "wrapup",
        Command::DeleteQueue { .. } => "delete_queue",
        Command::AgentGone { .. } => "agent_gone",
        Command::ChangeSettings { .. } => "change_settings",
        Command::DeliveryFailed { .. } => "delivery_failed",
        Command::CustomerReceipt { .. } => "customer_receipt",
        Command::SupervisorSetState { .. } => "supervisor_set_state",
        Command::MoveConversation { .. } => "move_conversation",
        Command::CloseConversation { .. } => "close_conversation",
        Command::JoinConversation { .. } => "join_conversation",
        Command::CustomerLeft { .. } => "customer_left",
        Command::CreateAgent { .. } => "create_agent",
        Command::EditAgent { .. } => "edit_agent",
        Command::SetPassword { .. } => "set_password",
        Command::SetAgentEnabled { .. } => "set_agent_enabled",
        Command::SaveQueue { .. } => "save_queue",
        Command::SetIdleReasons { .. } => "set_idle_reasons",
        Command::SetMasking { .. } => "set_masking",
    }
}

const TIME_FIELDS: [&str; 3] = ["at", "received_at", "expires_at"];

/// The JSON an agent's desktop receives for an event: the event itself with
/// times in RFC 3339, plus what the desktop needs to show it (display
/// names, the transcript when a conversation starts).
pub fn agent_frame(engine: &Engine, ev: &Event) -> Value {
    let mut v = serde_json::to_value(ev).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        for k in TIME_FIELDS {
            if let Some(ms) = map.get(k).and_then(Value::as_u64) {
                map.insert(k.to_string(), Value::String(rfc3339(ms)));
            }
        }
        if let Some(q) = map.get("queue").and_then(Value::as_str) {
            if let Some(queue) = engine.queue(q) {
                map.insert("queue_name".into(), Value::String(queue.name.clone()));
            }
        }
        match ev {
            Event::ConversationStarted { conversation, .. }
            | Event::ConferenceStarted { conversation, .. } => {
                if let Some(c) = engine.conversation(*conversation) {
                    add_conversation_details(engine, c, map);
                }
            }
            Event::Message {
                from: Party::Agent,
                author,
                ..
            } => {
                map.insert(
                    "author_name".into(),
                    Value::String(agent_name(engine, author)),
                );
            }
            // The desktop marks the reply and adds the transcript's notice.
            Event::DeliveryFailed { reason, .. } => {
                let line =
                    switchboard_core::text::delivery_notice(engine.settings().language, *reason);
                map.insert("text".into(), Value::String(line.into()));
            }
            // The desktop replaces the transcript (and the offer's preview)
            // rather than finding the message it had.
            Event::MessageRedacted { conversation, .. } => {
                if let Some(c) = engine.conversation(*conversation) {
                    add_conversation_details(engine, c, map);
                    map.insert("preview".into(), Value::String(c.preview.clone()));
                }
            }
            _ => {}
        }
    }
    v
}

/// An agent's display name (its id when unknown).
pub fn agent_name(engine: &Engine, agent: &str) -> String {
    engine
        .agent(agent)
        .map(|a| a.config.name.clone())
        .unwrap_or_else(|| agent.to_string())
}

/// Transcript and participants of a conversation, for a desktop frame.
pub fn add_conversation_details(
    engine: &Engine,
    c: &switchboard_core::engine::Conversation,
    map: &mut Map<String, Value>,
) {
    map.insert("state".into(), Value::String(c.state.name().into()));
    map.insert(
        "customer_name".into(),
        Value::String(c.customer_name.clone()),
    );
    map.insert("channel".into(), Value::String(c.channel.clone()));
    map.insert("source".into(), Value::String(c.source.clone()));
    map.insert("received_at".into(), Value::String(rfc3339(c.received_at)));
    map.insert("cad".into(), json!(c.cad));
    map.insert("owner".into(), json!(c.owner));
    if let Some(r) = &c.interrupted_reason {
        map.insert("interrupted_reason".into(), Value::String(r.clone()));
    }
    map.insert("guest".into(), json!(c.guest));
    if let Some(w) = c.customer_wrote_at {
        map.insert("customer_wrote_at".into(), Value::String(rfc3339(w)));
    }
    map.insert(
        "messages".into(),
        Value::Array(
            c.messages
                .iter()
                .map(|m| {
                    let mut v = message_json(m);
                    if m.from == Party::Agent {
                        v["author_name"] = Value::String(agent_name(engine, &m.author));
                    }
                    v
                })
                .collect(),
        ),
    );
    if let Some(q) = engine.queue(&c.queue) {
        map.insert("queue".into(), Value::String(q.id.clone()));
        map.insert("queue_name".into(), Value::String(q.name.clone()));
    }
}

/// A transcript entry on the wire: `{from, author, text, at}`.
pub fn message_json(m: &switchboard_core::model::Message) -> Value {
    let from = match m.from {
        Party::Customer => "customer",
        Party::Agent => "agent",
        Party::System => "system",
    };
    let mut v = json!({ "from": from, "author": m.author, "text": m.text, "at": rfc3339(m.at) });
    if !m.attachments.is_empty() {
        v["attachments"] = json!(m.attachments);
    }
    if let Some(reason) = m.failed {
        v["failed"] = json!(reason.name());
    }
    if let Some(r) = m.receipt {
        v["receipt"] = json!(r.name());
    }
    v
}

/// A reply's attachments in the visitor's frame, at the address the
/// visitor fetches them from with its own token.
fn with_visitor_attachments(mut frame: Value, tenant: &str, d: &Delivery) -> Value {
    if d.attachments.is_empty() {
        return frame;
    }
    let list: Vec<Value> = d
        .attachments
        .iter()
        .map(|a| {
            let mut v = json!(a);
            v["url"] = json!(crate::http::webchat::visitor_url(tenant, &a.id));
            v
        })
        .collect();
    frame["attachments"] = json!(list);
    frame
}

/// What a web chat visitor is told of an event (agent messages go as
/// deliveries, with the agent's raw text).
fn visitor_frame(engine: &Engine, ev: &Event, to_customer: bool) -> Option<Value> {
    let name = |agent: &str| agent_name(engine, agent);
    match ev {
        Event::Transferred { conversation, .. } => Some(json!({
            "type": "notice",
            "conversation": conversation,
            "text": switchboard_core::text::customer_transferred(engine.settings().language),
        })),
        Event::ConversationStarted {
            conversation,
            agent,
            ..
        }
        | Event::ConferenceStarted {
            conversation,
            agent,
            ..
        } => Some(
            json!({"type": "agent_joined", "conversation": conversation, "agent": name(agent)}),
        ),
        Event::ParticipantLeft {
            conversation,
            agent,
            ..
        } => {
            Some(json!({"type": "agent_left", "conversation": conversation, "agent": name(agent)}))
        }
        Event::ConversationEnded { conversation, .. } if to_customer => {
            Some(json!({"type": "conversation_ended", "conversation": conversation}))
        }
        Event::ConversationDropped {
            conversation,
            reason,
            ..
        } if to_customer => Some(
            json!({"type": "conversation_ended", "conversation": conversation, "reason": reason}),
        ),
        Event::ConversationInterrupted { conversation, .. } => Some(
            json!({"type": "notice", "conversation": conversation, "text": switchboard_core::text::customer_interrupted(engine.settings().language)}),
        ),
        _ => None,
    }
}
