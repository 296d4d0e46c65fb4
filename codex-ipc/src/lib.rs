//! `codex-ipc`: the wire formats of the runtime.
//!
//! The app-server protocol ([`app_server`], [`jsonrpc`]), bounded JSONL
//! framing ([`framing`]), the `codex exec --json` event stream
//! ([`exec_events`]), the one worker launcher ([`launcher`]), the
//! supervisor ↔ worker link ([`link`]) and the supervisor's side of the
//! broker and memory processes ([`broker_link`], [`memory_link`], both a
//! [`supervised::Supervisor`]). This is the only crate that knows wire
//! shapes.

pub mod app_server;
pub mod broker_link;
pub mod exec_events;
pub mod framing;
pub mod id_scan;
pub mod jsonrpc;
pub mod launcher;
pub mod link;
pub mod memory_link;
pub mod supervised;
pub mod ws_bridge;
