//! Configuration: a TOML file (or the embedded demo) plus `SWITCHBOARD_*`
//! environment overrides, read with the `config` crate.

use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use switchboard_core::masking::TenantPattern;
use switchboard_core::model::{
    AgentConfig, QueueConfig, TenantSettings, TransferNotAccepted, DEFAULT_CAPACITY,
    DEFAULT_RONA_TIMEOUT_MS,
};

/// Why a configuration was refused. Each text is whole: the cause (the
/// file's syntax error, the field missing) is in it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file (or the environment) could not be read or parsed as TOML.
    #[error("reading {what}: {cause}")]
    Read {
        what: String,
        cause: config::ConfigError,
    },
    /// The text is TOML but not a configuration (a field missing, a
    /// value of the wrong type).
    #[error("invalid configuration: {0}")]
    Shape(config::ConfigError),
    /// A rule of [`Config::validate`] is broken; the text names it.
    #[error("{0}")]
    Invalid(String),
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// Refuse with `ConfigError::Invalid`: the text says what to fix.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(ConfigError::Invalid(format!($($arg)*)))
    };
}

/// The embedded demo configuration (examples/demo.toml).
pub const DEMO: &str = include_str!("../examples/demo.toml");

/// Meta's Graph API, used when neither the tenant nor the environment says otherwise.
pub const DEFAULT_GRAPH_API_BASE: &str = "https://graph.facebook.com";

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Admin bearer token; random (and printed) when unset.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Let `POST /admin/clock/advance` move the server's clock forward: for
    /// end-to-end tests of timers without sleeping. Never on in production.
    #[serde(default)]
    pub test_clock: bool,
    /// How long an agent session lasts, in seconds (default 12 h).
    #[serde(default = "default_session_ttl")]
    pub session_ttl_secs: u64,
    /// How long an agent may have no desktop socket open (all closed, or
    /// none opened since login) before it is logged out and its pending
    /// offers go back to the queue, in seconds (default 60).
    #[serde(default = "default_away_grace")]
    pub away_grace_secs: u64,
    /// `full` (default: fsync each group commit) or `normal`.
    #[serde(default)]
    pub journal_sync: crate::store::SyncMode,
    /// PostgreSQL URL (`postgres://user:pass@host/db`). Set: the journal,
    /// sessions and the rest live there and this node joins the cluster of
    /// every node using that database. Unset: SQLite under `data_dir`,
    /// one node, exactly as without a cluster.
    #[serde(default)]
    pub database_url: Option<String>,
    /// This node's name in the cluster (default: host name + port).
    #[serde(default)]
    pub node_id: Option<String>,
    /// How the other nodes reach this one (default: `http://{listen}`,
    /// with the port actually bound).
    #[serde(default)]
    pub advertise_url: Option<String>,
    /// How long a heartbeat and a tenant lease hold, in ms (default 10 s):
    /// a node silent that long is gone and its tenants are taken over.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    pub tenants: Vec<TenantConfig>,
}

/// Shortest `lease_ms` accepted: below it a loaded machine misses renewals.
pub const MIN_LEASE_MS: u64 = 200;

#[derive(Debug, Clone, Deserialize)]
pub struct TenantConfig {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "yes")]
    pub mask: bool,
    #[serde(default)]
    pub mask_patterns: Vec<TenantPattern>,
    #[serde(default)]
    pub transfer_not_accepted: TransferNotAccepted,
    /// How long a closed conversation stays in memory (ms); its transcript
    /// is then read from the journal.
    #[serde(default = "default_archive_after")]
    pub archive_after_ms: u64,
    /// Events journaled between two snapshots of the tenant (default
    /// 5,000; at least 1).
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
    /// Days of the journal before the latest snapshot read at start for
    /// the reports (default 2: today and yesterday stay exact across a
    /// restart; earlier periods count only what happened since the start).
    #[serde(default = "default_reports_days")]
    pub reports_days: u64,
    pub default_queue: String,
    #[serde(default = "default_idle_reasons")]
    pub idle_reasons: Vec<String>,
    /// The language of system lines in transcripts and of notices to
    /// customers: `en` (default) or `fr`.
    #[serde(default)]
    pub language: switchboard_core::text::Language,
    pub queues: Vec<QueueEntry>,
    pub agents: Vec<AgentEntry>,
    #[serde(default)]
    pub webchat: Option<WebchatConfig>,
    #[serde(default)]
    pub messenger: Option<MessengerConfig>,
    /// Folder of the tenant's Lua scripts (lib/, routing/, wrapup/,
    /// channels/), relative to the configuration file's folder. For the
    /// embedded demo: relative to the current directory, and the scripts
    /// bundled in the binary when that folder does not exist. Unset: the
    /// bundled scripts.
    #[serde(default)]
    pub scripts_dir: Option<String>,
    /// Routing policy script, e.g. `routing/longest_idle.lua`; unset: the
    /// built-in longest-idle policy.
    #[serde(default)]
    pub routing: Option<String>,
    /// Wrap-up list script for the tenant, e.g. `wrapup/en.lua`; unset: the
    /// built-in list.
    #[serde(default)]
    pub wrapup: Option<String>,
    /// Wrap-up list scripts for some queues (queue id → script).
    #[serde(default)]
    pub wrapup_queues: BTreeMap<String, String>,
    /// Canned responses script, e.g. `responses/en.lua`; unset: none.
    #[serde(default)]
    pub responses: Option<String>,
    /// Channel adapter scripts (channel → script). A configured
    /// `[messenger]` without one uses `channels/messenger.lua`.
    #[serde(default)]
    pub channels: BTreeMap<String, String>,
    /// Native plugins (`[[tenants.plugins]]`, docs/plugins.md "Using plugins
    /// in a tenant"): trusted shared libraries filling the routing, wrap-up
    /// or channel roles in place of scripts.
    #[serde(default)]
    pub plugins: Vec<PluginEntry>,
    /// The server's `data_dir`: plugin copies go to its `plugins-cache/`
    /// (set by `Config::load`).
    #[serde(skip)]
    pub data_dir: PathBuf,
    /// Where relative script paths resolve: the configuration file's
    /// folder, or `None` for the embedded demo (set by `Config::load`).
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

/// Roles a native plugin can fill for a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginRole {
    Routing,
    Wrapup,
    Channel,
    /// Canned responses (in place of a `responses` script).
    Responses,
}

/// One `[[tenants.plugins]]` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct PluginEntry {
    /// The shared library; relative paths resolve like `scripts_dir`.
    pub path: String,
    pub roles: Vec<PluginRole>,
    /// The channel name, with the `channel` role (`sms` serves
    /// `/channels/sms/{tenant}/webhook`).
    #[serde(default)]
    pub channel: Option<String>,
    /// Queue of the channel's new conversations (default: `default_queue`).
    #[serde(default)]
    pub queue: Option<String>,
    /// Source label of the channel's conversations (default: the channel name).
    #[serde(default)]
    pub source: Option<String>,
    /// Free-form table given to the plugin's `create` as JSON.
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// How the host authenticates this channel's webhooks before the
    /// plugin sees them (`{ scheme = "twilio", secret, url }`). Without it
    /// the channel accepts unsigned webhooks (a warning at start).
    #[serde(default)]
    pub signature: Option<crate::webhook_auth::SignatureCheck>,
}

impl PluginEntry {
    pub fn has(&self, role: PluginRole) -> bool {
        self.roles.contains(&role)
    }
}

/// Channels served by the host itself, never by a plugin.
pub const BUILTIN_CHANNELS: [&str; 2] = [
    switchboard_core::channel::WEBCHAT,
    crate::http::messenger::CHANNEL,
];

#[derive(Debug, Clone, Deserialize)]
pub struct QueueEntry {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "default_rona")]
    pub rona_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AgentEntry {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Plain password (demo and tests; hashed with argon2 at start).
    #[serde(default)]
    pub password: Option<String>,
    /// An argon2 PHC hash (`$argon2id$…`), preferred over `password`.
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    #[serde(default)]
    pub queues: Vec<String>,
    #[serde(default)]
    pub skills: Vec<String>,
    /// What the agent may do beyond the desktop (docs/console.md).
    #[serde(default)]
    pub role: Role,
}

pub use switchboard_core::model::Role;

#[derive(Debug, Clone, Deserialize)]
pub struct WebchatConfig {
    #[serde(default = "default_webchat_source")]
    pub source: String,
    pub queue: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MessengerConfig {
    pub verify_token: String,
    pub app_secret: String,
    pub page_id: String,
    pub page_name: String,
    pub access_token: String,
    #[serde(default)]
    pub graph_api_base: Option<String>,
    #[serde(default = "default_graph_version")]
    pub graph_api_version: String,
    pub queue: String,
    /// Whether Meta's App Review granted the page the HUMAN_AGENT tag:
    /// with it, agents may reply for 7 days after the customer's last
    /// message; without it, for 24 hours.
    #[serde(default)]
    pub human_agent_tag: bool,
}

fn yes() -> bool {
    true
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_lease_ms() -> u64 {
    10_000
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}
fn default_snapshot_every() -> u64 {
    5_000
}
fn default_reports_days() -> u64 {
    2
}
fn default_archive_after() -> u64 {
    switchboard_core::model::DEFAULT_ARCHIVE_AFTER_MS
}
fn default_session_ttl() -> u64 {
    12 * 3600
}
fn default_away_grace() -> u64 {
    60
}
fn default_rona() -> u64 {
    DEFAULT_RONA_TIMEOUT_MS
}
fn default_capacity() -> u32 {
    DEFAULT_CAPACITY
}
fn default_webchat_source() -> String {
    "Web chat".into()
}
fn default_graph_version() -> String {
    "v21.0".into()
}
fn default_idle_reasons() -> Vec<String> {
    ["Break", "Lunch", "Meeting", "Training"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl Config {
    /// Read `path` (or the embedded demo when `None`), then apply the
    /// environment, then validate.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let builder = match path {
            Some(p) => config::Config::builder()
                .add_source(config::File::from(p).format(config::FileFormat::Toml)),
            None => config::Config::builder()
                .add_source(config::File::from_str(DEMO, config::FileFormat::Toml)),
        };
        let raw = builder
            .add_source(config::Environment::with_prefix("SWITCHBOARD").ignore_empty(true))
            .build()
            .map_err(|cause| ConfigError::Read {
                what: match path {
                    Some(p) => p.display().to_string(),
                    None => "the embedded demo configuration".into(),
                },
                cause,
            })?;
        let mut cfg: Config = raw.try_deserialize().map_err(ConfigError::Shape)?;
        let base_dir = path.map(|p| {
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        });
        for t in &mut cfg.tenants {
            t.base_dir = base_dir.clone();
            t.data_dir = cfg.data_dir.clone();
        }
        if let Ok(base) = std::env::var("SWITCHBOARD_GRAPH_API_BASE") {
            if !base.is_empty() {
                for t in &mut cfg.tenants {
                    if let Some(m) = &mut t.messenger {
                        m.graph_api_base = Some(base.clone());
                    }
                }
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parse and validate a TOML text, without the environment: what the
    /// fuzz target and property tests exercise.
    pub fn from_toml_str(text: &str) -> Result<Config> {
        let raw = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .map_err(|cause| ConfigError::Read {
                what: "the configuration".into(),
                cause,
            })?;
        let mut cfg: Config = raw.try_deserialize().map_err(ConfigError::Shape)?;
        for t in &mut cfg.tenants {
            t.data_dir = cfg.data_dir.clone();
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Refuse configurations the server could not serve correctly.
    pub fn validate(&self) -> Result<()> {
        if self.tenants.is_empty() {
            bail!("no tenant configured");
        }
        if self.lease_ms < MIN_LEASE_MS {
            bail!("lease_ms must be at least {MIN_LEASE_MS}");
        }
        if let Some(url) = &self.database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                bail!("database_url must be a PostgreSQL URL (postgres://…)");
            }
        }
        if let Some(id) = &self.node_id {
            if !is_node_id(id) {
                bail!("node_id {id:?}: use letters, digits, '-', '_', '.' or ':'");
            }
        }
        if let Some(url) = &self.advertise_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("advertise_url must start with http:// or https://");
            }
        }
        let mut ids = HashSet::new();
        for t in &self.tenants {
            if !is_slug(&t.id) {
                bail!("tenant id {:?}: use letters, digits, '-' or '_'", t.id);
            }
            if !ids.insert(&t.id) {
                bail!("tenant {:?} is configured twice", t.id);
            }
            if t.snapshot_every == 0 {
                bail!("tenant {}: snapshot_every must be at least 1", t.id);
            }
            if t.reports_days > 366 {
                bail!("tenant {}: reports_days must be at most 366", t.id);
            }
            let queues: HashSet<&str> = t.queues.iter().map(|q| q.id.as_str()).collect();
            if queues.len() != t.queues.len() {
                bail!("tenant {}: duplicate queue id", t.id);
            }
            if !queues.contains(t.default_queue.as_str()) {
                bail!(
                    "tenant {}: default_queue {:?} is not a queue",
                    t.id,
                    t.default_queue
                );
            }
            let mut agents = HashSet::new();
            for a in &t.agents {
                if !is_slug(&a.id) || !agents.insert(&a.id) {
                    bail!("tenant {}: bad or duplicate agent id {:?}", t.id, a.id);
                }
                if a.password.is_none() && a.password_hash.is_none() {
                    bail!(
                        "tenant {}: agent {} has neither password nor password_hash",
                        t.id,
                        a.id
                    );
                }
                if a.capacity == 0 {
                    bail!("tenant {}: agent {} has capacity 0", t.id, a.id);
                }
                for q in &a.queues {
                    if !queues.contains(q.as_str()) {
                        bail!("tenant {}: agent {} serves unknown queue {q:?}", t.id, a.id);
                    }
                }
            }
            if let Some(w) = &t.webchat {
                if !queues.contains(w.queue.as_str()) {
                    bail!(
                        "tenant {}: webchat queue {:?} is not a queue",
                        t.id,
                        w.queue
                    );
                }
            }
            if let Some(m) = &t.messenger {
                if !queues.contains(m.queue.as_str()) {
                    bail!(
                        "tenant {}: messenger queue {:?} is not a queue",
                        t.id,
                        m.queue
                    );
                }
            }
            switchboard_core::Masker::new(&t.mask_patterns)
                .map_err(|e| ConfigError::Invalid(format!("tenant {}: {e}", t.id)))?;
            validate_plugins(t, &queues)?;
        }
        Ok(())
    }
}

/// What can be checked of `[[tenants.plugins]]` without loading them. One
/// implementation per role: a routing (or wrap-up) plugin and a Lua
/// `routing` (or `wrapup`/`wrapup_queues`) script together are refused
/// rather than one silently winning; a channel is served by one adapter.
fn validate_plugins(t: &TenantConfig, queues: &HashSet<&str>) -> Result<()> {
    let mut routing = 0;
    let mut wrapup = 0;
    let mut responses = 0;
    let mut channels = HashSet::new();
    for p in &t.plugins {
        if p.path.trim().is_empty() {
            bail!("tenant {}: a plugin has an empty path", t.id);
        }
        if p.roles.is_empty() {
            bail!("tenant {}: plugin {}: give at least one role", t.id, p.path);
        }
        routing += usize::from(p.has(PluginRole::Routing));
        wrapup += usize::from(p.has(PluginRole::Wrapup));
        responses += usize::from(p.has(PluginRole::Responses));
        match (&p.channel, p.has(PluginRole::Channel)) {
            (Some(c), true) => {
                if !is_slug(c) || BUILTIN_CHANNELS.contains(&c.as_str()) {
                    bail!(
                        "tenant {}: plugin {}: channel {c:?} must be a slug other than {}",
                        t.id,
                        p.path,
                        BUILTIN_CHANNELS.join(" and ")
                    );
                }
                if t.channels.contains_key(c) || !channels.insert(c.clone()) {
                    bail!("tenant {}: channel {c:?} has two adapters", t.id);
                }
            }
            (None, true) => bail!(
                "tenant {}: plugin {}: the channel role needs `channel = \"name\"`",
                t.id,
                p.path
            ),
            (Some(_), false) => bail!(
                "tenant {}: plugin {}: `channel` without the channel role",
                t.id,
                p.path
            ),
            (None, false) => {}
        }
        if p.signature.is_some() && !p.has(PluginRole::Channel) {
            bail!(
                "tenant {}: plugin {}: `signature` without the channel role",
                t.id,
                p.path
            );
        }
        if let Some(q) = &p.queue {
            if !p.has(PluginRole::Channel) || !queues.contains(q.as_str()) {
                bail!(
                    "tenant {}: plugin {}: queue {q:?} must be a queue of a channel plugin",
                    t.id,
                    p.path
                );
            }
        }
    }
    if routing > 1 || wrapup > 1 || responses > 1 {
        bail!(
            "tenant {}: at most one routing, one wrap-up and one canned responses plugin",
            t.id
        );
    }
    if responses == 1 && t.responses.is_some() {
        bail!(
            "tenant {}: both a canned responses plugin and a `responses` script are configured; remove one",
            t.id
        );
    }
    if routing == 1 && t.routing.is_some() {
        bail!(
            "tenant {}: both a routing plugin and `routing` script are configured; remove one",
            t.id
        );
    }
    if wrapup == 1 && (t.wrapup.is_some() || !t.wrapup_queues.is_empty()) {
        bail!(
            "tenant {}: both a wrap-up plugin and `wrapup`/`wrapup_queues` scripts are configured; remove one",
            t.id
        );
    }
    Ok(())
}

fn is_node_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// A tenant id's shape (what a session token's prefix must be).
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Config {
    /// Whether this server is a node of a cluster (a database is set).
    pub fn clustered(&self) -> bool {
        self.database_url.is_some()
    }

    /// This node's id: `node_id`, else the host name and the bound port.
    pub fn node_id_for(&self, bound: std::net::SocketAddr) -> String {
        if let Some(id) = &self.node_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| is_node_id(h))
            .unwrap_or_else(|| "node".into());
        format!("{host}:{}", bound.port())
    }

    /// How other nodes reach this one: `advertise_url`, else
    /// `http://{the address bound}`.
    pub fn advertise_url_for(&self, bound: std::net::SocketAddr) -> String {
        self.advertise_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("http://{bound}"))
    }
}

impl TenantConfig {
    pub fn settings(&self) -> TenantSettings {
        TenantSettings {
            mask: self.mask,
            transfer_not_accepted: self.transfer_not_accepted,
            default_queue: self.default_queue.clone(),
            archive_after_ms: self.archive_after_ms,
            idle_reasons: self.idle_reasons.clone(),
            language: self.language,
        }
    }

    pub fn queue_configs(&self) -> Vec<QueueConfig> {
        self.queues
            .iter()
            .map(|q| QueueConfig {
                id: q.id.clone(),
                name: q.name.clone().unwrap_or_else(|| q.id.clone()),
                rona_timeout_ms: q.rona_timeout_ms,
            })
            .collect()
    }

    pub fn agent_configs(&self) -> Vec<AgentConfig> {
        self.agents
            .iter()
            .map(|a| AgentConfig {
                id: a.id.clone(),
                name: a.name.clone().unwrap_or_else(|| a.id.clone()),
                capacity: a.capacity,
                queues: a.queues.clone(),
                skills: a.skills.clone(),
            })
            .collect()
    }
}

impl MessengerConfig {
    pub fn graph_api_base(&self) -> &str {
        self.graph_api_base
            .as_deref()
            .unwrap_or(DEFAULT_GRAPH_API_BASE)
    }
}
