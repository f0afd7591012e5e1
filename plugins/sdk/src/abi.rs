//! The C ABI itself: the `#[repr(C)]` descriptor a plugin exports, the
//! buffer that carries JSON answers back, status codes and role flags, and
//! the structs of the agent-table routing call ([`RouteFn`]).
//!
//! Mirrored by hand in `include/switchboard_plugin.h`; the layout tests at
//! the bottom pin the offsets both sides rely on. **Boundary:** only these
//! types and JSON bytes cross between host and plugin, never Rust types.
//!
//! # Versioning rules
//! - The exported symbol ([`ENTRY_SYMBOL`]) and its signature
//!   (`const void *switchboard_plugin(void)`) never change.
//! - The descriptor starts with `abi_version` then `struct_size`, for
//!   every version to come, so any host can read them and refuse politely.
//! - Appending fields at the end of [`PluginV2`] keeps [`ABI_VERSION`]:
//!   a host reads only the prefix it knows (`struct_size` tells what the
//!   plugin has). Any other change (reordering, retyping, a new meaning,
//!   an incompatible JSON schema change) bumps [`ABI_VERSION`].
//! - A host may add fields to request JSON at any time; plugins ignore
//!   fields they do not know. Answers are read strictly.
//!
//! Version 2 (this one) added the agent table: the host tells a routing
//! plugin about agents once (`agents`, JSON, when one appears, changes name
//! or skills, or goes) and each decision passes candidate slots and the
//! numeric changes only (`route_agents`, plain structs), instead of every
//! candidate as JSON. A version 1 library is refused with its path and both
//! versions in the error.

use std::ffi::{c_char, c_void};

/// Version of the C ABI spoken by this SDK. A host refuses other versions.
pub const ABI_VERSION: u32 = 2;

/// The one symbol a plugin exports: `const void *switchboard_plugin(void)`,
/// returning a pointer to its (static, immutable) [`PluginV2`].
pub const ENTRY_SYMBOL: &str = "switchboard_plugin";

/// The plugin is a routing policy (`route`, optionally `entry`).
pub const ROLE_ROUTING: u32 = 1;
/// The plugin provides wrap-up reasons (`wrapup_reasons`).
pub const ROLE_WRAPUP: u32 = 1 << 1;
/// The plugin is a channel adapter (`channel_inbound`, `channel_outbound`,
/// optionally `channel_verify`).
pub const ROLE_CHANNEL: u32 = 1 << 2;
/// The plugin provides canned responses (`responses`; appended to
/// [`PluginV2`], so only a descriptor long enough to hold it may claim it).
pub const ROLE_RESPONSES: u32 = 1 << 3;
/// Every role bit this ABI version knows.
pub const ROLES_KNOWN: u32 = ROLE_ROUTING | ROLE_WRAPUP | ROLE_CHANNEL | ROLE_RESPONSES;

/// `struct_size` of a version 2 descriptor without `responses` (the
/// fields before it): the least a host accepts. Fields past what a
/// plugin's `struct_size` covers read as NULL.
pub const PLUGIN_V2_MIN_SIZE: u32 = std::mem::offset_of!(PluginV2, responses) as u32;

/// The call succeeded; the output buffer holds the answer JSON.
pub const STATUS_OK: i32 = 0;
/// The plugin refused or failed; the output buffer may hold a UTF-8 message.
pub const STATUS_ERROR: i32 = 1;
/// The plugin could not read the request (invalid JSON, wrong shape); the
/// output buffer may hold a UTF-8 message.
pub const STATUS_BAD_REQUEST: i32 = 2;
/// A panic (or a C++ exception, …) was caught inside the plugin; the output
/// buffer may hold a UTF-8 message.
pub const STATUS_PANIC: i32 = 3;

/// Bytes allocated by the plugin and handed to the host, which copies them
/// and gives the buffer back through [`PluginV2::free_buffer`]. `cap` is the
/// plugin's own business (a Rust `Vec`'s capacity; C code may set it to
/// `len`). An empty answer is `{NULL, 0, 0}`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Buffer {
    pub ptr: *mut u8,
    pub len: usize,
    pub cap: usize,
}

impl Buffer {
    /// `{NULL, 0, 0}`: what the host passes in before each call.
    pub const EMPTY: Buffer = Buffer {
        ptr: std::ptr::null_mut(),
        len: 0,
        cap: 0,
    };
}

/// `create(settings, settings_len, &instance, &error)`: build one instance
/// from the settings JSON (`null` when none). On failure return non-zero
/// and leave a message in `error`.
pub type CreateFn = unsafe extern "C" fn(
    settings: *const u8,
    settings_len: usize,
    instance: *mut *mut c_void,
    error: *mut Buffer,
) -> i32;

/// `destroy(instance)`: release an instance (the library stays mapped).
pub type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);

/// `free_buffer(buffer)`: give back a buffer the plugin filled.
pub type FreeFn = unsafe extern "C" fn(buffer: Buffer);

/// Every role call: request JSON in, answer JSON (or an error message) out,
/// a status code returned. Must be callable from several threads at once
/// on the same instance.
pub type JsonFn = unsafe extern "C" fn(
    instance: *mut c_void,
    input: *const u8,
    input_len: usize,
    output: *mut Buffer,
) -> i32;

/// `route_agents(instance, input, output)`: one routing decision over the
/// plugin's agent table (see [`RouteInput`], [`RouteOutput`]). Must be
/// callable from several threads at once on the same instance (the host
/// calls it for one instance from one thread at a time today).
pub type RouteFn = unsafe extern "C" fn(
    instance: *mut c_void,
    input: *const RouteInput,
    output: *mut RouteOutput,
) -> i32;

/// UTF-8 text lent by the host for the duration of a call (not
/// NUL-terminated). `ptr` is NULL only for an absent optional value.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Str {
    pub ptr: *const u8,
    pub len: usize,
}

/// One CAD entry.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    pub key: Str,
    pub value: Str,
}

/// The numbers of an agent that change often, for the agent in `slot`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentState {
    pub slot: u32,
    pub load: u32,
    pub capacity: u32,
    /// Zero.
    pub reserved: u32,
    pub idle_since: u64,
}

/// The conversation being routed (texts masked when the tenant masks).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ConversationInput {
    pub id: u64,
    pub queue: Str,
    pub channel: Str,
    pub customer: Str,
    pub customer_name: Str,
    pub source: Str,
    pub preview: Str,
    pub cad: *const Pair,
    pub cad_len: usize,
    pub received_at: u64,
    pub queued_at: u64,
    /// `ptr` NULL: none.
    pub last_agent: Str,
}

/// What `route_agents` is given. Everything is lent for the call only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RouteInput {
    /// `sizeof(RouteInput)` as the host knows it.
    pub struct_size: u32,
    pub reserved: u32,
    pub now: u64,
    pub generation: u64,
    /// Numeric changes since the last call: apply them to the table first
    /// (the host counts them as applied whatever the call returns).
    pub changed: *const AgentState,
    pub changed_len: usize,
    /// The candidates' slots, in the host's order (never empty).
    pub candidates: *const u32,
    pub candidates_len: usize,
    pub conversation: ConversationInput,
}

/// `route_agents`' answer: [`ROUTE_KEEP_QUEUED`], [`ROUTE_AGENT`] (the
/// slot in `slots[0]`) or [`ROUTE_RANKED`] (`len` slots, best first).
pub const ROUTE_KEEP_QUEUED: u32 = 0;
/// See [`ROUTE_KEEP_QUEUED`].
pub const ROUTE_AGENT: u32 = 1;
/// See [`ROUTE_KEEP_QUEUED`].
pub const ROUTE_RANKED: u32 = 2;

/// Where `route_agents` writes its answer: the host's array `slots` of
/// `capacity` entries; on a non-zero status, `error` may hold a UTF-8
/// message allocated by the plugin (given back through `free_buffer`).
#[repr(C)]
#[derive(Debug)]
pub struct RouteOutput {
    pub kind: u32,
    pub reserved: u32,
    pub slots: *mut u32,
    pub capacity: usize,
    pub len: usize,
    pub error: Buffer,
}

/// The descriptor of ABI version 2. Function pointers are nullable
/// (`Option<fn>` has the layout of a C function pointer): the host requires
/// those of the roles the plugin claims.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PluginV2 {
    /// Always first: [`ABI_VERSION`] of the SDK/header the plugin was built with.
    pub abi_version: u32,
    /// Always second: `sizeof` the descriptor as the plugin knows it.
    pub struct_size: u32,
    /// [`ROLE_ROUTING`] | [`ROLE_WRAPUP`] | [`ROLE_CHANNEL`] | [`ROLE_RESPONSES`].
    pub roles: u32,
    /// Zero; room for flags without moving the pointers below.
    pub reserved: u32,
    /// NUL-terminated UTF-8, e.g. `skills-router`.
    pub name: *const c_char,
    /// NUL-terminated UTF-8, e.g. `0.1.0`.
    pub version: *const c_char,
    /// Optional: a plugin without one gets a NULL instance.
    pub create: Option<CreateFn>,
    /// Optional.
    pub destroy: Option<DestroyFn>,
    /// Required.
    pub free_buffer: Option<FreeFn>,
    /// With [`ROLE_ROUTING`], this or `route_agents`: the whole decision
    /// as JSON (every candidate serialized on each call: simple, slow).
    pub route: Option<JsonFn>,
    /// Optional with [`ROLE_ROUTING`].
    pub entry: Option<JsonFn>,
    /// Required with [`ROLE_WRAPUP`].
    pub wrapup_reasons: Option<JsonFn>,
    /// Optional with [`ROLE_CHANNEL`].
    pub channel_verify: Option<JsonFn>,
    /// Required with [`ROLE_CHANNEL`].
    pub channel_inbound: Option<JsonFn>,
    /// Required with [`ROLE_CHANNEL`].
    pub channel_outbound: Option<JsonFn>,
    /// Optional with `route_agents`: agents added, changed (name, skills)
    /// or removed, as JSON ([`crate::wire::AgentsRequest`]). A plugin
    /// without it only sees slots and numeric changes.
    pub agents: Option<JsonFn>,
    /// With [`ROLE_ROUTING`], this or `route`: a decision over the agent
    /// table, by slots. The host uses it when present.
    pub route_agents: Option<RouteFn>,
    /// Required with [`ROLE_RESPONSES`] (appended: absent from descriptors
    /// of [`PLUGIN_V2_MIN_SIZE`] bytes).
    pub responses: Option<JsonFn>,
}

/// A descriptor placed in a `static` by [`crate::export_plugin!`].
#[repr(transparent)]
#[derive(Debug)]
pub struct Descriptor(pub PluginV2);

// SAFETY: a descriptor is immutable after compilation; its pointers point to
// static NUL-terminated strings and to functions, both valid for the life
// of the library, so sharing it between threads is sound.
unsafe impl Sync for Descriptor {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The offsets `include/switchboard_plugin.h` has on 64-bit targets.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn layout_matches_the_c_header() {
        assert_eq!(offset_of!(PluginV2, abi_version), 0);
        assert_eq!(offset_of!(PluginV2, struct_size), 4);
        assert_eq!(offset_of!(PluginV2, roles), 8);
        assert_eq!(offset_of!(PluginV2, name), 16);
        assert_eq!(offset_of!(PluginV2, version), 24);
        assert_eq!(offset_of!(PluginV2, create), 32);
        assert_eq!(offset_of!(PluginV2, free_buffer), 48);
        assert_eq!(offset_of!(PluginV2, channel_outbound), 96);
        assert_eq!(offset_of!(PluginV2, agents), 104);
        assert_eq!(offset_of!(PluginV2, route_agents), 112);
        assert_eq!(PLUGIN_V2_MIN_SIZE, 120, "the descriptor before `responses`");
        assert_eq!(offset_of!(PluginV2, responses), 120);
        assert_eq!(size_of::<PluginV2>(), 128);
        assert_eq!(size_of::<Buffer>(), 24);
        assert_eq!(size_of::<Option<JsonFn>>(), 8);
        assert_eq!(size_of::<Str>(), 16);
        assert_eq!(size_of::<AgentState>(), 24);
        assert_eq!(size_of::<ConversationInput>(), 152);
        assert_eq!(offset_of!(RouteInput, conversation), 56);
        assert_eq!(size_of::<RouteInput>(), 208);
        assert_eq!(size_of::<RouteOutput>(), 56);
    }
}
