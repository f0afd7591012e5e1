//! The three roles over a [`Generation`]: routing policy, wrap-up lists and
//! channel adapters, and how their data crosses into Lua.
//!
//! Routing runs on every offer, so candidates are not serialized per call:
//! each agent has one read-only Lua table kept in the state and updated
//! only when its load, capacity, idle time, name or skills change, and the
//! `candidates` array (read-only too) is patched in place where it differs
//! from the previous call.

use super::generation::{CallError, Generation, Host};
use super::sandbox;
use crate::channel::{
    ChannelAdapter, ChannelError, ChannelEvent, HttpRequest, HttpResponse, Inbound, InboundMessage,
    Outbound, OutboundContext, OutboundMessage, OutgoingRequest, Received, Verdict,
};
use crate::model::WrapUpReason;
use crate::responses::{check_responses, CannedResponse};
use crate::routing::{Candidate, ConversationView, RouteDecision, RoutingPolicy};
use crate::wrapup::{check_reasons, BuiltinWrapUp, WrapUpReasons};
use mlua::{Function, Lua, LuaSerdeExt, Table, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Longest ranked list a policy may return.
const MAX_RANKED: usize = 1000;
/// Most events one inbound request may produce.
const MAX_EVENTS: usize = 1000;

struct AgentEntry {
    id: String,
    data: Table,
    proxy: Table,
    name: String,
    load: u32,
    capacity: u32,
    idle_since: u64,
    skills: Vec<String>,
    /// Where the id, name and skills were last read from (see `refresh`).
    id_at: *const str,
    name_at: *const str,
    skills_at: *const [String],
}

// SAFETY: `id_at`, `name_at` and `skills_at` are only compared as addresses, never
// dereferenced.
unsafe impl Send for AgentEntry {}

/// The agents' Lua tables and the reusable candidates array.
pub(crate) struct AgentCache {
    entries: Vec<AgentEntry>,
    index: HashMap<String, usize>,
    array: Table,
    proxy: Table,
    /// Entry shown at each position of `array`.
    shown: Vec<usize>,
}

impl AgentCache {
    pub fn new(lua: &Lua) -> mlua::Result<AgentCache> {
        let array = lua.create_table()?;
        let proxy = sandbox::readonly(lua, array.clone(), "candidates")?;
        Ok(AgentCache {
            entries: Vec::new(),
            index: HashMap::new(),
            array,
            proxy,
            shown: Vec::new(),
        })
    }

    fn entry(&mut self, lua: &Lua, c: &Candidate<'_>) -> mlua::Result<usize> {
        if let Some(&i) = self.index.get(c.id) {
            return Ok(i);
        }
        let data = lua.create_table()?;
        data.raw_set("id", c.id)?;
        let proxy = sandbox::readonly(lua, data.clone(), "an agent")?;
        let mut e = AgentEntry {
            id: c.id.to_string(),
            data,
            proxy,
            name: String::new(),
            load: u32::MAX,
            capacity: u32::MAX,
            idle_since: u64::MAX,
            skills: vec!["\0".into()],
            id_at: "",
            name_at: "",
            skills_at: std::ptr::slice_from_raw_parts(std::ptr::null(), 0),
        };
        Self::refresh(lua, &mut e, c)?;
        self.entries.push(e);
        let i = self.entries.len() - 1;
        self.index.insert(c.id.to_string(), i);
        Ok(i)
    }

    fn refresh(lua: &Lua, e: &mut AgentEntry, c: &Candidate<'_>) -> mlua::Result<()> {
        if e.load != c.load {
            e.load = c.load;
            e.data.raw_set("load", c.load)?;
        }
        if e.capacity != c.capacity {
            e.capacity = c.capacity;
            e.data.raw_set("capacity", c.capacity)?;
        }
        if e.idle_since != c.idle_since {
            e.idle_since = c.idle_since;
            e.data.raw_set("idle_since", c.idle_since)?;
        }
        // Agent configs live as long as the engine and never change in
        // place: the same address and length means the same text, so most
        // calls skip comparing names and skills.
        if !std::ptr::eq(e.name_at, c.name) {
            e.name_at = c.name;
            if e.name != c.name {
                e.name = c.name.to_string();
                e.data.raw_set("name", c.name)?;
            }
        }
        if !std::ptr::eq(e.skills_at, c.skills) {
            e.skills_at = c.skills;
            if e.skills.as_slice() == c.skills {
                return Ok(());
            }
            e.skills = c.skills.to_vec();
            let list = lua.create_sequence_from(c.skills.iter().map(String::as_str))?;
            let set = lua.create_table()?;
            for s in c.skills {
                set.raw_set(s.as_str(), true)?;
            }
            e.data
                .raw_set("skills", sandbox::readonly(lua, list, "skills")?)?;
            e.data
                .raw_set("skill", sandbox::readonly(lua, set, "skill")?)?;
        }
        Ok(())
    }

    /// The read-only `candidates` array for this call.
    pub fn candidates(&mut self, lua: &Lua, candidates: &[Candidate<'_>]) -> mlua::Result<Table> {
        for (pos, c) in candidates.iter().enumerate() {
            let idx = match self.shown.get(pos) {
                Some(&i)
                    if std::ptr::eq(self.entries[i].id_at, c.id) || self.entries[i].id == c.id =>
                {
                    self.entries[i].id_at = c.id;
                    i
                }
                _ => {
                    let i = self.entry(lua, c)?;
                    self.array.raw_set(pos + 1, self.entries[i].proxy.clone())?;
                    if pos < self.shown.len() {
                        self.shown[pos] = i;
                    } else {
                        self.shown.push(i);
                    }
                    i
                }
            };
            Self::refresh(lua, &mut self.entries[idx], c)?;
        }
        for pos in (candidates.len()..self.shown.len()).rev() {
            self.array.raw_set(pos + 1, Value::Nil)?;
        }
        self.shown.truncate(candidates.len());
        Ok(self.proxy.clone())
    }
}

fn conversation_table(host: &Host, c: &ConversationView<'_>) -> mlua::Result<Table> {
    let cad: mlua::Variadic<&str> = c
        .cad
        .iter()
        .flat_map(|(k, v)| [k.as_str(), v.as_str()])
        .collect();
    host.conversation.call((
        c.id,
        c.queue,
        c.channel,
        c.customer,
        c.customer_name,
        c.source,
        c.preview,
        c.received_at,
        c.queued_at,
        c.last_agent,
        cad,
    ))
}

fn decision(v: Value) -> Result<RouteDecision, CallError> {
    match v {
        Value::Nil => Ok(RouteDecision::KeepQueued),
        Value::String(s) => Ok(RouteDecision::Agent(s.to_str()?.to_string())),
        Value::Table(t) => ranked(&t).map(RouteDecision::Ranked),
        other => Err(CallError::Shape(format!(
            "route returned a {}; expected an agent id, a list of agent ids or nil",
            other.type_name()
        ))),
    }
}

/// A returned list of agent ids: keys exactly 1..n, every value a string.
/// Anything else (`{agent = {1, 2, 3}, rank = "x"}`, a hole, a proxy such
/// as `candidates`) is a shape error, never a silent "no answer".
fn ranked(t: &Table) -> Result<Vec<String>, CallError> {
    if t.metatable().is_some() {
        return Err(CallError::Shape(
            "route returned a table with a metatable (candidates?); expected a list of agent ids"
                .into(),
        ));
    }
    let len = t.raw_len();
    let mut list = Vec::with_capacity(len.min(MAX_RANKED));
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let index = match k {
            Value::Integer(i) if i >= 1 && (i as usize) <= len => i as usize,
            other => {
                let key = match &other {
                    Value::String(s) => format!("key {:?}", s.to_string_lossy()),
                    Value::Integer(i) => format!("index {i}"),
                    o => format!("a {} key", o.type_name()),
                };
                return Err(CallError::Shape(format!(
                    "route returned a table with {key}; expected a list of agent ids"
                )));
            }
        };
        match v {
            Value::String(_) => {}
            other => {
                return Err(CallError::Shape(format!(
                    "route returned a list holding a {} at {index}; expected agent ids",
                    other.type_name()
                )))
            }
        }
    }
    for v in t.sequence_values::<String>().take(MAX_RANKED) {
        list.push(v?);
    }
    Ok(list)
}

impl Generation {
    fn with_ctx(&self, host: &Host) -> mlua::Result<Table> {
        host.ctx.raw_set("now", self.now())?;
        Ok(host.ctx.clone())
    }
}

impl RoutingPolicy for Generation {
    fn entry(&self, conversation: &ConversationView<'_>) -> Option<String> {
        let file = self.routing_file.as_deref()?;
        let r = self.call(file, |host| {
            let Some(f) = host.entry.clone() else {
                return Ok(None);
            };
            let conv = conversation_table(host, conversation)?;
            match host.invoke(&f, conv)? {
                Value::Nil => Ok(None),
                Value::String(s) => {
                    let q = s.to_str()?.to_string();
                    if self.queues.contains(&q) {
                        Ok(Some(q))
                    } else {
                        Err(CallError::Shape(format!(
                            "entry returned unknown queue {q:?}"
                        )))
                    }
                }
                other => Err(CallError::Shape(format!(
                    "entry returned a {}; expected a queue id or nil",
                    other.type_name()
                ))),
            }
        });
        r.ok().flatten()
    }

    fn route(
        &self,
        conversation: &ConversationView<'_>,
        candidates: &[Candidate<'_>],
    ) -> RouteDecision {
        let Some(file) = self.routing_file.as_deref() else {
            return RouteDecision::Fallback;
        };
        let r = self.call(file, |host| {
            let Some(f) = host.route.clone() else {
                return Err(CallError::Shape("no route function".into()));
            };
            let conv = conversation_table(host, conversation)?;
            let cands = host.agents.candidates(&host.lua, candidates)?;
            let ctx = self.with_ctx(host)?;
            decision(host.invoke(&f, (conv, cands, ctx))?)
        });
        r.unwrap_or(RouteDecision::Fallback)
    }

    fn generation(&self) -> u64 {
        self.number()
    }
}

impl WrapUpReasons for Generation {
    fn reasons(&self, queue: &str) -> Arc<[WrapUpReason]> {
        self.wrapup_for(queue)
            .unwrap_or_else(|| BuiltinWrapUp::shared().reasons(queue))
    }
}

fn reason_list(t: &Table, what: &str) -> Result<Arc<[WrapUpReason]>, String> {
    let mut out = Vec::new();
    for (i, v) in t.sequence_values::<Value>().enumerate() {
        let Ok(Value::Table(r)) = v else {
            return Err(format!(
                "{what}: entry {} is not a {{code, label}} table",
                i + 1
            ));
        };
        let code: Option<String> = r.get("code").ok().flatten();
        let label: Option<String> = r.get("label").ok().flatten();
        let (Some(code), Some(label)) = (code, label) else {
            return Err(format!(
                "{what}: entry {} needs a string code and label",
                i + 1
            ));
        };
        out.push(WrapUpReason { code, label });
    }
    check_reasons(out, what)
}

type Lists = (
    Option<Arc<[WrapUpReason]>>,
    Vec<(String, Arc<[WrapUpReason]>)>,
);

/// A wrap-up script's lists: `{ {code, label}, … }` or
/// `{ reasons = { … }, queues = { billing = { … } } }`.
pub(crate) fn wrapup_lists(module: &Table, queues: &[String]) -> Result<Lists, String> {
    let reasons: Value = module.get("reasons").map_err(|e| e.to_string())?;
    let default = match reasons {
        Value::Table(t) => Some(reason_list(&t, "reasons")?),
        Value::Nil if module.raw_len() > 0 => Some(reason_list(module, "reasons")?),
        Value::Nil => None,
        _ => return Err("reasons must be a list of {code, label}".into()),
    };
    let mut per_queue = Vec::new();
    if let Value::Table(qs) = module.get::<Value>("queues").map_err(|e| e.to_string())? {
        for pair in qs.pairs::<String, Table>() {
            let (q, t) = pair.map_err(|_| "queues must map queue ids to lists".to_string())?;
            if !queues.contains(&q) {
                return Err(format!("wrap-up list for unknown queue {q:?}"));
            }
            per_queue.push((q.clone(), reason_list(&t, &format!("queues.{q}"))?));
        }
    }
    if default.is_none() && per_queue.is_empty() {
        return Err("a wrap-up script must return a non-empty list of {code, label}".into());
    }
    Ok((default, per_queue))
}

/// A responses script's list: `{ {code, title, text, queues?, language?}, … }`
/// or `{ responses = { … } }`.
pub(crate) fn responses_list(
    module: &Table,
    queues: &[String],
) -> Result<Arc<[CannedResponse]>, String> {
    const SHAPE: &str =
        "a responses script must return a list of {code, title, text, queues?, language?}";
    let list = match module
        .get::<Value>("responses")
        .map_err(|e| e.to_string())?
    {
        Value::Table(t) => t,
        Value::Nil => module.clone(),
        _ => return Err(SHAPE.into()),
    };
    let mut out = Vec::new();
    for (i, v) in list.sequence_values::<Value>().enumerate() {
        let n = i + 1;
        let Ok(Value::Table(r)) = v else {
            return Err(format!("responses: entry {n} is not a table"));
        };
        let text_of = |key: &str| -> Result<Option<String>, String> {
            match r.get::<Value>(key) {
                Ok(Value::Nil) => Ok(None),
                Ok(Value::String(s)) => s
                    .to_str()
                    .map(|s| Some(s.to_string()))
                    .map_err(|_| format!("responses: entry {n}: {key} is not UTF-8")),
                _ => Err(format!("responses: entry {n}: {key} must be a string")),
            }
        };
        let (Some(code), Some(title), Some(text)) =
            (text_of("code")?, text_of("title")?, text_of("text")?)
        else {
            return Err(format!(
                "responses: entry {n} needs a string code, title and text"
            ));
        };
        let language = text_of("language")?;
        let mut qs = Vec::new();
        match r.get::<Value>("queues") {
            Ok(Value::Nil) => {}
            Ok(Value::Table(t)) => {
                for q in t.sequence_values::<Value>() {
                    match q {
                        Ok(Value::String(s)) => match s.to_str() {
                            Ok(s) => qs.push(s.to_string()),
                            Err(_) => {
                                return Err(format!("responses: entry {n}: a queue is not UTF-8"))
                            }
                        },
                        _ => {
                            return Err(format!(
                                "responses: entry {n}: queues must be a list of queue ids"
                            ))
                        }
                    }
                }
            }
            _ => {
                return Err(format!(
                    "responses: entry {n}: queues must be a list of queue ids"
                ))
            }
        }
        out.push(CannedResponse {
            code,
            title,
            text,
            queues: qs,
            language,
        });
    }
    if out.is_empty() {
        return Err(SHAPE.into());
    }
    check_responses(out, queues, "responses")
}

/// A loaded channel adapter.
pub(crate) struct ChannelFns {
    verify: Option<Function>,
    inbound: Function,
    outbound: Function,
    settings: Table,
}

impl ChannelFns {
    pub fn new(lua: &Lua, m: &Table, settings: &BTreeMap<String, String>) -> Result<Self, String> {
        let f = |name: &str| match m.get::<Value>(name) {
            Ok(Value::Function(f)) => Ok(Some(f)),
            Ok(Value::Nil) => Ok(None),
            _ => Err(format!("{name} must be a function")),
        };
        let verify = f("verify")?;
        let inbound = f("inbound")?.ok_or("a channel adapter must define inbound(request, ctx)")?;
        let outbound =
            f("outbound")?.ok_or("a channel adapter must define outbound(message, ctx)")?;
        let t = (|| {
            let t = lua.create_table()?;
            for (k, v) in settings {
                t.raw_set(k.as_str(), v.as_str())?;
            }
            sandbox::readonly(lua, t, "settings")
        })()
        .map_err(|e| e.to_string())?;
        Ok(ChannelFns {
            verify,
            inbound,
            outbound,
            settings: t,
        })
    }
}

/// A generation's adapter for one channel.
#[derive(Debug, Clone, Copy)]
pub struct LuaChannel<'g> {
    generation: &'g Generation,
    channel: &'g str,
    file: &'g str,
}

impl Generation {
    /// The adapter of `channel`, if a script is loaded for it.
    pub fn channel<'g>(&'g self, channel: &'g str) -> Option<LuaChannel<'g>> {
        let file = self.channel_files.get(channel)?;
        Some(LuaChannel {
            generation: self,
            channel,
            file,
        })
    }
}

fn request_table(lua: &Lua, r: &HttpRequest) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("method", r.method.as_str())?;
    t.raw_set("path", r.path.as_str())?;
    let q = lua.create_table()?;
    for (k, v) in &r.query {
        q.raw_set(k.as_str(), v.as_str())?;
    }
    t.raw_set("query", q)?;
    let h = lua.create_table()?;
    for (k, v) in &r.headers {
        h.raw_set(k.as_str(), v.as_str())?;
    }
    t.raw_set("headers", h)?;
    t.raw_set("body", lua.create_string(&r.body)?)?;
    Ok(t)
}

fn response_of(v: &Table) -> Result<HttpResponse, CallError> {
    let status: Option<u16> = v.get("status").ok().flatten();
    let Some(status) = status.filter(|s| (100..600).contains(s)) else {
        return Err(CallError::Shape(
            "response.status must be an HTTP status".into(),
        ));
    };
    let body: Option<String> = v.get("body").ok().flatten();
    let content_type: Option<String> = v.get("content_type").ok().flatten();
    Ok(HttpResponse {
        status,
        content_type: content_type.unwrap_or_else(|| "text/plain; charset=utf-8".into()),
        body: body.unwrap_or_default(),
    })
}

fn string_field(t: &Table, k: &str) -> Result<Option<String>, CallError> {
    match t.get::<Value>(k)? {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(s.to_str()?.to_string())),
        other => Err(CallError::Shape(format!(
            "{k} must be a string, not a {}",
            other.type_name()
        ))),
    }
}

fn message_of(t: &Table) -> Result<InboundMessage, CallError> {
    let customer = string_field(t, "customer")?
        .filter(|c| !c.is_empty())
        .ok_or_else(|| CallError::Shape("a message event needs a customer".into()))?;
    let text = string_field(t, "text")?
        .ok_or_else(|| CallError::Shape("a message event needs a text".into()))?;
    let mut cad = BTreeMap::new();
    if let Value::Table(c) = t.get::<Value>("cad")? {
        for pair in c.pairs::<String, String>() {
            let (k, v) =
                pair.map_err(|_| CallError::Shape("cad must map strings to strings".into()))?;
            cad.insert(k, v);
        }
    }
    let sent_at = match t.get::<Value>("sent_at")? {
        Value::Integer(i) => u64::try_from(i).ok(),
        Value::Number(n) if n >= 0.0 => Some(n as u64),
        _ => None,
    };
    Ok(InboundMessage {
        customer,
        customer_name: string_field(t, "customer_name")?,
        text,
        entry_point: string_field(t, "entry_point")?.unwrap_or_default(),
        sent_at,
        cad,
        external_id: string_field(t, "id")?.filter(|id| !id.is_empty()),
        attachments: attachments_of(t)?,
    })
}

/// Most attachments taken from one message (Messenger sends up to 10).
pub const MAX_ATTACHMENTS: usize = 10;

fn degrees(t: &Table, k: &str) -> Result<Option<crate::model::Degrees>, CallError> {
    Ok(match t.get::<Value>(k)? {
        Value::Integer(i) => Some(crate::model::Degrees(i as f64)),
        Value::Number(n) if n.is_finite() => Some(crate::model::Degrees(n)),
        _ => None,
    })
}

/// A message event's `attachments`: a list of `{type, url?, title?,
/// name?, latitude?, longitude?}`.
fn attachments_of(t: &Table) -> Result<Vec<crate::channel::InboundAttachment>, CallError> {
    const KINDS: &[&str] = &[
        "image", "video", "audio", "file", "location", "sticker", "link",
    ];
    let Value::Table(list) = t.get::<Value>("attachments")? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in list.sequence_values::<Value>() {
        let Value::Table(a) = item? else {
            return Err(CallError::Shape("an attachment must be a table".into()));
        };
        let kind = string_field(&a, "type")?.unwrap_or_default();
        if !KINDS.contains(&kind.as_str()) {
            return Err(CallError::Shape(format!(
                "attachment type must be one of {}",
                KINDS.join(", ")
            )));
        }
        if out.len() == MAX_ATTACHMENTS {
            return Err(CallError::Shape(format!(
                "at most {MAX_ATTACHMENTS} attachments per message"
            )));
        }
        out.push(crate::channel::InboundAttachment {
            kind,
            url: string_field(&a, "url")?,
            title: string_field(&a, "title")?,
            name: string_field(&a, "name")?,
            latitude: degrees(&a, "latitude")?,
            longitude: degrees(&a, "longitude")?,
        });
    }
    Ok(out)
}

impl LuaChannel<'_> {
    fn err(&self, f: super::ScriptFailure) -> ChannelError {
        ChannelError {
            channel: self.channel.to_string(),
            message: format!(
                "{}:{}: {}",
                f.file,
                f.line.map_or_else(|| "?".into(), |l| l.to_string()),
                f.message
            ),
        }
    }

    fn fns<'h>(&self, host: &'h Host) -> Result<&'h ChannelFns, CallError> {
        host.channels
            .get(self.channel)
            .ok_or_else(|| CallError::Shape("channel not loaded".into()))
    }

    fn ctx(&self, host: &Host, fns: &ChannelFns) -> mlua::Result<Table> {
        let t = host.lua.create_table()?;
        t.raw_set("now", self.generation.now())?;
        t.raw_set("settings", fns.settings.clone())?;
        Ok(t)
    }
}

impl LuaChannel<'_> {
    /// The request and context tables a call is given.
    fn args(&self, host: &Host, request: &HttpRequest) -> Result<(Table, Table), CallError> {
        let fns = self.fns(host)?;
        Ok((request_table(&host.lua, request)?, self.ctx(host, fns)?))
    }

    fn verify_in(&self, host: &mut Host, args: (Table, Table)) -> Result<Verdict, CallError> {
        let Some(f) = self.fns(host)?.verify.clone() else {
            return Ok(Verdict::Accept);
        };
        match host.invoke(&f, args)? {
            Value::Nil => Ok(Verdict::Accept),
            Value::Table(t) => Ok(Verdict::Respond(response_of(&t)?)),
            other => Err(CallError::Shape(format!(
                "verify returned a {}; expected nil or a response",
                other.type_name()
            ))),
        }
    }

    fn inbound_in(&self, host: &mut Host, args: (Table, Table)) -> Result<Inbound, CallError> {
        let inbound = self.fns(host)?.inbound.clone();
        let Value::Table(t) = host.invoke(&inbound, args)? else {
            return Err(CallError::Shape(
                "inbound must return {events = …, response = …}".into(),
            ));
        };
        let response = match t.get::<Value>("response")? {
            Value::Table(r) => response_of(&r)?,
            Value::Nil => HttpResponse::text(200, "EVENT_RECEIVED"),
            _ => return Err(CallError::Shape("response must be a table".into())),
        };
        let mut events = Vec::new();
        if let Value::Table(evs) = t.get::<Value>("events")? {
            for ev in evs.sequence_values::<Table>() {
                let ev = ev.map_err(|_| CallError::Shape("events must be tables".into()))?;
                if events.len() >= MAX_EVENTS {
                    return Err(CallError::Shape("too many events".into()));
                }
                match string_field(&ev, "type")?.as_deref() {
                    Some("message") => events.push(ChannelEvent::Message(message_of(&ev)?)),
                    other => return Err(CallError::Shape(format!("unknown event type {other:?}"))),
                }
            }
        }
        Ok(Inbound { events, response })
    }
}

impl ChannelAdapter for LuaChannel<'_> {
    fn verify(&self, request: &HttpRequest) -> Result<Verdict, ChannelError> {
        self.generation
            .call(self.file, |host| {
                if self.fns(host)?.verify.is_none() {
                    return Ok(Verdict::Accept);
                }
                let args = self.args(host, request)?;
                self.verify_in(host, args)
            })
            .map_err(|f| self.err(f))
    }

    fn inbound(&self, request: &HttpRequest) -> Result<Inbound, ChannelError> {
        self.generation
            .call(self.file, |host| {
                let args = self.args(host, request)?;
                self.inbound_in(host, args)
            })
            .map_err(|f| self.err(f))
    }

    /// Both in one budgeted call (one lock of the generation's state, one
    /// count), given the same `request` and `ctx` tables: a webhook's whole
    /// adapter work.
    fn receive(&self, request: &HttpRequest) -> Result<Received, ChannelError> {
        self.generation
            .call(self.file, |host| {
                let (req, ctx) = self.args(host, request)?;
                match self.verify_in(host, (req.clone(), ctx.clone()))? {
                    Verdict::Respond(r) => Ok(Received::Answer(r)),
                    Verdict::Accept => self.inbound_in(host, (req, ctx)).map(Received::Messages),
                }
            })
            .map_err(|f| self.err(f))
    }

    fn outbound(
        &self,
        message: &OutboundMessage,
        ctx: &OutboundContext,
    ) -> Result<Outbound, ChannelError> {
        self.generation
            .call(self.file, |host| {
                let fns = self.fns(host)?;
                let lua = host.lua.clone();
                let m = lua.create_table()?;
                m.raw_set("conversation", message.conversation)?;
                m.raw_set("customer", message.customer.as_str())?;
                m.raw_set("author", message.author.as_str())?;
                m.raw_set("text", message.text.as_str())?;
                let c = self.ctx(host, fns)?;
                c.raw_set("now", ctx.now)?;
                if let Some(at) = ctx.last_customer_message_at {
                    c.raw_set("last_customer_message_at", at)?;
                }
                let outbound = fns.outbound.clone();
                let Value::Table(t) = host.invoke(&outbound, (m, c))? else {
                    return Err(CallError::Shape(
                        "outbound must return a request or {refuse = reason}".into(),
                    ));
                };
                if let Some(reason) = string_field(&t, "refuse")? {
                    return Ok(Outbound::Refuse(reason));
                }
                let url = string_field(&t, "url")?
                    .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
                    .ok_or_else(|| CallError::Shape("url must be an http(s) URL".into()))?;
                let method = string_field(&t, "method")?.unwrap_or_else(|| "POST".into());
                let mut headers = BTreeMap::new();
                if let Value::Table(h) = t.get::<Value>("headers")? {
                    for pair in h.pairs::<String, String>() {
                        let (k, v) =
                            pair.map_err(|_| CallError::Shape("headers must be strings".into()))?;
                        headers.insert(k, v);
                    }
                }
                let body: serde_json::Value = match t.get::<Value>("body")? {
                    Value::Nil => serde_json::Value::Null,
                    v => lua.from_value(v)?,
                };
                Ok(Outbound::Send(OutgoingRequest {
                    method,
                    url,
                    headers,
                    body,
                }))
            })
            .map_err(|f| self.err(f))
    }
}
