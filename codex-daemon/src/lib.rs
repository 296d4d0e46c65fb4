//! `codex-daemon`: the supervisor (`codexd`) and the entry points of the
//! worker processes it launches.
//!
//! - [`server`]: the supervisor: transports, routing, subscriptions, worker
//!   lifecycle.
//! - [`worker`]: `codex-session`, one process per loaded thread.

pub mod server;
pub mod transport;
pub mod worker;
