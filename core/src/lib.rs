//! switchboard-core: the conversation engine of Switchboard.
//!
//! Holds the domain (agents, queues, conversations), the sans-IO state
//! machine that turns commands into events, the masking of sensitive data and
//! the extension traits (routing policy, wrap-up reasons, channel adapter).
//! **Invariant:** nothing in this crate does I/O or reads the clock: time is an
//! argument.

pub mod masking;
