//! The sandboxed Lua state of one tenant generation.
//!
//! What a script can reach: the `string` (without `dump`, with size-capped
//! pattern functions), `table`, `math`, `utf8` and `coroutine` libraries,
//! `os.time`/`os.clock`/`os.date`, the safe base functions, `require` over the
//! tenant's own script files (read at load time, never at call time) and the
//! `sb` module. Everything is reached through read-only proxies, and the
//! string metatable is locked, so one script cannot patch what another sees.
//!
//! Limits: an instruction [`Budget`] per call and a memory limit per state.
//! The budget is counted by a count hook, but Lua 5.4 takes its slow path on
//! every instruction while a count hook is set, so a call (a routing
//! decision, an adapter call) starts without one: the [`watchdog`] thread
//! arms the hook, asynchronously (`lua_sethook` is made for that), on a call
//! still running after one tick ([`WATCHDOG_TICK`]), on the main thread and
//! on every coroutine the call is resuming; from then on the call has
//! `instructions_per_call` instructions left. Loading a script and its
//! self-tests count from the first instruction. The budget is sticky
//! (`pcall`, `xpcall`, `coroutine.resume`, `coroutine.wrap` and
//! `coroutine.close` re-raise once it is spent).

use super::strings;
use mlua::{ffi, ChunkMode, Function, IntoLuaMulti, Lua, LuaOptions, StdLib, Table, Thread, Value};
use std::collections::BTreeMap;
use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Instructions between two checks of the budget.
const HOOK_EVERY: c_int = 10_000;

/// How often the watchdog looks at the calls in progress: a call still
/// running at two consecutive looks (so after one to two ticks) gets the
/// count hook.
pub const WATCHDOG_TICK: Duration = Duration::from_millis(1);

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
    /// Number of the call in progress; 0 between calls.
    call: AtomicU64,
    /// Last call number handed out.
    calls: AtomicU64,
    /// The call number the watchdog saw at its previous look.
    seen: AtomicU64,
    /// The count hook is on: instructions are being counted.
    counting: AtomicBool,
    /// The threads the hook goes on; setting or clearing it happens under
    /// this lock.
    threads: Mutex<Threads>,
}

/// The Lua threads of a state that may be running tenant code.
#[derive(Debug, Default)]
struct Threads {
    /// The main thread's `lua_State` (0 until the state is built).
    main: usize,
    /// Coroutines being resumed or closed by the call in progress, kept
    /// alive by their handle until the call ends.
    running: Vec<(usize, Thread)>,
}

/// Owned beside a state, dropped just before it: from then on the
/// finalizers the host planted leave the closing state alone.
#[derive(Debug)]
pub struct CloseGuard(pub Arc<Budget>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        let mut t = self.0.threads.lock().unwrap_or_else(|p| p.into_inner());
        self.0.closing.store(true, Ordering::SeqCst);
        self.0.call.store(0, Ordering::SeqCst);
        t.main = 0;
        t.running.clear();
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

fn lock_threads(b: &Budget) -> std::sync::MutexGuard<'_, Threads> {
    // Nothing is left half-done under this lock by a panic.
    b.threads.lock().unwrap_or_else(|p| p.into_inner())
}

impl Budget {
    fn reset(&self, instructions: i64) {
        put(&self.at, None);
        put(&self.error_at, None);
        put(&self.memory_at, None);
        self.remaining.store(instructions, Ordering::Relaxed);
        self.exceeded.store(false, Ordering::Relaxed);
    }

    /// Start a counted run (loading a script, its self-tests): the hook
    /// counts from the first instruction, so the outcome does not depend on
    /// timing.
    pub fn arm(&self, instructions: i64) {
        self.reset(instructions);
        let t = lock_threads(self);
        self.counting.store(true, Ordering::SeqCst);
        if t.main != 0 {
            // SAFETY: `main` is the live main thread of this budget's state
            // (cleared by `CloseGuard` before the state closes); no Lua code
            // runs on it while it is being armed from its own thread.
            unsafe { set_hook(t.main, true) };
        }
    }

    /// Start a call watched by the [`watchdog`]: it runs without the hook
    /// until it has run for a tick, then `instructions` are counted.
    pub fn arm_watched(&self, instructions: i64) {
        self.reset(instructions);
        let n = self.calls.load(Ordering::Relaxed) + 1;
        self.calls.store(n, Ordering::Relaxed);
        self.call.store(n, Ordering::SeqCst);
        let w = watchdog();
        if w.running() {
            w.wake();
        } else {
            self.arm(instructions);
        }
    }

    /// End of a call: the hook is taken off; whatever runs next without a
    /// new `arm` is stopped at once if it is counted.
    pub fn disarm(&self) -> bool {
        let running = {
            let mut t = lock_threads(self);
            self.call.store(0, Ordering::SeqCst);
            if self.counting.swap(false, Ordering::SeqCst) && t.main != 0 {
                // SAFETY: as in `arm`; the call has returned.
                unsafe { set_hook(t.main, false) };
            }
            std::mem::take(&mut t.running)
        };
        // Coroutine handles are let go outside the lock.
        drop(running);
        self.remaining.store(0, Ordering::Relaxed);
        self.exceeded.swap(false, Ordering::Relaxed)
    }

    /// The watchdog's look at this budget: a call seen twice gets the hook.
    fn watch(&self) -> bool {
        let call = self.call.load(Ordering::SeqCst);
        if call == 0 {
            self.seen.store(0, Ordering::Relaxed);
            return false;
        }
        if self.seen.swap(call, Ordering::Relaxed) == call && !self.counting.load(Ordering::SeqCst)
        {
            let t = lock_threads(self);
            if self.call.load(Ordering::SeqCst) == call
                && !self.closing.load(Ordering::SeqCst)
                && t.main != 0
            {
                self.counting.store(true, Ordering::SeqCst);
                // SAFETY: the call is in progress (checked under the lock
                // `disarm` and `CloseGuard` take), so the main thread and the
                // coroutines it is resuming (anchored by their handles) are
                // alive. `lua_sethook` is meant to be called asynchronously
                // (lua.c calls it from a signal handler): it sets plain
                // fields the interpreter re-reads at jumps and calls.
                unsafe {
                    set_hook(t.main, true);
                    for (co, _) in &t.running {
                        set_hook(*co, true);
                    }
                }
            }
        }
        true
    }

    /// A coroutine the call is about to resume or close: it gets the hook
    /// now if the call is counted, else when the watchdog arms the call.
    fn enter(&self, co: Thread) {
        let p = co.to_pointer() as usize;
        let mut t = lock_threads(self);
        if self.counting.load(Ordering::SeqCst) {
            // SAFETY: `co` is alive (we hold its handle) and not running.
            unsafe { set_hook(p, true) };
        }
        t.running.push((p, co));
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

    /// Count `instructions` of work a host function does for the call in
    /// progress (hooks do not run inside host functions): once the budget
    /// is spent, the call stops here as it would at a count hook. Nothing
    /// is counted before the watchdog arms the call, as for Lua code.
    pub fn charge(&self, lua: &Lua, instructions: i64) -> mlua::Result<()> {
        if !self.counting.load(Ordering::Relaxed) {
            return Ok(());
        }
        if !self.exceeded.load(Ordering::Relaxed)
            && self.remaining.fetch_sub(instructions, Ordering::Relaxed) > instructions
        {
            return Ok(());
        }
        self.exceeded.store(true, Ordering::Relaxed);
        if let Some((file, line)) = tenant_frame(lua, 1) {
            self.record(file, line);
        }
        Err(mlua::Error::runtime(BUDGET_EXCEEDED))
    }

    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    /// One firing of the count hook: `false` when the budget is spent.
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

/// Put the budget's count hook on (or take it off) the thread `l`.
///
/// # Safety
/// `l` is a live `lua_State` of a state built by [`new_state`].
unsafe fn set_hook(l: usize, on: bool) {
    let l = l as *mut ffi::lua_State;
    // SAFETY: forwarded from this function's contract.
    unsafe {
        if on {
            ffi::lua_sethook(l, Some(budget_hook), ffi::LUA_MASKCOUNT, HOOK_EVERY);
        } else {
            ffi::lua_sethook(l, None, 0, 0);
        }
    }
}

/// Most coroutines one call may be resuming at once (Lua's own C-stack
/// limit stops real nesting far earlier).
const MAX_RUNNING_COROUTINES: usize = 1000;

/// Registry key of the state's [`Budget`] (a light userdata).
static BUDGET_KEY: u8 = 0;

/// What the hook decided.
enum Step {
    Continue,
    Stop,
}

/// The count hook. Everything with a destructor is dropped in
/// [`hook_step`] before `lua_error` unwinds out of this frame.
unsafe extern "C-unwind" fn budget_hook(l: *mut ffi::lua_State, ar: *mut ffi::lua_Debug) {
    // SAFETY: Lua calls the hook with a live thread and its debug record.
    match unsafe { hook_step(l, ar) } {
        Step::Continue => {}
        // SAFETY: raising an error from a hook is allowed; no Rust value
        // with a destructor lives in this frame.
        Step::Stop => unsafe {
            ffi::lua_pushlstring(l, BUDGET_EXCEEDED.as_ptr().cast(), BUDGET_EXCEEDED.len());
            ffi::lua_error(l);
        },
    }
}

/// # Safety
/// `l` and `ar` as Lua passes them to a hook.
unsafe fn hook_step(l: *mut ffi::lua_State, ar: *mut ffi::lua_Debug) -> Step {
    // SAFETY: the registry holds the budget pointer since `new_state`; the
    // state keeps the budget alive (its functions hold `Arc`s of it).
    let budget = unsafe {
        ffi::lua_rawgetp(
            l,
            ffi::LUA_REGISTRYINDEX,
            std::ptr::addr_of!(BUDGET_KEY).cast(),
        );
        let p = ffi::lua_touserdata(l, -1).cast::<Budget>().cast_const();
        ffi::lua_settop(l, -2);
        match p.as_ref() {
            Some(b) => b,
            None => return Step::Continue,
        }
    };
    if !budget.counting.load(Ordering::SeqCst) {
        // A hook left on a coroutine by an earlier counted call: take it
        // off, unless the watchdog is arming this call right now.
        let _t = lock_threads(budget);
        if !budget.counting.load(Ordering::SeqCst) {
            // SAFETY: `l` is the running thread.
            unsafe { set_hook(l as usize, false) };
        }
        return Step::Continue;
    }
    if budget.spend() {
        return Step::Continue;
    }
    // SAFETY: `l` is the running thread; `ar` is the hook's own record.
    let (file, line) = unsafe {
        running_tenant_line(l).unwrap_or_else(|| {
            ffi::lua_getinfo(l, c"Sl".as_ptr(), ar);
            let src = CStr::from_ptr((*ar).short_src.as_ptr())
                .to_string_lossy()
                .into_owned();
            (src, u32::try_from((*ar).currentline).unwrap_or(0))
        })
    };
    budget.record(file, line);
    Step::Stop
}

/// The innermost frame of `l` running a tenant file (chunks named
/// `@path`), with its current line: the prelude's wrappers are skipped.
///
/// # Safety
/// `l` is the running thread, inside a hook.
unsafe fn running_tenant_line(l: *mut ffi::lua_State) -> Option<(String, u32)> {
    for level in 0..256 {
        // SAFETY: a zeroed `lua_Debug` (integers and pointers) is a valid
        // record for `lua_getstack` to fill.
        let mut d: ffi::lua_Debug = unsafe { std::mem::zeroed() };
        // SAFETY: `l` is live; `d` is valid for writes.
        unsafe {
            if ffi::lua_getstack(l, level, &mut d) == 0 {
                return None;
            }
            ffi::lua_getinfo(l, c"Sl".as_ptr(), &mut d);
            if d.source.is_null() || d.currentline <= 0 {
                continue;
            }
            let src = CStr::from_ptr(d.source).to_string_lossy();
            if let Some(file) = src.strip_prefix('@') {
                return Some((file.to_string(), d.currentline as u32));
            }
        }
    }
    None
}

/// The process-wide watchdog thread that arms the count hook on calls
/// that run long (see the module docs).
pub struct Watchdog {
    budgets: Mutex<Vec<Weak<Budget>>>,
    parked: AtomicBool,
    thread: Option<std::thread::Thread>,
}

/// The watchdog, started on first use.
pub fn watchdog() -> &'static Watchdog {
    static W: std::sync::OnceLock<Watchdog> = std::sync::OnceLock::new();
    W.get_or_init(|| {
        let thread = std::thread::Builder::new()
            .name("lua-watchdog".into())
            .spawn(|| watchdog().run())
            .ok()
            .map(|h| h.thread().clone());
        if thread.is_none() {
            tracing::error!("cannot start the Lua watchdog thread: calls will be counted from their first instruction");
        }
        Watchdog {
            budgets: Mutex::new(Vec::new()),
            parked: AtomicBool::new(false),
            thread,
        }
    })
}

impl Watchdog {
    fn register(&self, b: &Arc<Budget>) {
        let mut v = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        v.retain(|w| w.strong_count() > 0);
        v.push(Arc::downgrade(b));
    }

    /// A call started: make sure the watchdog is looking.
    fn wake(&self) {
        if self.parked.load(Ordering::SeqCst) && self.parked.swap(false, Ordering::SeqCst) {
            if let Some(t) = &self.thread {
                t.unpark();
            }
        }
    }

    /// Whether there is a watchdog thread to arm long calls.
    pub fn running(&self) -> bool {
        self.thread.is_some()
    }

    fn look(&self) -> bool {
        let budgets: Vec<Arc<Budget>> = {
            let mut v = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
            v.retain(|w| w.strong_count() > 0);
            v.iter().filter_map(Weak::upgrade).collect()
        };
        let mut busy = false;
        for b in &budgets {
            busy |= b.watch();
        }
        busy
    }

    fn run(&self) {
        loop {
            std::thread::sleep(WATCHDOG_TICK);
            if self.look() {
                continue;
            }
            // Nothing running: sleep until a call starts.
            self.parked.store(true, Ordering::SeqCst);
            if self.look() {
                self.parked.store(false, Ordering::SeqCst);
                continue;
            }
            while self.parked.load(Ordering::SeqCst) {
                std::thread::park();
            }
        }
    }
}

/// The trusted prelude: wraps the protected-call functions so that a spent
/// budget cannot be swallowed, and builds read-only proxies. Runs before
/// any tenant code, with the full base library still in place.
const PRELUDE: &str = r#"
local spent, raw_pcall, raw_xpcall, select, error, setmetatable, enter, leave =
  ...
local resume, close, create, type = coroutine.resume, coroutine.close, coroutine.create, type
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
-- A coroutine being resumed or closed is known to the host, which puts
-- the count hook on it when the call is counted (see sandbox.rs).
local function left(...)
  leave()
  return check(...)
end
wrapped.resume = function(co, ...)
  enter(co)
  return left(resume(co, ...))
end
wrapped.close = function(co)
  enter(co)
  return left(close(co))
end
local wresume, wclose = wrapped.resume, wrapped.close
local function unwrap(co, ok, ...)
  if ok then return ... end
  local e = ...
  wclose(co)
  if type(e) == "string" and e ~= "not enough memory" then error(e, 2) end
  error(e, 0)
end
-- coroutine.wrap through the wrapped resume (the C one resumes directly).
wrapped.wrap = function(f)
  local co = create(f)
  return function(...) return unwrap(co, wresume(co, ...)) end
end
local function readonly(t, name)
  return setmetatable({}, {
    __index = t,
    __newindex = function() error(name .. " is read-only", 2) end,
    -- The iterator closes over `t`: `next, t` would hand the script the
    -- table itself, writable.
    __pairs = function() return function(_, k) return next(t, k) end, nil, nil end,
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

    // Protected calls that re-raise a spent budget; read-only proxies.
    let b = budget.clone();
    let spent = lua.create_function(move |_, ()| Ok(b.exceeded()))?;
    let b = budget.clone();
    let enter = lua.create_function(move |_, co: Value| {
        if let Value::Thread(co) = co {
            if lock_threads(&b).running.len() >= MAX_RUNNING_COROUTINES {
                return Err(mlua::Error::runtime("too many coroutines being resumed"));
            }
            b.enter(co);
        }
        Ok(())
    })?;
    let b = budget.clone();
    let leave = lua.create_function(move |_, ()| {
        let co = lock_threads(&b).running.pop();
        drop(co);
        Ok(())
    })?;
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
            enter,
            leave,
        ))?;
    g.raw_set("pcall", prelude.get::<Function>("pcall")?)?;
    g.raw_set("xpcall", prelude.get::<Function>("xpcall")?)?;
    let co: Table = g.get("coroutine")?;
    co.raw_set("resume", prelude.get::<Function>("resume")?)?;
    co.raw_set("close", prelude.get::<Function>("close")?)?;
    co.raw_set("wrap", prelude.get::<Function>("wrap")?)?;
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
    // `sb.log`, `sb.json`…: read-only too, or a script could patch
    // `sb.json.decode` under the adapter of its tenant.
    let nested: Vec<(String, Table)> = sb
        .pairs::<String, Value>()
        .filter_map(|kv| match kv {
            Ok((k, Value::Table(t))) => Some((k, t)),
            _ => None,
        })
        .collect();
    for (k, t) in nested {
        let name = format!("sb.{k}");
        sb.raw_set(k, readonly.call::<Table>((t, name))?)?;
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
    plant_gc_sentinel(&lua, budget.clone())?;

    // The budget's hook: its pointer in the registry (the state keeps the
    // budget alive through the functions above), the main thread known to
    // the budget, the budget known to the watchdog.
    let mut main = 0usize;
    let key = std::ptr::addr_of!(BUDGET_KEY).cast::<c_void>();
    let ptr = Arc::as_ptr(&budget).cast_mut().cast::<c_void>();
    // SAFETY: plain stack operations on the state mlua hands us.
    unsafe {
        lua.exec_raw::<()>((), |l| {
            ffi::lua_pushlightuserdata(l, ptr);
            ffi::lua_rawsetp(l, ffi::LUA_REGISTRYINDEX, key);
            main = l as usize;
        })?;
    }
    lock_threads(&budget).main = main;
    watchdog().register(&budget);
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
    locate: Function,
}

impl Protected {
    pub fn new(lua: &Lua) -> mlua::Result<Protected> {
        Ok(Protected {
            locate: lua.named_registry_value("sb_locate")?,
        })
    }

    /// Call `f`; its first result, or its error as mlua would have raised it.
    pub fn call1(&self, lua: &Lua, f: &Function, args: impl IntoLuaMulti) -> mlua::Result<Value> {
        // One `lua_pcall` with the handler, in place of `xpcall` called
        // through mlua (which gathers the arguments and the results in
        // lists): a routing decision makes one such call.
        // SAFETY: plain stack operations on the stack mlua hands over: the
        // handler, the function and its arguments; nothing in the closure
        // has a destructor (a Lua error would jump over it).
        let (ok, value): (bool, Value) = unsafe {
            lua.exec_raw((&self.locate, f, args), |l| {
                let nargs = ffi::lua_gettop(l) - 2;
                let status = ffi::lua_pcall(l, nargs, 1, 1);
                ffi::lua_pushboolean(l, c_int::from(status == ffi::LUA_OK));
                ffi::lua_replace(l, 1);
            })?
        };
        if ok {
            return Ok(value);
        }
        Err(match value {
            Value::Error(e) => *e,
            Value::String(s) => {
                let m = s.to_string_lossy();
                if m == "not enough memory" {
                    mlua::Error::MemoryError(m)
                } else {
                    mlua::Error::RuntimeError(m)
                }
            }
            other => {
                mlua::Error::RuntimeError(format!("error object is a {} value", other.type_name()))
            }
        })
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
