//! The safe side for Rust plugin authors: the [`Plugin`] trait (one method
//! per call, serde types in and out) and the `extern "C"` shims that
//! [`crate::export_plugin!`] puts behind the descriptor.
//!
//! Every shim runs the whole call (reading the request, the plugin's code,
//! writing the answer) inside `catch_unwind`: since Rust 1.81 a panic that
//! unwinds out of an `extern "C"` function aborts the process, so a panic
//! must become [`STATUS_PANIC`] here. Invalid or wrongly shaped request JSON
//! becomes [`STATUS_BAD_REQUEST`], a plugin's `Err` [`STATUS_ERROR`].
//! A plugin built with `panic = "abort"` cannot be caught: do not.

use crate::abi::{
    AgentState, Buffer, ConversationInput, Pair, PluginV2, RouteInput, RouteOutput, Str,
    ABI_VERSION, ROLE_CHANNEL, ROLE_RESPONSES, ROLE_ROUTING, ROLE_WRAPUP, ROUTE_AGENT,
    ROUTE_KEEP_QUEUED, ROUTE_RANKED, STATUS_BAD_REQUEST, STATUS_ERROR, STATUS_OK, STATUS_PANIC,
};
use crate::wire::{
    AgentsRequest, CannedResponse, ChannelRequest, EntryAnswer, EntryRequest, InboundAnswer,
    OutboundAnswer, OutboundRequest, ResponsesAnswer, ResponsesRequest, RouteAnswer, RouteRequest,
    Verdict, WrapUpAnswer, WrapUpReason, WrapUpRequest,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;
use std::collections::HashMap;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

/// A plugin's error: the message the host counts and shows to admins.
/// Keep customer text out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error(message.into())
    }

    fn unsupported(call: &str) -> Self {
        Error(format!("this plugin does not implement {call}"))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error(s.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error(e.to_string())
    }
}

/// A dynamic plugin written in Rust. Implement the methods of the roles in
/// [`Plugin::ROLES`] and export the type with [`crate::export_plugin!`].
///
/// The host may call one instance from several threads at once, hence
/// `Send + Sync`; a panic in any method is caught and counted as a failure,
/// and the host then uses its built-in behaviour for that call.
pub trait Plugin: Send + Sync + Sized + 'static {
    /// The roles filled: [`ROLE_ROUTING`] | [`ROLE_WRAPUP`] | [`ROLE_CHANNEL`]
    /// | [`ROLE_RESPONSES`].
    const ROLES: u32;

    /// Build an instance from the settings the host was configured with
    /// (`null` when none).
    fn create(settings: serde_json::Value) -> Result<Self, Error>;

    /// Routing: the queue a new conversation joins (`None`: the channel's default).
    fn entry(&self, _request: EntryRequest) -> Result<Option<String>, Error> {
        Ok(None)
    }

    /// Routing: choose among the candidates, given as JSON (every
    /// candidate serialized on each call). Used only when
    /// [`Plugin::AGENT_TABLE`] is `false`.
    fn route(&self, _request: RouteRequest) -> Result<RouteAnswer, Error> {
        Err(Error::unsupported("route"))
    }

    /// Routing over the agent table: `true` exports `agents` and
    /// `route_agents`, and the host calls [`Plugin::route_agents`] instead
    /// of [`Plugin::route`].
    const AGENT_TABLE: bool = false;

    /// Routing: choose among `call`'s candidates, agents of the table the
    /// SDK keeps up to date from the host's deltas.
    fn route_agents(&self, _call: &RouteCall<'_>) -> Result<Routed, Error> {
        Err(Error::unsupported("route_agents"))
    }

    /// Wrap-up: the reasons for a queue.
    fn wrapup_reasons(&self, _request: WrapUpRequest) -> Result<Vec<WrapUpReason>, Error> {
        Err(Error::unsupported("wrapup_reasons"))
    }

    /// Channel: answer a request now, or accept it for [`Plugin::inbound`].
    fn verify(&self, _request: ChannelRequest) -> Result<Verdict, Error> {
        Ok(Verdict::Accept)
    }

    /// Channel: parse an accepted request.
    fn inbound(&self, _request: ChannelRequest) -> Result<InboundAnswer, Error> {
        Err(Error::unsupported("inbound"))
    }

    /// Channel: build the request that carries an agent's message.
    fn outbound(&self, _request: OutboundRequest) -> Result<OutboundAnswer, Error> {
        Err(Error::unsupported("outbound"))
    }

    /// Canned responses: the tenant's list (asked once, at load).
    fn responses(&self, _request: ResponsesRequest) -> Result<Vec<CannedResponse>, Error> {
        Err(Error::unsupported("responses"))
    }
}

/// The descriptor of `P`; used by [`crate::export_plugin!`]. `name` and
/// `version` must end with a NUL byte.
#[doc(hidden)]
pub const fn descriptor<P: Plugin>(name: &'static str, version: &'static str) -> PluginV2 {
    let routing = P::ROLES & ROLE_ROUTING != 0;
    let wrapup = P::ROLES & ROLE_WRAPUP != 0;
    let channel = P::ROLES & ROLE_CHANNEL != 0;
    let responses = P::ROLES & ROLE_RESPONSES != 0;
    let table = routing && P::AGENT_TABLE;
    PluginV2 {
        abi_version: ABI_VERSION,
        struct_size: std::mem::size_of::<PluginV2>() as u32,
        roles: P::ROLES,
        reserved: 0,
        name: name.as_ptr().cast(),
        version: version.as_ptr().cast(),
        create: Some(create::<P>),
        destroy: Some(destroy::<P>),
        free_buffer: Some(free_buffer),
        route: if routing { Some(route::<P>) } else { None },
        entry: if routing { Some(entry::<P>) } else { None },
        wrapup_reasons: if wrapup {
            Some(wrapup_reasons::<P>)
        } else {
            None
        },
        channel_verify: if channel { Some(verify::<P>) } else { None },
        channel_inbound: if channel { Some(inbound::<P>) } else { None },
        channel_outbound: if channel { Some(outbound::<P>) } else { None },
        agents: if table { Some(agents::<P>) } else { None },
        route_agents: if table { Some(route_agents::<P>) } else { None },
        responses: if responses {
            Some(canned_responses::<P>)
        } else {
            None
        },
    }
}

/// What the instance pointer points to: the plugin and its agent table.
struct Instance<P> {
    plugin: P,
    table: Mutex<AgentTable>,
}

/// An agent as a routing plugin's table holds it.
///
/// Laid out (`repr(C)`, cache-line aligned) with what a scan over the
/// candidates reads first: slot, numbers, skill bits and the id (for
/// ties) share one cache line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Agent {
    pub slot: u32,
    pub load: u32,
    pub capacity: u32,
    pub idle_since: u64,
    /// Bit `n` set: the agent has skill number `n` (numbers below 64).
    pub skill_bits: u64,
    pub id: String,
    pub name: String,
    pub skills: Vec<String>,
    /// `skills` as the table's skill numbers ([`AgentTable::skill`]):
    /// comparing numbers is what makes a 500-candidate scan cheap.
    pub skill_ids: Vec<u32>,
}

impl Agent {
    /// Whether the agent has the skill numbered `id`.
    #[inline]
    pub fn has_skill(&self, id: u32) -> bool {
        if id < 64 {
            self.skill_bits & (1 << id) != 0
        } else {
            self.skill_ids.contains(&id)
        }
    }

    /// Whether the agent has every skill of `set` ([`AgentTable::skill_set`]).
    #[inline]
    pub fn has_all(&self, set: &SkillSet) -> bool {
        self.skill_bits & set.bits == set.bits && set.more.iter().all(|&i| self.has_skill(i))
    }
}

/// Skills to look for, made once per call by [`AgentTable::skill_set`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkillSet {
    bits: u64,
    more: Vec<u32>,
}

/// What an empty slot of [`AgentTable`] holds.
fn vacant() -> Agent {
    Agent {
        slot: u32::MAX,
        ..Agent::default()
    }
}

/// The agents the host has told the plugin about, by slot.
#[derive(Debug, Default)]
pub struct AgentTable {
    /// By slot. An empty slot holds [`vacant`] (whose `slot` is
    /// `u32::MAX`, never its index): a lookup checks the agent's own `slot`,
    /// in the cache line a scan reads anyway.
    agents: Vec<Agent>,
    skills: HashMap<String, u32>,
}

impl AgentTable {
    /// The agent in `slot`.
    #[inline]
    pub fn get(&self, slot: u32) -> Option<&Agent> {
        self.agents.get(slot as usize).filter(|a| a.slot == slot)
    }

    /// The number of a skill some agent has had, `None` if none ever had it.
    pub fn skill(&self, name: &str) -> Option<u32> {
        self.skills.get(name).copied()
    }

    /// The skills named, for [`Agent::has_all`]; `None` if some skill no
    /// agent ever had is among them (then nobody has them all).
    pub fn skill_set<'s>(&self, names: impl IntoIterator<Item = &'s str>) -> Option<SkillSet> {
        let mut set = SkillSet::default();
        for n in names {
            let id = self.skill(n)?;
            if id < 64 {
                set.bits |= 1 << id;
            } else {
                set.more.push(id);
            }
        }
        Some(set)
    }

    /// How many agents the table holds.
    pub fn len(&self) -> usize {
        self.agents
            .iter()
            .enumerate()
            .filter(|(i, a)| a.slot as usize == *i)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Apply an `agents` request.
    pub fn apply(&mut self, r: AgentsRequest) {
        if r.reset {
            self.agents.clear();
        }
        for slot in r.remove {
            if let Some(a) = self.agents.get_mut(slot as usize) {
                *a = vacant();
            }
        }
        for rec in r.set {
            let mut ids = Vec::with_capacity(rec.skills.len());
            for s in &rec.skills {
                let n = self.skills.len() as u32;
                ids.push(*self.skills.entry(s.clone()).or_insert(n));
            }
            let slot = rec.slot as usize;
            if self.agents.len() <= slot {
                self.agents.resize_with(slot + 1, vacant);
            }
            let skill_bits = ids
                .iter()
                .filter(|&&i| i < 64)
                .fold(0u64, |b, &i| b | (1 << i));
            self.agents[slot] = Agent {
                slot: rec.slot,
                id: rec.id,
                name: rec.name,
                skills: rec.skills,
                skill_ids: ids,
                skill_bits,
                load: rec.load,
                capacity: rec.capacity,
                idle_since: rec.idle_since,
            };
        }
    }

    /// Apply one numeric change.
    pub fn update(&mut self, s: &AgentState) {
        if let Some(a) = self
            .agents
            .get_mut(s.slot as usize)
            .filter(|a| a.slot == s.slot)
        {
            a.load = s.load;
            a.capacity = s.capacity;
            a.idle_since = s.idle_since;
        }
    }
}

/// The conversation of a [`RouteCall`], borrowed from the host.
#[derive(Debug, Clone, Copy)]
pub struct ConversationRef<'a> {
    pub id: u64,
    pub queue: &'a str,
    pub channel: &'a str,
    pub customer: &'a str,
    pub customer_name: &'a str,
    pub source: &'a str,
    pub preview: &'a str,
    pub received_at: u64,
    pub queued_at: u64,
    pub last_agent: Option<&'a str>,
    cad: &'a [Pair],
}

/// # Safety
/// `s.ptr` is NULL or valid for `s.len` bytes for `'a`.
unsafe fn text<'a>(s: Str) -> Result<Option<&'a str>, Error> {
    if s.ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded from this function's contract.
    let b = unsafe { std::slice::from_raw_parts(s.ptr, s.len) };
    std::str::from_utf8(b)
        .map(Some)
        .map_err(|_| Error::new("text that is not UTF-8"))
}

/// # Safety
/// `p` is NULL (with `len` 0) or valid for `len` elements for `'a`.
unsafe fn slice<'a, T>(p: *const T, len: usize) -> &'a [T] {
    if p.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: forwarded from this function's contract.
        unsafe { std::slice::from_raw_parts(p, len) }
    }
}

impl<'a> ConversationRef<'a> {
    /// # Safety
    /// Every pointer of `c` is valid as the ABI says, for `'a`.
    unsafe fn of(c: &'a ConversationInput) -> Result<Self, Error> {
        // SAFETY: forwarded from this function's contract.
        unsafe {
            let t = |s: Str| text(s).map(Option::unwrap_or_default);
            Ok(ConversationRef {
                id: c.id,
                queue: t(c.queue)?,
                channel: t(c.channel)?,
                customer: t(c.customer)?,
                customer_name: t(c.customer_name)?,
                source: t(c.source)?,
                preview: t(c.preview)?,
                received_at: c.received_at,
                queued_at: c.queued_at,
                last_agent: text(c.last_agent)?,
                cad: slice(c.cad, c.cad_len),
            })
        }
    }

    /// The CAD value of `key`.
    pub fn cad(&self, key: &str) -> Option<&'a str> {
        self.cad_pairs().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Every CAD entry (entries that are not UTF-8 are skipped).
    pub fn cad_pairs(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.cad.iter().filter_map(|p| {
            // SAFETY: the host lends the CAD texts for the call (`'a`).
            let (k, v) = unsafe { (text(p.key), text(p.value)) };
            Some((k.ok()??, v.ok()??))
        })
    }
}

/// One routing decision over the agent table.
#[derive(Debug)]
pub struct RouteCall<'a> {
    pub conversation: ConversationRef<'a>,
    /// The whole table (candidates and the other agents it knows).
    pub agents: &'a AgentTable,
    /// The candidates' slots, in the host's order.
    pub slots: &'a [u32],
    pub now: u64,
    pub generation: u64,
}

impl<'a> RouteCall<'a> {
    /// The candidates, in the host's order.
    #[inline]
    pub fn candidates(&self) -> impl Iterator<Item = &'a Agent> + '_ {
        self.slots.iter().filter_map(|s| self.agents.get(*s))
    }
}

/// What [`Plugin::route_agents`] answers, by slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// Offer to the agent in this slot.
    Agent(u32),
    /// Offer to the first of these that is still a candidate.
    Ranked(Vec<u32>),
    /// Leave it queued for now.
    KeepQueued,
}

/// Hand `bytes` over to the host./// Hand `bytes` over to the host.
fn give(bytes: Vec<u8>) -> Buffer {
    let mut bytes = std::mem::ManuallyDrop::new(bytes);
    Buffer {
        ptr: bytes.as_mut_ptr(),
        len: bytes.len(),
        cap: bytes.capacity(),
    }
}

/// Write `bytes` to `out` if the host gave one.
///
/// # Safety
/// `out` is NULL or valid for writes.
unsafe fn write_out(out: *mut Buffer, bytes: Vec<u8>) {
    if out.is_null() {
        return;
    }
    // SAFETY: the caller guarantees `out` is valid for writes when not NULL.
    unsafe { out.write(give(bytes)) };
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    format!("plugin panicked: {what}")
}

/// Run `f`, turning a panic into `(STATUS_PANIC, message)`.
fn guarded(f: impl FnOnce() -> (i32, Vec<u8>)) -> (i32, Vec<u8>) {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            // Dropping a payload can itself panic; never let that unwind out.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            (STATUS_PANIC, message.into_bytes())
        }
    }
}

/// The body of every role shim.
///
/// # Safety
/// `instance` is NULL or came from [`create`] with the same `P`; `input` is
/// valid for `input_len` bytes (or NULL with a zero length); `out` is NULL
/// or valid for writes.
unsafe fn call<P: Plugin, Req: DeserializeOwned, Ans: Serialize>(
    instance: *mut c_void,
    input: *const u8,
    input_len: usize,
    out: *mut Buffer,
    f: impl FnOnce(&P, Req) -> Result<Ans, Error>,
) -> i32 {
    let (status, bytes) = guarded(|| {
        // SAFETY: the caller guarantees `instance` is NULL or a live
        // `Instance<P>` made by `create`.
        let Some(Instance { plugin, .. }) = (unsafe { instance.cast::<Instance<P>>().as_ref() })
        else {
            return (STATUS_ERROR, b"no plugin instance".to_vec());
        };
        let input: &[u8] = if input.is_null() || input_len == 0 {
            &[]
        } else {
            // SAFETY: the caller guarantees `input` is valid for `input_len` bytes.
            unsafe { std::slice::from_raw_parts(input, input_len) }
        };
        let request: Req = match serde_json::from_slice(input) {
            Ok(r) => r,
            Err(e) => return (STATUS_BAD_REQUEST, format!("bad request: {e}").into_bytes()),
        };
        match f(plugin, request) {
            Ok(answer) => match serde_json::to_vec(&answer) {
                Ok(bytes) => (STATUS_OK, bytes),
                Err(e) => (
                    STATUS_ERROR,
                    format!("cannot encode answer: {e}").into_bytes(),
                ),
            },
            Err(e) => (STATUS_ERROR, e.0.into_bytes()),
        }
    });
    // SAFETY: the caller guarantees `out` is NULL or valid for writes.
    unsafe { write_out(out, bytes) };
    status
}

/// # Safety
/// The host passes `settings` valid for `settings_len` bytes, `instance`
/// and `error` valid for writes (or NULL).
#[doc(hidden)]
pub unsafe extern "C" fn create<P: Plugin>(
    settings: *const u8,
    settings_len: usize,
    instance: *mut *mut c_void,
    error: *mut Buffer,
) -> i32 {
    let (status, bytes) = guarded(|| {
        if instance.is_null() {
            return (STATUS_ERROR, b"no place for the instance".to_vec());
        }
        let input: &[u8] = if settings.is_null() || settings_len == 0 {
            b"null"
        } else {
            // SAFETY: the host guarantees `settings` is valid for `settings_len` bytes.
            unsafe { std::slice::from_raw_parts(settings, settings_len) }
        };
        let value = match serde_json::from_slice(input) {
            Ok(v) => v,
            Err(e) => {
                return (
                    STATUS_BAD_REQUEST,
                    format!("bad settings: {e}").into_bytes(),
                )
            }
        };
        match P::create(value) {
            Ok(p) => {
                let raw = Box::into_raw(Box::new(Instance {
                    plugin: p,
                    table: Mutex::new(AgentTable::default()),
                }))
                .cast::<c_void>();
                // SAFETY: checked non-NULL above; the host guarantees it is writable.
                unsafe { instance.write(raw) };
                (STATUS_OK, Vec::new())
            }
            Err(e) => (STATUS_ERROR, e.0.into_bytes()),
        }
    });
    if status != STATUS_OK {
        // SAFETY: the host guarantees `error` is NULL or valid for writes.
        unsafe { write_out(error, bytes) };
    }
    status
}

/// # Safety
/// `instance` is NULL or came from [`create`] with the same `P` and is not
/// used again.
#[doc(hidden)]
pub unsafe extern "C" fn destroy<P: Plugin>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    // SAFETY: the host guarantees `instance` came from `Box::into_raw` in
    // `create::<P>` and that this is its last use.
    let boxed = unsafe { Box::from_raw(instance.cast::<Instance<P>>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}

/// # Safety
/// `buffer` came from one of this SDK's shims and is given back once.
#[doc(hidden)]
pub unsafe extern "C" fn free_buffer(buffer: Buffer) {
    if buffer.ptr.is_null() {
        return;
    }
    // SAFETY: the buffer was made by `give` from a Vec<u8> with exactly this
    // pointer, length and capacity, and is freed once.
    drop(unsafe { Vec::from_raw_parts(buffer.ptr, buffer.len, buffer.cap) });
}

macro_rules! shim {
    ($name:ident, $req:ty, $ans:ty, |$p:ident, $r:ident| $body:expr) => {
        /// # Safety
        /// See the ABI: `instance` from `create`, `input` valid for
        /// `input_len` bytes, `output` valid for writes.
        #[doc(hidden)]
        pub unsafe extern "C" fn $name<P: Plugin>(
            instance: *mut c_void,
            input: *const u8,
            input_len: usize,
            output: *mut Buffer,
        ) -> i32 {
            // SAFETY: forwarded from this function's own contract.
            unsafe { call::<P, $req, $ans>(instance, input, input_len, output, |$p, $r| $body) }
        }
    };
}

shim!(route, RouteRequest, RouteAnswer, |p, r| p.route(r));
shim!(entry, EntryRequest, EntryAnswer, |p, r| p
    .entry(r)
    .map(|queue| EntryAnswer { queue }));
shim!(wrapup_reasons, WrapUpRequest, WrapUpAnswer, |p, r| p
    .wrapup_reasons(r)
    .map(|reasons| WrapUpAnswer { reasons }));
shim!(verify, ChannelRequest, Verdict, |p, r| p.verify(r));
shim!(inbound, ChannelRequest, InboundAnswer, |p, r| p.inbound(r));
shim!(outbound, OutboundRequest, OutboundAnswer, |p, r| p
    .outbound(r));
shim!(
    canned_responses,
    ResponsesRequest,
    ResponsesAnswer,
    |p, r| p
        .responses(r)
        .map(|responses| ResponsesAnswer { responses })
);

/// # Safety
/// As for every JSON shim: `instance` from `create`, `input` valid for
/// `input_len` bytes, `output` NULL or valid for writes.
#[doc(hidden)]
pub unsafe extern "C" fn agents<P: Plugin>(
    instance: *mut c_void,
    input: *const u8,
    input_len: usize,
    output: *mut Buffer,
) -> i32 {
    let (status, bytes) = guarded(|| {
        // SAFETY: the host guarantees `instance` is NULL or a live `Instance<P>`.
        let Some(inst) = (unsafe { instance.cast::<Instance<P>>().as_ref() }) else {
            return (STATUS_ERROR, b"no plugin instance".to_vec());
        };
        // SAFETY: the host guarantees `input` is valid for `input_len` bytes.
        let input = unsafe { slice(input, input_len) };
        let request: AgentsRequest = match serde_json::from_slice(input) {
            Ok(r) => r,
            Err(e) => return (STATUS_BAD_REQUEST, format!("bad request: {e}").into_bytes()),
        };
        inst.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .apply(request);
        (STATUS_OK, b"{}".to_vec())
    });
    // SAFETY: the host guarantees `output` is NULL or valid for writes.
    unsafe { write_out(output, bytes) };
    status
}

/// # Safety
/// `instance` from `create`; `input` and everything it points to valid as
/// the ABI says for the call; `output` NULL or valid, its `slots` valid for
/// `capacity` writes.
#[doc(hidden)]
pub unsafe extern "C" fn route_agents<P: Plugin>(
    instance: *mut c_void,
    input: *const RouteInput,
    output: *mut RouteOutput,
) -> i32 {
    let (status, bytes) = guarded(|| {
        // SAFETY: the host guarantees `instance` is NULL or a live `Instance<P>`.
        let Some(inst) = (unsafe { instance.cast::<Instance<P>>().as_ref() }) else {
            return (STATUS_ERROR, b"no plugin instance".to_vec());
        };
        // SAFETY: the host guarantees both are NULL or valid.
        let (Some(input), Some(out)) = (unsafe { input.as_ref() }, unsafe { output.as_mut() })
        else {
            return (STATUS_BAD_REQUEST, b"no input or output".to_vec());
        };
        if (input.struct_size as usize) < std::mem::size_of::<RouteInput>() {
            return (STATUS_BAD_REQUEST, b"route input too short".to_vec());
        }
        // SAFETY: the host lends these for the call, as the ABI says.
        let (changed, slots, conversation) = unsafe {
            (
                slice(input.changed, input.changed_len),
                slice(input.candidates, input.candidates_len),
                ConversationRef::of(&input.conversation),
            )
        };
        let mut table = inst.table.lock().unwrap_or_else(|p| p.into_inner());
        for c in changed {
            table.update(c);
        }
        let conversation = match conversation {
            Ok(c) => c,
            Err(e) => return (STATUS_BAD_REQUEST, e.0.into_bytes()),
        };
        let call = RouteCall {
            conversation,
            agents: &table,
            slots,
            now: input.now,
            generation: input.generation,
        };
        let answer = match inst.plugin.route_agents(&call) {
            Ok(a) => a,
            Err(e) => return (STATUS_ERROR, e.0.into_bytes()),
        };
        // SAFETY: the host guarantees `slots` is valid for `capacity` writes.
        let room: &mut [u32] = if out.slots.is_null() {
            &mut []
        } else {
            unsafe { std::slice::from_raw_parts_mut(out.slots, out.capacity) }
        };
        let list: &[u32] = match &answer {
            Routed::KeepQueued => &[],
            Routed::Agent(s) => std::slice::from_ref(s),
            Routed::Ranked(l) => l,
        };
        if list.len() > room.len() {
            return (
                STATUS_ERROR,
                b"more slots answered than the host has room for".to_vec(),
            );
        }
        room[..list.len()].copy_from_slice(list);
        out.len = list.len();
        out.kind = match answer {
            Routed::KeepQueued => ROUTE_KEEP_QUEUED,
            Routed::Agent(_) => ROUTE_AGENT,
            Routed::Ranked(_) => ROUTE_RANKED,
        };
        (STATUS_OK, Vec::new())
    });
    if status != STATUS_OK {
        // SAFETY: the host guarantees `output` is NULL or valid for writes.
        if let Some(out) = unsafe { output.as_mut() } {
            out.error = give(bytes);
        }
    }
    status
}
