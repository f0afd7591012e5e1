//! A tenant's extensions as one generation: its Lua scripts and its native
//! plugins, loaded together at start, on reload and in `switchboard
//! scripts check`, and swapped in as a whole (DESIGN.md "The plugin host").
//!
//! Roles: routing, wrap-up and canned responses come from the tenant's plugin for that role
//! when one is configured, else from Lua (which falls back to the built-in
//! behaviour); a channel adapter from the plugin configured for that
//! channel, else from a Lua script. `Config::validate` refuses a role given
//! to both a plugin and a script, so there is no precedence to guess.
//!
//! **Invariant:** a generation is built completely (every script and every
//! plugin loaded, created and checked) before it is returned; any error
//! anywhere returns all of them and nothing is swapped.
//! **Boundary:** native plugins are trusted code (see
//! `switchboard_core::native`); only JSON crosses into them.

use crate::config::{PluginEntry, PluginRole, TenantConfig};
use std::path::PathBuf;
use std::sync::Arc;
use switchboard_core::channel::ChannelAdapter;
use switchboard_core::lua::{FileReport, Generation, ScriptError};
use switchboard_core::model::{Millis, WrapUpReason};
use switchboard_core::native::{NativePlugin, NativeSpec, PluginReport};
use switchboard_core::routing::{Candidate, ConversationView, RouteDecision, RoutingPolicy};
use switchboard_core::wrapup::WrapUpReasons;
use switchboard_plugin::{ROLE_CHANNEL, ROLE_RESPONSES, ROLE_ROUTING, ROLE_WRAPUP};

/// One loaded plugin and how the tenant uses it.
#[derive(Debug)]
struct Loaded {
    entry: PluginEntry,
    plugin: NativePlugin,
}

/// The Lua scripts and native plugins of one tenant, as one generation.
#[derive(Debug)]
pub struct TenantGeneration {
    lua: Generation,
    plugins: Vec<Loaded>,
    /// Index in `plugins` of the routing plugin, if any.
    routing: Option<usize>,
    /// Index in `plugins` of the wrap-up plugin, if any.
    wrapup: Option<usize>,
    /// Index in `plugins` of the canned responses plugin, if any.
    responses: Option<usize>,
}

/// A plugin's library path as configured, resolved like `scripts_dir`.
pub fn plugin_path(t: &TenantConfig, p: &PluginEntry) -> PathBuf {
    let path = PathBuf::from(&p.path);
    match &t.base_dir {
        Some(base) if path.is_relative() => base.join(path),
        _ => path,
    }
}

fn spec_of(t: &TenantConfig, p: &PluginEntry) -> NativeSpec {
    let mut spec = NativeSpec::new(&t.id, plugin_path(t, p), &t.data_dir);
    spec.settings = serde_json::Value::Object(p.settings.clone());
    spec.roles = p
        .roles
        .iter()
        .map(|r| match r {
            PluginRole::Routing => ROLE_ROUTING,
            PluginRole::Wrapup => ROLE_WRAPUP,
            PluginRole::Channel => ROLE_CHANNEL,
            PluginRole::Responses => ROLE_RESPONSES,
        })
        .fold(0, |a, b| a | b);
    spec.queues = t.queues.iter().map(|q| q.id.clone()).collect();
    spec
}

/// Read, load and validate a tenant's scripts and plugins as generation
/// `number`: every error of every part, or the whole generation.
pub fn load(
    t: &TenantConfig,
    number: u64,
    now: Millis,
) -> Result<TenantGeneration, Vec<ScriptError>> {
    let mut errors = Vec::new();
    let lua = crate::scripts::load(t, number, now)
        .map_err(|e| errors.extend(e))
        .ok();
    let mut plugins = Vec::new();
    for entry in &t.plugins {
        match NativePlugin::load(&spec_of(t, entry), number, now) {
            Ok(plugin) => plugins.push(Loaded {
                entry: entry.clone(),
                plugin,
            }),
            Err(e) => errors.push(e.to_script_error()),
        }
    }
    match lua {
        Some(lua) if errors.is_empty() => {
            let find = |role| plugins.iter().position(|p: &Loaded| p.entry.has(role));
            Ok(TenantGeneration {
                routing: find(PluginRole::Routing),
                wrapup: find(PluginRole::Wrapup),
                responses: find(PluginRole::Responses),
                lua,
                plugins,
            })
        }
        _ => Err(errors),
    }
}

impl TenantGeneration {
    /// The generation number (scripts and plugins share it).
    pub fn number(&self) -> u64 {
        self.lua.number()
    }

    /// Tell the scripts and plugins what time it is.
    pub fn set_now(&self, now: Millis) {
        self.lua.set_now(now);
        for p in &self.plugins {
            p.plugin.set_now(now);
        }
    }

    /// The configured plugin serving `channel`, if any.
    fn channel_plugin(&self, channel: &str) -> Option<&Loaded> {
        self.plugins.iter().find(|p| {
            p.entry.has(PluginRole::Channel) && p.entry.channel.as_deref() == Some(channel)
        })
    }

    /// The plugin entry (queue, source) of a plugin channel.
    pub fn channel_entry(&self, channel: &str) -> Option<&PluginEntry> {
        self.channel_plugin(channel).map(|p| &p.entry)
    }

    /// Whether an adapter (script or plugin) is loaded for `channel`.
    pub fn has_channel(&self, channel: &str) -> bool {
        self.channel_plugin(channel).is_some() || self.lua.has_channel(channel)
    }

    /// The adapter of `channel`: its plugin, else its script.
    pub fn channel<'a>(&'a self, channel: &'a str) -> Option<Box<dyn ChannelAdapter + 'a>> {
        if let Some(p) = self.channel_plugin(channel) {
            return p
                .plugin
                .channel(channel)
                .map(|a| Box::new(a) as Box<dyn ChannelAdapter + 'a>);
        }
        self.lua
            .channel(channel)
            .map(|a| Box::new(a) as Box<dyn ChannelAdapter + 'a>)
    }

    /// Calls and failures of every script and plugin role.
    pub fn report(&self) -> Vec<FileReport> {
        let mut out = self.lua.report();
        for p in &self.plugins {
            out.extend(p.plugin.report());
        }
        out
    }

    /// The plugins as admins see them (trusted code, library, roles, calls).
    pub fn plugin_reports(&self) -> Vec<PluginReport> {
        self.plugins
            .iter()
            .map(|p| p.plugin.plugin_report())
            .collect()
    }

    fn routing_policy(&self) -> &dyn RoutingPolicy {
        match self.routing {
            Some(i) => &self.plugins[i].plugin,
            None => &self.lua,
        }
    }
}

impl RoutingPolicy for TenantGeneration {
    fn entry(&self, conversation: &ConversationView<'_>) -> Option<String> {
        self.routing_policy().entry(conversation)
    }

    fn route(
        &self,
        conversation: &ConversationView<'_>,
        candidates: &[Candidate<'_>],
    ) -> RouteDecision {
        self.routing_policy().route(conversation, candidates)
    }

    fn generation(&self) -> u64 {
        self.number()
    }
}

impl TenantGeneration {
    /// The tenant's canned responses: its plugin with that role, else its
    /// `responses` script; none without.
    pub fn responses(&self) -> Arc<[switchboard_core::responses::CannedResponse]> {
        match self.responses {
            Some(i) => self.plugins[i].plugin.responses(),
            None => self.lua.responses(),
        }
    }
}

impl WrapUpReasons for TenantGeneration {
    fn reasons(&self, queue: &str) -> Arc<[WrapUpReason]> {
        match self.wrapup {
            Some(i) => self.plugins[i].plugin.reasons(queue),
            None => self.lua.reasons(queue),
        }
    }
}

/// `switchboard scripts check`: every tenant's problems with its scripts
/// and plugins, as a reload would find them.
pub fn check(cfg: &crate::config::Config) -> Vec<(String, ScriptError)> {
    let now = crate::clock::Clock::default().now();
    cfg.tenants
        .iter()
        .flat_map(|t| {
            load(t, 0, now)
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|e| (t.id.clone(), e))
        })
        .collect()
}

/// A routing policy tried beside the live one (shadow routing) or against
/// the journal (replay): a Lua script of the tenant's, or one of its
/// native plugins, loaded alone in its own state with its own budgets.
#[derive(Debug)]
// One per shadow policy or replay, loaded once: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum RoutingCandidate {
    Lua(Generation),
    Native(NativePlugin),
}

impl RoutingCandidate {
    pub fn set_now(&self, now: Millis) {
        match self {
            RoutingCandidate::Lua(g) => g.set_now(now),
            RoutingCandidate::Native(p) => p.set_now(now),
        }
    }

    /// Its calls and failures (with file:line).
    pub fn report(&self) -> Vec<FileReport> {
        match self {
            RoutingCandidate::Lua(g) => g.report(),
            RoutingCandidate::Native(p) => p.report(),
        }
    }
}

impl RoutingPolicy for RoutingCandidate {
    fn entry(&self, conversation: &ConversationView<'_>) -> Option<String> {
        match self {
            RoutingCandidate::Lua(g) => g.entry(conversation),
            RoutingCandidate::Native(p) => p.entry(conversation),
        }
    }

    fn route(
        &self,
        conversation: &ConversationView<'_>,
        candidates: &[Candidate<'_>],
    ) -> RouteDecision {
        match self {
            RoutingCandidate::Lua(g) => g.route(conversation, candidates),
            RoutingCandidate::Native(p) => p.route(conversation, candidates),
        }
    }

    fn generation(&self) -> u64 {
        match self {
            RoutingCandidate::Lua(g) => g.number(),
            RoutingCandidate::Native(p) => p.generation(),
        }
    }
}

/// The name a plugin entry answers to: its configured path, or its file
/// name without `lib` and extension, `-` and `_` alike
/// (`plugins/libskills_router.so` is also `skills-router`).
fn plugin_names(p: &PluginEntry) -> [String; 2] {
    let stem = std::path::Path::new(&p.path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.strip_prefix("lib").unwrap_or(&stem).replace('_', "-");
    [p.path.clone(), stem]
}

/// A script path that stays inside the tenant's script folder: relative,
/// no `..`, no backslash, ends with `.lua`.
fn safe_script_path(routing: &str) -> bool {
    !routing.is_empty()
        && routing.len() <= 512
        && routing.ends_with(".lua")
        && !routing.starts_with('/')
        && !routing.contains('\\')
        && !routing.contains('\0')
        && routing
            .split('/')
            .all(|p| !p.is_empty() && p != ".." && p != ".")
}

/// Load `routing` as a candidate policy for tenant `t`: a `.lua` file
/// under its script folder (validated like a reload: compiled, `route`
/// present, self-tests run; errors with file:line), or the name of one of
/// its configured plugins (loaded again, for routing only). `extra` adds a
/// script given from outside the folder (the command line's
/// `scripts replay --routing FILE`), under its `routing` name.
pub fn load_candidate(
    t: &TenantConfig,
    routing: &str,
    extra: Option<String>,
    number: u64,
    now: Millis,
) -> Result<RoutingCandidate, Vec<ScriptError>> {
    if !routing.ends_with(".lua") {
        let wanted = routing.replace('_', "-");
        let Some(entry) = t.plugins.iter().find(|p| {
            plugin_names(p)
                .iter()
                .any(|n| *n == routing || *n == wanted)
        }) else {
            return Err(vec![ScriptError::new(
                routing,
                None,
                "neither a .lua script of the tenant nor one of its plugins",
            )]);
        };
        let mut spec = spec_of(t, entry);
        spec.roles = ROLE_ROUTING;
        return NativePlugin::load(&spec, number, now)
            .map(RoutingCandidate::Native)
            .map_err(|e| vec![e.to_script_error()]);
    }
    if !safe_script_path(routing) {
        return Err(vec![ScriptError::new(
            routing,
            None,
            "a routing script is a relative path inside the tenant's script folder (routing/candidate.lua)",
        )]);
    }
    let mut spec = crate::scripts::spec_of(t).map_err(|e| vec![e])?;
    if let Some(source) = extra {
        spec.files.0.insert(routing.to_string(), source);
    }
    spec.routing = Some(routing.to_string());
    spec.wrapup = None;
    spec.wrapup_queues.clear();
    spec.responses = None;
    spec.channels.clear();
    Generation::load(&spec, number, now).map(RoutingCandidate::Lua)
}
