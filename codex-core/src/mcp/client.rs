//! A JSON-RPC 2.0 client of one MCP server over a [`Transport`]: requests
//! matched to responses by id (each with its deadline; a request past it is
//! cancelled with `notifications/cancelled`), the server's notifications
//! (progress by token, `tools/list_changed`) and its requests (`ping`,
//! `roots/list`, `elicitation/create`) answered.
//!
//! Whatever the server sends that is not valid JSON-RPC is logged as a
//! problem of that server; the client never panics on input. When the
//! transport closes every pending request fails with the reason.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::transport::{Transport, TransportEvent, TransportGuard};

/// The protocol version we ask for (upstream's).
pub const PROTOCOL_VERSION: &str = "2025-06-18";
/// `clientInfo.version`: the upstream release whose wire we speak.
pub const CLIENT_VERSION: &str = "0.169.0";
/// Progress messages buffered per call before older ones are dropped.
const PROGRESS_CAPACITY: usize = 64;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum McpError {
    #[error("{0}")]
    Closed(String),
    #[error("no answer within {}s", .0.as_secs_f64())]
    Timeout(Duration),
    /// The caller gave up (an interrupted turn).
    #[error("cancelled")]
    Cancelled,
    /// The server answered with a JSON-RPC error.
    #[error("{message} (code {code})")]
    Rpc { code: i64, message: String },
    #[error("{0}")]
    Protocol(String),
}

/// What the server asks of us, answered by the host.
pub trait ServerRequests: Send + Sync + 'static {
    /// `elicitation/create`: the answer (`{action, content?}`), or an error
    /// message.
    fn elicit(&self, params: Value) -> BoxFuture<'static, Result<Value, String>>;
    /// `notifications/tools/list_changed` arrived.
    fn tools_changed(&self);
    /// `roots/list`.
    fn roots(&self) -> Vec<String>;
}

type Pending = Mutex<HashMap<i64, oneshot::Sender<Result<Value, McpError>>>>;

struct Inner {
    server: String,
    outgoing: mpsc::Sender<Value>,
    pending: Pending,
    progress: Mutex<HashMap<u64, mpsc::Sender<String>>>,
    next_id: AtomicI64,
    next_token: AtomicU64,
    closed: watch::Sender<Option<String>>,
    guard: Mutex<Option<Box<dyn TransportGuard>>>,
    pid: Option<u32>,
}

/// A connection to one server. Cheap to clone.
#[derive(Clone)]
pub struct McpClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClient")
            .field("server", &self.inner.server)
            .field("pid", &self.inner.pid)
            .finish()
    }
}

impl McpClient {
    /// Starts reading `transport`.
    pub fn new(server: &str, transport: Transport, host: Arc<dyn ServerRequests>) -> Self {
        let Transport {
            outgoing,
            incoming,
            guard,
        } = transport;
        let (closed, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            server: server.to_string(),
            outgoing,
            pending: Mutex::new(HashMap::new()),
            progress: Mutex::new(HashMap::new()),
            next_id: AtomicI64::new(0),
            next_token: AtomicU64::new(1),
            closed,
            pid: guard.pid(),
            guard: Mutex::new(Some(guard)),
        });
        tokio::spawn(read_loop(Arc::downgrade(&inner), incoming, host));
        Self { inner }
    }

    pub fn pid(&self) -> Option<u32> {
        self.inner.pid
    }

    /// Why the connection ended, once it has.
    pub fn closed_reason(&self) -> Option<String> {
        self.inner.closed.borrow().clone()
    }

    /// Resolves when the connection has ended, with the reason.
    pub async fn closed(&self) -> String {
        let mut rx = self.inner.closed.subscribe();
        loop {
            if let Some(r) = rx.borrow_and_update().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                return "the connection was dropped".into();
            }
        }
    }

    /// A new progress token and the channel its messages arrive on.
    pub fn progress_token(&self) -> (u64, mpsc::Receiver<String>) {
        let token = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(PROGRESS_CAPACITY);
        if let Ok(mut p) = self.inner.progress.lock() {
            p.insert(token, tx);
        }
        (token, rx)
    }

    pub fn drop_progress(&self, token: u64) {
        if let Ok(mut p) = self.inner.progress.lock() {
            p.remove(&token);
        }
    }

    /// One request with its deadline. Past the deadline the request is
    /// cancelled at the server (`notifications/cancelled`).
    pub async fn request(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, McpError> {
        self.request_until(method, params, timeout, None).await
    }

    /// [`McpClient::request`], also ended by `cancel` (an interrupted
    /// turn). Either way the server is told (`notifications/cancelled` with
    /// the request's id) and the request forgotten.
    pub async fn request_until(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
        cancel: Option<&CancellationToken>,
    ) -> Result<Value, McpError> {
        if let Some(r) = self.closed_reason() {
            return Err(McpError::Closed(r));
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.inner.pending.lock() {
            p.insert(id, tx);
        }
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let closed = || {
            McpError::Closed(
                self.closed_reason()
                    .unwrap_or_else(|| "the connection ended".into()),
            )
        };
        let exchange = async {
            self.inner.outgoing.send(msg).await.map_err(|_| closed())?;
            rx.await.unwrap_or_else(|_| Err(closed()))
        };
        let cancelled = async {
            match cancel {
                Some(c) => c.cancelled().await,
                None => std::future::pending().await,
            }
        };
        // Also when this future is dropped unfinished (the turn's body is
        // dropped on interrupt): the server is told, the entry forgotten.
        let mut guard = CancelOnDrop {
            inner: &self.inner,
            id,
            reason: Some("cancelled"),
        };
        let outcome = tokio::select! {
            r = tokio::time::timeout(timeout, exchange) => r.unwrap_or(Err(McpError::Timeout(timeout))),
            () = cancelled => Err(McpError::Cancelled),
        };
        guard.reason = match &outcome {
            Err(McpError::Timeout(_)) => Some("timed out"),
            Err(McpError::Cancelled) => Some("cancelled"),
            _ => None,
        };
        drop(guard);
        outcome
    }

    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), McpError> {
        let mut msg = json!({"jsonrpc": "2.0", "method": method});
        if let Some(p) = params {
            msg["params"] = p;
        }
        self.inner
            .outgoing
            .send(msg)
            .await
            .map_err(|_| McpError::Closed("the connection ended".into()))
    }

    /// `initialize` + `notifications/initialized`, as upstream sends them.
    /// Returns the server's result (`serverInfo`, `capabilities`, ...).
    pub async fn initialize(&self, timeout: Duration) -> Result<Value, McpError> {
        let result = self
            .request(
                "initialize",
                json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {
                        "experimental": {"codex/auth-change": {}},
                        "elicitation": {"form": {}, "url": {}},
                    },
                    "clientInfo": {"name": "codex-mcp-client", "title": "Codex", "version": CLIENT_VERSION},
                }),
                timeout,
            )
            .await?;
        if !result.is_object() {
            return Err(McpError::Protocol(
                "the initialize result is not an object".into(),
            ));
        }
        self.notify("notifications/initialized", None).await?;
        Ok(result)
    }

    /// Every page of a list method (`tools/list`, `resources/list`, ...),
    /// the entries under `key`. Bounded: at most 100 pages.
    pub async fn list_all(
        &self,
        method: &str,
        key: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Value>, McpError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let mut params = json!({"_meta": {"progressToken": 0}});
            if method != "tools/list" {
                params = json!({});
            }
            if let Some(c) = &cursor {
                params["cursor"] = json!(c);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let page = self.request(method, params, left).await?;
            match page.get(key) {
                Some(Value::Array(items)) => out.extend(items.iter().cloned()),
                Some(_) => {
                    return Err(McpError::Protocol(format!(
                        "the {method} result's `{key}` is not a list"
                    )))
                }
                None => {}
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(c) if !c.is_empty() && cursor.as_deref() != Some(c) => {
                    cursor = Some(c.to_string())
                }
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    /// Ends the connection: the server's tree is killed (stdio) or its
    /// session ended (HTTP). Waits, bounded.
    pub async fn shutdown(&self) {
        let guard = self.inner.guard.lock().ok().and_then(|mut g| g.take());
        if let Some(g) = guard {
            g.shutdown().await;
        }
        let _ = self.inner.closed.send_if_modified(|c| {
            if c.is_none() {
                *c = Some("the connection was shut down".into());
                true
            } else {
                false
            }
        });
        fail_pending(&self.inner, "the connection was shut down");
    }
}

/// Forgets request `id` and tells the server it is cancelled, unless the
/// request ended with an answer (`reason` cleared).
struct CancelOnDrop<'a> {
    inner: &'a Inner,
    id: i64,
    reason: Option<&'static str>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        let Some(reason) = self.reason else {
            return;
        };
        if let Ok(mut p) = self.inner.pending.lock() {
            p.remove(&self.id);
        }
        let _ = self.inner.outgoing.try_send(json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": self.id, "reason": reason},
        }));
    }
}

fn fail_pending(inner: &Inner, reason: &str) {
    let pending: Vec<_> = inner
        .pending
        .lock()
        .map(|mut p| p.drain().collect())
        .unwrap_or_default();
    for (_, tx) in pending {
        let _ = tx.send(Err(McpError::Closed(reason.to_string())));
    }
}

async fn read_loop(
    inner: std::sync::Weak<Inner>,
    mut incoming: mpsc::Receiver<TransportEvent>,
    host: Arc<dyn ServerRequests>,
) {
    let mut problems = 0u64;
    let reason = loop {
        let Some(event) = incoming.recv().await else {
            break "the connection ended".to_string();
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match event {
            TransportEvent::Closed(r) => break r,
            TransportEvent::Problem(p) => {
                problems += 1;
                if problems <= 20 {
                    tracing::warn!("mcp server {}: {p}", inner.server);
                }
            }
            TransportEvent::Message(Value::Array(batch)) => {
                for m in batch {
                    handle(&inner, m, &host, &mut problems);
                }
            }
            TransportEvent::Message(m) => handle(&inner, m, &host, &mut problems),
        }
    };
    if let Some(inner) = inner.upgrade() {
        tracing::info!("mcp server {}: connection ended: {reason}", inner.server);
        let _ = inner.closed.send_if_modified(|c| {
            if c.is_none() {
                *c = Some(reason.clone());
                true
            } else {
                false
            }
        });
        fail_pending(&inner, &reason);
    }
}

fn handle(inner: &Arc<Inner>, msg: Value, host: &Arc<dyn ServerRequests>, problems: &mut u64) {
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_string);
    let id = msg.get("id").cloned().filter(|i| !i.is_null());
    match (method, id) {
        (None, Some(id)) => {
            let Some(id) = id.as_i64() else {
                *problems += 1;
                tracing::warn!(
                    "mcp server {}: a response with an id we never sent: {id}",
                    inner.server
                );
                return;
            };
            let tx = inner.pending.lock().ok().and_then(|mut p| p.remove(&id));
            let Some(tx) = tx else {
                // A late answer to a request that timed out.
                tracing::debug!("mcp server {}: late response {id}", inner.server);
                return;
            };
            let outcome = if let Some(e) = msg.get("error") {
                Err(McpError::Rpc {
                    code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
                    message: e
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("error without a message")
                        .to_string(),
                })
            } else if let Some(r) = msg.get("result") {
                Ok(r.clone())
            } else {
                Err(McpError::Protocol(
                    "a response with neither `result` nor `error`".into(),
                ))
            };
            let _ = tx.send(outcome);
        }
        (Some(method), Some(id)) => {
            let params = msg.get("params").cloned().unwrap_or(Value::Null);
            let outgoing = inner.outgoing.clone();
            let host = host.clone();
            tokio::spawn(async move {
                let answer = match method.as_str() {
                    "ping" => Ok(json!({})),
                    "roots/list" => Ok(
                        json!({"roots": host.roots().iter().map(|r| json!({"uri": format!("file://{r}")})).collect::<Vec<_>>()}),
                    ),
                    "elicitation/create" => host.elicit(params).await.map_err(|m| (-32603, m)),
                    other => Err((-32601, format!("Method not found: {other}"))),
                };
                let reply = match answer {
                    Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
                    Err((code, message)) => {
                        json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(5), outgoing.send(reply)).await;
            });
        }
        (Some(method), None) => {
            let params = msg.get("params").cloned().unwrap_or(Value::Null);
            match method.as_str() {
                "notifications/progress" => {
                    let token = params.get("progressToken").and_then(Value::as_u64);
                    let text = progress_text(&params);
                    let tx = token
                        .and_then(|t| inner.progress.lock().ok().and_then(|p| p.get(&t).cloned()));
                    if let Some(tx) = tx {
                        let _ = tx.try_send(text);
                    }
                }
                "notifications/tools/list_changed" => host.tools_changed(),
                "notifications/message" => {
                    tracing::info!("mcp server {}: {}", inner.server, params)
                }
                _ => tracing::debug!("mcp server {}: notification {method}", inner.server),
            }
        }
        (None, None) => {
            *problems += 1;
            if *problems <= 20 {
                tracing::warn!(
                    "mcp server {}: a message that is not JSON-RPC: {}",
                    inner.server,
                    excerpt(&msg)
                );
            }
        }
    }
}

fn progress_text(params: &Value) -> String {
    if let Some(m) = params.get("message").and_then(Value::as_str) {
        return m.to_string();
    }
    match (
        params.get("progress").and_then(Value::as_f64),
        params.get("total").and_then(Value::as_f64),
    ) {
        (Some(p), Some(t)) => format!("{p}/{t}"),
        (Some(p), None) => format!("{p}"),
        _ => String::new(),
    }
}

fn excerpt(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        let mut end = 120;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s
    }
}
