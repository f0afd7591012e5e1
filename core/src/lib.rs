//! switchboard-core: the conversation engine of Switchboard.
//!
//! Holds the domain (agents, queues, conversations), the sans-IO state
//! machine that turns commands into events, the masking of sensitive data and
//! the extension traits (routing policy, wrap-up reasons, channel adapter).
//! **Invariant:** nothing in this crate does I/O or reads the clock: time is an
//! argument.

pub mod channel;
pub mod command;
pub mod engine;
pub mod event;
pub mod lua;
pub mod masking;
pub mod model;
pub mod native;
pub mod responses;
pub mod routing;
pub mod text;
pub mod wrapup;

pub use command::{AgentProfile, Command, CommandError, CustomerMessage};
pub use engine::{Engine, Extensions, Output};
pub use event::{Audience, Carrier, Delivery, Emitted, Event};
pub use masking::Masker;
