//! Administration: agents, accounts, queues and idle reasons changed by a
//! tenant's admin. Every change is an event (journaled, replayed, kept in
//! snapshots), so it survives restarts and reaches every node.

use super::{nobody, Agent, Engine, Output};
use crate::command::{AgentProfile, Command, CommandError};
use crate::event::Event;
use crate::model::{
    is_forbidden_control, Account, AgentConfig, AgentId, AgentState, Millis, PasswordHash,
    QueueConfig, QueueId, Role,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Longest id, name, skill or idle reason, in characters.
const MAX_LEN: usize = 64;
/// Most conversations one agent may be given at once.
pub const MAX_CAPACITY: u32 = 100;
/// RONA timeout bounds (ms).
pub const MIN_RONA_MS: Millis = 1_000;
pub const MAX_RONA_MS: Millis = 3_600_000;
/// Most idle reasons a tenant may have.
const MAX_IDLE_REASONS: usize = 50;

/// What admins changed, in a snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AdminSnapshot {
    /// Every agent an admin created or changed, with its whole
    /// configuration and account.
    pub agents: Vec<(AgentConfig, Account)>,
    pub queues: Vec<QueueConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_reasons: Option<Vec<String>>,
}

fn invalid(msg: impl Into<String>) -> CommandError {
    CommandError::Invalid(msg.into())
}

/// An id: 1 to 64 of `a-z A-Z 0-9 - _ .`.
fn check_id(what: &str, id: &str) -> Result<(), CommandError> {
    let ok = !id.is_empty()
        && id.chars().count() <= MAX_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} must be 1 to {MAX_LEN} letters, digits, '-', '_' or '.'"
        )))
    }
}

/// A label shown to people: trimmed, 1 to 64 characters, no controls.
fn check_label(what: &str, text: &str) -> Result<String, CommandError> {
    let t = text.trim();
    if t.is_empty() || t.chars().count() > MAX_LEN || t.chars().any(is_forbidden_control) {
        return Err(invalid(format!(
            "{what} must be 1 to {MAX_LEN} characters without control characters"
        )));
    }
    Ok(t.to_string())
}

fn check_hash(hash: &PasswordHash) -> Result<(), CommandError> {
    if hash.as_str().starts_with("$argon2") {
        Ok(())
    } else {
        Err(invalid("password_hash must be an argon2 PHC string"))
    }
}

impl Engine {
    /// Give the configured agents their roles (the file is the bootstrap;
    /// an admin's later changes are events).
    pub fn seed_roles(&mut self, roles: impl IntoIterator<Item = (AgentId, Role)>) {
        for (agent, role) in roles {
            if self.agents.contains_key(&agent) {
                self.accounts.entry(agent).or_default().role = role;
            }
        }
    }

    /// An agent's role (`agent` when unknown).
    pub fn role_of(&self, agent: &str) -> Role {
        self.accounts.get(agent).map(|a| a.role).unwrap_or_default()
    }

    /// The argon2 hash an admin set for the agent, if any (else the
    /// configured credential applies).
    pub fn password_hash(&self, agent: &str) -> Option<&str> {
        self.accounts
            .get(agent)
            .and_then(|a| a.password_hash.as_ref())
            .map(PasswordHash::as_str)
    }

    /// Whether an admin disabled the agent.
    pub fn is_disabled(&self, agent: &str) -> bool {
        self.accounts.get(agent).is_some_and(|a| a.disabled)
    }

    /// The tenant's idle reasons.
    pub fn idle_reasons(&self) -> &[String] {
        &self.settings.idle_reasons
    }

    fn check_profile(&self, p: &AgentProfile) -> Result<AgentProfile, CommandError> {
        let name = check_label("name", &p.name)?;
        if p.capacity == 0 || p.capacity > MAX_CAPACITY {
            return Err(invalid(format!(
                "capacity must be between 1 and {MAX_CAPACITY}"
            )));
        }
        let mut queues = Vec::new();
        for q in &p.queues {
            if !self.queues.contains_key(q) {
                return Err(invalid(format!("unknown queue {q:?}")));
            }
            if !queues.contains(q) {
                queues.push(q.clone());
            }
        }
        let mut skills = Vec::new();
        for s in &p.skills {
            let s = check_label("each skill", s)?;
            if !skills.contains(&s) {
                skills.push(s);
            }
        }
        Ok(AgentProfile {
            name,
            capacity: p.capacity,
            queues,
            skills,
            role: p.role,
        })
    }

    fn saved(agent: &str, p: AgentProfile, created: bool, by: &str, now: Millis) -> Event {
        Event::AgentSaved {
            agent: agent.to_string(),
            name: p.name,
            capacity: p.capacity,
            queues: p.queues,
            skills: p.skills,
            role: p.role,
            created,
            by: by.to_string(),
            at: now,
        }
    }

    /// The administration commands.
    pub(super) fn administer(
        &mut self,
        command: Command,
        now: Millis,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        match command {
            Command::CreateAgent {
                by,
                agent,
                profile,
                password_hash,
            } => {
                check_id("agent id", &agent)?;
                let p = self.check_profile(&profile)?;
                check_hash(&password_hash)?;
                if self.agents.contains_key(&agent) {
                    return Err(CommandError::Conflict(format!(
                        "agent {agent:?} already exists"
                    )));
                }
                self.emit(out, Self::saved(&agent, p, true, &by, now), nobody());
                let ev = Event::PasswordSet {
                    agent,
                    password_hash,
                    by,
                    at: now,
                };
                self.emit(out, ev, nobody());
                Ok(())
            }
            Command::EditAgent { by, agent, profile } => {
                self.agent_mut_checked(&agent)?;
                let p = self.check_profile(&profile)?;
                self.emit(out, Self::saved(&agent, p, false, &by, now), nobody());
                Ok(())
            }
            Command::SetPassword {
                by,
                agent,
                password_hash,
            } => {
                self.agent_mut_checked(&agent)?;
                check_hash(&password_hash)?;
                let ev = Event::PasswordSet {
                    agent,
                    password_hash,
                    by,
                    at: now,
                };
                self.emit(out, ev, nobody());
                Ok(())
            }
            Command::SetAgentEnabled { by, agent, enabled } => {
                let a = self.agent_mut_checked(&agent)?;
                if self.is_disabled(&agent) != enabled {
                    return Ok(());
                }
                if !enabled {
                    if !a.conversations.is_empty() || !a.wrapups.is_empty() {
                        return Err(CommandError::Conflict(
                            "the agent holds conversations or owes wrap-ups: close them first"
                                .into(),
                        ));
                    }
                    self.log_out(&agent, now, out);
                }
                let ev = Event::AgentEnabled {
                    agent,
                    enabled,
                    by,
                    at: now,
                };
                self.emit(out, ev, nobody());
                Ok(())
            }
            Command::SaveQueue {
                by,
                queue,
                name,
                rona_timeout_ms,
                create,
            } => {
                check_id("queue id", &queue)?;
                let name = check_label("name", &name)?;
                if !(MIN_RONA_MS..=MAX_RONA_MS).contains(&rona_timeout_ms) {
                    return Err(invalid(format!(
                        "rona_timeout_ms must be between {MIN_RONA_MS} and {MAX_RONA_MS}"
                    )));
                }
                match (create, self.queues.contains_key(&queue)) {
                    (true, true) => {
                        return Err(CommandError::Conflict(format!(
                            "queue {queue:?} already exists"
                        )))
                    }
                    (false, false) => return Err(CommandError::NotFound("queue")),
                    _ => {}
                }
                let ev = Event::QueueSaved {
                    queue,
                    name,
                    rona_timeout_ms,
                    created: create,
                    by,
                    at: now,
                };
                self.emit(out, ev, nobody());
                Ok(())
            }
            Command::SetIdleReasons { by, reasons } => {
                if reasons.len() > MAX_IDLE_REASONS {
                    return Err(invalid(format!("at most {MAX_IDLE_REASONS} idle reasons")));
                }
                let mut list: Vec<String> = Vec::new();
                for r in &reasons {
                    let r = check_label("each idle reason", r)?;
                    if list.contains(&r) {
                        return Err(invalid(format!("idle reason {r:?} is given twice")));
                    }
                    list.push(r);
                }
                let ev = Event::IdleReasonsChanged {
                    reasons: list,
                    by,
                    at: now,
                };
                self.emit(out, ev, nobody());
                Ok(())
            }
            Command::SetMasking { by, mask } => {
                // Who changed it and to what, even when it already was so:
                // the audit trail records every attempt.
                let ev = Event::SupervisorAction {
                    supervisor: by,
                    action: "masking".into(),
                    agent: None,
                    conversation: None,
                    queue: None,
                    state: Some(if mask { "on" } else { "off" }.into()),
                    reason: None,
                    at: now,
                };
                self.emit(out, ev, nobody());
                if self.settings.mask != mask {
                    self.emit(out, Event::SettingsChanged { mask, at: now }, nobody());
                }
                Ok(())
            }
            _ => Err(invalid("not an administration command")),
        }
    }

    /// Apply an administration event (from `apply_event`).
    pub(super) fn apply_admin(&mut self, event: &Event) {
        match event {
            Event::AgentSaved {
                agent,
                name,
                capacity,
                queues,
                skills,
                role,
                ..
            } => {
                let config = AgentConfig {
                    id: agent.clone(),
                    name: name.clone(),
                    capacity: *capacity,
                    queues: queues.clone(),
                    skills: skills.clone(),
                };
                self.put_agent(config);
                self.accounts.entry(agent.clone()).or_default().role = *role;
                self.managed_agents.insert(agent.clone());
            }
            Event::PasswordSet {
                agent,
                password_hash,
                ..
            } => {
                self.accounts
                    .entry(agent.clone())
                    .or_default()
                    .password_hash = Some(password_hash.clone());
                self.managed_agents.insert(agent.clone());
            }
            Event::AgentEnabled { agent, enabled, .. } => {
                self.accounts.entry(agent.clone()).or_default().disabled = !enabled;
                self.managed_agents.insert(agent.clone());
            }
            Event::QueueSaved {
                queue,
                name,
                rona_timeout_ms,
                ..
            } => {
                self.deleted_queues.remove(queue);
                self.queues.insert(
                    queue.clone(),
                    QueueConfig {
                        id: queue.clone(),
                        name: name.clone(),
                        rona_timeout_ms: *rona_timeout_ms,
                    },
                );
                self.managed_queues.insert(queue.clone());
                self.dirty.insert(queue.clone());
            }
            Event::IdleReasonsChanged { reasons, .. } => {
                self.settings.idle_reasons = reasons.clone();
                self.managed_idle_reasons = true;
            }
            _ => {}
        }
    }

    /// Create or reconfigure an agent, keeping what it holds, and let
    /// routing look at its queues again (capacity or queues may have grown).
    fn put_agent(&mut self, config: AgentConfig) {
        let queues: BTreeSet<QueueId> = config.queues.iter().cloned().collect();
        match self.agents.get_mut(&config.id) {
            Some(a) => {
                a.config = config;
                a.stamp = crate::routing::next_config_stamp();
            }
            None => {
                let agent = Agent {
                    config,
                    stamp: crate::routing::next_config_stamp(),
                    state: AgentState::LoggedOut,
                    idle_since: 0,
                    conversations: BTreeSet::new(),
                    offers: BTreeSet::new(),
                    wrapups: BTreeSet::new(),
                };
                self.agents.insert(agent.config.id.clone(), agent);
            }
        }
        self.dirty.extend(queues);
    }

    pub(super) fn admin_snapshot(&self) -> Option<AdminSnapshot> {
        let agents: Vec<(AgentConfig, Account)> = self
            .managed_agents
            .iter()
            .filter_map(|id| {
                let a = self.agents.get(id)?;
                Some((
                    a.config.clone(),
                    self.accounts.get(id).cloned().unwrap_or_default(),
                ))
            })
            .collect();
        let queues: Vec<QueueConfig> = self
            .managed_queues
            .iter()
            .filter_map(|q| self.queues.get(q).cloned())
            .collect();
        let idle_reasons = self
            .managed_idle_reasons
            .then(|| self.settings.idle_reasons.clone());
        if agents.is_empty() && queues.is_empty() && idle_reasons.is_none() {
            return None;
        }
        Some(AdminSnapshot {
            agents,
            queues,
            idle_reasons,
        })
    }

    /// Put back what admins changed (before the rest of the snapshot, so
    /// created agents get their run-time state).
    pub(super) fn restore_admin(&mut self, snap: &AdminSnapshot) {
        for q in &snap.queues {
            self.queues.insert(q.id.clone(), q.clone());
            self.managed_queues.insert(q.id.clone());
        }
        for (config, account) in &snap.agents {
            self.put_agent(config.clone());
            self.accounts.insert(config.id.clone(), account.clone());
            self.managed_agents.insert(config.id.clone());
        }
        if let Some(reasons) = &snap.idle_reasons {
            self.settings.idle_reasons = reasons.clone();
            self.managed_idle_reasons = true;
        }
    }
}
