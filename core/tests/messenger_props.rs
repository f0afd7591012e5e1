//! The Messenger payload parser (the bundled adapter under the Lua host)
//! never panics and never takes the host down: arbitrary bytes and random
//! Meta-shaped payloads give parsed events or a clear error. (The same
//! property as the `messenger` cargo-fuzz target, run in CI.)

use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use switchboard_core::channel::{ChannelAdapter, ChannelEvent, HttpRequest};
use switchboard_core::lua::{ChannelSpec, Generation, Limits, ScriptFiles, ScriptSpec};
use switchboard_core::masking::Masker;

fn messenger() -> Generation {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let settings: BTreeMap<String, String> = [
        ("verify_token", "vt"),
        ("page_id", "1000"),
        ("page_name", "Demo Page"),
        ("access_token", "tok"),
        ("graph_api_base", "http://127.0.0.1:9"),
        ("graph_api_version", "v21.0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut channels = BTreeMap::new();
    channels.insert(
        "messenger".to_string(),
        ChannelSpec {
            script: "channels/messenger.lua".into(),
            settings,
        },
    );
    let spec = ScriptSpec {
        tenant: "t".into(),
        files: ScriptFiles::read_dir(&dir).expect("bundled scripts"),
        routing: None,
        wrapup: None,
        wrapup_queues: BTreeMap::new(),
        responses: None,
        channels,
        queues: vec!["support".into()],
        masker: Masker::default(),
        limits: Limits::default(),
    };
    Generation::load(&spec, 1, 0).expect("messenger loads")
}

fn post(body: Vec<u8>) -> HttpRequest {
    HttpRequest {
        method: "POST".into(),
        body,
        ..Default::default()
    }
}

/// Any JSON value, small.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A messaging event of Meta's shape with random parts.
fn messaging_event() -> impl Strategy<Value = Value> {
    (
        prop_oneof![".{0,12}".prop_map(Value::String), any_json()],
        prop_oneof![
            ".{0,40}".prop_map(|t| json!({"mid": "m.x", "text": t})),
            Just(json!({"mid": "m.e", "text": "echo", "is_echo": true})),
            Just(json!({"mid": "m.a", "attachments": [{"type": "image", "payload": {"url": "u"}}]})),
            any_json(),
        ],
        any::<bool>(),
    )
        .prop_map(|(sender, message, postback)| {
            if postback {
                json!({"sender": {"id": sender}, "recipient": {"id": "1000"}, "timestamp": 1, "postback": message})
            } else {
                json!({"sender": {"id": sender}, "recipient": {"id": "1000"}, "timestamp": 1, "message": message})
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let g = messenger();
        let adapter = g.channel("messenger").expect("adapter");
        let _ = adapter.inbound(&post(body));
    }

    #[test]
    fn meta_shaped_payloads_parse_or_fail_cleanly(
        events in prop::collection::vec(messaging_event(), 0..6),
        page in prop_oneof![Just(json!("1000")), any_json()],
        extra in any_json(),
    ) {
        let g = messenger();
        let adapter = g.channel("messenger").expect("adapter");
        let body = json!({"object": "page", "entry": [{"id": page, "time": 1, "messaging": events}, extra]});
        if let Ok(inbound) = adapter.inbound(&post(body.to_string().into_bytes())) {
            for ChannelEvent::Message(m) in inbound.events {
                prop_assert!(!m.customer.is_empty());
                prop_assert!(!m.text.is_empty());
            }
        }
        // The same generation keeps serving a valid payload afterwards.
        let ok = json!({"object": "page", "entry": [{"id": "1000", "time": 1, "messaging": [
            {"sender": {"id": "P"}, "recipient": {"id": "1000"}, "timestamp": 1, "message": {"mid": "m.ok", "text": "hi"}}
        ]}]});
        let parsed = adapter.inbound(&post(ok.to_string().into_bytes())).expect("valid payload");
        prop_assert_eq!(parsed.events.len(), 1);
    }
}
