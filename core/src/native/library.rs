//! Mapping a plugin library: copy it to the plugin cache under a
//! content-addressed name, `dlopen` the copy, read and check its
//! descriptor. Libraries are never unloaded.
//!
//! **Why a copy:** the loader hands back the already-mapped image when asked
//! for a path it has open, so reloading a rebuilt `libx.so` in place would
//! silently keep the old code (and overwriting a mapped file in place can
//! crash the process). Each distinct content gets its own file,
//! `plugins-cache/<stem>-<sha256 prefix>.<ext>`, written beside and renamed
//! into place, so a file another process has mapped is never modified.
//!
//! **Why never unload:** `dlclose` of a Rust library with thread-local
//! destructors segfaults later (rust-lang/rust#91979), and a stray function
//! pointer would dangle. Every mapped library is kept in a process-wide
//! registry keyed by content hash, a `static` that is never dropped; loading
//! the same bytes again reuses the mapped image instead of mapping another.
//! The cost: each distinct version loaded stays in memory until the process
//! exits.

use super::{ErrorKind, NativeError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::ffi::{c_char, c_void};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use switchboard_plugin::abi::{CreateFn, DestroyFn, FreeFn, JsonFn, PluginV2, RouteFn};
use switchboard_plugin::{
    ABI_VERSION, ENTRY_SYMBOL, PLUGIN_V2_MIN_SIZE, ROLES_KNOWN, ROLE_CHANNEL, ROLE_RESPONSES,
    ROLE_ROUTING, ROLE_WRAPUP,
};

/// Folder created under the caller's directory for the copies.
pub const CACHE_FOLDER: &str = "plugins-cache";
/// Largest library accepted, in bytes.
pub const MAX_LIBRARY_BYTES: u64 = 512 * 1024 * 1024;
/// Longest plugin name or version, in bytes.
const MAX_NAME_BYTES: usize = 128;

/// The entry points of a checked descriptor. Function pointers into a
/// library that stays mapped for the life of the process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Vtable {
    pub create: Option<CreateFn>,
    pub destroy: Option<DestroyFn>,
    pub free_buffer: FreeFn,
    pub route: Option<JsonFn>,
    pub entry: Option<JsonFn>,
    pub agents: Option<JsonFn>,
    pub route_agents: Option<RouteFn>,
    pub wrapup_reasons: Option<JsonFn>,
    pub channel_verify: Option<JsonFn>,
    pub channel_inbound: Option<JsonFn>,
    pub channel_outbound: Option<JsonFn>,
    pub responses: Option<JsonFn>,
}

/// What a library's descriptor says about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub abi_version: u32,
    pub struct_size: u32,
    /// Role bits (`switchboard_plugin::ROLE_*`).
    pub roles: u32,
    /// The library as configured.
    pub source: PathBuf,
    /// The copy actually mapped.
    pub loaded_from: PathBuf,
}

impl PluginInfo {
    /// Role names: `routing`, `wrapup`, `channel`, `responses`.
    pub fn role_names(&self) -> Vec<&'static str> {
        role_names(self.roles)
    }
}

pub(crate) fn role_names(roles: u32) -> Vec<&'static str> {
    [
        (ROLE_ROUTING, "routing"),
        (ROLE_WRAPUP, "wrapup"),
        (ROLE_CHANNEL, "channel"),
        (ROLE_RESPONSES, "responses"),
    ]
    .into_iter()
    .filter(|(bit, _)| roles & bit != 0)
    .map(|(_, name)| name)
    .collect()
}

/// One mapped library. Never removed from the registry, so never closed.
struct Image {
    _library: libloading::Library,
    path: PathBuf,
    checked: Result<(Vtable, Described), ErrorKind>,
}

#[derive(Debug, Clone)]
struct Described {
    name: String,
    version: String,
    abi_version: u32,
    struct_size: u32,
    roles: u32,
}

fn registry() -> MutexGuard<'static, HashMap<String, Image>> {
    static IMAGES: OnceLock<Mutex<HashMap<String, Image>>> = OnceLock::new();
    // Nothing is left half-done under this lock by a panic: an entry is
    // inserted whole or not at all.
    IMAGES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// The copies this process has mapped (the old ones stay mapped after a reload).
pub fn mapped_libraries() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = registry().values().map(|i| i.path.clone()).collect();
    v.sort();
    v
}

/// Copy `source` into the cache (once per content), map it, check its
/// descriptor. The registry lock is held throughout, so two loads of the
/// same bytes never race on the file or map it twice.
pub(crate) fn open(source: &Path, cache_dir: &Path) -> Result<(Vtable, PluginInfo), NativeError> {
    let err = |kind| NativeError {
        path: source.to_path_buf(),
        kind,
    };
    let meta = std::fs::metadata(source).map_err(|e| err(ErrorKind::Read(e.to_string())))?;
    if !meta.is_file() {
        return Err(err(ErrorKind::Read("not a file".into())));
    }
    if meta.len() > MAX_LIBRARY_BYTES {
        return Err(err(ErrorKind::Read(format!(
            "{} bytes, more than the {MAX_LIBRARY_BYTES} allowed",
            meta.len()
        ))));
    }
    let bytes = std::fs::read(source).map_err(|e| err(ErrorKind::Read(e.to_string())))?;
    let hash = hex::encode(Sha256::digest(&bytes));
    let mut images = registry();
    if !images.contains_key(&hash) {
        let path = write_copy(source, cache_dir, &hash, &bytes).map_err(err)?;
        // SAFETY: mapping runs the library's initialisers. Native plugins
        // are trusted code (see the module docs of `native`); the library
        // is never unloaded, so its termination routines run only at exit.
        let library =
            unsafe { open_library(&path) }.map_err(|e| err(ErrorKind::Open(e.to_string())))?;
        let checked = describe(&library);
        images.insert(
            hash.clone(),
            Image {
                _library: library,
                path,
                checked,
            },
        );
    }
    let image = images
        .get(&hash)
        .ok_or_else(|| err(ErrorKind::Open("vanished from the registry".into())))?;
    let (vtable, d) = image.checked.clone().map_err(err)?;
    Ok((
        vtable,
        PluginInfo {
            name: d.name,
            version: d.version,
            abi_version: d.abi_version,
            struct_size: d.struct_size,
            roles: d.roles,
            source: source.to_path_buf(),
            loaded_from: image.path.clone(),
        },
    ))
}

fn write_copy(
    source: &Path,
    cache_dir: &Path,
    hash: &str,
    bytes: &[u8],
) -> Result<PathBuf, ErrorKind> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = cache_dir.join(CACHE_FOLDER);
    let cache_err = |e: std::io::Error| ErrorKind::Cache {
        dir: dir.clone(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(&dir).map_err(cache_err)?;
    let stem = source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let name = match source.extension() {
        Some(ext) => format!("{stem}-{}.{}", &hash[..16], ext.to_string_lossy()),
        None => format!("{stem}-{}", &hash[..16]),
    };
    let path = dir.join(&name);
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, bytes).map_err(cache_err)?;
    // Rename, never overwrite: a process that has the old file mapped keeps
    // its inode intact.
    if let Err(e) = std::fs::rename(&tmp, &path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(cache_err(e));
    }
    Ok(path)
}

/// # Safety
/// Runs the library's initialisers: the library must be trusted.
#[cfg(unix)]
unsafe fn open_library(path: &Path) -> Result<libloading::Library, libloading::Error> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // RTLD_NOW: unresolved symbols fail here, at check time, not mid-call.
    // SAFETY: forwarded from this function's contract.
    unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map(Into::into)
}

/// # Safety
/// Runs the library's initialisers: the library must be trusted.
#[cfg(not(unix))]
unsafe fn open_library(path: &Path) -> Result<libloading::Library, libloading::Error> {
    // SAFETY: forwarded from this function's contract.
    unsafe { libloading::Library::new(path) }
}

type EntryFn = unsafe extern "C" fn() -> *const c_void;

/// Read and check the descriptor of a mapped library.
fn describe(library: &libloading::Library) -> Result<(Vtable, Described), ErrorKind> {
    let symbol = format!("{ENTRY_SYMBOL}\0");
    // SAFETY: the symbol, when present, is `const void *switchboard_plugin(void)`
    // by the ABI contract; the copied function pointer stays valid because the
    // library is never unloaded.
    let entry: EntryFn = unsafe { library.get::<EntryFn>(symbol.as_bytes()) }
        .map(|s| *s)
        .map_err(|_| ErrorKind::MissingSymbol)?;
    // SAFETY: calling the plugin's entry point as the ABI defines it.
    let ptr = unsafe { entry() };
    if ptr.is_null() {
        return Err(ErrorKind::Descriptor(
            "switchboard_plugin() returned NULL".into(),
        ));
    }
    // SAFETY: every ABI version starts with two u32s (abi_version,
    // struct_size); the plugin's static descriptor is at least that long.
    let (abi_version, struct_size) = unsafe {
        let p = ptr.cast::<u32>();
        (p.read_unaligned(), p.add(1).read_unaligned())
    };
    if abi_version != ABI_VERSION {
        return Err(ErrorKind::AbiVersion {
            found: abi_version,
            expected: ABI_VERSION,
        });
    }
    let needed = PLUGIN_V2_MIN_SIZE;
    if struct_size < needed {
        return Err(ErrorKind::StructSize {
            found: struct_size,
            expected: needed,
        });
    }
    // The descriptor as far as the plugin has it (at least the fields
    // before `responses`); fields appended since, that it does not have,
    // stay zero: NULL entry points.
    let known = (struct_size as usize).min(std::mem::size_of::<PluginV2>());
    let mut d = std::mem::MaybeUninit::<PluginV2>::zeroed();
    // SAFETY: struct_size says the plugin's descriptor holds at least
    // `known` bytes (a newer plugin may have more, which we do not read);
    // the destination is a whole PluginV2.
    unsafe { std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), d.as_mut_ptr().cast::<u8>(), known) };
    // SAFETY: every field of PluginV2 is an integer, a raw pointer or an
    // optional function pointer, for which all-zero bytes (NULL, None) are
    // valid; the bytes copied over them come from a descriptor of the same
    // layout.
    let d: PluginV2 = unsafe { d.assume_init() };
    if d.roles == 0 || d.roles & !ROLES_KNOWN != 0 {
        return Err(ErrorKind::Descriptor(format!(
            "roles {:#x}: expected a non-empty set of routing (1), wrapup (2), channel (4), responses (8)",
            d.roles
        )));
    }
    // SAFETY: the ABI says these point to NUL-terminated strings; the scan
    // stops at MAX_NAME_BYTES.
    let name = unsafe { c_string(d.name, "name") }?;
    // SAFETY: as above.
    let version = unsafe { c_string(d.version, "version") }?;
    if name.is_empty() {
        return Err(ErrorKind::Descriptor("empty plugin name".into()));
    }
    let free_buffer = d
        .free_buffer
        .ok_or_else(|| ErrorKind::Descriptor("free_buffer is NULL".into()))?;
    let require = |role: u32, f: Option<JsonFn>, what: &str| {
        if d.roles & role != 0 && f.is_none() {
            Err(ErrorKind::Descriptor(format!(
                "{name} claims the {} role but {what} is NULL",
                role_names(role).join("")
            )))
        } else {
            Ok(())
        }
    };
    if d.roles & ROLE_ROUTING != 0 && d.route.is_none() && d.route_agents.is_none() {
        return Err(ErrorKind::Descriptor(format!(
            "{name} claims the routing role but route and route_agents are NULL"
        )));
    }
    require(ROLE_WRAPUP, d.wrapup_reasons, "wrapup_reasons")?;
    require(ROLE_CHANNEL, d.channel_inbound, "channel_inbound")?;
    require(ROLE_CHANNEL, d.channel_outbound, "channel_outbound")?;
    require(ROLE_RESPONSES, d.responses, "responses")?;
    let only = |role: u32, f: Option<JsonFn>| if d.roles & role != 0 { f } else { None };
    Ok((
        Vtable {
            create: d.create,
            destroy: d.destroy,
            free_buffer,
            route: only(ROLE_ROUTING, d.route),
            entry: only(ROLE_ROUTING, d.entry),
            agents: only(ROLE_ROUTING, d.agents),
            route_agents: if d.roles & ROLE_ROUTING != 0 {
                d.route_agents
            } else {
                None
            },
            wrapup_reasons: only(ROLE_WRAPUP, d.wrapup_reasons),
            channel_verify: only(ROLE_CHANNEL, d.channel_verify),
            channel_inbound: only(ROLE_CHANNEL, d.channel_inbound),
            channel_outbound: only(ROLE_CHANNEL, d.channel_outbound),
            responses: only(ROLE_RESPONSES, d.responses),
        },
        Described {
            name,
            version,
            abi_version,
            struct_size,
            roles: d.roles,
        },
    ))
}

/// A NUL-terminated UTF-8 string of at most [`MAX_NAME_BYTES`].
///
/// # Safety
/// `p` is NULL or readable up to its NUL or `MAX_NAME_BYTES + 1` bytes.
unsafe fn c_string(p: *const c_char, what: &str) -> Result<String, ErrorKind> {
    if p.is_null() {
        return Err(ErrorKind::Descriptor(format!("{what} is NULL")));
    }
    let mut bytes = Vec::new();
    for i in 0..=MAX_NAME_BYTES {
        // SAFETY: within the bound the caller guarantees readable.
        let b = unsafe { p.add(i).cast::<u8>().read() };
        if b == 0 {
            return String::from_utf8(bytes)
                .map_err(|_| ErrorKind::Descriptor(format!("{what} is not UTF-8")));
        }
        bytes.push(b);
    }
    Err(ErrorKind::Descriptor(format!(
        "{what} is longer than {MAX_NAME_BYTES} bytes or not NUL-terminated"
    )))
}
