//! The three roles over a [`NativePlugin`]: the request JSON built from the
//! host's views (borrowed, serialized without copying the candidates), the
//! answers checked, and the built-in fallbacks on any failure.

use super::plugin::{CallFailure, NativePlugin, Role};
use crate::channel::{
    ChannelAdapter, ChannelError, ChannelEvent, HttpRequest, HttpResponse, Inbound, InboundMessage,
    Outbound, OutboundContext, OutboundMessage, OutgoingRequest, Verdict,
};
use crate::lua::ScriptFailure;
use crate::model::{Cad, WrapUpReason};
use crate::routing::{Candidate, ConversationView, RouteDecision, RoutingPolicy};
use crate::wrapup::{BuiltinWrapUp, WrapUpReasons};
use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use switchboard_plugin::wire;

/// Longest ranked list kept from a policy (as in the Lua host).
const MAX_RANKED: usize = 1000;
/// Most events one inbound request may produce (as in the Lua host).
const MAX_EVENTS: usize = 1000;

#[derive(Serialize)]
struct ConversationJson<'a> {
    id: u64,
    queue: &'a str,
    channel: &'a str,
    customer: &'a str,
    customer_name: &'a str,
    source: &'a str,
    preview: &'a str,
    cad: &'a Cad,
    received_at: u64,
    queued_at: u64,
    last_agent: Option<&'a str>,
}

impl<'a> ConversationJson<'a> {
    fn of(c: &ConversationView<'a>) -> Self {
        ConversationJson {
            id: c.id,
            queue: c.queue,
            channel: c.channel,
            customer: c.customer,
            customer_name: c.customer_name,
            source: c.source,
            preview: c.preview,
            cad: c.cad,
            received_at: c.received_at,
            queued_at: c.queued_at,
            last_agent: c.last_agent,
        }
    }
}

#[derive(Serialize)]
struct CandidateJson<'a> {
    id: &'a str,
    name: &'a str,
    load: u32,
    capacity: u32,
    idle_since: u64,
    skills: &'a [String],
}

struct Candidates<'c, 'a>(&'c [Candidate<'a>]);

impl Serialize for Candidates<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for c in self.0 {
            seq.serialize_element(&CandidateJson {
                id: c.id,
                name: c.name,
                load: c.load,
                capacity: c.capacity,
                idle_since: c.idle_since,
                skills: c.skills,
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct RouteRequestJson<'c, 'a> {
    conversation: ConversationJson<'a>,
    candidates: Candidates<'c, 'a>,
    now: u64,
    generation: u64,
    tenant: &'c str,
}

#[derive(Serialize)]
struct EntryRequestJson<'a> {
    conversation: ConversationJson<'a>,
    queues: &'a [String],
    now: u64,
}

#[derive(Serialize)]
struct HttpRequestJson<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a BTreeMap<String, String>,
    headers: &'a BTreeMap<String, String>,
    body: Cow<'a, str>,
}

#[derive(Serialize)]
struct ChannelRequestJson<'a> {
    request: HttpRequestJson<'a>,
    now: u64,
}

#[derive(Serialize)]
struct OutboundRequestJson<'a> {
    message: &'a OutboundMessage,
    context: OutboundContextJson,
}

#[derive(Serialize)]
struct OutboundContextJson {
    now: u64,
    last_customer_message_at: Option<u64>,
}

fn encode(value: &impl Serialize) -> Result<Vec<u8>, CallFailure> {
    serde_json::to_vec(value).map_err(|e| CallFailure {
        kind: "error",
        message: format!("cannot encode the request: {e}"),
    })
}

fn parse<T: serde::de::DeserializeOwned>(call: &str, bytes: &[u8]) -> Result<T, CallFailure> {
    serde_json::from_slice(bytes).map_err(|e| CallFailure::shape(format!("{call} answered: {e}")))
}

impl NativePlugin {
    /// Encode, call, parse; any failure is counted by [`NativePlugin::call`].
    fn json_call<R>(
        &self,
        role: Role,
        f: switchboard_plugin::abi::JsonFn,
        request: Result<Vec<u8>, CallFailure>,
        check: impl FnOnce(&[u8]) -> Result<R, CallFailure>,
    ) -> Result<R, ScriptFailure> {
        match request {
            Ok(bytes) => self.call(role, f, &bytes, check),
            // Cannot happen with these plain structs; counted all the same.
            Err(e) => self.call(role, f, b"", |_| Err::<R, _>(e)),
        }
    }

    /// The reasons for `queue`, checked (uncounted: also used at load).
    pub(crate) fn fetch_reasons(&self, queue: &str) -> Result<Arc<[WrapUpReason]>, CallFailure> {
        let f = self
            .vtable
            .wrapup_reasons
            .ok_or_else(|| CallFailure::shape("no wrapup_reasons"))?;
        let request = encode(&wire::WrapUpRequest {
            queue: queue.to_string(),
        })?;
        let bytes = self.raw_call(f, &request)?;
        check_reasons(&bytes)
    }
}

impl NativePlugin {
    /// The plugin's canned responses for the tenant's `queues`, checked by
    /// the one check a Lua `responses` script's list goes through
    /// ([`crate::responses::check_responses`]); uncounted: asked at load.
    pub(crate) fn fetch_responses(
        &self,
        queues: &[String],
    ) -> Result<Arc<[crate::responses::CannedResponse]>, CallFailure> {
        let f = self
            .vtable
            .responses
            .ok_or_else(|| CallFailure::shape("no responses"))?;
        let request = encode(&wire::ResponsesRequest {
            queues: queues.to_vec(),
        })?;
        let bytes = self.raw_call(f, &request)?;
        let answer: wire::ResponsesAnswer = parse("responses", &bytes)?;
        let list = answer
            .responses
            .into_iter()
            .map(|r| crate::responses::CannedResponse {
                code: r.code,
                title: r.title,
                text: r.text,
                queues: r.queues,
                language: r.language,
            })
            .collect();
        crate::responses::check_responses(list, queues, "responses").map_err(CallFailure::shape)
    }
}

fn check_reasons(bytes: &[u8]) -> Result<Arc<[WrapUpReason]>, CallFailure> {
    let answer: wire::WrapUpAnswer = parse("wrapup_reasons", bytes)?;
    let reasons = answer
        .reasons
        .into_iter()
        .map(|r| WrapUpReason {
            code: r.code,
            label: r.label,
        })
        .collect();
    crate::wrapup::check_reasons(reasons, "wrapup_reasons").map_err(CallFailure::shape)
}

impl RoutingPolicy for NativePlugin {
    fn entry(&self, conversation: &ConversationView<'_>) -> Option<String> {
        let f = self.vtable.entry?;
        let request = encode(&EntryRequestJson {
            conversation: ConversationJson::of(conversation),
            queues: &self.queues,
            now: self.now(),
        });
        self.json_call(Role::Routing, f, request, |bytes| {
            let answer: wire::EntryAnswer = parse("entry", bytes)?;
            match answer.queue {
                Some(q) if !self.queues.is_empty() && !self.queues.contains(&q) => Err(
                    CallFailure::shape(format!("entry answered unknown queue {q:?}")),
                ),
                other => Ok(other),
            }
        })
        .ok()
        .flatten()
    }

    fn route(
        &self,
        conversation: &ConversationView<'_>,
        candidates: &[Candidate<'_>],
    ) -> RouteDecision {
        if let Some(f) = self.vtable.route_agents {
            return self
                .counted(Role::Routing, || {
                    super::plugin::lock(&self.table).route(self, f, conversation, candidates)
                })
                .unwrap_or(RouteDecision::Fallback);
        }
        let Some(f) = self.vtable.route else {
            return RouteDecision::Fallback;
        };
        let request = encode(&RouteRequestJson {
            conversation: ConversationJson::of(conversation),
            candidates: Candidates(candidates),
            now: self.now(),
            generation: self.generation(),
            tenant: &self.tenant,
        });
        self.json_call(Role::Routing, f, request, |bytes| {
            Ok(match parse::<wire::RouteAnswer>("route", bytes)? {
                wire::RouteAnswer::Agent(a) => RouteDecision::Agent(a),
                wire::RouteAnswer::Ranked(mut list) => {
                    list.truncate(MAX_RANKED);
                    RouteDecision::Ranked(list)
                }
                wire::RouteAnswer::KeepQueued => RouteDecision::KeepQueued,
            })
        })
        .unwrap_or(RouteDecision::Fallback)
    }

    fn generation(&self) -> u64 {
        NativePlugin::generation(self)
    }
}

impl WrapUpReasons for NativePlugin {
    fn reasons(&self, queue: &str) -> Arc<[WrapUpReason]> {
        let Some(f) = self.vtable.wrapup_reasons else {
            return BuiltinWrapUp::shared().reasons(queue);
        };
        let request = encode(&wire::WrapUpRequest {
            queue: queue.to_string(),
        });
        self.json_call(Role::Wrapup, f, request, check_reasons)
            .unwrap_or_else(|_| BuiltinWrapUp::shared().reasons(queue))
    }
}

/// A plugin's adapter for one channel.
#[derive(Debug, Clone, Copy)]
pub struct NativeChannel<'p> {
    plugin: &'p NativePlugin,
    channel: &'p str,
}

impl NativePlugin {
    /// The plugin as the adapter of `channel`, if it fills the channel role.
    pub fn channel<'p>(&'p self, channel: &'p str) -> Option<NativeChannel<'p>> {
        self.vtable.channel_inbound?;
        Some(NativeChannel {
            plugin: self,
            channel,
        })
    }
}

fn request_json<'a>(r: &'a HttpRequest, now: u64) -> ChannelRequestJson<'a> {
    ChannelRequestJson {
        request: HttpRequestJson {
            method: &r.method,
            path: &r.path,
            query: &r.query,
            headers: &r.headers,
            body: String::from_utf8_lossy(&r.body),
        },
        now,
    }
}

fn response_of(r: wire::HttpResponse) -> Result<HttpResponse, CallFailure> {
    if !(100..600).contains(&r.status) {
        return Err(CallFailure::shape(format!(
            "response status {} is not an HTTP status",
            r.status
        )));
    }
    Ok(HttpResponse {
        status: r.status,
        content_type: r.content_type,
        body: r.body,
    })
}

impl NativeChannel<'_> {
    fn err(&self, f: ScriptFailure) -> ChannelError {
        ChannelError {
            channel: self.channel.to_string(),
            message: format!(
                "plugin {} ({}): {}: {}",
                self.plugin.info.name, f.file, f.kind, f.message
            ),
        }
    }

    fn missing(&self, what: &str) -> ChannelError {
        ChannelError {
            channel: self.channel.to_string(),
            message: format!("plugin {} has no {what}", self.plugin.info.name),
        }
    }
}

impl ChannelAdapter for NativeChannel<'_> {
    fn verify(&self, request: &HttpRequest) -> Result<Verdict, ChannelError> {
        let Some(f) = self.plugin.vtable.channel_verify else {
            return Ok(Verdict::Accept);
        };
        let body = encode(&request_json(request, self.plugin.now()));
        self.plugin
            .json_call(Role::Channel, f, body, |bytes| {
                match parse::<wire::Verdict>("channel_verify", bytes)? {
                    wire::Verdict::Accept => Ok(Verdict::Accept),
                    wire::Verdict::Respond(r) => Ok(Verdict::Respond(response_of(r)?)),
                }
            })
            .map_err(|f| self.err(f))
    }

    fn inbound(&self, request: &HttpRequest) -> Result<Inbound, ChannelError> {
        let f = self
            .plugin
            .vtable
            .channel_inbound
            .ok_or_else(|| self.missing("channel_inbound"))?;
        let body = encode(&request_json(request, self.plugin.now()));
        self.plugin
            .json_call(Role::Channel, f, body, |bytes| {
                let answer: wire::InboundAnswer = parse("channel_inbound", bytes)?;
                if answer.events.len() > MAX_EVENTS {
                    return Err(CallFailure::shape("too many events"));
                }
                let mut events = Vec::with_capacity(answer.events.len());
                for ev in answer.events {
                    let wire::ChannelEvent::Message(m) = ev;
                    if m.customer.is_empty() {
                        return Err(CallFailure::shape("a message event needs a customer"));
                    }
                    events.push(ChannelEvent::Message(InboundMessage {
                        customer: m.customer,
                        customer_name: m.customer_name,
                        text: m.text,
                        entry_point: m.entry_point,
                        sent_at: m.sent_at,
                        cad: m.cad,
                        external_id: m.id.filter(|id| !id.is_empty()),
                        attachments: Vec::new(),
                    }));
                }
                Ok(Inbound {
                    events,
                    response: response_of(answer.response)?,
                })
            })
            .map_err(|f| self.err(f))
    }

    fn outbound(
        &self,
        message: &OutboundMessage,
        ctx: &OutboundContext,
    ) -> Result<Outbound, ChannelError> {
        let f = self
            .plugin
            .vtable
            .channel_outbound
            .ok_or_else(|| self.missing("channel_outbound"))?;
        let body = encode(&OutboundRequestJson {
            message,
            context: OutboundContextJson {
                now: ctx.now,
                last_customer_message_at: ctx.last_customer_message_at,
            },
        });
        self.plugin
            .json_call(Role::Channel, f, body, |bytes| {
                match parse::<wire::OutboundAnswer>("channel_outbound", bytes)? {
                    wire::OutboundAnswer::Refuse(reason) => Ok(Outbound::Refuse(reason)),
                    wire::OutboundAnswer::Send(r) => {
                        if !(r.url.starts_with("http://") || r.url.starts_with("https://")) {
                            return Err(CallFailure::shape("url must be an http(s) URL"));
                        }
                        if r.method.is_empty() {
                            return Err(CallFailure::shape("method must not be empty"));
                        }
                        Ok(Outbound::Send(OutgoingRequest {
                            method: r.method,
                            url: r.url,
                            headers: r.headers,
                            body: r.body,
                        }))
                    }
                }
            })
            .map_err(|f| self.err(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the host sends parses as the SDK's request types.
    #[test]
    fn host_requests_match_the_sdk_schemas() {
        let mut cad = Cad::new();
        cad.insert("language".into(), "fr".into());
        let view = ConversationView {
            id: 7,
            queue: "support",
            channel: "webchat",
            customer: "v1",
            customer_name: "Jeanne",
            source: "Web chat",
            preview: "Bonjour",
            cad: &cad,
            received_at: 1,
            queued_at: 2,
            last_agent: Some("a0"),
        };
        let skills = vec!["fr".to_string()];
        let cands = [Candidate {
            id: "a1",
            name: "Ann",
            load: 1,
            capacity: 5,
            idle_since: 3,
            skills: &skills,
            stamp: 0,
        }];
        let bytes = encode(&RouteRequestJson {
            conversation: ConversationJson::of(&view),
            candidates: Candidates(&cands),
            now: 9,
            generation: 4,
            tenant: "t",
        })
        .expect("encode");
        let r: wire::RouteRequest = serde_json::from_slice(&bytes).expect("route request");
        assert_eq!(r.conversation.last_agent.as_deref(), Some("a0"));
        assert_eq!(r.conversation.cad["language"], "fr");
        assert_eq!(r.candidates[0].skills, skills);
        assert_eq!((r.now, r.generation, r.tenant.as_str()), (9, 4, "t"));

        let req = HttpRequest {
            method: "POST".into(),
            path: "/sms".into(),
            body: vec![b'h', 0xff, b'i'],
            ..Default::default()
        };
        let bytes = encode(&request_json(&req, 5)).expect("encode");
        let r: wire::ChannelRequest = serde_json::from_slice(&bytes).expect("channel request");
        assert_eq!(r.request.body, "h\u{fffd}i");

        let m = OutboundMessage {
            conversation: 3,
            customer: "+1555".into(),
            author: "Ann".into(),
            text: "hi".into(),
        };
        let bytes = encode(&OutboundRequestJson {
            message: &m,
            context: OutboundContextJson {
                now: 1,
                last_customer_message_at: None,
            },
        })
        .expect("encode");
        let r: wire::OutboundRequest = serde_json::from_slice(&bytes).expect("outbound request");
        assert_eq!(r.message.text, "hi");
    }

    #[test]
    fn wrapup_lists_are_checked() {
        assert!(check_reasons(br#"{"reasons":[{"code":"a","label":"A"}]}"#).is_ok());
        for bad in [
            &br#"{"reasons":[]}"#[..],
            br#"{"reasons":[{"code":"a","label":"A"},{"code":"a","label":"B"}]}"#,
            br#"{"reasons":[{"code":" ","label":"A"}]}"#,
            br#"[{"code":"a","label":"A"}]"#,
            b"garbage",
        ] {
            let e = check_reasons(bad).expect_err("refused");
            assert_eq!(e.kind, "shape");
        }
    }
}
