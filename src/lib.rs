//! Switchboard server: configuration, the HTTP/WebSocket layer, channel
//! endpoints and the per-tenant runtime that drives `switchboard-core`.
//! The `switchboard` binary (src/main.rs) is a thin CLI over this library,
//! so integration tests can build the same router.

pub mod attachments;
pub mod auth;
pub mod channels;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod console;
pub mod error;
pub mod generation;
pub mod http;
pub mod mask_cmd;
pub mod metrics;
pub mod passwords;
pub mod profiles;
pub mod replay;
pub mod reports;
pub mod scripts;
pub mod sender_actions;
pub mod server;
pub mod shadow;
pub mod store;
pub mod tenant;
pub mod visitors;
pub mod watch;
pub mod webhook_auth;
