//! `codex-core`: the Codex agent runtime as a library.
//!
//! A [`thread::Thread`] owns one conversation: its [`config::Config`], a
//! model client ([`client`], a tower service stack), its tools
//! ([`tools::ToolSet`]: definitions plus a tower service), its session file
//! ([`rollout`]) and its history. [`turn::TurnService`] runs turns, one at a
//! time with a bounded queue; commands run through the [`exec::Sandbox`]
//! seam; decisions that need a human go through
//! [`approval::ApprovalHandler`]. Everything a turn does is reported as typed
//! [`protocol::Event`]s, which each front end renders.
//!
//! [`ThreadBuilder`] builds a thread from those parts, each replaceable and
//! the model and tool services wrappable with tower layers (see
//! `examples/embed.rs` for a thread with a custom tool and an in-process
//! model).
//!
//! This crate knows nothing of JSON-RPC, sockets or worker processes.

pub mod approval;
pub mod audit;
pub mod auth;
pub mod client;
pub mod config;
pub mod exec;
pub mod mcp;
pub mod memory;
pub mod models;
pub mod process;
pub mod protocol;
pub mod rollout;
pub mod shaping;
pub mod skills;
pub mod thread;
pub mod tools;
pub mod turn;
pub mod util;

pub use thread::{Thread, ThreadBuilder, ThreadError, ThreadOptions};
pub use tokio_util::sync::CancellationToken;
pub use turn::{TurnOutcome, TurnRejected, TurnRequest, TurnService, TurnStatus};
