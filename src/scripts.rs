//! Where a tenant's Lua scripts come from, and loading a generation of them
//! exactly the same way at start, on reload and in `switchboard scripts check`
//! (through [`crate::generation`], which adds the tenant's native plugins).
//!
//! Paths: `scripts_dir` resolves against the configuration file's folder.
//! For the embedded demo (no file) it resolves against the current
//! directory, and when that folder does not exist the scripts bundled in
//! the binary ([`BUNDLED`]) are used, so `cargo run --release` works from
//! the repository root (and picks up edits there) and the binary works
//! anywhere. A tenant without `scripts_dir` uses the bundled scripts.

use crate::config::TenantConfig;
use std::collections::BTreeMap;
use std::path::PathBuf;
use switchboard_core::lua::{
    ChannelSpec, Generation, Limits, ScriptError, ScriptFiles, ScriptSpec,
};
use switchboard_core::model::Millis;
use switchboard_core::Masker;

/// The scripts shipped in the binary, by path relative to `scripts/`.
pub const BUNDLED: &[(&str, &str)] = &[
    ("lib/pick.lua", include_str!("../scripts/lib/pick.lua")),
    ("lib/url.lua", include_str!("../scripts/lib/url.lua")),
    (
        "routing/longest_idle.lua",
        include_str!("../scripts/routing/longest_idle.lua"),
    ),
    (
        "routing/skills.lua",
        include_str!("../scripts/routing/skills.lua"),
    ),
    (
        "routing/sticky.lua",
        include_str!("../scripts/routing/sticky.lua"),
    ),
    (
        "routing/priority.lua",
        include_str!("../scripts/routing/priority.lua"),
    ),
    ("wrapup/en.lua", include_str!("../scripts/wrapup/en.lua")),
    ("wrapup/fr.lua", include_str!("../scripts/wrapup/fr.lua")),
    (
        "responses/en.lua",
        include_str!("../scripts/responses/en.lua"),
    ),
    (
        "responses/fr.lua",
        include_str!("../scripts/responses/fr.lua"),
    ),
    (
        "channels/messenger.lua",
        include_str!("../scripts/channels/messenger.lua"),
    ),
];

/// Where a tenant's scripts are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptSource {
    Dir(PathBuf),
    Bundled,
}

pub fn source_of(t: &TenantConfig) -> ScriptSource {
    match (&t.scripts_dir, &t.base_dir) {
        (None, _) => ScriptSource::Bundled,
        (Some(d), Some(base)) => ScriptSource::Dir(base.join(d)),
        (Some(d), None) => {
            let p = PathBuf::from(d);
            if p.is_dir() {
                ScriptSource::Dir(p)
            } else {
                ScriptSource::Bundled
            }
        }
    }
}

/// The scripts of a tenant and the role of each, read now.
pub fn spec_of(t: &TenantConfig) -> Result<ScriptSpec, ScriptError> {
    let files = match source_of(t) {
        ScriptSource::Dir(d) => ScriptFiles::read_dir(&d)?,
        ScriptSource::Bundled => ScriptFiles::from_pairs(BUNDLED.iter().copied()),
    };
    let masker = Masker::new(&t.mask_patterns)
        .map_err(|e| ScriptError::new("<config>", None, e.to_string()))?;
    let mut channels: BTreeMap<String, ChannelSpec> = t
        .channels
        .iter()
        .map(|(name, script)| {
            (
                name.clone(),
                ChannelSpec {
                    script: script.clone(),
                    settings: BTreeMap::new(),
                },
            )
        })
        .collect();
    if let Some(m) = &t.messenger {
        let ch = channels
            .entry("messenger".into())
            .or_insert_with(|| ChannelSpec {
                script: "channels/messenger.lua".into(),
                settings: BTreeMap::new(),
            });
        // The app secret stays with the host, which checks signatures;
        // the script gets only the proof Graph API calls carry.
        let proof = crate::profiles::appsecret_proof(&m.app_secret, &m.access_token);
        for (k, v) in [
            ("appsecret_proof", proof.as_str()),
            ("verify_token", m.verify_token.as_str()),
            ("page_id", m.page_id.as_str()),
            ("page_name", m.page_name.as_str()),
            ("access_token", m.access_token.as_str()),
            ("graph_api_base", m.graph_api_base()),
            ("graph_api_version", m.graph_api_version.as_str()),
            (
                "human_agent_tag",
                if m.human_agent_tag { "true" } else { "false" },
            ),
        ] {
            ch.settings.insert(k.into(), v.into());
        }
    }
    Ok(ScriptSpec {
        tenant: t.id.clone(),
        files,
        routing: t.routing.clone(),
        wrapup: t.wrapup.clone(),
        wrapup_queues: t.wrapup_queues.clone(),
        responses: t.responses.clone(),
        channels,
        queues: t.queues.iter().map(|q| q.id.clone()).collect(),
        masker,
        limits: Limits::default(),
    })
}

/// Read, load and validate a tenant's scripts as generation `number`.
pub fn load(t: &TenantConfig, number: u64, now: Millis) -> Result<Generation, Vec<ScriptError>> {
    let spec = spec_of(t).map_err(|e| vec![e])?;
    Generation::load(&spec, number, now)
}

/// `switchboard scripts test`: every tenant's scripts loaded as a reload
/// would, each self-test printed like a test runner (`tenant: file: name
/// ... ok`, or `FAILED` and the failing assertion's `file:line: message`),
/// then problems that are not tests. Returns the report and whether
/// everything passed.
pub fn test(cfg: &crate::config::Config) -> (String, bool) {
    use std::fmt::Write as _;
    let now = crate::clock::Clock::default().now();
    let mut out = String::new();
    let (mut passed, mut failed, mut problems) = (0usize, 0usize, 0usize);
    for t in &cfg.tenants {
        let spec = match spec_of(t) {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(out, "{}: {e}", t.id);
                problems += 1;
                continue;
            }
        };
        let (loaded, outcomes) = Generation::load_with_tests(&spec, 0, now);
        for o in &outcomes {
            match &o.failure {
                None => {
                    passed += 1;
                    let _ = writeln!(out, "{}: {}: {} ... ok", t.id, o.file, o.name);
                }
                Some(e) => {
                    failed += 1;
                    let _ = writeln!(out, "{}: {}: {} ... FAILED", t.id, o.file, o.name);
                    let _ = writeln!(out, "    {e}");
                }
            }
        }
        if let Err(errors) = loaded {
            for e in errors
                .iter()
                .filter(|e| !e.message.starts_with("self-test "))
            {
                problems += 1;
                let _ = writeln!(out, "{}: {e}", t.id);
            }
        }
    }
    let ok = failed == 0 && problems == 0;
    let _ = writeln!(
        out,
        "\ntest result: {}. {passed} passed; {failed} failed; {problems} other problem(s)",
        if ok { "ok" } else { "FAILED" }
    );
    (out, ok)
}
