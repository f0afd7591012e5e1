//! The host's side of a routing plugin's agent table (ABI 2): which agent
//! is in which slot and what the plugin was last told about it. Per
//! decision: the candidates become slots (the same positional shortcut as
//! the Lua host's agent cache, so a steady pool costs a few comparisons per
//! candidate), new agents and changed names or skills go to the plugin's
//! `agents` (JSON, rare), numeric changes and the slots go to
//! `route_agents` (plain structs), and the answer's slots become agent ids.

use super::plugin::{failure_of, take, CallFailure, NativePlugin};
use crate::routing::{Candidate, ConversationView, RouteDecision};
use std::collections::HashMap;
use switchboard_plugin::abi::{
    AgentState, ConversationInput, Pair, RouteFn, RouteInput, RouteOutput, Str, ROUTE_AGENT,
    ROUTE_KEEP_QUEUED, ROUTE_RANKED,
};
use switchboard_plugin::wire::{AgentRecord, AgentsRequest};
use switchboard_plugin::{Buffer, STATUS_OK};

/// Longest ranked list taken from a plugin (as in the Lua host).
const MAX_RANKED: usize = 1000;
/// An agent that was no candidate for this many decisions leaves the table.
const STALE_AFTER: u64 = 1024;

struct Entry {
    id: String,
    name: String,
    skills: Vec<String>,
    load: u32,
    capacity: u32,
    idle_since: u64,
    /// Where the id, name and skills were last read from: agent configs
    /// never change in place, so the same address means the same text.
    id_at: *const str,
    name_at: *const str,
    skills_at: *const [String],
    last_seen: u64,
    /// To be sent whole through `agents` before this decision.
    pending: bool,
}

/// The host's mirror of one plugin instance's agent table.
#[derive(Default)]
pub(crate) struct HostTable {
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    index: HashMap<String, u32>,
    /// The slot at each candidate position of the previous decision.
    shown: Vec<u32>,
    decisions: u64,
    /// The plugin's table is in doubt (a failed `agents` call): resend it
    /// all, with `reset`.
    reset: bool,
    candidates: Vec<u32>,
    changed: Vec<AgentState>,
    set: Vec<u32>,
    remove: Vec<u32>,
    answer: Vec<u32>,
}

// SAFETY: the `*const` fields of `Entry` are only compared as addresses,
// never dereferenced.
unsafe impl Send for HostTable {}

fn str_of(s: &str) -> Str {
    Str {
        ptr: s.as_ptr(),
        len: s.len(),
    }
}

impl HostTable {
    fn entry(&mut self, slot: u32) -> &mut Entry {
        match self.slots.get_mut(slot as usize).and_then(Option::as_mut) {
            Some(e) => e,
            // Slots in `shown` and `index` always hold an entry.
            None => unreachable!("empty slot {slot} in use"),
        }
    }

    /// The slot of `c`, added to the table (and to `set`) if it is new.
    fn slot_of(&mut self, c: &Candidate<'_>) -> u32 {
        if let Some(&s) = self.index.get(c.id) {
            return s;
        }
        let e = Entry {
            id: c.id.to_string(),
            name: c.name.to_string(),
            skills: c.skills.to_vec(),
            load: c.load,
            capacity: c.capacity,
            idle_since: c.idle_since,
            id_at: c.id,
            name_at: c.name,
            skills_at: c.skills,
            last_seen: self.decisions,
            pending: true,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(e);
                s
            }
            None => {
                self.slots.push(Some(e));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(c.id.to_string(), slot);
        self.set.push(slot);
        slot
    }

    /// Candidates to slots, noting what changed since the last decision.
    fn prepare(&mut self, candidates: &[Candidate<'_>]) {
        self.decisions += 1;
        let now = self.decisions;
        self.candidates.clear();
        self.changed.clear();
        for (pos, c) in candidates.iter().enumerate() {
            let shown = self.shown.get(pos).copied().filter(|&s| {
                self.slots[s as usize]
                    .as_ref()
                    .is_some_and(|e| std::ptr::eq(e.id_at, c.id) || e.id == c.id)
            });
            let slot = match shown {
                Some(s) => s,
                None => {
                    let s = self.slot_of(c);
                    match self.shown.get_mut(pos) {
                        Some(p) => *p = s,
                        None => self.shown.push(s),
                    }
                    s
                }
            };
            self.candidates.push(slot);
            let e = self.entry(slot);
            e.last_seen = now;
            e.id_at = c.id;
            let mut whole = false;
            if !std::ptr::eq(e.name_at, c.name) {
                e.name_at = c.name;
                if e.name != c.name {
                    e.name = c.name.to_string();
                    whole = true;
                }
            }
            if !std::ptr::eq(e.skills_at, c.skills) {
                e.skills_at = c.skills;
                if e.skills.as_slice() != c.skills {
                    e.skills = c.skills.to_vec();
                    whole = true;
                }
            }
            let numbers =
                e.load != c.load || e.capacity != c.capacity || e.idle_since != c.idle_since;
            if numbers {
                e.load = c.load;
                e.capacity = c.capacity;
                e.idle_since = c.idle_since;
            }
            if whole && !e.pending {
                e.pending = true;
                self.set.push(slot);
            } else if numbers && !e.pending {
                self.changed.push(AgentState {
                    slot,
                    load: c.load,
                    capacity: c.capacity,
                    reserved: 0,
                    idle_since: c.idle_since,
                });
            }
        }
        self.shown.truncate(candidates.len());
        if now.is_multiple_of(STALE_AFTER) {
            self.sweep(now);
        }
    }

    /// Agents that were no candidate for a long while leave the table.
    fn sweep(&mut self, now: u64) {
        for (slot, e) in self.slots.iter_mut().enumerate() {
            if e.as_ref()
                .is_some_and(|e| e.last_seen + STALE_AFTER <= now && !e.pending)
            {
                if let Some(e) = e.take() {
                    self.index.remove(&e.id);
                }
                self.free.push(slot as u32);
                self.remove.push(slot as u32);
            }
        }
    }

    /// The `agents` request due before this decision, if any.
    fn agents_request(&mut self) -> Option<AgentsRequest> {
        if self.reset {
            self.set = (0..self.slots.len() as u32)
                .filter(|&s| self.slots[s as usize].is_some())
                .collect();
        }
        if self.set.is_empty() && self.remove.is_empty() && !self.reset {
            return None;
        }
        let set = self
            .set
            .iter()
            .filter_map(|&slot| {
                let e = self.slots[slot as usize].as_ref()?;
                Some(AgentRecord {
                    slot,
                    id: e.id.clone(),
                    name: e.name.clone(),
                    skills: e.skills.clone(),
                    load: e.load,
                    capacity: e.capacity,
                    idle_since: e.idle_since,
                })
            })
            .collect();
        Some(AgentsRequest {
            reset: self.reset,
            set,
            remove: self.remove.clone(),
        })
    }

    /// The plugin has the table as the host sees it.
    fn told(&mut self) {
        for &slot in &self.set {
            if let Some(Some(e)) = self.slots.get_mut(slot as usize) {
                e.pending = false;
            }
        }
        self.set.clear();
        self.remove.clear();
        self.reset = false;
    }

    /// The plugin's table is in doubt: send it whole next time.
    fn doubt(&mut self) {
        self.reset = true;
        self.set.clear();
        self.remove.clear();
        for e in self.slots.iter_mut().flatten() {
            e.pending = true;
        }
    }

    fn id(&self, slot: u32) -> Result<String, CallFailure> {
        self.slots
            .get(slot as usize)
            .and_then(Option::as_ref)
            .map(|e| e.id.clone())
            .ok_or_else(|| CallFailure::shape(format!("route_agents answered unknown slot {slot}")))
    }

    /// One decision through `route_agents` (and `agents` first when due).
    pub(crate) fn route(
        &mut self,
        plugin: &NativePlugin,
        f: RouteFn,
        conversation: &ConversationView<'_>,
        candidates: &[Candidate<'_>],
    ) -> Result<RouteDecision, CallFailure> {
        self.prepare(candidates);
        if let Some(request) = self.agents_request() {
            match plugin.vtable.agents {
                Some(agents) => {
                    let told = serde_json::to_vec(&request)
                        .map_err(|e| CallFailure {
                            kind: "error",
                            message: format!("cannot encode the agents: {e}"),
                        })
                        .and_then(|bytes| plugin.raw_call(agents, &bytes));
                    if let Err(e) = told {
                        self.doubt();
                        return Err(e);
                    }
                    self.told();
                }
                None => self.told(),
            }
        }
        let cad: Vec<Pair> = conversation
            .cad
            .iter()
            .map(|(k, v)| Pair {
                key: str_of(k),
                value: str_of(v),
            })
            .collect();
        let input = RouteInput {
            struct_size: std::mem::size_of::<RouteInput>() as u32,
            reserved: 0,
            now: plugin.now(),
            generation: plugin.generation(),
            changed: self.changed.as_ptr(),
            changed_len: self.changed.len(),
            candidates: self.candidates.as_ptr(),
            candidates_len: self.candidates.len(),
            conversation: ConversationInput {
                id: conversation.id,
                queue: str_of(conversation.queue),
                channel: str_of(conversation.channel),
                customer: str_of(conversation.customer),
                customer_name: str_of(conversation.customer_name),
                source: str_of(conversation.source),
                preview: str_of(conversation.preview),
                cad: cad.as_ptr(),
                cad_len: cad.len(),
                received_at: conversation.received_at,
                queued_at: conversation.queued_at,
                last_agent: match conversation.last_agent {
                    Some(a) => str_of(a),
                    None => Str {
                        ptr: std::ptr::null(),
                        len: 0,
                    },
                },
            },
        };
        self.answer.resize(MAX_RANKED, 0);
        let mut out = RouteOutput {
            kind: ROUTE_KEEP_QUEUED,
            reserved: 0,
            slots: self.answer.as_mut_ptr(),
            capacity: self.answer.len(),
            len: 0,
            error: Buffer::EMPTY,
        };
        // SAFETY: `f` comes from this plugin's checked descriptor (the
        // library is never unloaded) and the instance from its `create`;
        // `input` and everything it points to (`cad`, the candidates, the
        // changes, the conversation's texts) and `out` with its `answer`
        // array outlive the call.
        let status = unsafe { f(plugin.instance_ptr(), &input, &mut out) };
        let message = if out.error.ptr.is_null() {
            Ok(Vec::new())
        } else {
            take(&plugin.vtable, out.error)
        };
        if status != STATUS_OK {
            return Err(failure_of(status, message));
        }
        if out.len > self.answer.len() {
            return Err(CallFailure::shape(format!(
                "route_agents answered {} slots, more than the {} of room",
                out.len,
                self.answer.len()
            )));
        }
        let slots = &self.answer[..out.len];
        match out.kind {
            ROUTE_KEEP_QUEUED => Ok(RouteDecision::KeepQueued),
            ROUTE_AGENT => match slots.first() {
                Some(&s) => Ok(RouteDecision::Agent(self.id(s)?)),
                None => Err(CallFailure::shape("route_agents answered an agent but no slot")),
            },
            ROUTE_RANKED => slots
                .iter()
                .map(|&s| self.id(s))
                .collect::<Result<Vec<_>, _>>()
                .map(RouteDecision::Ranked),
            other => Err(CallFailure::shape(format!(
                "route_agents answered kind {other}; expected 0 (keep queued), 1 (agent) or 2 (ranked)"
            ))),
        }
    }
}
