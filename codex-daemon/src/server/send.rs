//! Typed sends over a connection: results, notifications and server
//! requests are codex-ipc structs, serialized here into the values the
//! connection's encoder takes.

use codex_ipc::app_server::notifications::ServerNotification;
use codex_ipc::app_server::server_requests::ServerRequest;
use codex_ipc::jsonrpc::RequestId;
use serde::Serialize;
use serde_json::Value;

use super::conn::{Conn, PendingServerRequest};

pub(crate) trait ConnSend {
    /// Answers request `id` with `result` (an internal error if it cannot
    /// be encoded).
    fn send_result<T: Serialize>(&self, id: &RequestId, result: &T);
    fn send_notification(&self, note: &ServerNotification);
    /// Sends a server request; its id, or `None` if it could not be encoded.
    fn send_request(&self, request: &ServerRequest, pending: PendingServerRequest) -> Option<i64>;
}

impl ConnSend for Conn {
    fn send_result<T: Serialize>(&self, id: &RequestId, result: &T) {
        match codex_ipc::app_server::to_value(result) {
            Ok(v) => self.respond(id, v),
            Err(e) => {
                tracing::error!("connection {}: {}", self.id, e.message);
                self.error(id, &e);
            }
        }
    }

    fn send_notification(&self, note: &ServerNotification) {
        if let Some((method, params)) = encode(note) {
            self.notify(method, params);
        }
    }

    fn send_request(&self, request: &ServerRequest, pending: PendingServerRequest) -> Option<i64> {
        match request.params() {
            Ok(params) => Some(self.request(request.method(), params, pending)),
            Err(e) => {
                tracing::error!(
                    "connection {}: cannot encode `{}`: {e}",
                    self.id,
                    request.method()
                );
                None
            }
        }
    }
}

/// A notification's method and params, for sending the same one to many
/// connections (`None`, logged, if it cannot be encoded).
pub(crate) fn encode(note: &ServerNotification) -> Option<(&'static str, Value)> {
    match note.params() {
        Ok(params) => Some((note.method(), params)),
        Err(e) => {
            tracing::error!("cannot encode `{}`: {e}", note.method());
            None
        }
    }
}
