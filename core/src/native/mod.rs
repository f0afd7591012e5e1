//! The dynamic-plugin host: shared libraries speaking the C ABI of
//! `switchboard-plugin` as routing policies, wrap-up lists and channel
//! adapters, beside the Lua host and behind the same traits.
//!
//! [`NativePlugin::load`] copies the library into a `plugins-cache` folder
//! under a content-addressed name, maps the copy (never unmapped: see
//! [`library`]), checks its descriptor (ABI version, size, roles, entry
//! points) and creates one instance with the configured settings. A loaded
//! plugin implements [`crate::routing::RoutingPolicy`],
//! [`crate::wrapup::WrapUpReasons`] and, through [`NativePlugin::channel`],
//! [`crate::channel::ChannelAdapter`] by JSON calls; a routing plugin
//! with an agent table (ABI 2, `table.rs`) is told about agents once and
//! given candidate slots per decision instead. A call that fails (an
//! error status, a caught panic, invalid JSON, a wrong shape) falls back to
//! the built-in behaviour (`LongestIdle`, `BuiltinWrapUp`, a
//! `ChannelError`) and is counted and kept like a failing script, in the
//! same report shape ([`crate::lua::FileReport`]).
//!
//! **Trusted code.** A native plugin runs unsandboxed in the server's
//! process, with its memory and privileges: what it does outside the JSON
//! calls cannot be checked, and a crash (abort, segfault, stack overflow,
//! a panic in a plugin built with `panic = "abort"`, an unwind out of a
//! function that does not catch it) takes the whole process down. Only
//! panics caught by the SDK's shims, error statuses and bad answers are
//! contained. [`PluginReport::trusted_code`] says so to admins.
//!
//! **Invariant:** the only file I/O is at (re)load and check: reading the
//! library, writing its copy. **Boundary:** only `#[repr(C)]` types and
//! JSON bytes cross into a plugin.

pub mod library;
mod plugin;
mod roles;
mod table;

pub use library::{mapped_libraries, PluginInfo, CACHE_FOLDER, MAX_LIBRARY_BYTES};
pub use plugin::{NativePlugin, NativeSpec, PluginReport, MAX_ANSWER_BYTES, TRUSTED_CODE_NOTE};
pub use roles::NativeChannel;

use crate::lua::ScriptError;
use std::path::{Path, PathBuf};

/// Why a plugin library was refused, naming the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {}: {kind}", path.display())]
pub struct NativeError {
    /// The library as configured (not its cached copy).
    pub path: PathBuf,
    pub kind: ErrorKind,
}

/// What was wrong with a plugin library.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("cannot read the library: {0}")]
    Read(String),
    #[error("cannot copy it to the plugin cache {}: {message}", dir.display())]
    Cache { dir: PathBuf, message: String },
    #[error("cannot load the library: {0}")]
    Open(String),
    #[error("not a Switchboard plugin: no `switchboard_plugin` symbol")]
    MissingSymbol,
    #[error(
        "the plugin speaks ABI version {found}; this host speaks version {expected} only: \
         rebuild it against switchboard-plugin (or switchboard_plugin.h) of ABI version {expected}"
    )]
    AbiVersion { found: u32, expected: u32 },
    #[error("the descriptor is {found} bytes; this ABI version needs at least {expected}")]
    StructSize { found: u32, expected: u32 },
    #[error("invalid descriptor: {0}")]
    Descriptor(String),
    #[error("{name} does not fill the {role} role")]
    MissingRole { name: String, role: &'static str },
    #[error("create failed ({kind}): {message}")]
    Create { kind: &'static str, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl NativeError {
    /// The same problem in the shape the Lua host reports reload errors.
    pub fn to_script_error(&self) -> ScriptError {
        ScriptError::new(
            &self.path.display().to_string(),
            None,
            self.kind.to_string(),
        )
    }
}

/// Check that `path` is a plugin this host can load (what `switchboard
/// scripts check` and a reload run first): copies it into
/// `cache_dir/plugins-cache`, maps it and checks the descriptor, without
/// creating an instance. The copy stays mapped (never unloaded); checking
/// the same bytes again maps nothing new.
pub fn check(path: &Path, cache_dir: &Path) -> Result<PluginInfo, NativeError> {
    library::open(path, cache_dir).map(|(_, info)| info)
}
