//! Messenger sender actions (Meta's Send API `sender_action`): `mark_seen`
//! when an agent opens a conversation, `typing_on` while it types. Sent to
//! the same Send API as replies (`{graph}/{version}/me/messages` with the
//! page's `access_token` and its `appsecret_proof`), as
//! `{"recipient":{"id":PSID},"sender_action":…}`.
//!
//! Best-effort: an action is never journaled, never retried and never
//! shown as a failed message; a failure is counted in
//! `switchboard_sender_action_failures_total{tenant, action, reason}`.
//! At most one action of each kind per conversation every [`EVERY_MS`]
//! by the server's clock (the test clock in tests): the desktop signals
//! typing every few seconds, Meta shows `typing_on` for about 20 s.
//!
//! **Invariant:** neither the access token, nor the URL that carries it,
//! nor the customer's PSID is logged.

use crate::config::MessengerConfig;
use crate::metrics::{ActionLabels, Metrics};
use crate::profiles::{appsecret_proof, Failure};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_core::model::{ConversationId, Millis};

/// Least time between two actions of one kind for one conversation.
pub const EVERY_MS: Millis = 5_000;
/// Longest wait for the Send API: the agent's request waits no longer.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Most (tenant, conversation, action) times kept; past it the ones older
/// than [`EVERY_MS`] are dropped.
const MAX_REMEMBERED: usize = 10_000;

/// A Messenger sender action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    MarkSeen,
    TypingOn,
}

impl Action {
    /// Meta's name, also the metric's `action` label.
    pub fn name(self) -> &'static str {
        match self {
            Action::MarkSeen => "mark_seen",
            Action::TypingOn => "typing_on",
        }
    }
}

/// What became of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// One of its kind went for this conversation less than [`EVERY_MS`] ago.
    Throttled,
    /// Counted (see the module's doc).
    Failed(Failure),
}

/// The Send API client for sender actions and when each was last sent.
#[derive(Debug)]
pub struct SenderActions {
    client: reqwest::Client,
    last: Mutex<HashMap<(String, ConversationId, Action), Millis>>,
    metrics: Arc<Metrics>,
}

impl SenderActions {
    pub fn new(metrics: Arc<Metrics>) -> SenderActions {
        let client = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .build()
            .unwrap_or_default();
        SenderActions {
            client,
            last: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Whether `action` may go for the conversation at `now`; if so, it is
    /// recorded as gone.
    fn due(&self, tenant: &str, conversation: ConversationId, action: Action, now: Millis) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let key = (tenant.to_string(), conversation, action);
        if last
            .get(&key)
            .is_some_and(|&at| now.saturating_sub(at) < EVERY_MS)
        {
            return false;
        }
        if last.len() >= MAX_REMEMBERED {
            last.retain(|_, at| now.saturating_sub(*at) < EVERY_MS);
        }
        last.insert(key, now);
        true
    }

    /// Send `action` to the customer `psid` of a conversation unless one
    /// went less than [`EVERY_MS`] ago. Waits at most [`SEND_TIMEOUT`].
    pub async fn send(
        &self,
        tenant: &str,
        cfg: &MessengerConfig,
        conversation: ConversationId,
        psid: &str,
        action: Action,
        now: Millis,
    ) -> Outcome {
        if !self.due(tenant, conversation, action, now) {
            return Outcome::Throttled;
        }
        match self.post(cfg, psid, action).await {
            Ok(()) => Outcome::Sent,
            Err(f) => {
                tracing::info!(tenant = %tenant, conversation, action = action.name(), reason = f.name(), "messenger sender action failed");
                self.metrics
                    .sender_action_failures
                    .get_or_create(&ActionLabels {
                        tenant: tenant.to_string(),
                        action: action.name().to_string(),
                        reason: f.name().to_string(),
                    })
                    .inc();
                Outcome::Failed(f)
            }
        }
    }

    async fn post(&self, cfg: &MessengerConfig, psid: &str, action: Action) -> Result<(), Failure> {
        let mut url = reqwest::Url::parse(cfg.graph_api_base()).map_err(|_| Failure::Invalid)?;
        url.path_segments_mut()
            .map_err(|_| Failure::Invalid)?
            .pop_if_empty()
            .push(&cfg.graph_api_version)
            .push("me")
            .push("messages");
        url.query_pairs_mut()
            .append_pair("access_token", &cfg.access_token)
            .append_pair(
                "appsecret_proof",
                &appsecret_proof(&cfg.app_secret, &cfg.access_token),
            );
        let body = serde_json::json!({
            "recipient": {"id": psid},
            "sender_action": action.name(),
        });
        let resp = self
            .client
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    Failure::Timeout
                } else {
                    Failure::Unreachable
                }
            })?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Failure::Rejected)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_action_of_a_kind_per_conversation_every_few_seconds() {
        let s = SenderActions::new(Arc::new(Metrics::default()));
        assert!(s.due("t", 1, Action::TypingOn, 10_000));
        assert!(!s.due("t", 1, Action::TypingOn, 10_000 + EVERY_MS - 1));
        // Another kind, conversation or tenant is not held back.
        assert!(s.due("t", 1, Action::MarkSeen, 10_001));
        assert!(s.due("t", 2, Action::TypingOn, 10_001));
        assert!(s.due("u", 1, Action::TypingOn, 10_001));
        assert!(s.due("t", 1, Action::TypingOn, 10_000 + EVERY_MS));
    }
}
