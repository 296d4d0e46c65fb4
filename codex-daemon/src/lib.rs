//! `codex-daemon`: the supervisor (`codexd`) and the entry points of the
//! worker processes it launches.
//!
//! - [`server`]: the supervisor: transports, routing, subscriptions, worker
//!   lifecycle.
//! - [`lifecycle`]: codexd as a background service (pidfile backend,
//!   systemd/launchd units) and the checks of `codex doctor`.
//! - [`worker`]: `codex-session`, one process per loaded thread.
//! - [`broker`]: `codex-broker`, the credentials holder.
//! - [`memory`]: `codex-memory`, the memory index and service.
//! - [`limits`], [`governor`], [`containment`]: resource policy: every
//!   limit in one place, the per-worker pressure levels, and taking a
//!   worker's whole process tree down.

pub mod activation;
pub mod broker;
pub mod containment;
pub mod governor;
pub mod guardian;
pub mod lifecycle;
pub mod limits;
pub mod memory;
mod memory_lanes;
mod pipeline_worker;
pub mod runtime;
pub mod server;
pub mod transport;
mod unix_ws;
pub mod worker;
mod worker_mcp;
mod worker_memory;
mod worker_tools;
pub mod ws;
