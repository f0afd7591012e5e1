//! What the engine is handed with each command and tick: the live
//! generation's routing, timed (and shown to a shadow policy when one
//! runs), and the tenant's channel directory.

use crate::generation::TenantGeneration;
use prometheus_client::metrics::histogram::Histogram;
use switchboard_core::channel::{
    ChannelDirectory, ChannelError, Outbound, OutboundContext, OutboundMessage, WEBCHAT,
};
use switchboard_core::model::Millis;
use switchboard_core::routing::{Candidate, ConversationView, RouteDecision, RoutingPolicy};

/// The tenant's channels for the engine: web chat built in (replies are
/// pushed on the visitor's socket), every other channel through the
/// generation's adapter (plugin, else script).
pub(super) struct Directory<'a> {
    pub(super) generation: &'a TenantGeneration,
}

impl ChannelDirectory for Directory<'_> {
    fn outbound(
        &self,
        channel: &str,
        message: &OutboundMessage,
        ctx: &OutboundContext,
    ) -> Option<Result<Outbound, ChannelError>> {
        if channel == WEBCHAT {
            return Some(Ok(Outbound::Push));
        }
        let adapter = self.generation.channel(channel)?;
        let answer = adapter.outbound(message, ctx);
        if answer.is_err() {
            // Not the adapter's message: a script's error may quote the reply.
            tracing::warn!(channel = %channel, "channel adapter failed to build a reply");
        }
        Some(answer)
    }
}

/// A routing policy whose decisions are timed into a histogram.
pub(super) struct TimedRouting<'a> {
    pub(super) inner: &'a dyn RoutingPolicy,
    pub(super) seconds: &'a Histogram,
    /// The shadow policy told of each decision, and the time.
    pub(super) shadow: Option<(&'a crate::shadow::Shadow, Millis)>,
}

impl RoutingPolicy for TimedRouting<'_> {
    fn entry(&self, conversation: &ConversationView<'_>) -> Option<String> {
        self.inner.entry(conversation)
    }

    fn route(
        &self,
        conversation: &ConversationView<'_>,
        candidates: &[Candidate<'_>],
    ) -> RouteDecision {
        let started = std::time::Instant::now();
        let decision = self.inner.route(conversation, candidates);
        self.seconds.observe(started.elapsed().as_secs_f64());
        if let Some((shadow, now)) = self.shadow {
            shadow.observe(
                now,
                conversation,
                candidates,
                &decision,
                self.inner.generation(),
            );
        }
        decision
    }

    fn generation(&self) -> u64 {
        self.inner.generation()
    }
}
