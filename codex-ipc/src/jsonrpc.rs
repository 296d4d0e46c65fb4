//! JSON-RPC 2.0 "with the header omitted", as the app-server speaks it:
//! no `"jsonrpc"` field in what we send (one in what we receive is
//! accepted), requests, notifications, responses and errors as JSONL.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// `-32700`: the message is not JSON (we answer it when its id can be
/// recovered; upstream never sends it).
pub const PARSE_ERROR: i64 = -32700;
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

/// Why a line could not be decoded. Logged; answered (with [`reply`]) when
/// the request's id could be recovered, since its sender waits for it.
///
/// [`reply`]: DecodeError::reply
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Failed to deserialize JSONRPCMessage: {message}")]
pub struct DecodeError {
    pub message: String,
    /// `-32700` (not JSON) or `-32600` (not a request we can read).
    pub code: i64,
    pub id: Option<RequestId>,
}

impl DecodeError {
    fn shape(message: &str, id: Option<RequestId>) -> Self {
        Self {
            message: message.to_string(),
            code: INVALID_REQUEST,
            id,
        }
    }

    /// A frame over the size cap, whose `id` (if any) was found as it
    /// streamed past.
    pub fn too_large(bytes: usize, cap: usize, id: Option<RequestId>) -> Self {
        Self {
            message: format!("message of {bytes} bytes is over the {cap}-byte limit"),
            code: INVALID_REQUEST,
            id,
        }
    }

    /// The error reply owed to the sender, when its id is known.
    pub fn reply(&self) -> Option<(RequestId, RpcError)> {
        let id = self.id.clone()?;
        let prefix = if self.code == PARSE_ERROR {
            "Parse error"
        } else {
            "Invalid request"
        };
        Some((
            id,
            RpcError::new(self.code, format!("{prefix}: {}", self.message)),
        ))
    }
}

const NOT_A_MESSAGE: &str = "data did not match any variant of untagged enum JSONRPCMessage";

/// Decodes one line. Batches (arrays), non-objects, malformed JSON and
/// objects that are none of the four shapes are errors. Lone UTF-16
/// surrogate escapes (`"\ud800"`, which JavaScript's `JSON.stringify`
/// emits) are read as U+FFFD.
pub fn decode(line: &str) -> Result<Incoming, DecodeError> {
    let v: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(first) => {
            let retried = without_lone_surrogates(line).map(|fixed| serde_json::from_str(&fixed));
            match retried {
                Some(Ok(v)) => v,
                other => {
                    let e = match other {
                        Some(Err(e)) => e,
                        _ => first,
                    };
                    return Err(DecodeError {
                        message: e.to_string(),
                        code: PARSE_ERROR,
                        id: crate::id_scan::recover_id(line.as_bytes()),
                    });
                }
            }
        }
    };
    let Value::Object(mut m) = v else {
        return Err(DecodeError::shape(NOT_A_MESSAGE, None));
    };
    let id = match m.remove("id") {
        Some(v) => Some(
            serde_json::from_value::<RequestId>(v)
                .map_err(|_| DecodeError::shape("invalid request id", None))?,
        ),
        None => None,
    };
    let params = m.remove("params").unwrap_or(Value::Null);
    match (m.remove("method"), id) {
        (Some(Value::String(method)), Some(id)) => Ok(Incoming::Request { id, method, params }),
        (Some(Value::String(method)), None) => Ok(Incoming::Notification { method, params }),
        (Some(_), id) => Err(DecodeError::shape(
            "invalid type for `method`: expected a string",
            id,
        )),
        (None, Some(id)) => {
            if let Some(result) = m.remove("result") {
                Ok(Incoming::Response { id, result })
            } else if let Some(err) = m.remove("error") {
                let error = serde_json::from_value(err).map_err(|e| DecodeError {
                    message: format!("invalid error object: {e}"),
                    code: INVALID_REQUEST,
                    // An answer to one of our requests: nobody waits on it.
                    id: None,
                })?;
                Ok(Incoming::Error { id, error })
            } else {
                Err(DecodeError::shape("missing field `method`", Some(id)))
            }
        }
        (None, None) => Err(DecodeError::shape(NOT_A_MESSAGE, None)),
    }
}

/// `line` with every lone surrogate escape inside a string replaced by
/// `\ufffd`; `None` when there is none.
fn without_lone_surrogates(line: &str) -> Option<String> {
    fn hex4(b: &[u8]) -> Option<u32> {
        let h = std::str::from_utf8(b.get(..4)?).ok()?;
        u32::from_str_radix(h, 16).ok()
    }
    let b = line.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut changed = false;
    let mut in_string = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !in_string {
            in_string = c == b'"';
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            b'"' => {
                in_string = false;
                out.push(c);
                i += 1;
            }
            b'\\' if b.get(i + 1) == Some(&b'u') => {
                let Some(code) = hex4(&b[i + 2..]) else {
                    out.push(c);
                    i += 1;
                    continue;
                };
                let low = (b.get(i + 6) == Some(&b'\\') && b.get(i + 7) == Some(&b'u'))
                    .then(|| hex4(&b[i + 8..]))
                    .flatten();
                match code {
                    0xD800..=0xDBFF if low.is_some_and(|l| (0xDC00..=0xDFFF).contains(&l)) => {
                        out.extend_from_slice(&b[i..i + 12]);
                        i += 12;
                    }
                    0xD800..=0xDFFF => {
                        out.extend_from_slice(br"\ufffd");
                        changed = true;
                        i += 6;
                    }
                    _ => {
                        out.extend_from_slice(&b[i..i + 6]);
                        i += 6;
                    }
                }
            }
            b'\\' => {
                out.extend_from_slice(&b[i..(i + 2).min(b.len())]);
                i += 2;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    if !changed {
        return None;
    }
    String::from_utf8(out).ok()
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
    fn undecodable_requests_keep_their_id_for_the_reply() {
        let e = decode(r#"{"id": 902}"#).unwrap_err();
        let (id, err) = e.reply().unwrap();
        assert_eq!(id, RequestId::Int(902));
        assert_eq!(err.code, INVALID_REQUEST);
        assert_eq!(err.message, "Invalid request: missing field `method`");
        let e = decode(r#"{"id": "x", "method": "thread/list", "params": {"#).unwrap_err();
        let (id, err) = e.reply().unwrap();
        assert_eq!(id, RequestId::Str("x".into()));
        assert_eq!(err.code, PARSE_ERROR);
        assert!(err.message.starts_with("Parse error: "), "{}", err.message);
        let deep = format!(
            r#"{{"id":7,"method":"m","params":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let (id, err) = decode(&deep).unwrap_err().reply().unwrap();
        assert_eq!((id, err.code), (RequestId::Int(7), PARSE_ERROR));
        assert!(err.message.contains("recursion limit"), "{}", err.message);
        // Nothing to answer: no id, or not a request.
        assert!(decode("{this is not json").unwrap_err().reply().is_none());
        assert!(decode(r#"[{"id": 903, "method": "thread/list"}]"#)
            .unwrap_err()
            .reply()
            .is_none());
    }

    #[test]
    fn lone_surrogates_read_as_replacement_characters() {
        let line = r#"{"id":1,"method":"m","params":{"a":"x\ud800y","b":"\udc00","c":"\ud83d\ude00","d":"\\ud800"}}"#;
        let Incoming::Request { params, .. } = decode(line).unwrap() else {
            panic!("a request")
        };
        assert_eq!(params["a"], "x\u{fffd}y");
        assert_eq!(params["b"], "\u{fffd}");
        assert_eq!(params["c"], "\u{1f600}", "a valid pair stays");
        assert_eq!(params["d"], "\\ud800", "an escaped backslash is no escape");
        let line = r#"{"id":1,"method":"m","params":["\ud800\ud800"]}"#;
        let Incoming::Request { params, .. } = decode(line).unwrap() else {
            panic!("a request")
        };
        assert_eq!(params[0], "\u{fffd}\u{fffd}");
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
