//! JSON-RPC 2.0 "with the header omitted", as the app-server speaks it:
//! no `"jsonrpc"` field in what we send (one in what we receive is
//! accepted), requests, notifications, responses and errors as JSONL.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// `-32600`: upstream's workhorse code (not initialized, unknown method,
/// bad params, unknown thread).
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// Backpressure: the request was shed; retry with backoff.
pub const SERVER_OVERLOADED: i64 = -32001;
pub const SERVER_OVERLOADED_MESSAGE: &str = "Server overloaded; retry later.";

/// A request id: an integer or a string, echoed back verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    Int(i64),
    Str(String),
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestId::Int(i) => write!(f, "{i}"),
            RequestId::Str(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(INVALID_REQUEST, message)
    }

    pub fn overloaded() -> Self {
        Self::new(SERVER_OVERLOADED, SERVER_OVERLOADED_MESSAGE)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(INTERNAL_ERROR, message)
    }
}

/// A decoded incoming message.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Request {
        id: RequestId,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    Response {
        id: RequestId,
        result: Value,
    },
    Error {
        id: RequestId,
        error: RpcError,
    },
}

/// Why a line could not be decoded (logged, never answered).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Failed to deserialize JSONRPCMessage: {0}")]
pub struct DecodeError(pub String);

/// Decodes one line. Batches (arrays), non-objects, malformed JSON and
/// objects that are none of the four shapes are errors.
pub fn decode(line: &str) -> Result<Incoming, DecodeError> {
    let v: Value = serde_json::from_str(line).map_err(|e| DecodeError(e.to_string()))?;
    let Value::Object(mut m) = v else {
        return Err(DecodeError(
            "data did not match any variant of untagged enum JSONRPCMessage".into(),
        ));
    };
    let id = match m.remove("id") {
        Some(v) => Some(
            serde_json::from_value::<RequestId>(v)
                .map_err(|_| DecodeError("invalid request id".into()))?,
        ),
        None => None,
    };
    let params = m.remove("params").unwrap_or(Value::Null);
    match (m.remove("method"), id) {
        (Some(Value::String(method)), Some(id)) => Ok(Incoming::Request { id, method, params }),
        (Some(Value::String(method)), None) => Ok(Incoming::Notification { method, params }),
        (Some(_), _) => Err(DecodeError("method must be a string".into())),
        (None, Some(id)) => {
            if let Some(result) = m.remove("result") {
                Ok(Incoming::Response { id, result })
            } else if let Some(err) = m.remove("error") {
                let error = serde_json::from_value(err)
                    .map_err(|e| DecodeError(format!("invalid error object: {e}")))?;
                Ok(Incoming::Error { id, error })
            } else {
                Err(DecodeError(
                    "data did not match any variant of untagged enum JSONRPCMessage".into(),
                ))
            }
        }
        (None, None) => Err(DecodeError(
            "data did not match any variant of untagged enum JSONRPCMessage".into(),
        )),
    }
}

fn to_line(v: Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

pub fn encode_response(id: &RequestId, result: Value) -> String {
    to_line(json!({"id": id, "result": result}))
}

pub fn encode_error(id: &RequestId, error: &RpcError) -> String {
    to_line(json!({"id": id, "error": error}))
}

/// A server notification, stamped with `emittedAtMs`.
pub fn encode_notification(method: &str, params: Value, emitted_at_ms: i64) -> String {
    let mut m = Map::new();
    m.insert("method".into(), Value::String(method.into()));
    m.insert("params".into(), params);
    m.insert("emittedAtMs".into(), Value::from(emitted_at_ms));
    to_line(Value::Object(m))
}

pub fn encode_request(id: &RequestId, method: &str, params: Value) -> String {
    to_line(json!({"id": id, "method": method, "params": params}))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_four_shapes() {
        assert_eq!(
            decode(r#"{"id":1,"method":"initialize","params":{}}"#).unwrap(),
            Incoming::Request {
                id: RequestId::Int(1),
                method: "initialize".into(),
                params: json!({})
            }
        );
        assert!(matches!(
            decode(r#"{"jsonrpc":"2.0","id":"a","method":"x"}"#).unwrap(),
            Incoming::Request {
                id: RequestId::Str(_),
                params: Value::Null,
                ..
            }
        ));
        assert!(matches!(
            decode(r#"{"method":"initialized"}"#).unwrap(),
            Incoming::Notification { .. }
        ));
        assert!(matches!(
            decode(r#"{"id":0,"result":{"decision":"accept"}}"#).unwrap(),
            Incoming::Response { .. }
        ));
        assert!(matches!(
            decode(r#"{"id":0,"error":{"code":-1,"message":"no"}}"#).unwrap(),
            Incoming::Error { .. }
        ));
    }

    #[test]
    fn rejects_what_upstream_drops() {
        assert!(decode("{this is not json").is_err());
        assert!(decode(r#"{"id": 902}"#).is_err());
        assert!(decode(r#"[{"id": 903, "method": "thread/list"}]"#).is_err());
        assert!(decode("3").is_err());
    }

    #[test]
    fn encodes_without_jsonrpc_header() {
        let line = encode_response(&RequestId::Int(3), json!({}));
        assert_eq!(line, "{\"id\":3,\"result\":{}}\n");
        let line = encode_notification("warning", json!({"message": "m"}), 5);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["emittedAtMs"], 5);
        assert!(v.get("jsonrpc").is_none());
    }
}
