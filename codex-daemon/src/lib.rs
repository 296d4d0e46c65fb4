//! `codex-daemon`: the supervisor (`codexd`) and the entry points of the
//! worker processes it launches.
//!
//! - [`worker`]: `codex-session`, one process per loaded thread.

pub mod worker;
