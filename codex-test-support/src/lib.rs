//! Test support for the workspace: a scripted mock of the OpenAI Responses
//! API (and Chat Completions) speaking real HTTP and SSE on 127.0.0.1, SSE
//! event constructors, a process inspector, and an isolated `CODEX_HOME`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod home;
pub mod mock_oauth;
pub mod mock_server;
pub mod procs;
pub mod sse;

pub use home::TestHome;
pub use mock_oauth::{MockOAuthServer, RefreshBehavior};
pub use mock_server::{MockModelServer, MockResponse, RecordedRequest, SseStep};
