//! MCP servers of a thread: the client side of the Model Context Protocol.
//!
//! - `config.rs`: `[mcp_servers.NAME]` as upstream reads it;
//! - `transport.rs`: the message pipe contract; `stdio.rs` (a child
//!   process) and `http.rs` (streamable HTTP) implement it;
//! - `client.rs`: JSON-RPC 2.0 over a transport (ids, deadlines,
//!   cancellation, the server's notifications and requests);
//! - `server.rs`: one server under supervision (states, restarts with
//!   backoff, wedge detection, tool re-listing);
//! - `manager.rs`: a thread's servers (parallel start, the startup grace,
//!   what the model is offered and told, reload, shutdown);
//! - `names.rs`: how tools are named to the model;
//! - `oauth.rs`: OAuth login for HTTP servers (upstream's token store);
//! - `call.rs`: the tool service that runs the model's MCP calls.

pub mod call;
pub mod client;
pub mod config;
pub mod http;
pub mod manager;
pub mod names;
pub mod oauth;
pub mod server;
pub mod stdio;
pub mod transport;

pub use call::McpTools;
pub use config::{ApprovalMode, McpServerConfig, McpTransportConfig};
pub use manager::{is_mcp_call, McpManager, McpToolProvider};
pub use server::{McpServer, ServerHost, ServerStatus};
