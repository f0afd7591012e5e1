//! Switchboard dynamic plugin SDK: the versioned C ABI shared by the host
//! and plugins ([`abi`]), the JSON schemas of every call ([`wire`]), and
//! for Rust authors a safe [`Plugin`] trait exported with one macro,
//! [`export_plugin!`]. C authors use `include/switchboard_plugin.h`.
//!
//! ```
//! use switchboard_plugin::{export_plugin, wire, Error, Plugin, ROLE_ROUTING};
//!
//! struct FirstCandidate;
//!
//! impl Plugin for FirstCandidate {
//!     const ROLES: u32 = ROLE_ROUTING;
//!     fn create(_settings: serde_json::Value) -> Result<Self, Error> {
//!         Ok(FirstCandidate)
//!     }
//!     fn route(&self, r: wire::RouteRequest) -> Result<wire::RouteAnswer, Error> {
//!         let first = r.candidates.first().ok_or("no candidates")?;
//!         Ok(wire::RouteAnswer::Agent(first.id.clone()))
//!     }
//! }
//!
//! export_plugin!(FirstCandidate);
//! ```
//!
//! **Boundary:** only `#[repr(C)]` types and JSON bytes cross the ABI;
//! Rust's own `dylib` ABI is not stable and is never relied on.

pub mod abi;
mod plugin;
pub mod wire;

pub use abi::{
    Buffer, PluginV2, ABI_VERSION, ENTRY_SYMBOL, PLUGIN_V2_MIN_SIZE, ROLES_KNOWN, ROLE_CHANNEL,
    ROLE_RESPONSES, ROLE_ROUTING, ROLE_WRAPUP, STATUS_BAD_REQUEST, STATUS_ERROR, STATUS_OK,
    STATUS_PANIC,
};
pub use plugin::{Agent, AgentTable, ConversationRef, Error, Plugin, RouteCall, Routed, SkillSet};

/// The shims behind a descriptor; public for [`export_plugin!`] and tests.
#[doc(hidden)]
pub mod export {
    pub use crate::plugin::{
        agents, canned_responses, create, descriptor, destroy, entry, free_buffer, inbound,
        outbound, route, route_agents, verify, wrapup_reasons,
    };
}

/// Export `$plugin` (a type implementing [`Plugin`]) as this library's
/// Switchboard plugin: defines the `switchboard_plugin` symbol returning its
/// descriptor, named and versioned after the calling crate's package.
/// Use it once, in a `crate-type = ["cdylib"]` crate.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        /// The Switchboard plugin entry point (see `switchboard_plugin::abi`).
        #[unsafe(no_mangle)]
        pub extern "C" fn switchboard_plugin() -> *const $crate::abi::PluginV2 {
            static DESCRIPTOR: $crate::abi::Descriptor =
                $crate::abi::Descriptor($crate::export::descriptor::<$plugin>(
                    concat!(env!("CARGO_PKG_NAME"), "\0"),
                    concat!(env!("CARGO_PKG_VERSION"), "\0"),
                ));
            &DESCRIPTOR.0
        }
    };
}
