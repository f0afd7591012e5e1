//! The three roles over a [`Generation`]: routing policy, wrap-up lists and
//! channel adapters, and how their data crosses into Lua.
//!
//! Routing runs on every offer, so candidates are not serialized per call:
//! each agent has one read-only Lua table kept in the state and updated
//! only when its load, capacity, idle time, name or skills change, and the
//! `candidates` array (read-only too) is patched in place where it differs
//! from the previous call.

use super::generation::{lock, CallError, Generation, Host};
use super::sandbox::{self, Budget};
use crate::channel::{
    ChannelAdapter, ChannelError, ChannelEvent, HttpRequest, HttpResponse, Inbound, InboundMessage,
    Outbound, OutboundContext, OutboundMessage, OutgoingRequest, Received, Verdict,
};
use crate::model::{Millis, WrapUpReason};
use crate::responses::{check_responses, CannedResponse};
use crate::routing::{Candidate, ConversationView, RouteDecision, RoutingPolicy};
use crate::wrapup::{check_reasons, BuiltinWrapUp, WrapUpReasons};
use mlua::{ffi, Function, Lua, LuaSerdeExt, Table, Value};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_int, CStr};
use std::sync::{Arc, Mutex};

/// Longest ranked list a policy may return.
const MAX_RANKED: usize = 1000;
/// Most events one inbound request may produce.
pub(super) const MAX_EVENTS: usize = 1000;

/// Distinct skills of a generation that get a bit in the agents' skill
/// sets (for `sb.pick`); an agent with a skill past them is checked by name.
const SKILL_BITS: usize = 64;

struct AgentEntry {
    id: String,
    data: Table,
    proxy: Table,
    name: String,
    load: u32,
    capacity: u32,
    idle_since: u64,
    skills: Vec<String>,
    /// The agent's skills among the interned ones.
    bits: u64,
    /// It has a skill that got no bit.
    overflow: bool,
    /// Where the name and skills were last read from, and the stamp of
    /// the configuration they were read from (see `refresh`).
    name_at: *const str,
    skills_at: *const [String],
    stamp: u64,
}

/// One position of the current `candidates` array: what the engine gave
/// there last time, compared field by field on every call (a few ns), and
/// what `sb.pick` scans.
#[derive(Clone, Copy)]
struct Slot {
    id_at: *const str,
    name_at: *const str,
    skills_at: *const [String],
    stamp: u64,
    idle_since: u64,
    bits: u64,
    load: u32,
    capacity: u32,
    entry: usize,
    overflow: bool,
}

/// A candidate's bytes: its id, name and skills (addresses and lengths),
/// load, capacity, idle time and configuration stamp. Equal bytes mean the
/// same agent with the same name and skills (the same configuration at the
/// same addresses, see `refresh`) and the same numbers: one compare of
/// nine words per unchanged candidate (on 64-bit targets).
type Raw = [usize; RAW_WORDS];

const RAW_WORDS: usize = std::mem::size_of::<Candidate<'static>>() / std::mem::size_of::<usize>();

const _: () = assert!(
    std::mem::size_of::<Candidate<'static>>() == std::mem::size_of::<Raw>()
        && 2 * std::mem::size_of::<&str>()
            + std::mem::size_of::<&[String]>()
            + 2 * std::mem::size_of::<u32>()
            + 2 * std::mem::size_of::<u64>()
            == std::mem::size_of::<Raw>(),
    "a candidate is whole words without padding"
);

/// A candidate's bytes.
#[inline(always)]
fn raw<'a>(c: &'a Candidate<'_>) -> &'a Raw {
    // SAFETY: `Candidate` is whole words of references and integers with
    // no padding (asserted above), so every byte is initialized and any
    // bytes are valid `usize`s; it holds references, so it is aligned for
    // `usize`.
    unsafe { &*std::ptr::from_ref(c).cast::<Raw>() }
}

impl Slot {
    /// The same agent as last time, with the same name and skills.
    #[inline(always)]
    fn same_agent(&self, c: &Candidate<'_>) -> bool {
        std::ptr::eq(self.id_at, c.id)
            && std::ptr::eq(self.name_at, c.name)
            && std::ptr::eq(self.skills_at, c.skills)
            && self.stamp == c.stamp
    }
}

/// The agents' Lua tables, the reusable candidates array, and a compact
/// mirror of the current call's candidates.
pub(crate) struct AgentCache {
    entries: Vec<AgentEntry>,
    index: HashMap<String, usize>,
    array: Table,
    proxy: Table,
    /// The candidates of the current (or last) call, by position.
    slots: Vec<Slot>,
    /// Their bytes as the engine gave them (see [`Raw`]).
    raws: Vec<Raw>,
    /// The interned skills and their bits.
    skill_bits: HashMap<String, u32>,
    /// Positions whose numbers changed in this call (see `write_numbers`).
    changed: Vec<usize>,
}

// SAFETY: the `*_at` pointers are only compared as addresses, never
// dereferenced.
unsafe impl Send for AgentCache {}

impl AgentCache {
    pub fn new(lua: &Lua) -> mlua::Result<AgentCache> {
        let array = lua.create_table()?;
        let proxy = sandbox::readonly(lua, array.clone(), "candidates")?;
        Ok(AgentCache {
            entries: Vec::new(),
            index: HashMap::new(),
            array,
            proxy,
            slots: Vec::new(),
            raws: Vec::new(),
            skill_bits: HashMap::new(),
            changed: Vec::new(),
        })
    }

    fn entry(&mut self, lua: &Lua, c: &Candidate<'_>) -> mlua::Result<usize> {
        if let Some(&i) = self.index.get(c.id) {
            return Ok(i);
        }
        let data = lua.create_table()?;
        data.raw_set("id", c.id)?;
        let proxy = sandbox::readonly(lua, data.clone(), "an agent")?;
        self.entries.push(AgentEntry {
            id: c.id.to_string(),
            data,
            proxy,
            name: String::new(),
            load: u32::MAX,
            capacity: u32::MAX,
            idle_since: u64::MAX,
            skills: vec!["\0".into()],
            bits: 0,
            overflow: false,
            name_at: "",
            skills_at: std::ptr::slice_from_raw_parts(std::ptr::null(), 0),
            stamp: 0,
        });
        let i = self.entries.len() - 1;
        self.index.insert(c.id.to_string(), i);
        Ok(i)
    }

    /// Bring the Lua table of entry `i` up to date with `c`, writing only
    /// the fields that changed.
    fn refresh(&mut self, lua: &Lua, i: usize, c: &Candidate<'_>) -> mlua::Result<()> {
        // Each mirrored value is written after its Lua field, so a failed
        // write (memory) is retried on the next call.
        let e = &mut self.entries[i];
        if e.load != c.load {
            e.data.raw_set("load", c.load)?;
            e.load = c.load;
        }
        if e.capacity != c.capacity {
            e.data.raw_set("capacity", c.capacity)?;
            e.capacity = c.capacity;
        }
        if e.idle_since != c.idle_since {
            e.data.raw_set("idle_since", c.idle_since)?;
            e.idle_since = c.idle_since;
        }
        // Agent configs never change in place: the same configuration
        // (stamp) at the same address and length means the same text, so
        // most calls skip comparing names and skills. (The address alone
        // is not enough: a replaced configuration's memory may hold the
        // next one.)
        let other_config = e.stamp != c.stamp;
        if other_config || !std::ptr::eq(e.name_at, c.name) {
            if e.name != c.name {
                e.data.raw_set("name", c.name)?;
                e.name = c.name.to_string();
            }
            e.name_at = c.name;
        }
        if other_config || !std::ptr::eq(e.skills_at, c.skills) {
            if e.skills.as_slice() != c.skills {
                let list = lua.create_sequence_from(c.skills.iter().map(String::as_str))?;
                let set = lua.create_table()?;
                for s in c.skills {
                    set.raw_set(s.as_str(), true)?;
                }
                e.data
                    .raw_set("skills", sandbox::readonly(lua, list, "skills")?)?;
                e.data
                    .raw_set("skill", sandbox::readonly(lua, set, "skill")?)?;
                let (mut bits, mut overflow) = (0u64, false);
                for s in c.skills {
                    let next = self.skill_bits.len();
                    match self.skill_bits.get(s.as_str()) {
                        Some(&b) => bits |= 1 << b,
                        None if next < SKILL_BITS => {
                            self.skill_bits.insert(s.clone(), next as u32);
                            bits |= 1 << next;
                        }
                        None => overflow = true,
                    }
                }
                e.skills = c.skills.to_vec();
                e.bits = bits;
                e.overflow = overflow;
            }
            e.skills_at = c.skills;
        }
        e.stamp = c.stamp;
        Ok(())
    }

    /// The read-only `candidates` array for this call.
    pub fn candidates(&mut self, lua: &Lua, candidates: &[Candidate<'_>]) -> mlua::Result<Table> {
        self.changed.clear();
        for (pos, c) in candidates.iter().enumerate() {
            if self.raws.get(pos) == Some(raw(c)) {
                continue;
            }
            match self.slots.get_mut(pos) {
                Some(s) if s.same_agent(c) => {
                    if s.load != c.load || s.idle_since != c.idle_since || s.capacity != c.capacity
                    {
                        s.load = c.load;
                        s.idle_since = c.idle_since;
                        s.capacity = c.capacity;
                        self.changed.push(pos);
                    }
                }
                _ => self.update(lua, pos, c)?,
            }
            // Written once its table is up to date (`write_numbers`
            // forgets it if that fails).
            match self.raws.get_mut(pos) {
                Some(x) => *x = *raw(c),
                None => self.raws.push(*raw(c)),
            }
        }
        self.write_numbers(lua)?;
        for pos in (candidates.len()..self.slots.len()).rev() {
            self.array.raw_set(pos + 1, Value::Nil)?;
        }
        self.slots.truncate(candidates.len());
        self.raws.truncate(candidates.len());
        Ok(self.proxy.clone())
    }

    /// Write the loads, capacities and idle times that changed (usually one
    /// or two agents per call) in one protected block: mlua protects each
    /// field it sets (and each key string it makes) on its own.
    fn write_numbers(&mut self, lua: &Lua) -> mlua::Result<()> {
        if self.changed.is_empty() {
            return Ok(());
        }
        let tables: mlua::Variadic<Table> = self
            .changed
            .iter()
            .map(|&pos| self.entries[self.slots[pos].entry].data.clone())
            .collect();
        let (slots, changed) = (&self.slots, &self.changed);
        // SAFETY: the closure sets fields of the tables passed as its
        // arguments (stack indexes 1..n), pushing one value at a time, and
        // holds nothing with a destructor.
        let written = unsafe {
            lua.exec_raw::<()>(tables, |l| {
                for (j, &pos) in changed.iter().enumerate() {
                    let s = &slots[pos];
                    let t = c_int::try_from(j + 1).unwrap_or(c_int::MAX);
                    ffi::lua_pushinteger(l, ffi::lua_Integer::from(s.load));
                    ffi::lua_setfield(l, t, c"load".as_ptr());
                    ffi::lua_pushinteger(l, ffi::lua_Integer::from(s.capacity));
                    ffi::lua_setfield(l, t, c"capacity".as_ptr());
                    match ffi::lua_Integer::try_from(s.idle_since) {
                        Ok(i) => ffi::lua_pushinteger(l, i),
                        Err(_) => ffi::lua_pushnumber(l, s.idle_since as ffi::lua_Number),
                    }
                    ffi::lua_setfield(l, t, c"idle_since".as_ptr());
                }
                ffi::lua_settop(l, 0);
            })
        };
        for &pos in &self.changed {
            let s = &mut self.slots[pos];
            let e = &mut self.entries[s.entry];
            if written.is_ok() {
                (e.load, e.capacity, e.idle_since) = (s.load, s.capacity, s.idle_since);
            } else {
                // Not written (out of memory): compared afresh next call.
                (e.load, s.load) = (u32::MAX, u32::MAX);
                self.raws[pos] = [0; RAW_WORDS];
            }
        }
        written
    }

    /// Position `pos` shows another agent than last time (or its name or
    /// skills changed): the agent shown there, its table and its slot.
    #[cold]
    #[inline(never)]
    fn update(&mut self, lua: &Lua, pos: usize, c: &Candidate<'_>) -> mlua::Result<()> {
        // The same id: at the same address in the same configuration, or
        // the same text (another configuration's memory may hold another
        // id at that address).
        let same = self.slots.get(pos).and_then(|s| {
            let same_id = (std::ptr::eq(s.id_at, c.id) && s.stamp == c.stamp)
                || self.entries[s.entry].id == c.id;
            same_id.then_some(s.entry)
        });
        let i = match same {
            Some(i) => i,
            None => {
                let i = self.entry(lua, c)?;
                self.array.raw_set(pos + 1, self.entries[i].proxy.clone())?;
                i
            }
        };
        self.refresh(lua, i, c)?;
        let e = &self.entries[i];
        let slot = Slot {
            id_at: c.id,
            name_at: c.name,
            skills_at: c.skills,
            stamp: c.stamp,
            idle_since: e.idle_since,
            bits: e.bits,
            load: e.load,
            capacity: e.capacity,
            entry: i,
            overflow: e.overflow,
        };
        match self.slots.get_mut(pos) {
            Some(s) => *s = slot,
            None => self.slots.push(slot),
        }
        Ok(())
    }

    /// Whether `t` is the `candidates` array this cache hands out.
    fn is_candidates(&self, t: &Table) -> bool {
        t.to_pointer() == self.proxy.to_pointer()
    }

    /// The current candidate idle the longest (ties: lower load, then
    /// lower id) among those with every skill of `wanted`.
    fn longest_idle(&self, wanted: &Wanted) -> Option<Table> {
        let mut mask = 0u64;
        let mut by_name: Vec<&str> = Vec::new();
        for w in &wanted.words {
            match w.as_deref().map(|w| (w, self.skill_bits.get(w))) {
                Some((_, Some(&b))) => mask |= 1 << b,
                Some((w, None)) if self.skill_bits.len() >= SKILL_BITS => by_name.push(w),
                // A skill no agent has (or not even a string).
                _ => return None,
            }
        }
        let by_name_ok = |s: &Slot| {
            by_name.is_empty()
                || (s.overflow
                    && by_name
                        .iter()
                        .all(|w| self.entries[s.entry].skills.iter().any(|k| k == w)))
        };
        // (idle_since, load) as one number: lower is better.
        let mut best: Option<(u128, &Slot)> = None;
        let mut best_key = u128::MAX;
        for s in &self.slots {
            let key = (u128::from(s.idle_since) << 32) | u128::from(s.load);
            if key > best_key || s.bits & mask != mask || !by_name_ok(s) {
                continue;
            }
            match best {
                Some((k, b))
                    if k == key && self.entries[b.entry].id <= self.entries[s.entry].id => {}
                _ => {
                    best = Some((key, s));
                    best_key = key;
                }
            }
        }
        best.map(|(_, s)| self.entries[s.entry].proxy.clone())
    }
}

/// The `wanted` skills given to `sb.pick.longest_idle`: each a string, or
/// `None` for a value no agent can have as a skill.
struct Wanted {
    words: Vec<Option<String>>,
}

impl Wanted {
    fn read(budget: &Budget, lua: &Lua, v: Value) -> mlua::Result<Wanted> {
        let t = match v {
            Value::Nil => return Ok(Wanted { words: Vec::new() }),
            Value::Table(t) => t,
            other => {
                return Err(mlua::Error::runtime(format!(
                    "sb.pick.longest_idle: wanted must be a list of skills, not a {}",
                    other.type_name()
                )))
            }
        };
        let word = |v: Value| match v {
            Value::String(s) => s.to_str().ok().map(|s| s.to_string()),
            _ => None,
        };
        let mut words = Vec::new();
        if t.metatable().is_none() {
            // A plain list (the usual case): raw reads, which mlua does
            // not need to protect.
            for i in 1..=t.raw_len() {
                budget.charge(lua, 1)?;
                words.push(word(t.raw_get::<Value>(i)?));
            }
        } else {
            for i in 1..=t.len()? {
                budget.charge(lua, READ_COST)?;
                words.push(word(t.get::<Value>(i)?));
            }
        }
        Ok(Wanted { words })
    }
}

/// Instructions charged for each field the scan of another list reads
/// through Lua (several times what a Lua loop would be charged for it: a
/// host read costs about that much more time).
const READ_COST: i64 = 50;

/// A number field of a candidate given as a plain table.
fn number_field(a: &Table, key: &str, i: i64) -> mlua::Result<f64> {
    match a.get::<Value>(key)? {
        Value::Integer(n) => Ok(n as f64),
        Value::Number(n) => Ok(n),
        other => Err(mlua::Error::runtime(format!(
            "sb.pick.longest_idle: candidate {i} has a {} {key}; expected a number",
            other.type_name()
        ))),
    }
}

fn id_field(a: &Table, i: i64) -> mlua::Result<mlua::String> {
    match a.get::<Value>("id")? {
        Value::String(s) => Ok(s),
        other => Err(mlua::Error::runtime(format!(
            "sb.pick.longest_idle: candidate {i} has a {} id; expected a string",
            other.type_name()
        ))),
    }
}

/// `sb.pick.longest_idle` over any list of agent tables (a script's own
/// list, a self-test's plain tables): the same choice as the scan of the
/// current candidates, read through Lua.
fn longest_idle_of(
    budget: &Budget,
    lua: &Lua,
    list: &Table,
    wanted: &Wanted,
) -> mlua::Result<Value> {
    let mut best: Option<(Table, f64, f64)> = None;
    for i in 1..=list.len()? {
        budget.charge(lua, READ_COST * (2 + wanted.words.len() as i64))?;
        let a = match list.get::<Value>(i)? {
            Value::Table(a) => a,
            other => {
                return Err(mlua::Error::runtime(format!(
                    "sb.pick.longest_idle: candidate {i} is a {}; expected an agent",
                    other.type_name()
                )))
            }
        };
        let idle = number_field(&a, "idle_since", i)?;
        if best.as_ref().is_some_and(|b| idle > b.1) {
            continue;
        }
        if !wanted.words.is_empty() {
            let Value::Table(skill) = a.get::<Value>("skill")? else {
                return Err(mlua::Error::runtime(format!(
                    "sb.pick.longest_idle: candidate {i} has no skill set"
                )));
            };
            let mut all = true;
            for w in &wanted.words {
                let has = match w {
                    Some(w) => !matches!(
                        skill.get::<Value>(w.as_str())?,
                        Value::Nil | Value::Boolean(false)
                    ),
                    None => false,
                };
                if !has {
                    all = false;
                    break;
                }
            }
            if !all {
                continue;
            }
        }
        let load = number_field(&a, "load", i)?;
        let better = match &best {
            None => true,
            Some((b, b_idle, b_load)) => {
                idle < *b_idle
                    || load < *b_load
                    || (load == *b_load
                        && *id_field(&a, i)?.as_bytes() < *id_field(b, i)?.as_bytes())
            }
        };
        if better {
            best = Some((a, idle, load));
        }
    }
    Ok(best.map_or(Value::Nil, |(a, _, _)| Value::Table(a)))
}

/// `sb.pick`: the loops of the bundled routing policies, done by the host.
/// On the call's own `candidates` it scans the compact mirror of the
/// [`AgentCache`] (500 candidates in about a microsecond); on any other
/// list it reads the tables through Lua. Both count against the call's
/// instruction budget: a scan of the mirror one instruction per candidate
/// and wanted skill, a read through Lua [`READ_COST`] per field.
pub(crate) fn pick_module(
    lua: &Lua,
    agents: Arc<Mutex<AgentCache>>,
    budget: Arc<Budget>,
) -> mlua::Result<Table> {
    let pick = lua.create_table()?;
    pick.raw_set(
        "longest_idle",
        lua.create_function(move |lua, (list, wanted): (Value, Value)| {
            let Value::Table(list) = list else {
                return Err(mlua::Error::runtime(format!(
                    "sb.pick.longest_idle: candidates must be a list of agents, not a {}",
                    list.type_name()
                )));
            };
            let wanted = Wanted::read(&budget, lua, wanted)?;
            if let Ok(cache) = agents.try_lock() {
                if cache.is_candidates(&list) {
                    let work = cache.slots.len().max(1) * (1 + wanted.words.len());
                    budget.charge(lua, i64::try_from(work).unwrap_or(i64::MAX))?;
                    return Ok(cache.longest_idle(&wanted).map_or(Value::Nil, Value::Table));
                }
            }
            longest_idle_of(&budget, lua, &list, &wanted)
        })?,
    )?;
    sandbox::readonly(lua, pick, "sb.pick")
}

/// Set `t[key] = v` for the table `t` on top of the stack.
///
/// # Safety
/// `l` is a state's stack with a table on top, inside a protected call.
unsafe fn set_str(l: *mut ffi::lua_State, key: &CStr, v: &str) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        ffi::lua_pushlstring(l, v.as_ptr().cast(), v.len());
        ffi::lua_setfield(l, -2, key.as_ptr());
    }
}

/// Set `t[key]` to a new table of the strings of `map`, for the table `t`
/// on top of the stack.
///
/// # Safety
/// As [`set_str`].
unsafe fn set_map(l: *mut ffi::lua_State, key: &CStr, map: &BTreeMap<String, String>) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        ffi::lua_createtable(l, 0, c_int::try_from(map.len()).unwrap_or(0));
        for (k, v) in map {
            ffi::lua_pushlstring(l, k.as_ptr().cast(), k.len());
            ffi::lua_pushlstring(l, v.as_ptr().cast(), v.len());
            ffi::lua_rawset(l, -3);
        }
        ffi::lua_setfield(l, -2, key.as_ptr());
    }
}

/// As [`set_str`] for a number (an integer when it fits, as mlua does).
///
/// # Safety
/// As [`set_str`].
unsafe fn set_u64(l: *mut ffi::lua_State, key: &CStr, v: u64) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        match ffi::lua_Integer::try_from(v) {
            Ok(i) => ffi::lua_pushinteger(l, i),
            Err(_) => ffi::lua_pushnumber(l, v as ffi::lua_Number),
        }
        ffi::lua_setfield(l, -2, key.as_ptr());
    }
}

/// The conversation table of a routing call, a fresh one per call (a
/// script may keep it). Built with raw stack operations in one protected
/// block: mlua protects each string it creates on its own, which cost
/// more than the table.
/// With `ctx`, its `now` is set in the same block.
fn conversation_table(
    host: &Host,
    c: &ConversationView<'_>,
    ctx: Option<(&Table, u64)>,
) -> mlua::Result<Table> {
    let now = ctx.map(|(_, now)| now);
    // SAFETY: the closure pushes at most three values over the table
    // (within the LUA_MINSTACK slots a C function is given) and holds
    // nothing with a destructor, so a memory error may jump out of it.
    unsafe {
        host.lua.exec_raw(ctx.map(|(t, _)| t), |l| {
            if let Some(now) = now {
                set_u64(l, c"now", now);
            }
            ffi::lua_settop(l, 0);
            ffi::lua_createtable(l, 0, 11);
            set_u64(l, c"id", c.id);
            set_str(l, c"queue", c.queue);
            set_str(l, c"channel", c.channel);
            set_str(l, c"customer", c.customer);
            set_str(l, c"customer_name", c.customer_name);
            set_str(l, c"source", c.source);
            set_str(l, c"preview", c.preview);
            set_u64(l, c"received_at", c.received_at);
            set_u64(l, c"queued_at", c.queued_at);
            if let Some(a) = c.last_agent {
                set_str(l, c"last_agent", a);
            }
            set_map(l, c"cad", c.cad);
        })
    }
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

impl RoutingPolicy for Generation {
    fn entry(&self, conversation: &ConversationView<'_>) -> Option<String> {
        let file = self.routing_file.as_deref()?;
        let r = self.call(file, |host| {
            let Some(f) = host.entry.clone() else {
                return Ok(None);
            };
            let conv = conversation_table(host, conversation, None)?;
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
            let conv = conversation_table(host, conversation, Some((&host.ctx, self.now())))?;
            let cands = lock(&host.agents).candidates(&host.lua, candidates)?;
            let ctx = host.ctx.clone();
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

/// The request and context tables of a channel call, in one protected
/// block of raw stack operations (as [`conversation_table`]: mlua
/// protects each string and field it sets on its own, which cost more
/// than the tables for a webhook's headers). `ctx` is `{now, settings}`.
fn request_tables(
    lua: &Lua,
    r: &HttpRequest,
    now: Millis,
    settings: &Table,
) -> mlua::Result<(Table, Table)> {
    // SAFETY: the closure pushes at most three values over the two tables
    // (within the LUA_MINSTACK slots a C function is given), reads the
    // request through shared references and holds nothing with a
    // destructor, so a memory error may jump out of it.
    unsafe {
        lua.exec_raw(settings, |l| {
            ffi::lua_createtable(l, 0, 5);
            set_str(l, c"method", &r.method);
            set_str(l, c"path", &r.path);
            set_map(l, c"query", &r.query);
            set_map(l, c"headers", &r.headers);
            ffi::lua_pushlstring(l, r.body.as_ptr().cast(), r.body.len());
            ffi::lua_setfield(l, -2, c"body".as_ptr());
            // Stack: settings, request. Then ctx = {now, settings}.
            ffi::lua_createtable(l, 0, 2);
            set_u64(l, c"now", now);
            ffi::lua_pushvalue(l, 1);
            ffi::lua_setfield(l, -2, c"settings".as_ptr());
            ffi::lua_remove(l, 1);
        })
    }
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
        let now = self.generation.now();
        Ok(request_tables(&host.lua, request, now, &fns.settings)?)
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
        // The usual shape in one raw walk; anything else (and every
        // error's wording) the careful way.
        match super::read::inbound(&host.lua, &t, MAX_EVENTS) {
            Some(inbound) => Ok(inbound),
            None => inbound_of(&t),
        }
    }
}

/// `inbound`'s result read field by field (metatables honoured), with a
/// clear error for each wrong shape.
pub(super) fn inbound_of(t: &Table) -> Result<Inbound, CallError> {
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
