//! Loading, validating and calling one generation of a tenant's scripts.
//!
//! [`Generation::load`] builds a fresh sandboxed state, compiles every
//! configured script, checks the required functions and shapes, runs the
//! scripts' own `tests`, and reports every problem with file:line; the
//! caller swaps the result in only when it is `Ok`. [`Generation::call`]
//! runs one budgeted call and turns any failure into a counted, kept
//! [`ScriptFailure`] (the caller then uses its built-in fallback).

use super::roles::{self, AgentCache};
use super::sandbox::{self, Budget, Limits};
use super::sb::{self, SbContext};
use super::{describe, ScriptError, ScriptFiles};
use crate::masking::Masker;
use crate::model::{Millis, WrapUpReason};
use crate::responses::CannedResponse;
use mlua::{Function, Lua, Table, Value};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Failures kept per script for admins.
pub const KEPT_FAILURES: usize = 10;

/// What a tenant's scripts are: the files and which one plays which role.
#[derive(Debug, Clone)]
pub struct ScriptSpec {
    pub tenant: String,
    pub files: ScriptFiles,
    /// Routing policy (`route`, optional `entry`), e.g. `routing/skills.lua`.
    pub routing: Option<String>,
    /// Wrap-up list for the tenant.
    pub wrapup: Option<String>,
    /// Wrap-up lists for some queues.
    pub wrapup_queues: BTreeMap<String, String>,
    /// Canned responses, e.g. `responses/en.lua`.
    pub responses: Option<String>,
    /// Channel adapters by channel name (`messenger`).
    pub channels: BTreeMap<String, ChannelSpec>,
    /// The tenant's queues (to check wrap-up lists and entry answers against).
    pub queues: Vec<String>,
    pub masker: Masker,
    pub limits: Limits,
}

/// A channel adapter script and the settings it is given.
#[derive(Debug, Clone, Default)]
pub struct ChannelSpec {
    pub script: String,
    pub settings: BTreeMap<String, String>,
}

/// A failed call of a script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScriptFailure {
    pub file: String,
    pub line: Option<u32>,
    pub message: String,
    /// `error`, `timeout`, `memory` or `shape`.
    pub kind: &'static str,
    /// When it happened (ms since the epoch, the host's clock).
    pub at: Millis,
}

#[derive(Debug, Default)]
struct FileStats {
    role: &'static str,
    calls: AtomicU64,
    errors: AtomicU64,
    last: Mutex<VecDeque<ScriptFailure>>,
}

/// Calls and failures per script of one generation.
#[derive(Debug, Default)]
pub struct ScriptStats {
    files: BTreeMap<String, FileStats>,
}

/// One script as admins see it.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub file: String,
    pub role: &'static str,
    pub generation: u64,
    pub calls: u64,
    pub errors: u64,
    pub last_errors: Vec<ScriptFailure>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside a call leaves nothing half-written that matters: the
    // budget is re-armed and the caches are rebuilt from their Rust mirror.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ScriptStats {
    fn add(&mut self, file: &str, role: &'static str) {
        self.files
            .entry(file.to_string())
            .or_insert_with(|| FileStats {
                role,
                ..Default::default()
            });
    }

    fn called(&self, file: &str) {
        if let Some(f) = self.files.get(file) {
            f.calls.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn failed(&self, script: &str, failure: ScriptFailure) {
        if let Some(f) = self.files.get(script) {
            f.errors.fetch_add(1, Ordering::Relaxed);
            let mut last = lock(&f.last);
            if last.len() >= KEPT_FAILURES {
                last.pop_front();
            }
            last.push_back(failure);
        }
    }
}

/// The Lua side of a generation, used by one call at a time.
pub(crate) struct Host {
    /// Dropped first (fields drop in order): the state closes after it.
    _close: sandbox::CloseGuard,
    pub lua: Lua,
    pub budget: Arc<Budget>,
    pub route: Option<Function>,
    pub entry: Option<Function>,
    pub channels: HashMap<String, roles::ChannelFns>,
    /// Shared with `sb.pick`, which scans the current candidates.
    pub agents: Arc<Mutex<AgentCache>>,
    pub ctx: Table,
    pub protected: sandbox::Protected,
    /// The script function the call in progress entered last: where a
    /// shape error (a bad returned value) is reported.
    pub last_called: Option<Function>,
}

impl Host {
    /// Call a script function under the host's message handler; its first
    /// result.
    pub fn invoke(&mut self, f: &Function, args: impl mlua::IntoLuaMulti) -> mlua::Result<Value> {
        self.last_called = Some(f.clone());
        self.protected.call1(&self.lua, f, args)
    }
}

/// Where `f` is defined: (file, line), for a function of a tenant file.
fn defined_at(f: &Function) -> Option<(String, u32)> {
    let info = f.info();
    let file = info.source.as_deref()?.strip_prefix('@')?.to_string();
    let line = u32::try_from(info.line_defined?).ok()?;
    Some((file, line))
}

/// One loaded set of a tenant's scripts.
pub struct Generation {
    number: u64,
    tenant: String,
    host: Mutex<Host>,
    pub(crate) routing_file: Option<String>,
    pub(crate) channel_files: BTreeMap<String, String>,
    wrapup_default: Option<Arc<[WrapUpReason]>>,
    wrapup_queues: HashMap<String, Arc<[WrapUpReason]>>,
    responses: Arc<[CannedResponse]>,
    pub(crate) queues: Vec<String>,
    stats: ScriptStats,
    now: Arc<AtomicU64>,
    limits: Limits,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("tenant", &self.tenant)
            .field("number", &self.number)
            .finish()
    }
}

/// The value a role script provides: its returned table, else its globals.
fn module_of(ret: Value, env: Table) -> Table {
    match ret {
        Value::Table(t) => t,
        _ => env,
    }
}

/// One self-test of a script, as `switchboard scripts test` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestOutcome {
    pub file: String,
    pub name: String,
    /// `None`: it passed; else where and why it failed.
    pub failure: Option<ScriptError>,
}

impl Generation {
    /// Load and validate; every problem is reported, none is fatal to the host.
    pub fn load(
        spec: &ScriptSpec,
        number: u64,
        now: Millis,
    ) -> Result<Generation, Vec<ScriptError>> {
        Self::load_with_tests(spec, number, now).0
    }

    /// [`Generation::load`], and the outcome of every self-test it ran.
    pub fn load_with_tests(
        spec: &ScriptSpec,
        number: u64,
        now: Millis,
    ) -> (Result<Generation, Vec<ScriptError>>, Vec<TestOutcome>) {
        let mut outcomes = Vec::new();
        let r = Self::load_inner(spec, number, now, &mut outcomes);
        (r, outcomes)
    }

    fn load_inner(
        spec: &ScriptSpec,
        number: u64,
        now: Millis,
        outcomes: &mut Vec<TestOutcome>,
    ) -> Result<Generation, Vec<ScriptError>> {
        let budget = Arc::new(Budget::default());
        let now_cell = Arc::new(AtomicU64::new(now));
        let sb_ctx = SbContext {
            tenant: spec.tenant.clone(),
            masker: spec.masker.clone(),
            now: now_cell.clone(),
        };
        let files = Arc::new(spec.files.0.clone());
        let mut sb_table = None;
        let (lua, _base) = sandbox::new_state(&spec.limits, budget.clone(), files, |lua| {
            let t = sb::register(lua, &sb_ctx)?;
            sb_table = Some(t.clone());
            Ok(t)
        })
        .map_err(|e| vec![ScriptError::new("<sandbox>", None, e.to_string())])?;
        // The candidates' cache, and `sb.pick` that scans it, before any
        // script runs.
        let agents = (|| {
            let agents = Arc::new(Mutex::new(AgentCache::new(&lua)?));
            if let Some(sb) = &sb_table {
                let pick = roles::pick_module(&lua, agents.clone(), budget.clone())?;
                sb.raw_set("pick", pick)?;
            }
            Ok::<_, mlua::Error>(agents)
        })()
        .map_err(|e| vec![ScriptError::new("<sandbox>", None, e.to_string())])?;
        // Declared after the state, so dropped before it on every return.
        let close = sandbox::CloseGuard(budget.clone());
        let protected = sandbox::Protected::new(&lua)
            .map_err(|e| vec![ScriptError::new("<sandbox>", None, e.to_string())])?;
        let mut errors = Vec::new();
        let mut stats = ScriptStats::default();

        // Run a file's top level; returns its module table.
        let run = |file: &str, errors: &mut Vec<ScriptError>| -> Option<Table> {
            let Some(source) = spec.files.0.get(file) else {
                errors.push(ScriptError::new(file, None, "script file not found"));
                return None;
            };
            budget.arm(spec.limits.instructions_per_load);
            let result = (|| {
                let env = sandbox::environment(&lua)?;
                let f = sandbox::compile(&lua, file, source, env.clone())?;
                let ret: Value = protected.call1(&lua, &f, ())?;
                Ok::<_, mlua::Error>(module_of(ret, env))
            })();
            let timed_out = budget.disarm();
            let at = budget.location();
            let error_at = budget.error_location();
            match result {
                Ok(m) => Some(m),
                Err(e) => {
                    let mut d = describe(&e, file);
                    if let (true, Some((f, l))) = (timed_out, at) {
                        d = ScriptError::new(&f, Some(l), sandbox::BUDGET_EXCEEDED);
                    } else if let Some((f, l)) = error_at {
                        d.file = f;
                        d.line = Some(l);
                    }
                    errors.push(d);
                    None
                }
            }
        };

        let mut route = None;
        let mut entry = None;
        if let Some(file) = &spec.routing {
            stats.add(file, "routing");
            if let Some(m) = run(file, &mut errors) {
                match m.get::<Value>("route") {
                    Ok(Value::Function(f)) => route = Some(f),
                    _ => errors.push(ScriptError::new(
                        file,
                        None,
                        "a routing policy must define route(conversation, candidates, ctx)",
                    )),
                }
                match m.get::<Value>("entry") {
                    Ok(Value::Function(f)) => entry = Some(f),
                    Ok(Value::Nil) => {}
                    _ => errors.push(ScriptError::new(file, None, "entry must be a function")),
                }
                self_tests(
                    &lua,
                    &protected,
                    &budget,
                    &spec.limits,
                    file,
                    &m,
                    &mut errors,
                    outcomes,
                );
            }
        }

        let mut wrapup_default = None;
        let mut wrapup_queues = HashMap::new();
        let mut wrapup_files: Vec<(Option<&String>, &String)> = Vec::new();
        if let Some(f) = &spec.wrapup {
            wrapup_files.push((None, f));
        }
        for (q, f) in &spec.wrapup_queues {
            if !spec.queues.contains(q) {
                errors.push(ScriptError::new(
                    f,
                    None,
                    format!("wrap-up list for unknown queue {q:?}"),
                ));
            }
            wrapup_files.push((Some(q), f));
        }
        for (queue, file) in wrapup_files {
            stats.add(file, "wrapup");
            let Some(m) = run(file, &mut errors) else {
                continue;
            };
            match roles::wrapup_lists(&m, &spec.queues) {
                Ok((default, per_queue)) => match queue {
                    Some(q) => {
                        if let Some(d) = default {
                            wrapup_queues.insert(q.clone(), d);
                        }
                    }
                    None => {
                        wrapup_default = default;
                        for (q, l) in per_queue {
                            wrapup_queues.entry(q).or_insert(l);
                        }
                    }
                },
                Err(message) => errors.push(ScriptError::new(file, None, message)),
            }
            self_tests(
                &lua,
                &protected,
                &budget,
                &spec.limits,
                file,
                &m,
                &mut errors,
                outcomes,
            );
        }

        let mut responses: Arc<[CannedResponse]> = Arc::from(Vec::new());
        if let Some(file) = &spec.responses {
            stats.add(file, "responses");
            if let Some(m) = run(file, &mut errors) {
                match roles::responses_list(&m, &spec.queues) {
                    Ok(list) => responses = list,
                    Err(message) => errors.push(ScriptError::new(file, None, message)),
                }
                self_tests(
                    &lua,
                    &protected,
                    &budget,
                    &spec.limits,
                    file,
                    &m,
                    &mut errors,
                    outcomes,
                );
            }
        }

        let mut channels = HashMap::new();
        let mut channel_files = BTreeMap::new();
        for (name, ch) in &spec.channels {
            stats.add(&ch.script, "channel");
            channel_files.insert(name.clone(), ch.script.clone());
            let Some(m) = run(&ch.script, &mut errors) else {
                continue;
            };
            match roles::ChannelFns::new(&lua, &m, &ch.settings) {
                Ok(fns) => {
                    channels.insert(name.clone(), fns);
                }
                Err(message) => errors.push(ScriptError::new(&ch.script, None, message)),
            }
            self_tests(
                &lua,
                &protected,
                &budget,
                &spec.limits,
                &ch.script,
                &m,
                &mut errors,
                outcomes,
            );
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        let setup = (|| {
            let ctx = lua.create_table()?;
            ctx.raw_set("generation", number)?;
            ctx.raw_set("tenant", spec.tenant.as_str())?;
            Ok::<_, mlua::Error>(ctx)
        })();
        let ctx = setup.map_err(|e| vec![ScriptError::new("<sandbox>", None, e.to_string())])?;
        Ok(Generation {
            number,
            tenant: spec.tenant.clone(),
            host: Mutex::new(Host {
                _close: close,
                lua,
                budget,
                route,
                entry,
                channels,
                agents,
                ctx,
                protected,
                last_called: None,
            }),
            routing_file: spec.routing.clone(),
            channel_files,
            wrapup_default,
            wrapup_queues,
            responses,
            queues: spec.queues.clone(),
            stats,
            now: now_cell,
            limits: spec.limits,
        })
    }

    pub fn number(&self) -> u64 {
        self.number
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Tell the scripts what time it is (`sb.now()`, `ctx.now`, failure times).
    pub fn set_now(&self, now: Millis) {
        self.now.store(now, Ordering::Relaxed);
    }

    pub fn now(&self) -> Millis {
        self.now.load(Ordering::Relaxed)
    }

    /// The wrap-up list of `queue`, if the scripts give one.
    pub fn wrapup_for(&self, queue: &str) -> Option<Arc<[WrapUpReason]>> {
        self.wrapup_queues
            .get(queue)
            .or(self.wrapup_default.as_ref())
            .cloned()
    }

    /// The tenant's canned responses (empty without a `responses` script).
    pub fn responses(&self) -> Arc<[CannedResponse]> {
        self.responses.clone()
    }

    /// Whether a channel adapter script is loaded for `channel`.
    pub fn has_channel(&self, channel: &str) -> bool {
        self.channel_files.contains_key(channel)
    }

    /// Each script with its calls and failures.
    pub fn report(&self) -> Vec<FileReport> {
        self.stats
            .files
            .iter()
            .map(|(file, s)| FileReport {
                file: file.clone(),
                role: s.role,
                generation: self.number,
                calls: s.calls.load(Ordering::Relaxed),
                errors: s.errors.load(Ordering::Relaxed),
                last_errors: lock(&s.last).iter().cloned().collect(),
            })
            .collect()
    }

    /// One budgeted call into `file`'s code. A failure is counted, kept and
    /// logged (without customer text) and returned for the caller's fallback.
    pub(crate) fn call<R>(
        &self,
        file: &str,
        f: impl FnOnce(&mut Host) -> Result<R, CallError>,
    ) -> Result<R, ScriptFailure> {
        self.stats.called(file);
        let mut host = lock(&self.host);
        host.last_called = None;
        host.budget.arm_watched(self.limits.instructions_per_call);
        let result = f(&mut host);
        let timed_out = host.budget.disarm();
        if let Ok(r) = result {
            return Ok(r);
        }
        let stopped_at = host.budget.location();
        let error_at = host.budget.error_location();
        let memory_at = host.budget.memory_location();
        // The last resort for a line: where the function called is defined.
        let defined = host.last_called.as_ref().and_then(defined_at);
        let failure = match result {
            Ok(r) => return Ok(r),
            Err(CallError::Lua(e)) => {
                let d = describe(&e, file);
                let kind = if timed_out {
                    "timeout"
                } else if matches!(e, mlua::Error::MemoryError(_))
                    || (d.message.contains("not enough memory")
                        || d.message == "memory limit exceeded")
                {
                    "memory"
                } else {
                    "error"
                };
                let in_message = d.line.map(|l| (d.file.clone(), l));
                let at = match kind {
                    "timeout" => stopped_at.or(error_at).or(in_message).or(defined),
                    "memory" => memory_at.or(error_at).or(in_message).or(defined),
                    _ => error_at.or(in_message).or(defined),
                };
                let message = if timed_out {
                    sandbox::BUDGET_EXCEEDED.to_string()
                } else {
                    d.message
                };
                let (file, line) = match at {
                    Some((f, l)) => (f, Some(l)),
                    None => (d.file, None),
                };
                ScriptFailure {
                    file,
                    line,
                    message,
                    kind,
                    at: self.now(),
                }
            }
            Err(CallError::Shape(message)) => {
                // The `return` that returned the bad value, when the
                // function has only one that returns something.
                let returned = host.last_called.as_ref().and_then(|f| {
                    let (file, _) = defined.clone()?;
                    match super::returns::value_return_lines(f)?.as_slice() {
                        [line] => Some((file, *line)),
                        _ => None,
                    }
                });
                let (file, line) = match returned.or(defined) {
                    Some((f, l)) => (f, Some(l)),
                    None => (file.to_string(), None),
                };
                ScriptFailure {
                    file,
                    line,
                    message,
                    kind: "shape",
                    at: self.now(),
                }
            }
        };
        // A script that filled its memory gets it back before the next call.
        if host.lua.used_memory() > self.limits.memory_bytes / 2 {
            let _ = host.lua.gc_collect();
        }
        drop(host);
        tracing::warn!(
            target: "switchboard::script",
            tenant = %self.tenant,
            generation = self.number,
            file = %failure.file,
            line = failure.line.unwrap_or(0),
            kind = failure.kind,
            // Lua's own messages hold no customer text unless a script puts
            // it in an error(); mask it like a log line to be sure.
            "script failed, using the built-in behaviour: {}",
            truncate(&failure.message)
        );
        self.stats.failed(file, failure.clone());
        Err(failure)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    Lua(mlua::Error),
    Shape(String),
}

impl From<mlua::Error> for CallError {
    fn from(e: mlua::Error) -> Self {
        CallError::Lua(e)
    }
}

/// Run a module's `tests` (a function, or a table of functions).
// The load's own state, passed through as it is: bundling it in a struct
// used once would only rename the arguments.
#[allow(clippy::too_many_arguments)]
fn self_tests(
    lua: &Lua,
    protected: &sandbox::Protected,
    budget: &Budget,
    limits: &Limits,
    file: &str,
    module: &Table,
    errors: &mut Vec<ScriptError>,
    outcomes: &mut Vec<TestOutcome>,
) {
    let tests: Vec<(String, Function)> = match module.get::<Value>("tests") {
        Ok(Value::Function(f)) => vec![("tests".into(), f)],
        Ok(Value::Table(t)) => {
            let mut v: Vec<(String, Function)> = t.pairs::<String, Function>().flatten().collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        }
        Ok(Value::Nil) => Vec::new(),
        _ => {
            errors.push(ScriptError::new(
                file,
                None,
                "tests must be a function or a table of functions",
            ));
            return;
        }
    };
    for (name, f) in tests {
        budget.arm(limits.instructions_per_load);
        let r = protected.call1(lua, &f, ());
        let timed_out = budget.disarm();
        let at = budget.location();
        let error_at = budget.error_location();
        if let Err(e) = r {
            let mut d = describe(&e, file);
            if let Some((f, l)) = error_at {
                d.file = f;
                d.line = Some(l);
            }
            if timed_out {
                d.message = sandbox::BUDGET_EXCEEDED.into();
                if let Some((f, l)) = at {
                    d.file = f;
                    d.line = Some(l);
                }
            }
            outcomes.push(TestOutcome {
                file: file.to_string(),
                name: name.clone(),
                failure: Some(d.clone()),
            });
            d.message = format!("self-test {name} failed: {}", d.message);
            errors.push(d);
        } else {
            outcomes.push(TestOutcome {
                file: file.to_string(),
                name,
                failure: None,
            });
        }
    }
}
