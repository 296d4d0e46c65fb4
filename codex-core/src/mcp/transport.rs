//! The pipe between our MCP client and one server, whatever carries it.
//!
//! A [`Transport`] is two bounded channels and a guard: JSON-RPC messages
//! (already parsed, `"jsonrpc": "2.0"` included) go out on `outgoing` and
//! come in on `incoming`, and dropping or shutting down the guard ends the
//! connection (for stdio: kills the server's whole process tree). Problems
//! that do not end the connection (a line that is not JSON) arrive as
//! [`TransportEvent::Problem`]; the end arrives as [`TransportEvent::Closed`]
//! with the reason, after which the channel closes.
//!
//! Transports: [`super::stdio`] (a child process, newline-delimited JSON)
//! and [`super::http`] (streamable HTTP).

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;

/// Messages queued towards a server before a sender waits.
pub const OUTGOING_CAPACITY: usize = 64;
/// Messages from a server not yet handled before the transport stops
/// reading (backpressure on the server, never unbounded memory).
pub const INCOMING_CAPACITY: usize = 256;
/// The largest message accepted from a server. A bigger one is an error of
/// that server (it is not buffered): the connection ends.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum TransportEvent {
    Message(Value),
    /// Something the server sent that is not a message (it is skipped).
    Problem(String),
    /// The connection is over; nothing follows.
    Closed(String),
}

/// What ends a connection: kills a stdio server's tree, ends an HTTP
/// session. Dropping it does the same without waiting.
pub trait TransportGuard: Send + Sync {
    /// The server's process, for stdio.
    fn pid(&self) -> Option<u32> {
        None
    }
    /// Ends the connection and waits (bounded) until it is gone.
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()>;
}

pub struct Transport {
    pub outgoing: mpsc::Sender<Value>,
    pub incoming: mpsc::Receiver<TransportEvent>,
    pub guard: Box<dyn TransportGuard>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("pid", &self.guard.pid())
            .finish()
    }
}

/// Why a transport could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);
