//! One loaded plugin instance: loading with settings, the raw JSON call
//! across the ABI, and the per-role call and failure counts admins see.

use super::library::{self, role_names, PluginInfo, Vtable};
use super::{ErrorKind, NativeError};
use crate::lua::{FileReport, ScriptFailure};
use crate::model::Millis;
use serde::Serialize;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use switchboard_plugin::abi::JsonFn;
use switchboard_plugin::{
    Buffer, ROLE_CHANNEL, ROLE_RESPONSES, ROLE_ROUTING, ROLE_WRAPUP, STATUS_BAD_REQUEST,
    STATUS_ERROR, STATUS_OK, STATUS_PANIC,
};

/// Failures kept per plugin and role for admins (as many as the Lua host keeps per script).
pub const KEPT_FAILURES: usize = 10;

/// Largest answer accepted from a plugin, in bytes.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// What admins are told about every native plugin.
pub const TRUSTED_CODE_NOTE: &str = "native plugins are trusted code: they run unsandboxed in \
the server process; errors, caught panics and bad answers fall back to the built-in behaviour, \
but a crash (abort, segfault) stops the server";

/// What to load and how to configure it.
#[derive(Debug, Clone)]
pub struct NativeSpec {
    pub tenant: String,
    /// The library as configured (`plugins/libskills_router.so`).
    pub path: PathBuf,
    /// The copies go to `cache_dir/plugins-cache/`.
    pub cache_dir: PathBuf,
    /// Given to the plugin's `create` (`null` when none).
    pub settings: serde_json::Value,
    /// Roles the configuration uses this plugin for (`ROLE_*` bits); the
    /// load fails if the plugin does not fill one of them.
    pub roles: u32,
    /// The tenant's queues: `entry` answers must be one of them (when not
    /// empty) and a wrap-up plugin is asked for each at load.
    pub queues: Vec<String>,
}

impl NativeSpec {
    pub fn new(tenant: &str, path: impl Into<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        NativeSpec {
            tenant: tenant.to_string(),
            path: path.into(),
            cache_dir: cache_dir.into(),
            settings: serde_json::Value::Null,
            roles: 0,
            queues: Vec::new(),
        }
    }
}

/// The plugin's instance pointer.
struct Instance(*mut c_void);

// SAFETY: the ABI requires a plugin's functions to accept calls on one
// instance from several threads at once (the SDK enforces `Send + Sync` on
// Rust plugins); the host never dereferences the pointer itself.
unsafe impl Send for Instance {}
// SAFETY: as above.
unsafe impl Sync for Instance {}

#[derive(Debug, Default)]
struct RoleStats {
    calls: AtomicU64,
    errors: AtomicU64,
    last: Mutex<VecDeque<ScriptFailure>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The list is only pushed to and popped under the lock: a panic cannot
    // leave it half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The role a call belongs to, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Routing = 0,
    Wrapup = 1,
    Channel = 2,
    Responses = 3,
}

/// Every role, in the order of [`Role`]'s values.
const ROLES: [Role; 4] = [Role::Routing, Role::Wrapup, Role::Channel, Role::Responses];

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Routing => "routing",
            Role::Wrapup => "wrapup",
            Role::Channel => "channel",
            Role::Responses => "responses",
        }
    }

    fn bit(self) -> u32 {
        match self {
            Role::Routing => ROLE_ROUTING,
            Role::Wrapup => ROLE_WRAPUP,
            Role::Channel => ROLE_CHANNEL,
            Role::Responses => ROLE_RESPONSES,
        }
    }
}

/// A failed call, before it is counted.
#[derive(Debug)]
pub(crate) struct CallFailure {
    /// `error`, `panic` or `shape`.
    pub kind: &'static str,
    pub message: String,
}

impl CallFailure {
    pub fn shape(message: impl Into<String>) -> Self {
        CallFailure {
            kind: "shape",
            message: message.into(),
        }
    }
}

/// A plugin loaded, checked and configured for one tenant.
pub struct NativePlugin {
    pub(crate) info: PluginInfo,
    pub(crate) vtable: Vtable,
    instance: Instance,
    pub(crate) tenant: String,
    generation: u64,
    pub(crate) queues: Vec<String>,
    file: String,
    stats: [RoleStats; 4],
    now: AtomicU64,
    /// The canned responses of a plugin with that role, checked at load.
    responses: std::sync::Arc<[crate::responses::CannedResponse]>,
    /// The agent table as the plugin knows it (ABI 2 routing).
    pub(crate) table: Mutex<super::table::HostTable>,
}

impl std::fmt::Debug for NativePlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativePlugin")
            .field("name", &self.info.name)
            .field("version", &self.info.version)
            .field("tenant", &self.tenant)
            .field("generation", &self.generation)
            .finish()
    }
}

/// One plugin as admins see it: the same per-role [`FileReport`]s as the
/// Lua host, plus what the library is and a reminder that it is trusted.
#[derive(Debug, Clone, Serialize)]
pub struct PluginReport {
    pub name: String,
    pub version: String,
    pub abi_version: u32,
    /// The library as configured.
    pub file: String,
    /// The cached copy that is mapped.
    pub loaded_from: String,
    pub roles: Vec<&'static str>,
    pub generation: u64,
    /// Always `true`: native plugins run unsandboxed ([`TRUSTED_CODE_NOTE`]).
    pub trusted_code: bool,
    pub note: &'static str,
    pub files: Vec<FileReport>,
}

impl NativePlugin {
    /// Load `spec.path` (through the plugin cache), create an instance with
    /// `spec.settings`, and check it: a wrap-up plugin must give a valid
    /// list for every queue of `spec.queues`. `generation` is recorded with
    /// each routing decision; `now` stamps failures until [`Self::set_now`].
    pub fn load(
        spec: &NativeSpec,
        generation: u64,
        now: Millis,
    ) -> Result<NativePlugin, NativeError> {
        let err = |kind| NativeError {
            path: spec.path.clone(),
            kind,
        };
        let (vtable, info) = library::open(&spec.path, &spec.cache_dir)?;
        for role in ROLES {
            if spec.roles & role.bit() != 0 && info.roles & role.bit() == 0 {
                return Err(err(ErrorKind::MissingRole {
                    name: info.name.clone(),
                    role: role.name(),
                }));
            }
        }
        let instance = match vtable.create {
            None => std::ptr::null_mut(),
            Some(create) => {
                let settings = serde_json::to_vec(&spec.settings)
                    .map_err(|e| err(ErrorKind::Invalid(format!("settings: {e}"))))?;
                let mut instance = std::ptr::null_mut();
                let mut error = Buffer::EMPTY;
                // SAFETY: `create` comes from a checked descriptor of a library
                // that stays mapped; the settings slice and both out-pointers
                // are valid for the call.
                let status =
                    unsafe { create(settings.as_ptr(), settings.len(), &mut instance, &mut error) };
                let message = take(&vtable, error);
                if status != STATUS_OK {
                    let f = failure_of(status, message);
                    return Err(err(ErrorKind::Create {
                        kind: f.kind,
                        message: f.message,
                    }));
                }
                instance
            }
        };
        let mut plugin = NativePlugin {
            file: spec.path.display().to_string(),
            info,
            vtable,
            instance: Instance(instance),
            tenant: spec.tenant.clone(),
            generation,
            queues: spec.queues.clone(),
            stats: Default::default(),
            now: AtomicU64::new(now),
            responses: std::sync::Arc::from(Vec::new()),
            table: Mutex::default(),
        };
        if plugin.vtable.wrapup_reasons.is_some() {
            let problems: Vec<String> = spec
                .queues
                .iter()
                .filter_map(|q| {
                    plugin
                        .fetch_reasons(q)
                        .err()
                        .map(|f| format!("queue {q:?}: {}", f.message))
                })
                .collect();
            if !problems.is_empty() {
                return Err(err(ErrorKind::Invalid(format!(
                    "wrap-up reasons refused: {}",
                    problems.join("; ")
                ))));
            }
        }
        if plugin.vtable.responses.is_some() {
            plugin.responses = plugin.fetch_responses(&spec.queues).map_err(|f| {
                err(ErrorKind::Invalid(format!(
                    "canned responses refused: {}",
                    f.message
                )))
            })?;
        }
        Ok(plugin)
    }

    /// Its canned responses (empty without the `responses` role).
    pub fn responses(&self) -> std::sync::Arc<[crate::responses::CannedResponse]> {
        self.responses.clone()
    }

    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Tell the plugin host what time it is (failure times, `now` in requests).
    pub fn set_now(&self, now: Millis) {
        self.now.store(now, Ordering::Relaxed);
    }

    pub fn now(&self) -> Millis {
        self.now.load(Ordering::Relaxed)
    }

    /// Calls and failures per role filled, in the Lua host's report shape
    /// (`file` is the library as configured, `line` always `None`).
    pub fn report(&self) -> Vec<FileReport> {
        ROLES
            .into_iter()
            .filter(|r| self.info.roles & r.bit() != 0)
            .map(|r| {
                let s = &self.stats[r as usize];
                FileReport {
                    file: self.file.clone(),
                    role: r.name(),
                    generation: self.generation,
                    calls: s.calls.load(Ordering::Relaxed),
                    errors: s.errors.load(Ordering::Relaxed),
                    last_errors: lock(&s.last).iter().cloned().collect(),
                }
            })
            .collect()
    }

    /// [`Self::report`] with what the library is, for the admin view.
    pub fn plugin_report(&self) -> PluginReport {
        PluginReport {
            name: self.info.name.clone(),
            version: self.info.version.clone(),
            abi_version: self.info.abi_version,
            file: self.file.clone(),
            loaded_from: self.info.loaded_from.display().to_string(),
            roles: role_names(self.info.roles),
            generation: self.generation,
            trusted_code: true,
            note: TRUSTED_CODE_NOTE,
            files: self.report(),
        }
    }

    /// One counted call: a failure is kept, logged and returned for the
    /// caller's fallback.
    pub(crate) fn call<R>(
        &self,
        role: Role,
        f: JsonFn,
        request: &[u8],
        parse: impl FnOnce(&[u8]) -> Result<R, CallFailure>,
    ) -> Result<R, ScriptFailure> {
        self.counted(role, || {
            self.raw_call(f, request).and_then(|bytes| parse(&bytes))
        })
    }

    /// Run `f` as one counted call of `role`.
    pub(crate) fn counted<R>(
        &self,
        role: Role,
        f: impl FnOnce() -> Result<R, CallFailure>,
    ) -> Result<R, ScriptFailure> {
        let stats = &self.stats[role as usize];
        stats.calls.fetch_add(1, Ordering::Relaxed);
        let failure = match f() {
            Ok(r) => return Ok(r),
            Err(f) => f,
        };
        let failure = ScriptFailure {
            file: self.file.clone(),
            line: None,
            message: truncate(&failure.message),
            kind: failure.kind,
            at: self.now(),
        };
        tracing::warn!(
            target: "switchboard::plugin",
            tenant = %self.tenant,
            generation = self.generation,
            plugin = %self.info.name,
            role = role.name(),
            kind = failure.kind,
            // Plugin messages should hold no customer text; they are cut short
            // in case one does.
            "plugin call failed, using the built-in behaviour: {}",
            failure.message
        );
        stats.errors.fetch_add(1, Ordering::Relaxed);
        let mut last = lock(&stats.last);
        if last.len() >= KEPT_FAILURES {
            last.pop_front();
        }
        last.push_back(failure.clone());
        Err(failure)
    }

    /// The instance pointer, for the calls that are not JSON.
    pub(crate) fn instance_ptr(&self) -> *mut c_void {
        self.instance.0
    }

    /// Call `f` with `request`; the answer bytes on `STATUS_OK`.
    pub(crate) fn raw_call(&self, f: JsonFn, request: &[u8]) -> Result<Vec<u8>, CallFailure> {
        let mut out = Buffer::EMPTY;
        // SAFETY: `f` comes from this plugin's checked descriptor and the
        // library is never unloaded; the instance came from the same
        // library's `create` and lives as long as `self`; the request slice
        // and `out` are valid for the call. Calls from several threads are
        // allowed by the ABI contract.
        let status = unsafe { f(self.instance.0, request.as_ptr(), request.len(), &mut out) };
        let bytes = take(&self.vtable, out);
        if status != STATUS_OK {
            return Err(failure_of(status, bytes));
        }
        bytes
    }
}

impl Drop for NativePlugin {
    fn drop(&mut self) {
        if let (Some(destroy), false) = (self.vtable.destroy, self.instance.0.is_null()) {
            // SAFETY: the instance came from this library's `create`, nothing
            // else holds it (`&mut self`), and it is not used after this. The
            // library itself stays mapped.
            unsafe { destroy(self.instance.0) };
        }
    }
}

/// Copy a buffer the plugin filled, then give it back.
pub(crate) fn take(vtable: &Vtable, out: Buffer) -> Result<Vec<u8>, CallFailure> {
    if out.ptr.is_null() {
        return if out.len == 0 {
            Ok(Vec::new())
        } else {
            Err(CallFailure::shape(
                "output buffer is NULL with a non-zero length",
            ))
        };
    }
    let copied = if out.len > MAX_ANSWER_BYTES {
        Err(CallFailure::shape(format!(
            "answer of {} bytes, more than the {MAX_ANSWER_BYTES} allowed",
            out.len
        )))
    } else {
        // SAFETY: the ABI says a non-NULL output buffer holds `len`
        // initialized bytes until it is given back below.
        Ok(unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec())
    };
    // SAFETY: the buffer was filled by this plugin and is given back once.
    unsafe { (vtable.free_buffer)(out) };
    copied
}

pub(crate) fn failure_of(status: i32, message: Result<Vec<u8>, CallFailure>) -> CallFailure {
    let text = match message {
        Ok(b) if b.is_empty() => "(no message)".to_string(),
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(f) => f.message,
    };
    match status {
        STATUS_PANIC => CallFailure {
            kind: "panic",
            message: text,
        },
        STATUS_BAD_REQUEST => CallFailure {
            kind: "error",
            message: format!("the plugin could not read the request: {text}"),
        },
        STATUS_ERROR => CallFailure {
            kind: "error",
            message: text,
        },
        other => CallFailure {
            kind: "error",
            message: format!("unknown status {other}: {text}"),
        },
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}
