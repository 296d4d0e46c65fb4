//! The app-server v2 protocol as we serve it: the method table and params
//! ([`methods`]), their results ([`responses`]), the notifications
//! ([`notifications`]) and requests ([`server_requests`]) we send, the
//! shapes they carry ([`objects`], [`items`]), the mapping of core events
//! to notifications ([`events`]), codexd's own `codexd/status`
//! ([`codexd_status`]), the TUI's smaller methods
//! ([`client_features`]), and a small client for one-shot tools
//! ([`client`]).
//!
//! Every shape is a typed struct; [`to_value`] turns one into the JSON value
//! the [`crate::jsonrpc`] encoder takes.

pub mod client;
pub mod client_features;
pub mod codexd_status;
pub mod config_write;
pub mod connection;
pub mod dynamic_tools;
pub mod events;
pub mod history;
pub mod items;
pub mod mcp;
pub mod methods;
pub mod notifications;
pub mod objects;
pub mod responses;
pub mod server_requests;
pub mod turn_control;
pub mod turn_view;
pub mod unserved;

use serde::Serialize;
use serde_json::Value;

use crate::jsonrpc::RpcError;

/// The upstream release whose app-server protocol this server speaks. It is
/// the version in `initialize`'s `userAgent`, because clients compare that
/// with their own (upstream's TUI warns of an "older" service below its
/// version); this runtime's own version is in `codexd/status`.
pub const UPSTREAM_PROTOCOL_VERSION: &str = "0.169.0";

/// A result as the encoder takes it. Our shapes always serialize (string
/// keys, UTF-8 paths); a path that is not UTF-8 is an internal error.
pub fn to_value<T: Serialize>(result: &T) -> Result<Value, RpcError> {
    serde_json::to_value(result)
        .map_err(|e| RpcError::internal(format!("cannot encode the result: {e}")))
}
