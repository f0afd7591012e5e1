//! Fuzz the Messenger payload parser: the bundled adapter under the Lua
//! host must parse or refuse any body, never panic.
//! Run: `cargo +nightly fuzz run messenger` from the repository root.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use switchboard_core::channel::{ChannelAdapter, HttpRequest};
use switchboard_core::lua::{ChannelSpec, Generation, Limits, ScriptFiles, ScriptSpec};

fn generation() -> &'static Generation {
    static G: OnceLock<Generation> = OnceLock::new();
    G.get_or_init(|| {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts");
        let settings: BTreeMap<String, String> = [("page_id", "1000"), ("page_name", "P"), ("verify_token", "v")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut channels = BTreeMap::new();
        channels.insert(
            "messenger".to_string(),
            ChannelSpec { script: "channels/messenger.lua".into(), settings },
        );
        let spec = ScriptSpec {
            tenant: "fuzz".into(),
            files: ScriptFiles::read_dir(&dir).expect("scripts"),
            routing: None,
            wrapup: None,
            wrapup_queues: BTreeMap::new(),
            channels,
            queues: vec!["support".into()],
            masker: Default::default(),
            limits: Limits::default(),
        };
        Generation::load(&spec, 1, 0).expect("messenger loads")
    })
}

fuzz_target!(|data: &[u8]| {
    let req = HttpRequest { method: "POST".into(), body: data.to_vec(), ..Default::default() };
    if let Some(adapter) = generation().channel("messenger") {
        let _ = adapter.inbound(&req);
    }
});
