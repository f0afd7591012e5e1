//! The JSON schemas of every call, as serde types: what the host sends
//! (`…Request`) and what a plugin answers (`…Answer`).
//!
//! Requests are read leniently (the host may add fields; unknown ones are
//! ignored); answers are read strictly (`deny_unknown_fields`), so a typo
//! in a plugin's answer is a counted shape error, not a silent default.
//! Times are milliseconds since the Unix epoch.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Key/value data attached to a conversation.
pub type Cad = BTreeMap<String, String>;

/// The conversation being routed (texts masked when the tenant masks).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: u64,
    pub queue: String,
    pub channel: String,
    pub customer: String,
    pub customer_name: String,
    pub source: String,
    /// First customer message.
    pub preview: String,
    #[serde(default)]
    pub cad: Cad,
    pub received_at: u64,
    /// When it joined its current queue.
    pub queued_at: u64,
    /// The agent who last handled this customer.
    #[serde(default)]
    pub last_agent: Option<String>,
}

/// An agent who may take the conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub id: String,
    pub name: String,
    pub load: u32,
    pub capacity: u32,
    /// Since when the agent has been free of new work: the longest-idle key.
    pub idle_since: u64,
    #[serde(default)]
    pub skills: Vec<String>,
}

/// `route`: `{"conversation": …, "candidates": […], "now": ms, "generation": n, "tenant": "…"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRequest {
    pub conversation: Conversation,
    /// Never empty.
    pub candidates: Vec<Candidate>,
    #[serde(default)]
    pub now: u64,
    #[serde(default)]
    pub generation: u64,
    #[serde(default)]
    pub tenant: String,
}

/// `route`'s answer: `{"agent": "id"}`, `{"ranked": ["id", …]}` or
/// `{"keep_queued": true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRouteAnswer", into = "RawRouteAnswer")]
pub enum RouteAnswer {
    /// Offer to this agent.
    Agent(String),
    /// Offer to the first of these that is still a candidate.
    Ranked(Vec<String>),
    /// Leave it queued for now.
    KeepQueued,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRouteAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ranked: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keep_queued: Option<bool>,
}

impl TryFrom<RawRouteAnswer> for RouteAnswer {
    type Error = String;
    fn try_from(r: RawRouteAnswer) -> Result<Self, String> {
        match (r.agent, r.ranked, r.keep_queued) {
            (Some(a), None, None) => Ok(RouteAnswer::Agent(a)),
            (None, Some(l), None) => Ok(RouteAnswer::Ranked(l)),
            (None, None, Some(true)) => Ok(RouteAnswer::KeepQueued),
            _ => Err(
                "expected exactly one of {\"agent\": id}, {\"ranked\": [ids]}, {\"keep_queued\": true}"
                    .into(),
            ),
        }
    }
}

impl From<RouteAnswer> for RawRouteAnswer {
    fn from(a: RouteAnswer) -> Self {
        match a {
            RouteAnswer::Agent(a) => RawRouteAnswer {
                agent: Some(a),
                ..Default::default()
            },
            RouteAnswer::Ranked(l) => RawRouteAnswer {
                ranked: Some(l),
                ..Default::default()
            },
            RouteAnswer::KeepQueued => RawRouteAnswer {
                keep_queued: Some(true),
                ..Default::default()
            },
        }
    }
}

/// One agent of a routing plugin's table, in `slot`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub slot: u32,
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub skills: Vec<String>,
    pub load: u32,
    pub capacity: u32,
    pub idle_since: u64,
}

/// `agents` (ABI 2): `{"reset": bool, "set": [AgentRecord…], "remove": [slot…]}`.
/// `reset` empties the table first; `set` adds an agent or replaces the
/// one in its slot; `remove` frees slots the host may reuse. The answer is
/// ignored (`{}` will do); a non-zero status makes the host resend the
/// whole table with `reset` next time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentsRequest {
    #[serde(default)]
    pub reset: bool,
    #[serde(default)]
    pub set: Vec<AgentRecord>,
    #[serde(default)]
    pub remove: Vec<u32>,
}

/// `entry`: `{"conversation": …, "queues": ["support", …], "now": ms}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRequest {
    pub conversation: Conversation,
    /// The tenant's queues; an answer must be one of them.
    #[serde(default)]
    pub queues: Vec<String>,
    #[serde(default)]
    pub now: u64,
}

/// `entry`'s answer: `{"queue": "billing"}`, or `{"queue": null}` to keep
/// the channel's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryAnswer {
    #[serde(default)]
    pub queue: Option<String>,
}

/// `wrapup_reasons`: `{"queue": "support"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrapUpRequest {
    pub queue: String,
}

/// One reason an agent may pick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrapUpReason {
    pub code: String,
    pub label: String,
}

/// `wrapup_reasons`' answer: `{"reasons": [{"code": …, "label": …}, …]}`,
/// non-empty, codes unique, codes and labels not blank.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrapUpAnswer {
    pub reasons: Vec<WrapUpReason>,
}

/// `responses`: `{"queues": ["support", …]}`, the tenant's queues (a
/// response's `queues` must be among them). Asked once, when the plugin is
/// loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsesRequest {
    pub queues: Vec<String>,
}

/// One canned response: `text` may hold `{customer_name}`, `{agent_name}`
/// and `{queue}`; `queues` empty: offered in every queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CannedResponse {
    pub code: String,
    pub title: String,
    pub text: String,
    #[serde(default)]
    pub queues: Vec<String>,
    #[serde(default)]
    pub language: Option<String>,
}

/// `responses`' answer: `{"responses": [{code, title, text, queues?,
/// language?}, …]}`, checked as a Lua `responses` script's list is
/// (non-empty, no blank code, title or text, unique codes, text at most
/// 1000 characters, known queues).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsesAnswer {
    pub responses: Vec<CannedResponse>,
}

/// An HTTP request as the host received it. The body is text (a non-UTF-8
/// body reaches the plugin with U+FFFD replacements).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// Query parameters, decoded.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Header names in lower case.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: String,
}

/// What the host answers to the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpResponse {
    /// 100..=599.
    pub status: u16,
    #[serde(default = "text_plain")]
    pub content_type: String,
    #[serde(default)]
    pub body: String,
}

fn text_plain() -> String {
    "text/plain; charset=utf-8".into()
}

impl HttpResponse {
    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        HttpResponse {
            status,
            content_type: text_plain(),
            body: body.into(),
        }
    }
}

/// `channel_verify` and `channel_inbound`: `{"request": …, "now": ms}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRequest {
    pub request: HttpRequest,
    #[serde(default)]
    pub now: u64,
}

/// `channel_verify`'s answer: `{"accept": true}` (go on to inbound) or
/// `{"respond": {status, content_type, body}}` (answer now).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawVerdict", into = "RawVerdict")]
pub enum Verdict {
    Accept,
    Respond(HttpResponse),
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVerdict {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accept: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    respond: Option<HttpResponse>,
}

impl TryFrom<RawVerdict> for Verdict {
    type Error = String;
    fn try_from(r: RawVerdict) -> Result<Self, String> {
        match (r.accept, r.respond) {
            (Some(true), None) => Ok(Verdict::Accept),
            (None, Some(resp)) => Ok(Verdict::Respond(resp)),
            _ => Err("expected {\"accept\": true} or {\"respond\": {status, body}}".into()),
        }
    }
}

impl From<Verdict> for RawVerdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Accept => RawVerdict {
                accept: Some(true),
                respond: None,
            },
            Verdict::Respond(r) => RawVerdict {
                accept: None,
                respond: Some(r),
            },
        }
    }
}

/// A customer's message, normalized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundMessage {
    /// The customer's id on the channel (non-empty).
    pub customer: String,
    #[serde(default)]
    pub customer_name: Option<String>,
    pub text: String,
    /// The entry point it came through (the number texted, the page id…).
    #[serde(default)]
    pub entry_point: String,
    /// When the channel says it was sent.
    #[serde(default)]
    pub sent_at: Option<u64>,
    /// Extra CAD variables.
    #[serde(default)]
    pub cad: Cad,
    /// The channel's id of the message (e.g. Twilio's `MessageSid`): a
    /// redelivery with the same id is stored once.
    #[serde(default)]
    pub id: Option<String>,
}

/// What an inbound request means: `{"type": "message", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelEvent {
    Message(InboundMessage),
}

/// `channel_inbound`'s answer: `{"events": [...], "response": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundAnswer {
    #[serde(default)]
    pub events: Vec<ChannelEvent>,
    /// Given to the channel once every event is handled.
    pub response: HttpResponse,
}

/// An agent's message on its way to the customer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMessage {
    pub conversation: u64,
    pub customer: String,
    pub author: String,
    pub text: String,
}

/// What the host knows when the outgoing request is built.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundContext {
    pub now: u64,
    /// When the customer last wrote.
    #[serde(default)]
    pub last_customer_message_at: Option<u64>,
}

/// `channel_outbound`: `{"message": …, "context": …}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundRequest {
    pub message: OutboundMessage,
    pub context: OutboundContext,
}

/// The HTTP request the host sends. `body` is JSON; a JSON *string* body
/// sent with a non-JSON `content-type` header (e.g. a form) is meant to go
/// out as that text, unquoted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutgoingRequest {
    #[serde(default = "post")]
    pub method: String,
    /// An `http://` or `https://` URL.
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: serde_json::Value,
}

fn post() -> String {
    "POST".into()
}

/// `channel_outbound`'s answer: `{"send": {method, url, headers, body}}` or
/// `{"refuse": "why the customer cannot be reached"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OutboundAnswer {
    Send(OutgoingRequest),
    Refuse(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn route_answers_have_one_shape_each() {
        let cases = [
            (json!({"agent": "a"}), Some(RouteAnswer::Agent("a".into()))),
            (
                json!({"ranked": ["a", "b"]}),
                Some(RouteAnswer::Ranked(vec!["a".into(), "b".into()])),
            ),
            (json!({"keep_queued": true}), Some(RouteAnswer::KeepQueued)),
            (json!({"keep_queued": false}), None),
            (json!({"agent": "a", "ranked": []}), None),
            (json!({"agnet": "a"}), None),
            (json!({"agent": 42}), None),
            (json!({}), None),
            (json!("a"), None),
        ];
        for (input, expected) in cases {
            let got: Option<RouteAnswer> = serde_json::from_value(input.clone()).ok();
            assert_eq!(got, expected, "{input}");
            if let Some(answer) = got {
                assert_eq!(serde_json::to_value(&answer).ok(), Some(input));
            }
        }
    }

    #[test]
    fn verdicts_and_outbound_answers_round_trip() {
        let v: Verdict = serde_json::from_value(json!({"accept": true})).expect("accept");
        assert_eq!(v, Verdict::Accept);
        let v: Verdict =
            serde_json::from_value(json!({"respond": {"status": 405}})).expect("respond");
        assert_eq!(v, Verdict::Respond(HttpResponse::text(405, "")));
        assert!(serde_json::from_value::<Verdict>(json!({"accept": false})).is_err());
        let o: OutboundAnswer =
            serde_json::from_value(json!({"refuse": "opted out"})).expect("refuse");
        assert_eq!(o, OutboundAnswer::Refuse("opted out".into()));
        let o: OutboundAnswer =
            serde_json::from_value(json!({"send": {"url": "https://x"}})).expect("send");
        let OutboundAnswer::Send(r) = o else {
            panic!("not a send")
        };
        assert_eq!(r.method, "POST");
        assert_eq!(r.body, serde_json::Value::Null);
    }

    #[test]
    fn events_are_tagged_by_type() {
        let a: InboundAnswer = serde_json::from_value(json!({
            "events": [{"type": "message", "customer": "+1555", "text": "hi"}],
            "response": {"status": 200}
        }))
        .expect("inbound");
        let ChannelEvent::Message(m) = &a.events[0];
        assert_eq!(m.customer, "+1555");
        assert!(serde_json::from_value::<InboundAnswer>(json!({
            "events": [{"type": "typing", "customer": "+1555"}],
            "response": {"status": 200}
        }))
        .is_err());
    }
}
