//! `codex-ipc`: the wire formats of the runtime.
//!
//! Today: the `codex exec --json` event stream ([`exec_events`]), upstream's
//! JSONL shape that the TypeScript SDK consumes, and bounded JSONL framing
//! ([`framing`]). The app-server protocol, transports and the worker launcher
//! join them here; this is the only crate that knows wire shapes.

pub mod app_server;
pub mod exec_events;
pub mod framing;
pub mod jsonrpc;
pub mod launcher;
pub mod link;
