//! Test harness for the engine: a demo tenant, a virtual clock, and a
//! compact one-line rendering of emitted events so tests assert exact
//! sequences readably.
#![allow(dead_code)] // each test file uses a different part of the harness

use switchboard_core::command::{Command, CustomerMessage};
use switchboard_core::engine::{Engine, Extensions, Output};
use switchboard_core::event::{Emitted, Event};
use switchboard_core::masking::Masker;
use switchboard_core::model::*;

pub const RONA_MS: Millis = 30_000;
/// Closed conversations leave memory this long after closing (tests).
pub const ARCHIVE_MS: Millis = 600_000;

pub fn queue(id: &str) -> QueueConfig {
    QueueConfig {
        id: id.into(),
        name: id.into(),
        rona_timeout_ms: RONA_MS,
    }
}

pub fn agent(id: &str, capacity: u32) -> AgentConfig {
    AgentConfig {
        id: id.into(),
        name: id.into(),
        capacity,
        queues: vec!["support".into(), "billing".into()],
        skills: vec![],
    }
}

pub fn settings() -> TenantSettings {
    TenantSettings {
        mask: true,
        transfer_not_accepted: TransferNotAccepted::ReturnToQueue,
        default_queue: "support".into(),
        archive_after_ms: ARCHIVE_MS,
        idle_reasons: vec!["Break".into(), "Lunch".into()],
        language: Default::default(),
    }
}

/// A tenant with queues support and billing and the given agents.
pub struct World {
    pub engine: Engine,
    pub now: Millis,
    /// Every event emitted so far, in order (what the journal holds).
    pub journal: Vec<switchboard_core::Event>,
    settings: TenantSettings,
    agents: Vec<(String, u32)>,
}

impl World {
    pub fn new(agents: &[(&str, u32)]) -> Self {
        Self::with_settings(agents, settings())
    }

    pub fn with_settings(agents: &[(&str, u32)], settings: TenantSettings) -> Self {
        let agents: Vec<(String, u32)> = agents.iter().map(|(a, c)| (a.to_string(), *c)).collect();
        World {
            engine: Self::fresh(&settings, &agents),
            now: 1_000_000,
            journal: Vec::new(),
            settings,
            agents,
        }
    }

    fn fresh(settings: &TenantSettings, agents: &[(String, u32)]) -> Engine {
        Engine::new(
            settings.clone(),
            Masker::default(),
            vec![queue("support"), queue("billing")],
            agents.iter().map(|(id, cap)| agent(id, *cap)).collect(),
        )
    }

    /// A new engine rebuilt from the journal alone (recovery).
    pub fn replay(&self) -> Engine {
        let mut e = Self::fresh(&self.settings, &self.agents);
        for ev in &self.journal {
            e.apply(ev);
        }
        e
    }

    /// A new engine from the configuration and a snapshot of this one.
    pub fn restored(&self) -> Engine {
        let mut e = Self::fresh(&self.settings, &self.agents);
        e.restore(self.engine.snapshot());
        e
    }

    /// Run a command that must succeed; returns its trace.
    pub fn run(&mut self, cmd: Command) -> Vec<String> {
        let out = self
            .try_run(cmd)
            .unwrap_or_else(|e| panic!("command refused: {e}"));
        trace(&out)
    }

    pub fn try_run(&mut self, cmd: Command) -> Result<Output, switchboard_core::CommandError> {
        let out = self.engine.handle(cmd, self.now, &Extensions::builtin());
        if let Err(e) = self.engine.check_invariants() {
            panic!("invariant broken: {e}");
        }
        if let Ok(o) = &out {
            self.journal.extend(o.events().cloned());
        }
        out
    }

    pub fn advance(&mut self, ms: Millis) -> Vec<String> {
        self.now += ms;
        let out = self.engine.tick(self.now, &Extensions::builtin());
        if let Err(e) = self.engine.check_invariants() {
            panic!("invariant broken: {e}");
        }
        self.journal.extend(out.events().cloned());
        trace(&out)
    }

    pub fn available(&mut self, agents: &[&str]) {
        for a in agents {
            self.run(Command::Login {
                agent: a.to_string(),
            });
            self.run(Command::SetAvailable {
                agent: a.to_string(),
            });
            self.now += 1;
        }
    }

    pub fn customer(&mut self, who: &str, text: &str) -> Vec<String> {
        self.run(customer_msg(who, text))
    }
}

pub fn customer_msg(who: &str, text: &str) -> Command {
    Command::CustomerMessage(CustomerMessage {
        channel: "webchat".into(),
        customer: who.into(),
        customer_name: Some(format!("Customer {who}")),
        text: text.into(),
        source: "Web site".into(),
        queue: "support".into(),
        cad: Cad::new(),
        external_id: None,
        attachments: Vec::new(),
        sent_at: None,
    })
}

pub fn accept(agent: &str, c: ConversationId) -> Command {
    Command::Accept {
        agent: agent.into(),
        conversation: c,
    }
}

pub fn say(agent: &str, c: ConversationId, text: &str) -> Command {
    Command::AgentMessage {
        agent: agent.into(),
        conversation: c,
        text: text.into(),
        attachments: Vec::new(),
    }
}

pub fn end(agent: &str, c: ConversationId) -> Command {
    Command::End {
        agent: agent.into(),
        conversation: c,
    }
}

pub fn wrapup(agent: &str, c: ConversationId, reason: &str) -> Command {
    Command::WrapUp {
        agent: agent.into(),
        conversation: c,
        reason: reason.into(),
    }
}

/// One line per emitted event: `type #conv details [audience]`.
pub fn trace(out: &Output) -> Vec<String> {
    out.emitted.iter().map(line).collect()
}

pub fn line(e: &Emitted) -> String {
    let body = match &e.event {
        Event::AgentState { agent, state, .. } => format!("agent_state {agent} {state}"),
        Event::ConversationCreated { conversation, .. } => {
            format!("conversation_created #{conversation}")
        }
        Event::Queued {
            conversation,
            queue,
            ..
        } => format!("queued #{conversation} {queue}"),
        Event::Offer {
            conversation,
            agent,
            kind,
            ..
        } => format!("offer #{conversation} {agent} {kind:?}"),
        Event::OfferRescinded {
            conversation,
            agent,
            reason,
        } => format!("offer_rescinded #{conversation} {agent} {reason}"),
        Event::ConversationStarted {
            conversation,
            agent,
            ..
        } => format!("conversation_started #{conversation} {agent}"),
        Event::Message {
            conversation,
            from,
            text,
            ..
        } => format!("message #{conversation} {from:?}: {text}"),
        Event::MessageRedacted {
            conversation,
            index,
            text,
            ..
        } => format!("message_redacted #{conversation} [{index}]: {text}"),
        Event::Transferred {
            conversation,
            agent,
            to,
            ..
        } => format!("transferred #{conversation} {agent} -> {to:?}"),
        Event::ConferenceRequested {
            conversation,
            agent,
            invitee,
            ..
        } => format!("conference_requested #{conversation} {agent} -> {invitee}"),
        Event::ConferenceCancelled {
            conversation,
            invitee,
            reason,
            ..
        } => format!("conference_cancelled #{conversation} {invitee} {reason}"),
        Event::ConferenceStarted {
            conversation,
            agent,
            ..
        } => format!("conference_started #{conversation} {agent}"),
        Event::ConferenceEnded {
            conversation, by, ..
        } => format!("conference_ended #{conversation} {by}"),
        Event::ParticipantLeft {
            conversation,
            agent,
            ..
        } => format!("participant_left #{conversation} {agent}"),
        Event::ConversationInterrupted { conversation, .. } => {
            format!("conversation_interrupted #{conversation}")
        }
        Event::ConversationEnded {
            conversation, by, ..
        } => format!("conversation_ended #{conversation} {by}"),
        Event::ConversationDropped {
            conversation,
            reason,
            ..
        } => format!("conversation_dropped #{conversation} {reason}"),
        Event::WrapupRequired {
            conversation,
            agent,
            ..
        } => format!("wrapup_required #{conversation} {agent}"),
        Event::WrapupSubmitted {
            conversation,
            agent,
            reason,
            ..
        } => format!("wrapup_submitted #{conversation} {agent} {reason}"),
        Event::QueueDeleted { queue, .. } => format!("queue_deleted {queue}"),
        Event::ConversationArchived { conversation, .. } => {
            format!("conversation_archived #{conversation}")
        }
        Event::SettingsChanged { mask, .. } => format!("settings_changed mask={mask}"),
        Event::AgentSaved {
            agent,
            name,
            capacity,
            queues,
            skills,
            role,
            created,
            by,
            ..
        } => format!(
            "agent_saved {agent} ({name}) cap={capacity} queues={} skills={} role={} created={created} by={by}",
            queues.join(","),
            skills.join(","),
            role.name()
        ),
        Event::PasswordSet {
            agent,
            password_hash,
            by,
            ..
        } => format!("password_set {agent} {} by={by}", password_hash.as_str()),
        Event::AgentEnabled {
            agent, enabled, by, ..
        } => format!("agent_enabled {agent} {enabled} by={by}"),
        Event::QueueSaved {
            queue,
            name,
            rona_timeout_ms,
            created,
            by,
            ..
        } => format!("queue_saved {queue} ({name}) rona={rona_timeout_ms} created={created} by={by}"),
        Event::IdleReasonsChanged { reasons, by, .. } => {
            format!("idle_reasons_changed {} by={by}", reasons.join(","))
        }
        Event::DeliveryFailed {
            conversation,
            message,
            reason,
            ..
        } => format!(
            "delivery_failed #{conversation} [{message}] {}",
            reason.name()
        ),
        Event::Receipt {
            conversation,
            status,
            through,
            ..
        } => format!("receipt #{conversation} {} through [{through}]", status.name()),
        Event::SupervisorAction {
            supervisor,
            action,
            agent,
            conversation,
            queue,
            state,
            reason,
            ..
        } => {
            let mut s = format!("supervisor_action {supervisor} {action}");
            for part in [
                agent.clone(),
                conversation.map(|c| format!("#{c}")),
                queue.clone(),
                state.clone(),
                reason.as_ref().map(|r| format!("({r})")),
            ]
            .into_iter()
            .flatten()
            {
                s.push(' ');
                s.push_str(&part);
            }
            s
        }
    };
    let mut aud = e.audience.agents.join(",");
    if e.audience.customer {
        if !aud.is_empty() {
            aud.push(',');
        }
        aud.push_str("customer");
    }
    format!("{body} [{aud}]")
}

/// The first message of new Messenger customer number `i`, shaped as the
/// Messenger adapter gives it (PSID, page, `mid`, CAD): what a surge of
/// new customers is made of (queue cost benchmark and memory test).
pub fn messenger_customer(i: u64) -> Command {
    let psid = (7_000_000_000_000_000u64 + i).to_string();
    let mut cad = Cad::new();
    cad.insert("messenger_page".into(), "Acme Support".into());
    cad.insert("messenger_psid".into(), psid.clone());
    Command::CustomerMessage(CustomerMessage {
        channel: "messenger".into(),
        customer: psid,
        customer_name: None,
        text: format!(
            "Hello, I ordered a jacket last week and it has still not arrived. \
             Can you tell me where it is? Order {i}"
        ),
        source: "Acme Support".into(),
        queue: "support".into(),
        cad,
        external_id: Some(format!(
            "m_{:040x}",
            u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
        )),
        attachments: Vec::new(),
        sent_at: None,
    })
}
