//! The host's side of a routing plugin's agent table (ABI 2): which agent
//! is in which slot and what the plugin was last told about it. Per
//! decision: the candidates become slots (a positional shortcut: a steady
//! pool costs one sequential pass of address and number compares, with no
//! lookup and no text compare), new agents and changed names or skills go
//! to the plugin's `agents` (JSON, rare), numeric changes and the slots go
//! to `route_agents` (plain structs), and the answer's slots become agent
//! ids.

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

/// What the host knows of the agent in a slot.
struct Entry {
    id: String,
    name: String,
    skills: Vec<String>,
    /// As the plugin was last told them.
    numbers: Numbers,
    /// The last decision it was a candidate in, as of the last time its
    /// position changed (agents still where they were last decision are
    /// seen now: see [`HostTable::sweep`]).
    last_seen: u64,
    /// To be sent whole through `agents` before this decision.
    pending: bool,
}

/// The numbers of a slot as the plugin was last told them.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Numbers {
    load: u32,
    capacity: u32,
    idle_since: u64,
}

/// The candidate at one position of the previous decision: its slot and
/// where its id, name and skills were read from ([`where_of`]). Agent
/// configs never change in place, so the same configuration (stamp) at
/// the same addresses at the same position means the same agent with the
/// same name and skills: a steady
/// pool costs one sequential pass of address and number compares per
/// candidate, never a lookup or a text compare.
struct Shown {
    at: [usize; 7],
    slot: u32,
    /// The slot's numbers as in its [`Entry`], copied here so the pass
    /// reads one stream instead of also reading entries by slot. Each slot
    /// is at one position at most (candidates are distinct agents), so the
    /// copy changes whenever the original does.
    told: Numbers,
}

impl Shown {
    /// Whether `c` is the candidate shown: one branch over the seven words
    /// (an array `==` would call `memcmp` per candidate).
    #[inline]
    fn is(&self, c: &Candidate<'_>) -> bool {
        let w = where_of(c);
        let a = &self.at;
        ((a[0] ^ w[0])
            | (a[1] ^ w[1])
            | (a[2] ^ w[2])
            | (a[3] ^ w[3])
            | (a[4] ^ w[4])
            | (a[5] ^ w[5])
            | (a[6] ^ w[6]))
            == 0
    }
}

/// Addresses and lengths of a candidate's id, name and skills (compared,
/// never dereferenced), and the stamp of the configuration they belong to
/// (a replaced configuration's memory may hold the next one).
fn where_of(c: &Candidate<'_>) -> [usize; 7] {
    [
        c.id.as_ptr() as usize,
        c.id.len(),
        c.name.as_ptr() as usize,
        c.name.len(),
        c.skills.as_ptr() as usize,
        c.skills.len(),
        // Truncated where usize is 32 bits: a stamp 2^32 configurations
        // later would have to land at the same addresses too.
        c.stamp as usize,
    ]
}

fn numbers_of(c: &Candidate<'_>) -> Numbers {
    Numbers {
        load: c.load,
        capacity: c.capacity,
        idle_since: c.idle_since,
    }
}

/// Record `c`'s numbers for `slot`, queuing a change for the plugin when
/// they differ from what it was told.
#[inline]
fn note_numbers(
    slots: &mut [Option<Entry>],
    changed: &mut Vec<AgentState>,
    slot: u32,
    c: &Candidate<'_>,
) {
    let Some(Some(e)) = slots.get_mut(slot as usize) else {
        unreachable!("empty slot {slot} in use");
    };
    let now = numbers_of(c);
    if e.numbers != now {
        e.numbers = now;
        // For an agent also sent whole (`pending`) this repeats what the
        // record says: harmless, and the check stays one branch.
        changed.push(AgentState {
            slot,
            load: c.load,
            capacity: c.capacity,
            reserved: 0,
            idle_since: c.idle_since,
        });
    }
}

/// The host's mirror of one plugin instance's agent table.
#[derive(Default)]
pub(crate) struct HostTable {
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    index: HashMap<String, u32>,
    /// The previous decision's candidates, by position.
    shown: Vec<Shown>,
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
    fn slot_of(&mut self, c: &Candidate<'_>, now: u64) -> u32 {
        if let Some(&s) = self.index.get(c.id) {
            return s;
        }
        let e = Entry {
            id: c.id.to_string(),
            name: c.name.to_string(),
            skills: c.skills.to_vec(),
            numbers: numbers_of(c),
            last_seen: now,
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

    /// The agent in `slot` was a candidate in the decision before `now`.
    fn left_position(&mut self, slot: u32, now: u64) {
        if let Some(Some(e)) = self.slots.get_mut(slot as usize) {
            e.last_seen = e.last_seen.max(now - 1);
        }
    }

    /// The slot of `c`, at position `pos`, when it is not the agent the
    /// previous decision had there (or its name or skills moved): found
    /// by id, its name and skills compared as text.
    fn place(&mut self, pos: usize, c: &Candidate<'_>, now: u64) -> u32 {
        if let Some(old) = self.shown.get(pos) {
            self.left_position(old.slot, now);
        }
        let slot = self.slot_of(c, now);
        let e = self.entry(slot);
        e.last_seen = now;
        let told = e.numbers;
        let mut whole = false;
        if e.name != c.name {
            e.name = c.name.to_string();
            whole = true;
        }
        if e.skills.as_slice() != c.skills {
            e.skills = c.skills.to_vec();
            whole = true;
        }
        if whole && !e.pending {
            e.pending = true;
            self.set.push(slot);
        }
        let shown = Shown {
            at: where_of(c),
            slot,
            told,
        };
        match self.shown.get_mut(pos) {
            Some(p) => *p = shown,
            None => self.shown.push(shown),
        }
        slot
    }

    /// Candidates to slots, noting what changed since the last decision.
    fn prepare(&mut self, candidates: &[Candidate<'_>]) {
        self.decisions += 1;
        let now = self.decisions;
        self.candidates.clear();
        self.candidates.resize(candidates.len(), 0);
        self.changed.clear();
        // The steady case first, in one tight pass: the same agent where it
        // was last time.
        let both = candidates.len().min(self.shown.len());
        let pass = candidates[..both]
            .iter()
            .zip(&mut self.shown[..both])
            .zip(&mut self.candidates[..both])
            .enumerate();
        // Positions whose candidate is not the one shown there last time
        // (no allocation while there are none).
        let mut misses: Vec<usize> = Vec::new();
        for (pos, ((c, shown), out)) in pass {
            if shown.is(c) {
                *out = shown.slot;
                let now_numbers = numbers_of(c);
                if shown.told != now_numbers {
                    shown.told = now_numbers;
                    note_numbers(&mut self.slots, &mut self.changed, shown.slot, c);
                }
            } else {
                misses.push(pos);
            }
        }
        misses.extend(both..candidates.len());
        for pos in misses {
            let c = &candidates[pos];
            let slot = self.place(pos, c, now);
            self.candidates[pos] = slot;
            note_numbers(&mut self.slots, &mut self.changed, slot, c);
            if let Some(shown) = self.shown.get_mut(pos) {
                shown.told = numbers_of(c);
            }
        }
        for pos in candidates.len()..self.shown.len() {
            let slot = self.shown[pos].slot;
            self.left_position(slot, now);
        }
        self.shown.truncate(candidates.len());
        if now.is_multiple_of(STALE_AFTER) {
            self.sweep(now);
        }
    }

    /// Agents that were no candidate for a long while leave the table.
    fn sweep(&mut self, now: u64) {
        // This decision's candidates were seen now, wherever they stand.
        for i in 0..self.shown.len() {
            let slot = self.shown[i].slot;
            if let Some(Some(e)) = self.slots.get_mut(slot as usize) {
                e.last_seen = now;
            }
        }
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
                let e = self.slots.get(slot as usize)?.as_ref()?;
                let n = e.numbers;
                Some(AgentRecord {
                    slot,
                    id: e.id.clone(),
                    name: e.name.clone(),
                    skills: e.skills.clone(),
                    load: n.load,
                    capacity: n.capacity,
                    idle_since: n.idle_since,
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
