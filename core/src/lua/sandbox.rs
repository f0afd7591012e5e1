//! The sandboxed Lua state of one tenant generation.
//!
//! What a script can reach: the `string` (without `dump`, with size-capped
//! pattern functions), `table`, `math`, `utf8` and `coroutine` libraries,
//! `os.time`/`os.clock`/`os.date`, the safe base functions, `require` over the
//! tenant's own script files (read at load time, never at call time) and the
//! `sb` module. Everything is reached through read-only proxies, and the
//! string metatable is locked, so one script cannot patch what another sees.
//!
//! Limits: an instruction [`Budget`] per call, checked by a count hook set as
//! the global hook so that coroutines inherit it (mlua #347); it is sticky
//! (`pcall`, `xpcall`, `coroutine.resume` and `coroutine.close` re-raise
//! once it is spent); a memory limit per state.

use super::strings;
use mlua::{
    ChunkMode, Function, HookTriggers, IntoLuaMulti, Lua, LuaOptions, MultiValue, StdLib, Table,
    Value, VmState,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

/// Instructions between two checks of the budget.
const HOOK_EVERY: u32 = 10_000;

/// Message of the error raised when a call runs out of instructions.
pub const BUDGET_EXCEEDED: &str = "instruction budget exceeded";

/// Limits of a tenant's Lua state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Lua VM instructions per call (routing decision, adapter call).
    pub instructions_per_call: i64,
    /// Instructions for loading a script and running its self-tests.
    pub instructions_per_load: i64,
    /// Bytes of memory of the whole state.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            instructions_per_call: 2_000_000,
            instructions_per_load: 20_000_000,
            memory_bytes: 32 * 1024 * 1024,
        }
    }
}

/// The instruction budget of the call in progress. Outside calls it is
/// spent, so stray code (a finalizer run by a collection from Rust) stops
/// at once.
#[derive(Debug, Default)]
pub struct Budget {
    remaining: AtomicI64,
    exceeded: AtomicBool,
    /// Where the budget ran out: (file, line).
    at: std::sync::Mutex<Option<(String, u32)>>,
    /// Innermost tenant frame when an error left the call (set by the
    /// message handler of [`invoke`]).
    error_at: std::sync::Mutex<Option<(String, u32)>>,
    /// Innermost tenant frame at the last garbage-collection cycle of the
    /// call: where a script that ran out of memory was allocating (Lua
    /// calls no handler for memory errors).
    memory_at: std::sync::Mutex<Option<(String, u32)>>,
    /// The state is being closed: finalizers must not touch it.
    closing: AtomicBool,
}

/// Owned beside a state, dropped just before it: from then on the
/// finalizers the host planted leave the closing state alone.
#[derive(Debug)]
pub struct CloseGuard(pub Arc<Budget>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.0.closing.store(true, Ordering::Relaxed);
    }
}

fn put(cell: &std::sync::Mutex<Option<(String, u32)>>, v: Option<(String, u32)>) {
    if let Ok(mut c) = cell.lock() {
        *c = v;
    }
}

fn take(cell: &std::sync::Mutex<Option<(String, u32)>>) -> Option<(String, u32)> {
    cell.lock().ok().and_then(|mut c| c.take())
}

impl Budget {
    pub fn arm(&self, instructions: i64) {
        put(&self.at, None);
        put(&self.error_at, None);
        put(&self.memory_at, None);
        self.remaining.store(instructions, Ordering::Relaxed);
        self.exceeded.store(false, Ordering::Relaxed);
    }

    /// End of a call: whatever runs next without a new `arm` is stopped.
    pub fn disarm(&self) -> bool {
        self.remaining.store(0, Ordering::Relaxed);
        self.exceeded.swap(false, Ordering::Relaxed)
    }

    /// Where the budget ran out in the last call, if it did.
    pub fn location(&self) -> Option<(String, u32)> {
        self.at.lock().ok().and_then(|mut a| a.take())
    }

    /// Where the error that ended the last call was raised: the innermost
    /// frame of a tenant file (the line that called the host function,
    /// raised or failed).
    pub fn error_location(&self) -> Option<(String, u32)> {
        take(&self.error_at)
    }

    /// Where the last call was allocating at its last collection cycle.
    pub fn memory_location(&self) -> Option<(String, u32)> {
        take(&self.memory_at)
    }

    fn record(&self, file: String, line: u32) {
        if let Ok(mut a) = self.at.lock() {
            if a.is_none() {
                *a = Some((file, line));
            }
        }
    }

    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    fn spend(&self) -> bool {
        if self.exceeded.load(Ordering::Relaxed) {
            return false;
        }
        let left = self
            .remaining
            .fetch_sub(i64::from(HOOK_EVERY), Ordering::Relaxed);
        if left <= 0 {
            self.exceeded.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// The trusted prelude: wraps the protected-call functions so that a spent
/// budget cannot be swallowed, and builds read-only proxies. Runs before
/// any tenant code, with the full base library still in place.
const PRELUDE: &str = r#"
local spent, raw_pcall, raw_xpcall, select, error, setmetatable =
  ...
local resume, close = coroutine.resume, coroutine.close
local BUDGET = "instruction budget exceeded"
local function check(ok, ...)
  if spent() then error(BUDGET, 0) end
  return ok, ...
end
local wrapped = {}
wrapped.pcall = function(f, ...) return check(raw_pcall(f, ...)) end
wrapped.xpcall = function(f, h, ...)
  return check(raw_xpcall(f, function(e)
    if spent() then return e end
    return h(e)
  end, ...))
end
wrapped.resume = function(co, ...) return check(resume(co, ...)) end
wrapped.close = function(co) return check(close(co)) end
local function readonly(t, name)
  return setmetatable({}, {
    __index = t,
    __newindex = function() error(name .. " is read-only", 2) end,
    __pairs = function() return next, t, nil end,
    __len = function() return #t end,
    __metatable = false,
  })
end
wrapped.readonly = readonly
-- Finalizers run with hooks off (Lua 5.4 GCTM): no budget could stop them.
local rawget, type = rawget, type
wrapped.setmetatable = function(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("__gc metamethods are not allowed", 2)
  end
  return setmetatable(t, mt)
end
return wrapped
"#;

/// A fresh sandboxed state, with the budget hook and the memory limit set.
/// `sb` is the Switchboard module table (see `sb.rs`), `files` the tenant's
/// script sources by relative path, for `require`.
pub fn new_state(
    limits: &Limits,
    budget: Arc<Budget>,
    files: Arc<BTreeMap<String, String>>,
    register_sb: impl FnOnce(&Lua) -> mlua::Result<Table>,
) -> mlua::Result<(Lua, Table)> {
    let lua = Lua::new_with(
        StdLib::TABLE
            | StdLib::STRING
            | StdLib::MATH
            | StdLib::UTF8
            | StdLib::COROUTINE
            | StdLib::OS,
        LuaOptions::default(),
    )?;
    let g = lua.globals();

    // `os`: only the clock functions.
    let os: Table = g.get("os")?;
    let safe_os = lua.create_table()?;
    for f in ["time", "clock", "date"] {
        safe_os.raw_set(f, os.get::<Value>(f)?)?;
    }
    g.raw_set("os", safe_os)?;

    // string: no dump, capped pattern functions and rep.
    let string: Table = g.get("string")?;
    string.raw_set("dump", Value::Nil)?;
    strings::register(&lua, &string)?;

    // The host's own protected call, kept before the guest's is wrapped.
    let raw_xpcall: Function = g.get("xpcall")?;

    // Protected calls that re-raise a spent budget; read-only proxies.
    let b = budget.clone();
    let spent = lua.create_function(move |_, ()| Ok(b.exceeded()))?;
    let prelude: Table = lua
        .load(PRELUDE)
        .set_name("=prelude")
        .set_mode(ChunkMode::Text)
        .call((
            spent,
            g.get::<Function>("pcall")?,
            g.get::<Function>("xpcall")?,
            g.get::<Function>("select")?,
            g.get::<Function>("error")?,
            g.get::<Function>("setmetatable")?,
        ))?;
    g.raw_set("pcall", prelude.get::<Function>("pcall")?)?;
    g.raw_set("xpcall", prelude.get::<Function>("xpcall")?)?;
    let co: Table = g.get("coroutine")?;
    co.raw_set("resume", prelude.get::<Function>("resume")?)?;
    co.raw_set("close", prelude.get::<Function>("close")?)?;
    g.raw_set("setmetatable", prelude.get::<Function>("setmetatable")?)?;
    let readonly: Function = prelude.get("readonly")?;

    // Base functions that reach outside or around the sandbox.
    for name in [
        "load",
        "loadstring",
        "dofile",
        "loadfile",
        "collectgarbage",
        "print",
        "rawset",
        "require",
        "package",
        "module",
        "debug",
        "io",
    ] {
        g.raw_set(name, Value::Nil)?;
    }

    let sb = register_sb(&lua)?;

    // The string metatable: locked, its __index the real string table.
    let string_mt: Table = lua
        .load("return getmetatable('')")
        .set_mode(ChunkMode::Text)
        .eval()?;
    string_mt.raw_set("__metatable", false)?;

    // What every script environment reads through: read-only libraries.
    let base = lua.create_table()?;
    for (k, v) in g.pairs::<Value, Value>().flatten() {
        let v = match v {
            Value::Table(t) => Value::Table(readonly.call((t, k.to_string()?))?),
            other => other,
        };
        base.raw_set(k, v)?;
    }
    base.raw_set("sb", readonly.call::<Table>((sb, "sb"))?)?;
    let require = require_function(&lua, files)?;
    base.raw_set("require", require)?;
    let base = readonly.call::<Table>((base, "the global environment"))?;
    lua.set_named_registry_value("sb_base", base.clone())?;
    lua.set_named_registry_value("sb_readonly", readonly)?;

    // The message handler of `invoke`: notes the innermost tenant frame
    // while the stack is still there.
    let b = budget.clone();
    let locate = lua.create_function(move |lua, err: Value| {
        put(&b.error_at, tenant_frame(lua, 1));
        Ok(err)
    })?;
    lua.set_named_registry_value("sb_locate", locate)?;
    lua.set_named_registry_value("sb_xpcall", raw_xpcall)?;
    plant_gc_sentinel(&lua, budget.clone())?;

    let hook_budget = budget;
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY),
        move |_, debug| {
            if hook_budget.spend() {
                Ok(VmState::Continue)
            } else {
                let src = debug.source();
                let file = src.short_src.as_deref().unwrap_or("?").to_string();
                let line = debug.current_line().unwrap_or(0) as u32;
                hook_budget.record(file, line);
                Err(mlua::Error::runtime(BUDGET_EXCEEDED))
            }
        },
    )?;
    lua.set_memory_limit(limits.memory_bytes)?;
    Ok((lua, base))
}

/// The innermost frame, from stack `level` up, running code of a tenant
/// file (chunks are named `@path`; the prelude and C functions are
/// skipped), with its current line.
fn tenant_frame(lua: &Lua, level: usize) -> Option<(String, u32)> {
    // Deep enough for any real call chain; a stack overflow is cut short.
    for l in level..level + 256 {
        let found = lua.inspect_stack(l, |d| {
            let src = d.source();
            let file = src.source.as_deref()?.strip_prefix('@')?.to_string();
            let line = u32::try_from(d.current_line()?).ok()?;
            Some((file, line))
        })?;
        if found.is_some() {
            return found;
        }
    }
    None
}

/// A table whose finalizer notes where the running call is, then plants
/// the next one: one note per garbage-collection cycle, so a call that
/// runs out of memory leaves where it was allocating. Lua calls no
/// message handler for memory errors, and the stack is gone by the time
/// the call returns.
fn plant_gc_sentinel(lua: &Lua, budget: Arc<Budget>) -> mlua::Result<()> {
    let mt = lua.create_table()?;
    let note = lua.create_function(move |lua, _: Value| {
        if budget.closing.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Some(at) = tenant_frame(lua, 1) {
            put(&budget.memory_at, Some(at));
        }
        let mt: Table = lua.named_registry_value("sb_gc_sentinel")?;
        let next = lua.create_table()?;
        next.set_metatable(Some(mt))?;
        Ok(())
    })?;
    mt.raw_set("__gc", note)?;
    mt.raw_set("__metatable", false)?;
    lua.set_named_registry_value("sb_gc_sentinel", mt.clone())?;
    let first = lua.create_table()?;
    first.set_metatable(Some(mt))?;
    Ok(())
}

/// Calls under the host's message handler: on an error,
/// [`Budget::error_location`] tells the innermost line of a tenant file
/// that was running.
#[derive(Debug, Clone)]
pub struct Protected {
    xpcall: Function,
    locate: Function,
}

impl Protected {
    pub fn new(lua: &Lua) -> mlua::Result<Protected> {
        Ok(Protected {
            xpcall: lua.named_registry_value("sb_xpcall")?,
            locate: lua.named_registry_value("sb_locate")?,
        })
    }

    /// Call `f`; its results, or its error as mlua would have raised it.
    pub fn call(
        &self,
        lua: &Lua,
        f: &Function,
        args: impl IntoLuaMulti,
    ) -> mlua::Result<MultiValue> {
        let mut all = args.into_lua_multi(lua)?;
        all.push_front(Value::Function(self.locate.clone()));
        all.push_front(Value::Function(f.clone()));
        let mut out: MultiValue = self.xpcall.call(all)?;
        match out.pop_front() {
            Some(Value::Boolean(true)) => Ok(out),
            _ => Err(match out.pop_front() {
                Some(Value::Error(e)) => *e,
                Some(Value::String(s)) => {
                    let m = s.to_string_lossy();
                    if m == "not enough memory" {
                        mlua::Error::MemoryError(m)
                    } else {
                        mlua::Error::RuntimeError(m)
                    }
                }
                Some(other) => mlua::Error::RuntimeError(format!(
                    "error object is a {} value",
                    other.type_name()
                )),
                None => mlua::Error::RuntimeError("unknown error".into()),
            }),
        }
    }

    /// [`Protected::call`] keeping the first result.
    pub fn call1(&self, lua: &Lua, f: &Function, args: impl IntoLuaMulti) -> mlua::Result<Value> {
        Ok(self.call(lua, f, args)?.pop_front().unwrap_or(Value::Nil))
    }
}

/// A fresh environment for one script: its globals are its own; reads fall
/// through to the read-only base.
pub fn environment(lua: &Lua) -> mlua::Result<Table> {
    let base: Table = lua.named_registry_value("sb_base")?;
    let env = lua.create_table()?;
    let mt = lua.create_table()?;
    mt.raw_set("__index", base)?;
    mt.raw_set("__metatable", false)?;
    env.set_metatable(Some(mt))?;
    env.raw_set("_G", env.clone())?;
    Ok(env)
}

/// A read-only view of `t`.
pub fn readonly(lua: &Lua, t: Table, name: &str) -> mlua::Result<Table> {
    let f: Function = lua.named_registry_value("sb_readonly")?;
    f.call((t, name))
}

/// Compile a tenant file as text (never bytecode) in `env`.
pub fn compile(lua: &Lua, file: &str, source: &str, env: Table) -> mlua::Result<Function> {
    lua.load(source)
        .set_name(format!("@{file}"))
        .set_mode(ChunkMode::Text)
        .set_environment(env)
        .into_function()
}

/// `require(name)`: `a.b` is `lib/a/b.lua` (or `a/b.lua`) among the
/// tenant's files; each module is run once per generation, in its own
/// environment.
fn require_function(lua: &Lua, files: Arc<BTreeMap<String, String>>) -> mlua::Result<Function> {
    let loaded = lua.create_table()?;
    lua.create_function(move |lua, name: String| {
        if let Some(v) = loaded.raw_get::<Option<Value>>(name.as_str())? {
            return Ok(v);
        }
        let valid = !name.is_empty()
            && name.len() <= 128
            && name.split('.').all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        if !valid {
            return Err(mlua::Error::runtime(format!(
                "require: invalid module name {name:?}"
            )));
        }
        let rel = name.replace('.', "/") + ".lua";
        let candidates = [format!("lib/{rel}"), rel];
        let Some((file, source)) = candidates
            .iter()
            .find_map(|c| files.get(c).map(|s| (c.clone(), s.clone())))
        else {
            return Err(mlua::Error::runtime(format!(
                "require: module {name:?} not found in the tenant's scripts (looked for {})",
                candidates.join(", ")
            )));
        };
        // Mark it as loading to stop require cycles.
        loaded.raw_set(name.as_str(), false)?;
        let env = environment(lua)?;
        let f = compile(lua, &file, &source, env)?;
        let v: Value = f.call(name.as_str())?;
        let v = if v.is_nil() { Value::Boolean(true) } else { v };
        loaded.raw_set(name.as_str(), v.clone())?;
        Ok(v)
    })
}
