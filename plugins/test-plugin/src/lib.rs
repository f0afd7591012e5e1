//! A plugin for the native host's tests (not shipped): it fills all four
//! roles and misbehaves when asked, so the tests can check what the host
//! contains. Requests choose the behaviour:
//! - routing: queue `panic` panics, `error` fails; otherwise the candidates
//!   ranked by id, last first;
//! - wrap-up: queue `panic` panics, `dupes` answers a duplicate code;
//!   otherwise one reason labelled with the queue;
//! - channel: a body `panic` panics; outbound posts the text as JSON to
//!   settings `url`;
//! - canned responses: a greeting for every queue and a goodbye for the
//!   tenant's first queue; settings `{"responses": "dupes"}` answer a
//!   duplicate code, `{"responses": "unknown-queue"}` a queue the tenant
//!   does not have.
//!
//! Settings `{"create": "panic"}` or `{"create": "error"}` make `create` fail.

use switchboard_plugin::wire::{
    CannedResponse, ChannelEvent, ChannelRequest, HttpResponse, InboundAnswer, InboundMessage,
    OutboundAnswer, OutboundRequest, OutgoingRequest, ResponsesRequest, RouteAnswer, RouteRequest,
    WrapUpReason, WrapUpRequest,
};
use switchboard_plugin::{
    export_plugin, Error, Plugin, ROLE_CHANNEL, ROLE_RESPONSES, ROLE_ROUTING, ROLE_WRAPUP,
};

/// The plugin's instance.
#[derive(Debug)]
pub struct TestPlugin {
    url: String,
    /// `responses` from the settings: how the canned responses misbehave.
    responses: String,
}

impl Plugin for TestPlugin {
    const ROLES: u32 = ROLE_ROUTING | ROLE_WRAPUP | ROLE_CHANNEL | ROLE_RESPONSES;

    fn create(settings: serde_json::Value) -> Result<Self, Error> {
        match settings["create"].as_str() {
            Some("panic") => panic!("create panicked on purpose"),
            Some("error") => Err("create refused on purpose".into()),
            _ => Ok(TestPlugin {
                url: settings["url"]
                    .as_str()
                    .unwrap_or("http://127.0.0.1:9/send")
                    .to_string(),
                responses: settings["responses"].as_str().unwrap_or("").to_string(),
            }),
        }
    }

    fn route(&self, r: RouteRequest) -> Result<RouteAnswer, Error> {
        match r.conversation.queue.as_str() {
            "panic" => panic!("route panicked on purpose"),
            "error" => Err("route failed on purpose".into()),
            _ => {
                let mut ids: Vec<String> = r.candidates.into_iter().map(|c| c.id).collect();
                ids.sort_by(|a, b| b.cmp(a));
                Ok(RouteAnswer::Ranked(ids))
            }
        }
    }

    fn wrapup_reasons(&self, r: WrapUpRequest) -> Result<Vec<WrapUpReason>, Error> {
        let reason = |code: &str| WrapUpReason {
            code: code.into(),
            label: format!("Done in {}", r.queue),
        };
        match r.queue.as_str() {
            "panic" => panic!("wrapup panicked on purpose"),
            "dupes" => Ok(vec![reason("done"), reason("done")]),
            _ => Ok(vec![reason("done")]),
        }
    }

    fn responses(&self, r: ResponsesRequest) -> Result<Vec<CannedResponse>, Error> {
        let response = |code: &str, text: &str, queues: Vec<String>| CannedResponse {
            code: code.into(),
            title: format!("Title of {code}"),
            text: text.into(),
            queues,
            language: Some("en".into()),
        };
        let first = r.queues.first().cloned().into_iter().collect();
        let mut list = vec![
            response("greet", "Hello {customer_name}, {agent_name} here.", vec![]),
            response("bye", "Goodbye from {queue}.", first),
        ];
        match self.responses.as_str() {
            "dupes" => list.push(response("greet", "Again", vec![])),
            "unknown-queue" => list.push(response("lost", "Nowhere", vec!["nowhere".into()])),
            _ => {}
        }
        Ok(list)
    }

    fn inbound(&self, r: ChannelRequest) -> Result<InboundAnswer, Error> {
        if r.request.body == "panic" {
            panic!("inbound panicked on purpose");
        }
        Ok(InboundAnswer {
            events: vec![ChannelEvent::Message(InboundMessage {
                customer: "c1".into(),
                text: r.request.body,
                ..Default::default()
            })],
            response: HttpResponse::text(200, "ok"),
        })
    }

    fn outbound(&self, r: OutboundRequest) -> Result<OutboundAnswer, Error> {
        Ok(OutboundAnswer::Send(OutgoingRequest {
            method: "POST".into(),
            url: self.url.clone(),
            headers: Default::default(),
            body: serde_json::json!({ "to": r.message.customer, "text": r.message.text }),
        }))
    }
}

export_plugin!(TestPlugin);
