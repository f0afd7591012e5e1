//! The tenant's timer: one task per tenant sleeping until the next
//! deadline (an offer's expiry, an archive, a session's expiry, the end of
//! an away agent's grace period), then `Tenant::tick`; and the presence
//! sweep that ends expired sessions and logs out agents who are gone.

use super::Tenant;
use crate::auth::Sessions;
use std::collections::HashSet;
use std::sync::Arc;
use switchboard_core::model::{AgentState, Millis, DISCONNECTED_REASON};
use switchboard_core::Command;

/// What the timer needs to end sessions and log out agents who are gone.
#[derive(Debug)]
pub(super) struct Presence {
    pub(super) sessions: Arc<Sessions>,
    pub(super) grace_ms: Millis,
}

impl Tenant {
    /// Connect the tenant's timer to the server's sessions: from then on it
    /// ends expired sessions (closing their sockets) and logs out agents
    /// with no live session or with no socket for longer than `grace_ms`.
    pub fn attach_sessions(&self, sessions: Arc<Sessions>, grace_ms: Millis) {
        if self.presence.set(Presence { sessions, grace_ms }).is_err() {
            tracing::warn!(tenant = %self.config.id, "sessions attached twice");
        }
        self.timer.notify_one();
    }

    /// When the timer next has work: an offer or archive deadline, a
    /// session expiry, or the end of an away agent's grace period.
    pub fn next_deadline(&self) -> Option<Millis> {
        let engine = self.read(|e| e.next_deadline());
        let Some(p) = self.presence.get() else {
            return engine;
        };
        let session = p.sessions.next_expiry(&self.key);
        let away = self
            .hub
            .away()
            .into_iter()
            .map(|(_, since)| since.saturating_add(p.grace_ms))
            .min();
        [engine, session, away].into_iter().flatten().min()
    }

    /// End the sessions expired now (their sockets are closed) and log out
    /// through the engine every agent who is gone: no live session, or no
    /// socket for longer than the grace period. Their pending offers go
    /// back to the queue at once.
    pub(super) async fn sweep_agents(&self) {
        let Some(p) = self.presence.get() else {
            return;
        };
        let now = self.clock.now();
        for s in p.sessions.expire(&self.key, now) {
            self.hub.close_session(&s.agent, &s.id);
            tracing::info!(tenant = %self.config.id, agent = %s.agent, "session expired");
        }
        // Agents who could be offered work (the others need no watching).
        let watched: HashSet<String> = self.read(|e| {
            e.agents()
                .filter(|a| match &a.state {
                    AgentState::LoggedOut => false,
                    AgentState::Idle { reason } => {
                        reason != DISCONNECTED_REASON || !a.offers.is_empty()
                    }
                    AgentState::Available | AgentState::Rona => true,
                })
                .map(|a| a.config.id.clone())
                .collect()
        });
        for (agent, _) in self.hub.away() {
            if !watched.contains(&agent) {
                self.hub.forget_away(&agent);
            }
        }
        for agent in watched {
            let has_session = p.sessions.has_live(&self.key, &agent, now);
            let away_too_long = self
                .hub
                .away_since(&agent)
                .is_some_and(|since| since.saturating_add(p.grace_ms) <= now);
            if has_session && !away_too_long {
                // After a restart nobody is connected yet: start the grace.
                self.hub.away_unless_connected(&agent, now);
                continue;
            }
            let why = if has_session { "away" } else { "no_session" };
            match self
                .execute(Command::AgentGone {
                    agent: agent.clone(),
                })
                .await
            {
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(tenant = %self.config.id, agent = %agent, error = ?e, "could not log out an agent who is gone");
                }
            }
            self.hub.forget_away(&agent);
            let logged_out = self.read(|e| {
                e.agent(&agent)
                    .is_some_and(|a| a.state == AgentState::LoggedOut)
            });
            if logged_out {
                // No session may outlive its agent's login.
                for s in p.sessions.revoke_agent(&self.key, &agent) {
                    self.hub.close_session(&s.agent, &s.id);
                }
            }
            tracing::info!(tenant = %self.config.id, agent = %agent, reason = why, logged_out, "agent gone");
        }
    }
}

/// Drive the tenant's timers until the process ends.
pub async fn run_timers(tenant: Arc<Tenant>) {
    loop {
        let next = tenant.next_deadline();
        let now = tenant.now();
        let wait = match next {
            Some(d) => d.saturating_sub(now),
            None => 60_000,
        };
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {}
            _ = tenant.timer.notified() => {}
        }
        tenant.tick().await;
    }
}
