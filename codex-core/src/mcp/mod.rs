//! MCP servers of a thread: the client side of the Model Context Protocol.
//!
//! - `config.rs`: `[mcp_servers.NAME]` as upstream reads it;
//! - `transport.rs`: the message pipe contract; `stdio.rs` (a child
//!   process) and `http.rs` (streamable HTTP) implement it;

pub mod config;
pub mod http;
pub mod oauth;
pub mod stdio;
pub mod transport;

pub use config::{ApprovalMode, McpServerConfig, McpTransportConfig};
