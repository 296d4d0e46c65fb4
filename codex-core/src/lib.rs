//! `codex-core`: the Codex agent runtime as a library.
//!
//! A [`thread::Thread`] owns one conversation: its [`config::Config`], a
//! model client ([`client`], a tower service stack), its session file
//! ([`rollout`]) and its history. [`turn::TurnService`] runs turns; tools
//! ([`tools`]) run through the [`exec::Sandbox`] seam; decisions that need a
//! human go through [`approval::ApprovalHandler`]. Everything a turn does is
//! reported as typed [`protocol::Event`]s, which each front end renders.
//!
//! This crate knows nothing of JSON-RPC, sockets or worker processes.

pub mod approval;
pub mod audit;
pub mod auth;
pub mod client;
pub mod config;
pub mod exec;
pub mod models;
pub mod process;
pub mod protocol;
pub mod rollout;
pub mod thread;
pub mod tools;
pub mod turn;
pub mod util;

pub use thread::{Thread, ThreadError, ThreadOptions};
pub use tokio_util::sync::CancellationToken;
pub use turn::{TurnOutcome, TurnRequest, TurnStatus};
