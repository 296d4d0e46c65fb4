//! Test support for the workspace: a scripted mock of the OpenAI Responses
//! API (and Chat Completions) speaking real HTTP and SSE on 127.0.0.1, SSE
//! event constructors, a process inspector, an isolated `CODEX_HOME`, and
//! mock MCP servers (the `mock-mcp-server` stdio binary, located by
//! [`mcp::mock_mcp_server_exe`], and the in-process [`MockHttpMcpServer`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod home;
pub mod mcp;
pub mod mock_mcp_http;
pub mod mock_oauth;
pub mod mock_server;
pub mod procs;
pub mod sse;

pub use home::TestHome;
pub use mock_mcp_http::{MockHttpMcpOptions, MockHttpMcpServer, RecordedMcpRequest};
pub use mock_oauth::{MockOAuthServer, RefreshBehavior};
pub use mock_server::{MockModelServer, MockResponse, RecordedRequest, SseStep};
