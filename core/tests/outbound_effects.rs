//! Exact events for what the engine decides about effects: admin settings
//! as journaled events, the agent's reply asking the channel directory
//! only after the text is checked (a refusal refuses the command), failed
//! deliveries as events in the transcript, and the customer's id masked
//! wherever agents or routing see it.

mod common;
use common::*;
use std::cell::RefCell;
use switchboard_core::channel::{
    BuiltinChannels, ChannelDirectory, ChannelError, Outbound, OutboundContext, OutboundMessage,
    OutgoingRequest,
};
use switchboard_core::command::{Command, CustomerMessage};
use switchboard_core::engine::transcript_of;
use switchboard_core::model::*;
use switchboard_core::routing::LongestIdle;
use switchboard_core::wrapup::BuiltinWrapUp;
use switchboard_core::{Carrier, CommandError, Event, Extensions};

#[test]
fn changing_settings_is_an_event_that_replay_and_snapshots_keep() {
    let mut w = World::new(&[("alice", 5)]);
    assert!(w.engine.settings().mask);
    assert_eq!(
        w.run(Command::ChangeSettings { mask: false }),
        ["settings_changed mask=false []"]
    );
    // No change, no event.
    assert!(w.run(Command::ChangeSettings { mask: false }).is_empty());
    w.available(&["alice"]);
    w.customer("v1", "card 4111 1111 1111 1111");
    let c = w.engine.conversation(1).expect("conversation");
    assert_eq!(c.messages[0].text, "card 4111 1111 1111 1111");

    let replayed = w.replay();
    assert!(!replayed.settings().mask, "replay keeps the setting");
    let mut restored = w.replay();
    restored.apply(&Event::SettingsChanged { mask: true, at: 0 });
    let snap = w.engine.snapshot();
    restored.restore(snap);
    assert!(!restored.settings().mask, "a snapshot carries the setting");

    assert_eq!(
        w.run(Command::ChangeSettings { mask: true }),
        ["settings_changed mask=true []"]
    );
    w.customer("v2", "card 4111 1111 1111 1111");
    let c = w.engine.conversation(2).expect("conversation");
    assert_eq!(c.messages[0].text, "card ************1111");
}

/// A directory answering `answer` for every channel, counting calls.
struct Directory {
    answer: Option<Result<Outbound, ChannelError>>,
    calls: RefCell<Vec<(String, OutboundMessage)>>,
}

impl ChannelDirectory for Directory {
    fn outbound(
        &self,
        channel: &str,
        message: &OutboundMessage,
        _ctx: &OutboundContext,
    ) -> Option<Result<Outbound, ChannelError>> {
        self.calls
            .borrow_mut()
            .push((channel.to_string(), message.clone()));
        self.answer.clone()
    }
}

fn request() -> OutgoingRequest {
    OutgoingRequest {
        method: "POST".into(),
        url: "http://channel.invalid/send".into(),
        headers: Default::default(),
        body: serde_json::json!({"text": "raw"}),
    }
}

/// Run `cmd` with `dir` as the channel directory.
fn with_directory(
    w: &mut World,
    dir: &Directory,
    cmd: Command,
) -> Result<switchboard_core::Output, CommandError> {
    let wrapup = BuiltinWrapUp::default();
    let ext = Extensions {
        routing: &LongestIdle,
        wrapup: &wrapup,
        channels: dir,
    };
    let out = w.engine.handle(cmd, w.now, &ext);
    if let Ok(o) = &out {
        w.journal.extend(o.events().cloned());
    }
    out
}

fn active_conversation() -> World {
    let mut w = World::new(&[("alice", 5)]);
    w.available(&["alice"]);
    w.customer("v1", "hello");
    w.run(accept("alice", 1));
    w
}

#[test]
fn the_channel_is_asked_only_after_the_text_is_checked_and_a_refusal_stores_nothing() {
    let mut w = active_conversation();
    let refuse = Directory {
        answer: Some(Ok(Outbound::Refuse("past the 7-day window".into()))),
        calls: RefCell::default(),
    };
    let long = "x".repeat(MAX_AGENT_MESSAGE_CHARS + 1);
    assert!(matches!(
        with_directory(&mut w, &refuse, say("alice", 1, &long)),
        Err(CommandError::Invalid(_))
    ));
    assert!(matches!(
        with_directory(&mut w, &refuse, say("bob", 1, "hi")),
        Err(CommandError::NotFound(_))
    ));
    assert!(
        refuse.calls.borrow().is_empty(),
        "not asked for invalid replies"
    );
    let before = w.journal.len();
    assert_eq!(
        with_directory(&mut w, &refuse, say("alice", 1, "still there?")),
        Err(CommandError::Conflict("past the 7-day window".into()))
    );
    assert_eq!(w.journal.len(), before, "nothing stored");
    assert_eq!(w.engine.conversation(1).map(|c| c.messages.len()), Some(1));
    assert_eq!(refuse.calls.borrow().len(), 1);
}

#[test]
fn a_built_request_becomes_the_delivery_and_a_failed_adapter_an_event() {
    let mut w = active_conversation();
    let send = Directory {
        answer: Some(Ok(Outbound::Send(request()))),
        calls: RefCell::default(),
    };
    let out = with_directory(&mut w, &send, say("alice", 1, "On it")).expect("sent");
    assert_eq!(trace(&out), ["message #1 Agent: On it [alice,customer]"]);
    assert_eq!(out.deliveries.len(), 1);
    let d = &out.deliveries[0];
    assert_eq!((d.message, d.text.as_str()), (1, "On it"));
    assert_eq!(d.carrier, Carrier::Request(request()));
    assert_eq!(send.calls.borrow()[0].0, "webchat");

    let broken = Directory {
        answer: Some(Err(ChannelError {
            channel: "webchat".into(),
            message: "script error".into(),
        })),
        calls: RefCell::default(),
    };
    let out = with_directory(&mut w, &broken, say("alice", 1, "Again")).expect("stored");
    assert_eq!(
        trace(&out),
        [
            "message #1 Agent: Again [alice,customer]",
            "delivery_failed #1 [2] adapter_failed [alice]",
        ]
    );
    assert!(out.deliveries.is_empty());

    let none = Directory {
        answer: None,
        calls: RefCell::default(),
    };
    let out = with_directory(&mut w, &none, say("alice", 1, "Third")).expect("stored");
    assert_eq!(
        trace(&out)[1],
        "delivery_failed #1 [4] no_adapter [alice]",
        "index of the reply, after the earlier notice"
    );
}

#[test]
fn web_chat_replies_are_pushed_by_the_built_in_directory() {
    let mut w = active_conversation();
    let out = w
        .engine
        .handle(say("alice", 1, "Hi"), w.now, &Extensions::builtin())
        .expect("sent");
    assert_eq!(out.deliveries[0].carrier, Carrier::Push);
    let other = BuiltinChannels.outbound(
        "messenger",
        &OutboundMessage {
            conversation: 1,
            customer: "x".into(),
            author: "alice".into(),
            text: "t".into(),
        },
        &OutboundContext {
            now: 0,
            last_customer_message_at: None,
        },
    );
    assert!(other.is_none(), "no adapter for other channels");
}

#[test]
fn a_reported_delivery_failure_is_journaled_and_shown_in_the_transcript() {
    let mut w = active_conversation();
    w.run(say("alice", 1, "Hello there"));
    assert_eq!(
        w.run(Command::DeliveryFailed {
            conversation: 1,
            message: 1,
            reason: DeliveryFailure::Rejected,
        }),
        ["delivery_failed #1 [1] rejected [alice]"]
    );
    // Only an agent's reply can fail to be delivered.
    assert!(matches!(
        w.try_run(Command::DeliveryFailed {
            conversation: 1,
            message: 0,
            reason: DeliveryFailure::Rejected,
        }),
        Err(CommandError::Invalid(_))
    ));
    assert!(matches!(
        w.try_run(Command::DeliveryFailed {
            conversation: 9,
            message: 0,
            reason: DeliveryFailure::Rejected,
        }),
        Err(CommandError::NotFound(_))
    ));
    let live = w
        .engine
        .conversation(1)
        .expect("conversation")
        .messages
        .clone();
    assert_eq!(live.len(), 3);
    assert_eq!(live[2].from, Party::System);
    assert_eq!(
        live[2].text,
        switchboard_core::text::delivery_notice(Default::default(), DeliveryFailure::Rejected)
    );
    let replayed = w.replay();
    assert_eq!(
        replayed.conversation(1).map(|c| c.messages.clone()),
        Some(live.clone())
    );
    assert_eq!(
        transcript_of(&w.journal, Default::default()),
        live,
        "archived transcript too"
    );
}

fn sms(text: &str) -> Command {
    Command::CustomerMessage(CustomerMessage {
        channel: "sms".into(),
        customer: "+15551234567".into(),
        customer_name: None,
        text: text.into(),
        source: "SMS".into(),
        queue: "support".into(),
        cad: Cad::new(),
        external_id: None,
        attachments: Vec::new(),
        sent_at: None,
    })
}

#[test]
fn an_sms_customers_number_is_masked_for_agents_and_raw_only_in_the_delivery() {
    let mut w = World::new(&[("alice", 5)]);
    w.available(&["alice"]);
    w.run(sms("my parcel"));
    let out = w.try_run(accept("alice", 1)).expect("accepted");
    let started = out.events().next().expect("an event");
    let Event::ConversationStarted { customer, .. } = started else {
        panic!("{started:?}")
    };
    assert_eq!(customer, "********4567");
    for e in out.events() {
        let json = serde_json::to_string(e).expect("json");
        assert!(!json.contains("5551234567"), "{json}");
    }
    let c = w.engine.conversation(1).expect("conversation");
    assert_eq!(c.customer_handle, "********4567");
    // The same customer continues its conversation (the raw id is the key).
    w.run(sms("any news?"));
    assert_eq!(w.engine.conversations().count(), 1);
    let dir = Directory {
        answer: Some(Ok(Outbound::Send(request()))),
        calls: RefCell::default(),
    };
    let out = with_directory(&mut w, &dir, say("alice", 1, "tomorrow")).expect("sent");
    assert_eq!(out.deliveries[0].customer, "+15551234567");
    assert_eq!(dir.calls.borrow()[0].1.customer, "+15551234567");
    // Replay rebuilds the handle.
    assert_eq!(
        w.replay()
            .conversation(1)
            .map(|c| c.customer_handle.clone()),
        Some("********4567".into())
    );
}

fn picture(id: &str, name: &str) -> Attachment {
    Attachment {
        id: id.into(),
        kind: "image".into(),
        url: format!("/api/attachments/{id}"),
        name: Some(name.into()),
        mime: Some("image/png".into()),
        size: Some(8),
        latitude: None,
        longitude: None,
        title: None,
    }
}

#[test]
fn a_reply_may_be_only_attachments_which_reach_the_delivery_the_journal_and_a_replay() {
    let mut w = active_conversation();
    let reply = |text: &str, attachments: Vec<Attachment>| Command::AgentMessage {
        agent: "alice".into(),
        conversation: 1,
        text: text.into(),
        attachments,
    };
    // Blank without attachments: refused as before.
    assert!(matches!(
        w.engine
            .handle(reply(" ", vec![]), w.now, &Extensions::builtin()),
        Err(CommandError::Invalid(_))
    ));
    // Too many, or not a stored file: refused, nothing stored.
    let before = w.journal.len();
    let eleven = (0..=MAX_REPLY_ATTACHMENTS)
        .map(|i| picture(&format!("{i:032x}"), "a.png"))
        .collect();
    assert!(matches!(
        w.engine
            .handle(reply("", eleven), w.now, &Extensions::builtin()),
        Err(CommandError::Invalid(_))
    ));
    let mut place = picture("0", "x");
    place.kind = "location".into();
    assert!(matches!(
        w.engine
            .handle(reply("", vec![place]), w.now, &Extensions::builtin()),
        Err(CommandError::Invalid(_))
    ));
    assert_eq!(w.journal.len(), before, "nothing stored");

    // A picture alone: journaled with its (masked) name, pushed with it.
    let pic = picture(
        "0123456789abcdef0123456789abcdef",
        "card 4111 1111 1111 1111.png",
    );
    let out = w
        .engine
        .handle(reply("", vec![pic.clone()]), w.now, &Extensions::builtin())
        .expect("sent");
    w.journal.extend(out.events().cloned());
    let d = &out.deliveries[0];
    assert_eq!(
        d.attachments,
        vec![pic.clone()],
        "the delivery keeps the file"
    );
    assert_eq!(d.text, "");
    let shown = out
        .events()
        .find_map(|e| match e {
            Event::Message { attachments, .. } => Some(attachments.clone()),
            _ => None,
        })
        .expect("a message");
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].id, pic.id);
    assert!(
        !shown[0].name.as_deref().unwrap_or("").contains("4111"),
        "names are masked for agents: {:?}",
        shown[0].name
    );
    let replayed = w.replay();
    let last = replayed
        .conversation(1)
        .and_then(|c| c.messages.last().cloned())
        .expect("replayed");
    assert_eq!(last.attachments.len(), 1, "replay keeps the attachment");
}
