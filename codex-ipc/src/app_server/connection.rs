//! A full-duplex app-server client connection: requests with their answers
//! routed back to the caller, and everything else the server sends
//! (notifications, server requests such as approvals, answers to lines the
//! host wrote itself) delivered in order on one bounded channel.
//!
//! It runs over any byte stream carrying JSONL (an in-process supervisor, a
//! unix socket) or over a WebSocket ([`connect_ws`], one message per text
//! frame). Two tasks own the stream: a writer fed by a bounded queue and a
//! reader. A host that stops draining its events stops the reader; the
//! server then sheds or disconnects this connection as it does any client
//! that stops reading, and nothing grows without bound here.
//!
//! Request ids this connection allocates are negative (-1, -2, ...), so a
//! host that writes its own requests ([`Connection::send_line`]) with
//! non-negative ids never collides with them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::methods::InitializeParams;
use crate::framing::{read_frame, Frame};
use crate::jsonrpc::{self, Incoming, RequestId, RpcError};

/// Largest message accepted from the server (a `thread/read` of a long
/// history is tens of MiB).
pub const MAX_SERVER_MESSAGE: usize = 256 * 1024 * 1024;
/// Default bound of the queue of messages to the server.
const OUTBOX_CAPACITY: usize = 1024;

/// One message from the server, as sent (`line`) and decoded.
#[derive(Debug, Clone)]
pub struct ServerMessage {
    pub line: String,
    pub message: Incoming,
}

impl ServerMessage {
    /// The method of a notification or server request.
    pub fn method(&self) -> Option<&str> {
        match &self.message {
            Incoming::Notification { method, .. } | Incoming::Request { method, .. } => {
                Some(method)
            }
            _ => None,
        }
    }

    /// The params of a notification or server request (`Null` otherwise).
    pub fn params(&self) -> &Value {
        match &self.message {
            Incoming::Notification { params, .. } | Incoming::Request { params, .. } => params,
            _ => &Value::Null,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("the connection to the app server is closed")]
    Closed,
    #[error("too many messages are queued for the app server")]
    Full,
    #[error("`{method}` failed: {} (error {})", error.message, error.code)]
    Rpc { method: String, error: RpcError },
    #[error("no answer to `{method}` within {deadline:?}")]
    Timeout { method: String, deadline: Duration },
    #[error("not a JSON-RPC message: {0}")]
    Invalid(String),
    #[error("cannot connect to {what}: {source}")]
    Connect {
        what: String,
        source: std::io::Error,
    },
}

type Answer = Result<Value, RpcError>;

struct Inner {
    out: mpsc::Sender<String>,
    pending: Mutex<HashMap<RequestId, oneshot::Sender<Answer>>>,
    next_id: AtomicI64,
    closed: CancellationToken,
}

/// See the module docs. Cheap to clone; every clone is the same connection.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("closed", &self.inner.closed.is_cancelled())
            .finish()
    }
}

impl Connection {
    /// Starts the reader and writer tasks on the current tokio runtime.
    /// The receiver yields every server message that is not the answer to a
    /// request made with [`Connection::request`]; it ends when the
    /// connection closes. `capacity` bounds it.
    pub fn spawn<R, W>(
        reader: R,
        writer: W,
        capacity: usize,
    ) -> (Connection, mpsc::Receiver<ServerMessage>)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (out_tx, out_rx) = mpsc::channel::<String>(OUTBOX_CAPACITY);
        let (ev_tx, ev_rx) = mpsc::channel::<ServerMessage>(capacity.max(1));
        let inner = Arc::new(Inner {
            out: out_tx,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicI64::new(-1),
            closed: CancellationToken::new(),
        });
        tokio::spawn(write_lines(writer, out_rx, inner.closed.clone()));
        tokio::spawn(read_messages(reader, ev_tx, inner.clone()));
        (Connection { inner }, ev_rx)
    }

    /// Sends a request and waits for its answer (its `result`, or the
    /// server's error).
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, ConnectionError> {
        let rx = self.start_request(method, params)?;
        // When the connection closes the reader drops every pending sender,
        // so this ends either way; an answer read just before the close
        // still counts.
        let answer = rx.await;
        match answer {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(error)) => Err(ConnectionError::Rpc {
                method: method.to_string(),
                error,
            }),
            Err(_) => Err(ConnectionError::Closed),
        }
    }

    /// [`Connection::request`] with a deadline.
    pub async fn request_within(
        &self,
        method: &str,
        params: Value,
        deadline: Duration,
    ) -> Result<Value, ConnectionError> {
        tokio::time::timeout(deadline, self.request(method, params))
            .await
            .unwrap_or_else(|_| {
                Err(ConnectionError::Timeout {
                    method: method.to_string(),
                    deadline,
                })
            })
    }

    /// Queues a request without waiting; the receiver gets its answer.
    pub fn start_request(
        &self,
        method: &str,
        params: Value,
    ) -> Result<oneshot::Receiver<Answer>, ConnectionError> {
        let id = RequestId::Int(self.inner.next_id.fetch_sub(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.inner.pending.lock() {
            p.insert(id.clone(), tx);
        }
        let sent = self.queue(jsonrpc::encode_request(&id, method, params));
        if sent.is_err() {
            if let Ok(mut p) = self.inner.pending.lock() {
                p.remove(&id);
            }
        }
        sent.map(|()| rx)
    }

    /// Sends a notification (`initialized`, ...).
    pub fn notify(&self, method: &str, params: Option<Value>) -> Result<(), ConnectionError> {
        let mut m = Map::new();
        m.insert("method".into(), Value::String(method.into()));
        if let Some(p) = params {
            m.insert("params".into(), p);
        }
        let mut line = Value::Object(m).to_string();
        line.push('\n');
        self.queue(line)
    }

    /// Answers a server request (an approval, ...).
    pub fn respond(&self, id: &RequestId, result: Value) -> Result<(), ConnectionError> {
        self.queue(jsonrpc::encode_response(id, result))
    }

    /// Answers a server request with an error.
    pub fn respond_error(&self, id: &RequestId, error: &RpcError) -> Result<(), ConnectionError> {
        self.queue(jsonrpc::encode_error(id, error))
    }

    /// Sends a message the host built itself (one JSON object). Its answer,
    /// if it is a request, arrives on the event channel.
    pub fn send_line(&self, json: &str) -> Result<(), ConnectionError> {
        let v: Value =
            serde_json::from_str(json).map_err(|e| ConnectionError::Invalid(e.to_string()))?;
        if !v.is_object() {
            return Err(ConnectionError::Invalid("not a JSON object".into()));
        }
        let mut line = v.to_string();
        line.push('\n');
        self.queue(line)
    }

    /// Forwards one line as it is (a proxy's client wrote it: the server
    /// judges it), waiting for room in the queue.
    pub async fn forward_line(&self, line: &str) -> Result<(), ConnectionError> {
        let mut line = line
            .trim_end_matches(['\n', '\r'])
            .replace(['\n', '\r'], " ");
        line.push('\n');
        tokio::select! {
            r = self.inner.out.send(line) => r.map_err(|_| ConnectionError::Closed),
            _ = self.inner.closed.cancelled() => Err(ConnectionError::Closed),
        }
    }

    /// `initialize` then `initialized`; returns the `initialize` result.
    pub async fn initialize(
        &self,
        params: &InitializeParams,
        deadline: Duration,
    ) -> Result<Value, ConnectionError> {
        let params =
            serde_json::to_value(params).map_err(|e| ConnectionError::Invalid(e.to_string()))?;
        let result = self.request_within("initialize", params, deadline).await?;
        self.notify("initialized", None)?;
        Ok(result)
    }

    /// Closes the connection: what is queued is still written (bounded),
    /// then the stream is shut down; pending requests fail with `Closed`.
    pub fn close(&self) {
        self.inner.closed.cancel();
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// Resolves once the connection is closed (by either side).
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await
    }

    fn queue(&self, line: String) -> Result<(), ConnectionError> {
        if self.inner.closed.is_cancelled() {
            return Err(ConnectionError::Closed);
        }
        self.inner.out.try_send(line).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ConnectionError::Full,
            mpsc::error::TrySendError::Closed(_) => ConnectionError::Closed,
        })
    }
}

/// How long a closing connection may take to write what is queued.
const FINAL_FLUSH: Duration = Duration::from_secs(5);

async fn write_lines<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::Receiver<String>,
    closed: CancellationToken,
) {
    loop {
        let line = tokio::select! {
            biased;
            l = rx.recv() => l,
            _ = closed.cancelled() => None,
        };
        let Some(line) = line else { break };
        let written = tokio::select! {
            r = writer.write_all(line.as_bytes()) => r.is_ok(),
            _ = closed.cancelled() => false,
        };
        if !written {
            break;
        }
    }
    // Whatever was queued before the close still goes out (bounded).
    let _ = tokio::time::timeout(FINAL_FLUSH, async {
        while let Ok(line) = rx.try_recv() {
            if writer.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
        let _ = writer.flush().await;
        let _ = writer.shutdown().await;
    })
    .await;
    closed.cancel();
}

async fn read_messages<R: AsyncRead + Unpin>(
    reader: R,
    events: mpsc::Sender<ServerMessage>,
    inner: Arc<Inner>,
) {
    let mut reader = BufReader::new(reader);
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut reader, MAX_SERVER_MESSAGE) => f,
            _ = inner.closed.cancelled() => break,
        };
        let line = match frame {
            Ok(Some(Frame::Line(l))) if l.trim().is_empty() => continue,
            Ok(Some(Frame::Line(l))) => l,
            Ok(Some(Frame::TooLarge { bytes, .. })) => {
                tracing::warn!("app server sent a {bytes}-byte message; dropped (over the cap)");
                continue;
            }
            Ok(None) | Err(_) => break,
        };
        let message = match jsonrpc::decode(&line) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("app server sent an undecodable message: {e}");
                continue;
            }
        };
        let answered = match &message {
            Incoming::Response { id, .. } | Incoming::Error { id, .. } => {
                inner.pending.lock().ok().and_then(|mut p| p.remove(id))
            }
            _ => None,
        };
        if let Some(tx) = answered {
            let _ = tx.send(match message {
                Incoming::Response { result, .. } => Ok(result),
                Incoming::Error { error, .. } => Err(error),
                _ => continue,
            });
            continue;
        }
        let sent = tokio::select! {
            r = events.send(ServerMessage { line, message }) => r.is_ok(),
            _ = inner.closed.cancelled() => false,
        };
        if !sent {
            break;
        }
    }
    inner.closed.cancel();
    // Waiters learn the connection is gone.
    if let Ok(mut p) = inner.pending.lock() {
        p.clear();
    }
}

/// The path to `connect` to for `path`: itself, or its resolved target when
/// it is too long for `sun_path` (108 bytes with the NUL): upstream's
/// control socket is a symlink to a short path for exactly that.
pub fn connectable(path: &std::path::Path) -> std::path::PathBuf {
    const SUN_PATH_MAX: usize = 107;
    if path.as_os_str().len() <= SUN_PATH_MAX {
        return path.to_path_buf();
    }
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Connects to a unix socket speaking JSONL.
pub async fn connect_unix(
    path: &std::path::Path,
    deadline: Duration,
) -> Result<tokio::net::UnixStream, ConnectionError> {
    let what = format!("unix://{}", path.display());
    let connect = tokio::net::UnixStream::connect(connectable(path));
    match tokio::time::timeout(deadline, connect).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(source)) => Err(ConnectionError::Connect { what, source }),
        Err(_) => Err(ConnectionError::Connect {
            what,
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
        }),
    }
}

/// Connects to a `ws://` app server (one JSON-RPC message per text frame),
/// with `token` as `Authorization: Bearer`, and returns a JSONL stream
/// bridged to it (the connection's reader and writer halves).
pub async fn connect_ws(
    url: &str,
    token: Option<&str>,
    deadline: Duration,
) -> Result<tokio::io::DuplexStream, ConnectionError> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let connect_err = |source: std::io::Error| ConnectionError::Connect {
        what: url.to_string(),
        source,
    };
    let mut request = url
        .into_client_request()
        .map_err(|e| connect_err(std::io::Error::other(e.to_string())))?;
    if let Some(t) = token {
        let value = format!("Bearer {t}")
            .parse()
            .map_err(|_| connect_err(std::io::Error::other("the token is not a header value")))?;
        request.headers_mut().insert("authorization", value);
    }
    let host = request.uri().host().unwrap_or("127.0.0.1").to_string();
    let port = request.uri().port_u16().unwrap_or(80);
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    };
    ws_handshake(url.to_string(), connect, request, deadline).await
}

/// Connects to an app server's unix socket the way upstream's clients do:
/// a WebSocket upgrade over the socket (`GET /`, `Host: localhost`), then one
/// JSON-RPC message per text frame. Upstream's daemon speaks only this;
/// codexd speaks it and plain JSONL. Returns a JSONL stream bridged to it.
pub async fn connect_unix_ws(
    path: &std::path::Path,
    deadline: Duration,
) -> Result<tokio::io::DuplexStream, ConnectionError> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let what = format!("unix://{}", path.display());
    let request =
        "ws://localhost/"
            .into_client_request()
            .map_err(|e| ConnectionError::Connect {
                what: what.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
    let connect = tokio::net::UnixStream::connect(connectable(path));
    ws_handshake(what, connect, request, deadline).await
}

/// Connects with `connect`, upgrades to WebSocket with `request`, all within
/// `deadline`, and bridges the frames to a JSONL stream.
async fn ws_handshake<S>(
    what: String,
    connect: impl std::future::Future<Output = std::io::Result<S>>,
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    deadline: Duration,
) -> Result<tokio::io::DuplexStream, ConnectionError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connect_err = |source: std::io::Error| ConnectionError::Connect {
        what: what.clone(),
        source,
    };
    let handshake = async {
        let stream = connect.await.map_err(connect_err)?;
        tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(|e| connect_err(std::io::Error::other(e.to_string())))
    };
    let (ws, _) = tokio::time::timeout(deadline, handshake)
        .await
        .map_err(|_| {
            connect_err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "WebSocket handshake timed out",
            ))
        })??;
    Ok(crate::ws_bridge::bridge(ws, 1024 * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::AsyncBufReadExt;

    /// A fake server on the other end of a duplex stream.
    #[tokio::test]
    async fn answers_go_to_their_request_and_the_rest_to_the_events() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (cr, cw) = tokio::io::split(client);
        let (conn, mut events) = Connection::spawn(cr, cw, 16);
        let (sr, mut sw) = tokio::io::split(server);
        let fake = tokio::spawn(async move {
            let mut lines = BufReader::new(sr).lines();
            let req: Value =
                serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
            assert_eq!(req["method"], "thread/list");
            let id = req["id"].clone();
            assert!(id.as_i64().unwrap() < 0, "library ids are negative");
            // A notification and a server request come first.
            for l in [
                json!({"method": "warning", "params": {"message": "m"}}),
                json!({"id": 0, "method": "item/commandExecution/requestApproval", "params": {}}),
                json!({"id": 7, "result": {"for": "the host"}}),
                json!({"id": id, "result": {"data": []}}),
            ] {
                sw.write_all(format!("{l}\n").as_bytes()).await.unwrap();
            }
            let answer: Value =
                serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
            assert_eq!(answer, json!({"id": 0, "result": {"decision": "accept"}}));
            let raw: Value =
                serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
            assert_eq!(raw["id"], 8);
            let err_id = {
                let l: Value =
                    serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
                l["id"].clone()
            };
            sw.write_all(
                format!(
                    "{}\n",
                    json!({"id": err_id, "error": {"code": -32600, "message": "no"}})
                )
                .as_bytes(),
            )
            .await
            .unwrap();
            // Then the server goes away.
        });
        let r = conn.request("thread/list", json!({})).await.unwrap();
        assert_eq!(r, json!({"data": []}));
        let e1 = events.recv().await.unwrap();
        assert_eq!(e1.method(), Some("warning"));
        let e2 = events.recv().await.unwrap();
        let Incoming::Request { id, .. } = &e2.message else {
            panic!("{e2:?}")
        };
        let e3 = events.recv().await.unwrap();
        assert!(
            matches!(e3.message, Incoming::Response { .. }),
            "an answer nobody waits for"
        );
        conn.respond(id, json!({"decision": "accept"})).unwrap();
        conn.send_line(r#"{"id": 8, "method": "thread/loaded/list"}"#)
            .unwrap();
        assert!(matches!(
            conn.send_line("[1]"),
            Err(ConnectionError::Invalid(_))
        ));
        let err = conn.request("thread/read", json!({})).await.unwrap_err();
        assert!(
            matches!(err, ConnectionError::Rpc { ref error, .. } if error.code == -32600),
            "{err}"
        );
        fake.await.unwrap();
        // EOF: the events end and requests fail.
        assert!(events.recv().await.is_none());
        conn.closed().await;
        assert!(matches!(
            conn.request("x", json!({})).await,
            Err(ConnectionError::Closed)
        ));
    }
}
