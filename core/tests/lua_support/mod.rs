//! Shared by the Lua host's tests (`lua_host.rs`, `lua_pick.rs`): the
//! bundled scripts, a tenant's script spec and the conversation routing
//! policies are given.

#![allow(dead_code)] // each test binary uses part of this module

use std::collections::BTreeMap;
use std::path::PathBuf;
use switchboard_core::lua::{Limits, ScriptFiles, ScriptSpec};
use switchboard_core::masking::Masker;
use switchboard_core::model::Cad;
use switchboard_core::routing::ConversationView;

/// The repository's `scripts/` folder.
pub fn bundled() -> ScriptFiles {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    ScriptFiles::read_dir(&dir).expect("bundled scripts")
}

/// Tenant `t` with queues `support` and `billing`, `files` and `routing`.
pub fn spec(files: ScriptFiles, routing: Option<&str>) -> ScriptSpec {
    ScriptSpec {
        tenant: "t".into(),
        files,
        routing: routing.map(str::to_string),
        wrapup: None,
        wrapup_queues: BTreeMap::new(),
        responses: None,
        channels: BTreeMap::new(),
        queues: vec!["support".into(), "billing".into()],
        masker: Masker::default(),
        limits: Limits::default(),
    }
}

/// The bundled scripts with `source` as the routing policy.
pub fn with_routing(source: &str) -> ScriptSpec {
    let mut files = bundled();
    files.0.insert("routing/policy.lua".into(), source.into());
    spec(files, Some("routing/policy.lua"))
}

/// Conversation 7 in `support`, from the web chat.
pub fn view<'a>(cad: &'a Cad, last_agent: Option<&'a str>) -> ConversationView<'a> {
    ConversationView {
        id: 7,
        queue: "support",
        channel: "webchat",
        customer: "v1",
        customer_name: "Jeanne",
        source: "Web chat",
        preview: "Bonjour",
        cad,
        received_at: 1,
        queued_at: 1,
        last_agent,
    }
}

pub fn cad(pairs: &[(&str, &str)]) -> Cad {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
