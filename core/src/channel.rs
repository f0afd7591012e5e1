//! Channel adapters: the extension point that maps a channel's wire format
//! (Facebook Messenger, …) onto conversations.
//!
//! An adapter is a pure transformation: an inbound HTTP request becomes
//! normalized [`ChannelEvent`]s plus the response to give; an agent's
//! message becomes the [`OutgoingRequest`] to send. **Boundary:** adapters
//! do no I/O; the server sends the requests, retries and reports failures.
//! Signature checks of webhooks are done natively by the host before an
//! adapter sees a request, so a script cannot weaken them.

use crate::model::{Cad, Millis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An HTTP request as the host received it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// Query parameters, decoded.
    pub query: BTreeMap<String, String>,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The raw body.
    pub body: Vec<u8>,
}

/// What the host answers to the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl HttpResponse {
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        HttpResponse {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            body: body.into(),
        }
    }
}

/// The answer to a request before it is parsed: answer it now (a
/// subscription handshake, a refusal), or go on to [`ChannelAdapter::inbound`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Respond(HttpResponse),
    Accept,
}

/// What [`ChannelAdapter::receive`] makes of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// `verify` answered it (handshake, refusal): give this answer.
    Answer(HttpResponse),
    /// `verify` let it through and `inbound` parsed it.
    Messages(Inbound),
}

/// A customer's message, normalized. Attachments are text placeholders
/// (`[image]`, `[file]`, …); a postback is its title.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// The customer's id on the channel (a PSID on Messenger).
    pub customer: String,
    /// Display name, when the channel tells it.
    pub customer_name: Option<String>,
    pub text: String,
    /// The entry point it came through (the page id on Messenger).
    pub entry_point: String,
    /// When the channel says it was sent.
    pub sent_at: Option<Millis>,
    /// Extra CAD variables.
    pub cad: Cad,
    /// The channel's id of the message (Messenger `mid`): a redelivery
    /// with the same id is stored once.
    #[serde(default)]
    pub external_id: Option<String>,
    /// What the customer attached, as the channel describes it: the host
    /// fetches `url` (the channel's CDN address) when the message arrives.
    #[serde(default)]
    pub attachments: Vec<InboundAttachment>,
}

/// An attachment as a channel describes it, before the host stores it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InboundAttachment {
    /// `image`, `video`, `audio`, `file`, `location`, `sticker`, `link`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where the content is (none for a location).
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub latitude: Option<crate::model::Degrees>,
    #[serde(default)]
    pub longitude: Option<crate::model::Degrees>,
}

/// What an inbound request means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelEvent {
    Message(InboundMessage),
}

/// An inbound request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub events: Vec<ChannelEvent>,
    /// Given once every event is handled.
    pub response: HttpResponse,
}

/// An agent's message on its way to the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboundMessage {
    pub conversation: u64,
    pub customer: String,
    pub author: String,
    pub text: String,
}

/// What the adapter knows when it builds an outgoing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundContext {
    pub now: Millis,
    /// When the customer last wrote (the start of Messenger's windows).
    pub last_customer_message_at: Option<Millis>,
}

/// The HTTP request the host sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutgoingRequest {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: serde_json::Value,
}

/// An adapter's answer for an outgoing message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Send(OutgoingRequest),
    /// The customer cannot be reached (e.g. past Messenger's windows).
    Refuse(String),
    /// The host pushes the message on the customer's own connection: only
    /// the built-in web chat answers this (adapters build requests).
    Push,
}

/// The bundled web chat channel: its customers hold a socket to the
/// server, so replies are pushed to them, not sent as requests.
pub const WEBCHAT: &str = "webchat";

/// The tenant's channels as the engine sees them when an agent replies:
/// the server implements it over its adapters (scripts, plugins) and the
/// built-in web chat. Called under the engine lock, after the engine has
/// checked the reply, once per reply.
pub trait ChannelDirectory {
    /// How `message` reaches the customer on `channel`; `None` when the
    /// tenant has no adapter for that channel.
    fn outbound(
        &self,
        channel: &str,
        message: &OutboundMessage,
        ctx: &OutboundContext,
    ) -> Option<Result<Outbound, ChannelError>>;
}

/// Only the built-in web chat: replies there are pushed; any other
/// channel has no adapter.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinChannels;

impl ChannelDirectory for BuiltinChannels {
    fn outbound(
        &self,
        channel: &str,
        _message: &OutboundMessage,
        _ctx: &OutboundContext,
    ) -> Option<Result<Outbound, ChannelError>> {
        (channel == WEBCHAT).then_some(Ok(Outbound::Push))
    }
}

/// Why an adapter call failed (the host answers 503 and stores nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel adapter {channel}: {message}")]
pub struct ChannelError {
    pub channel: String,
    pub message: String,
}

/// A channel adapter.
pub trait ChannelAdapter: Send + Sync {
    /// Answer a request now (handshake, refusal) or let it through.
    fn verify(&self, request: &HttpRequest) -> Result<Verdict, ChannelError>;
    /// Parse an accepted request.
    fn inbound(&self, request: &HttpRequest) -> Result<Inbound, ChannelError>;
    /// `verify`, then `inbound` if it let the request through: what a
    /// webhook does. A host may do both in one call into the adapter.
    fn receive(&self, request: &HttpRequest) -> Result<Received, ChannelError> {
        match self.verify(request)? {
            Verdict::Respond(r) => Ok(Received::Answer(r)),
            Verdict::Accept => self.inbound(request).map(Received::Messages),
        }
    }
    /// Build the request that carries an agent's message.
    fn outbound(
        &self,
        message: &OutboundMessage,
        ctx: &OutboundContext,
    ) -> Result<Outbound, ChannelError>;
}
