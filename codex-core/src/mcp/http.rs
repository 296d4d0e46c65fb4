//! The streamable HTTP transport (MCP 2025-06-18): every message we send is
//! one `POST` to the server's URL; the answer is `202` (nothing to deliver),
//! one JSON message (or an array of them), or an SSE stream that may carry
//! notifications and server requests before the response.
//!
//! HTTP has no connection to lose, so a failed `POST` does not end the
//! transport: each request it carried gets a synthetic JSON-RPC error (an
//! HTTP error cannot be a message of its own), and the caller fails that
//! request. Requests run concurrently (a hung `tools/call` does not hold up
//! the next one), at most [`MAX_IN_FLIGHT`] at a time; notifications and
//! responses are sent in order (each waits, briefly, for its `202`) so the
//! server sees `notifications/initialized` before what follows it.
//!
//! The session id the server gives in the `initialize` response and the
//! negotiated protocol version are sent on every later request. After
//! `notifications/initialized` a `GET` stream is opened for messages the
//! server starts; a server that answers `405` goes without. Ending the
//! transport sends `DELETE` with the session id.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::StreamExt as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::config::McpTransportConfig;
use super::transport::{
    Transport, TransportError, TransportEvent, TransportGuard, INCOMING_CAPACITY,
    MAX_MESSAGE_BYTES, OUTGOING_CAPACITY,
};
use crate::client::sse::SseDecoder;

/// Requests whose answers are awaited at the same time.
pub const MAX_IN_FLIGHT: usize = 16;
/// The default deadline of one `POST`, answer included. Tool calls answer
/// through it, so it is above upstream's 300 s tool timeout; the caller's
/// own deadlines are normally shorter.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a notification's `POST` may hold up what follows it (order is
/// kept while servers answer promptly; a slow one does not stall us).
const ORDER_WAIT: Duration = Duration::from_secs(5);
/// How long a TCP/TLS connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The `DELETE` that ends a session.
const DELETE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a shut down transport waits for its tasks to stop.
const STOP_WAIT: Duration = Duration::from_secs(2);
/// Consecutive failed `GET` streams after which we go without one.
const GET_STREAM_ATTEMPTS: u32 = 3;
/// The pause before reopening a `GET` stream that ended.
const GET_STREAM_RETRY: Duration = Duration::from_secs(1);
/// Bytes of an HTTP error body quoted in the error.
const ERROR_EXCERPT_BYTES: usize = 200;

/// The JSON-RPC error code of a request the server refused with `401`.
pub const AUTH_REQUIRED_CODE: i64 = -32001;
/// The JSON-RPC error code of any other HTTP or connection failure.
pub const TRANSPORT_ERROR_CODE: i64 = -32000;

pub const SESSION_ID_HEADER: &str = "mcp-session-id";
pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";

/// What to connect to, with every header resolved.
#[derive(Clone)]
pub struct HttpSpec {
    pub server: String,
    pub url: String,
    /// `http_headers`, `env_http_headers` (read from the environment) and
    /// `Authorization: Bearer …`.
    pub headers: Vec<(String, String)>,
    /// The deadline of one `POST`, its answer included.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for HttpSpec {
    /// Header values may be secrets: only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSpec")
            .field("server", &self.server)
            .field("url", &self.url)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl HttpSpec {
    /// Resolves a server's config. `bearer_token_env_var` wins over a stored
    /// OAuth token (as upstream); a named variable that is unset is an error
    /// naming it.
    pub fn from_config(
        name: &str,
        transport: &McpTransportConfig,
        oauth_token: Option<String>,
    ) -> Result<HttpSpec, String> {
        let McpTransportConfig::StreamableHttp {
            url,
            bearer_token_env_var,
            http_headers,
            env_http_headers,
        } = transport
        else {
            return Err(format!(
                "MCP server `{name}` is not a streamable HTTP server"
            ));
        };
        let mut headers: Vec<(String, String)> = http_headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (header, var) in env_http_headers {
            let value = std::env::var(var).map_err(|_| {
                format!(
                    "MCP server `{name}`: the environment variable `{var}` (for header `{header}`) is not set"
                )
            })?;
            headers.push((header.clone(), value));
        }
        let bearer = match bearer_token_env_var {
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Some(v),
                _ => {
                    return Err(format!(
                        "MCP server `{name}`: the environment variable `{var}` (bearer_token_env_var) is not set"
                    ))
                }
            },
            None => oauth_token,
        };
        if let Some(token) = bearer {
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
            headers.push(("Authorization".into(), format!("Bearer {token}")));
        }
        Ok(HttpSpec {
            server: name.to_string(),
            url: url.clone(),
            headers,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        })
    }
}

/// What the server told us in `initialize`, sent back on every request.
#[derive(Debug, Default)]
struct Session {
    id: Option<String>,
    protocol_version: Option<String>,
}

/// What every task shares.
struct Shared {
    server: String,
    url: reqwest::Url,
    client: reqwest::Client,
    headers: HeaderMap,
    request_timeout: Duration,
    session: Mutex<Session>,
    cancel: CancellationToken,
}

impl Shared {
    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .request(method, self.url.clone())
            .headers(self.headers.clone());
        if let Ok(s) = self.session.lock() {
            if let Some(id) = &s.id {
                req = req.header(SESSION_ID_HEADER, id);
            }
            if let Some(v) = &s.protocol_version {
                req = req.header(PROTOCOL_VERSION_HEADER, v);
            }
        }
        req
    }

    fn session_id(&self) -> Option<String> {
        self.session.lock().ok().and_then(|s| s.id.clone())
    }
}

/// A task's handle on the event channel. `events` is dropped before
/// `_alive`, so once every `_alive` is gone no task can send any more and
/// `Closed` is last.
struct TaskCtx {
    events: mpsc::Sender<TransportEvent>,
    _alive: mpsc::Sender<()>,
}

/// Opens the transport. Nothing is sent until the first message.
pub fn connect(spec: &HttpSpec) -> Result<Transport, TransportError> {
    let url = reqwest::Url::parse(&spec.url)
        .map_err(|e| TransportError(format!("invalid MCP server URL `{}`: {e}", spec.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TransportError(format!(
            "invalid MCP server URL `{}`: not http or https",
            spec.url
        )));
    }
    let mut headers = HeaderMap::new();
    for (k, v) in &spec.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| TransportError(format!("invalid HTTP header name `{k}`")))?;
        let mut value = HeaderValue::from_str(v)
            .map_err(|_| TransportError(format!("invalid value for HTTP header `{k}`")))?;
        if name == reqwest::header::AUTHORIZATION {
            value.set_sensitive(true);
        }
        headers.append(name, value);
    }
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| TransportError(format!("cannot build the HTTP client: {e}")))?;
    let shared = Arc::new(Shared {
        server: spec.server.clone(),
        url,
        client,
        headers,
        request_timeout: spec.request_timeout,
        session: Mutex::new(Session::default()),
        cancel: CancellationToken::new(),
    });
    let (out_tx, out_rx) = mpsc::channel::<Value>(OUTGOING_CAPACITY);
    let (in_tx, in_rx) = mpsc::channel(INCOMING_CAPACITY);
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(dispatch(shared.clone(), out_rx, in_tx, stopped_tx));
    Ok(Transport {
        outgoing: out_tx,
        incoming: in_rx,
        guard: Box::new(HttpGuard {
            shared: Some(shared),
            stopped: Mutex::new(Some(stopped_rx)),
        }),
    })
}

/// Sends what the client queues until it stops or the guard ends the
/// transport; then waits for every task and reports `Closed`.
async fn dispatch(
    shared: Arc<Shared>,
    mut out_rx: mpsc::Receiver<Value>,
    events: mpsc::Sender<TransportEvent>,
    stopped: tokio::sync::oneshot::Sender<()>,
) {
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let ctx = || TaskCtx {
        events: events.clone(),
        _alive: alive_tx.clone(),
    };
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut get_started = false;
    let reason = loop {
        let msg = tokio::select! {
            _ = shared.cancel.cancelled() => break "the transport was shut down",
            m = out_rx.recv() => match m {
                Some(m) => m,
                None => break "the client closed the transport",
            },
        };
        let ids = request_ids(&msg);
        if ids.is_empty() {
            // Notifications and responses: in order.
            let initialized = is_initialized(&msg);
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            let task_shared = shared.clone();
            let task = ctx();
            tokio::spawn(async move {
                tokio::select! {
                    _ = task_shared.cancel.cancelled() => {}
                    _ = post(&task_shared, msg, ids, &task) => {}
                }
                drop(task);
                let _ = done_tx.send(());
            });
            tokio::select! {
                _ = shared.cancel.cancelled() => break "the transport was shut down",
                _ = tokio::time::timeout(ORDER_WAIT, done_rx) => {}
            }
            if initialized && !get_started {
                get_started = true;
                tokio::spawn(get_stream(shared.clone(), ctx()));
            }
        } else {
            let permit = tokio::select! {
                _ = shared.cancel.cancelled() => break "the transport was shut down",
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break "the transport was shut down",
                },
            };
            let shared = shared.clone();
            let task = ctx();
            tokio::spawn(async move {
                tokio::select! {
                    _ = shared.cancel.cancelled() => {}
                    _ = post(&shared, msg, ids, &task) => {}
                }
                drop(task);
                drop(permit);
            });
        }
    };
    shared.cancel.cancel();
    drop(alive_tx);
    let _ = tokio::time::timeout(STOP_WAIT, alive_rx.recv()).await;
    let _ = events
        .send(TransportEvent::Closed(reason.to_string()))
        .await;
    let _ = stopped.send(());
}

/// The ids of the requests in a message (or a batch), with their methods.
fn request_ids(msg: &Value) -> Vec<(Value, String)> {
    let one = |m: &Value| match (m.get("id"), m.get("method").and_then(Value::as_str)) {
        (Some(id), Some(method)) if !id.is_null() => Some((id.clone(), method.to_string())),
        _ => None,
    };
    match msg {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        m => one(m).into_iter().collect(),
    }
}

fn is_initialized(msg: &Value) -> bool {
    msg.get("method").and_then(Value::as_str) == Some("notifications/initialized")
}

/// A synthetic error answering request `id`.
fn error_response(id: &Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = json!({"code": code, "message": message});
    if let Some(d) = data {
        error["data"] = d;
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

/// Fails every request of a message, or reports a problem if it had none.
async fn fail(
    ctx: &TaskCtx,
    ids: &[(Value, String)],
    code: i64,
    message: &str,
    data: Option<Value>,
) {
    if ids.is_empty() {
        let _ = ctx
            .events
            .send(TransportEvent::Problem(message.to_string()))
            .await;
        return;
    }
    for (id, _) in ids {
        let _ = ctx
            .events
            .send(TransportEvent::Message(error_response(
                id,
                code,
                message,
                data.clone(),
            )))
            .await;
    }
}

/// One `POST` and its answer, within the request deadline.
async fn post(shared: &Shared, msg: Value, ids: Vec<(Value, String)>, ctx: &TaskCtx) {
    let mut pending = ids.clone();
    let outcome = tokio::time::timeout(
        shared.request_timeout,
        post_inner(shared, &msg, &mut pending, ctx),
    )
    .await;
    let failure = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(f)) => f,
        Err(_) => Failure::other(format!(
            "MCP server `{}` did not answer within {} s",
            shared.server,
            shared.request_timeout.as_secs()
        )),
    };
    fail(ctx, &pending, failure.code, &failure.message, failure.data).await;
}

/// Why a `POST` failed, as the error its requests get.
struct Failure {
    code: i64,
    message: String,
    data: Option<Value>,
}

impl Failure {
    fn other(message: String) -> Self {
        Failure {
            code: TRANSPORT_ERROR_CODE,
            message,
            data: None,
        }
    }
}

/// Sends `msg` and delivers its answer; `pending` keeps the requests not
/// answered yet (they get the error, if any).
async fn post_inner(
    shared: &Shared,
    msg: &Value,
    pending: &mut Vec<(Value, String)>,
    ctx: &TaskCtx,
) -> Result<(), Failure> {
    let resp = shared
        .request(reqwest::Method::POST)
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .body(msg.to_string())
        .send()
        .await
        .map_err(|e| {
            Failure::other(format!(
                "cannot reach MCP server `{}`: {}",
                shared.server,
                describe_reqwest(&e)
            ))
        })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(http_failure(shared, resp).await);
    }
    let is_initialize = pending.iter().any(|(_, m)| m == "initialize");
    if is_initialize {
        if let Some(id) = resp
            .headers()
            .get(SESSION_ID_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            if let Ok(mut s) = shared.session.lock() {
                s.id = Some(id.to_string());
            }
        }
    }
    if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
        // Accepted: any answer comes on the GET stream.
        pending.clear();
        return Ok(());
    }
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("text/event-stream") {
        read_sse(shared, resp, pending, ctx).await?;
    } else {
        let body = read_capped(resp).await?;
        if !body.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Array(items)) => {
                    for m in items {
                        deliver(shared, m, pending, ctx).await;
                    }
                }
                Ok(m @ Value::Object(_)) => deliver(shared, m, pending, ctx).await,
                _ => {
                    return Err(Failure::other(format!(
                        "MCP server `{}` answered with something that is not JSON-RPC: {}",
                        shared.server,
                        excerpt(&body)
                    )))
                }
            }
        } else if pending.is_empty() {
            return Ok(());
        }
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err(Failure::other(format!(
            "MCP server `{}` ended its answer without responding to the request",
            shared.server
        )))
    }
}

/// Reads an SSE answer, delivering each event, until every request of the
/// `POST` is answered or the stream ends.
async fn read_sse(
    shared: &Shared,
    resp: reqwest::Response,
    pending: &mut Vec<(Value, String)>,
    ctx: &TaskCtx,
) -> Result<(), Failure> {
    let mut decoder = SseDecoder::new(MAX_MESSAGE_BYTES);
    let mut body = resp.bytes_stream();
    let too_large = || {
        Failure::other(format!(
            "MCP server `{}` sent a message larger than {} MiB",
            shared.server,
            MAX_MESSAGE_BYTES / (1024 * 1024)
        ))
    };
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            Failure::other(format!(
                "the stream from MCP server `{}` broke: {}",
                shared.server,
                describe_reqwest(&e)
            ))
        })?;
        let events = decoder.push(&chunk).map_err(|_| too_large())?;
        for ev in events {
            deliver_event(shared, &ev.data, pending, ctx).await;
        }
        if pending.is_empty() {
            // Answered: the server may keep the stream open; we are done.
            return Ok(());
        }
    }
    if let Some(ev) = decoder.finish() {
        deliver_event(shared, &ev.data, pending, ctx).await;
    }
    Ok(())
}

async fn deliver_event(
    shared: &Shared,
    data: &str,
    pending: &mut Vec<(Value, String)>,
    ctx: &TaskCtx,
) {
    // Priming events (an id, no data) carry nothing.
    if data.trim().is_empty() {
        return;
    }
    match serde_json::from_str::<Value>(data) {
        Ok(Value::Array(items)) => {
            for m in items {
                deliver(shared, m, pending, ctx).await;
            }
        }
        Ok(m @ Value::Object(_)) => deliver(shared, m, pending, ctx).await,
        _ => {
            let _ = ctx
                .events
                .send(TransportEvent::Problem(format!(
                    "MCP server `{}` sent an event that is not a JSON-RPC message: {}",
                    shared.server,
                    excerpt(data.as_bytes())
                )))
                .await;
        }
    }
}

/// Delivers one message; a response to `initialize` sets the protocol
/// version first, so the request that follows it carries the version.
async fn deliver(shared: &Shared, msg: Value, pending: &mut Vec<(Value, String)>, ctx: &TaskCtx) {
    let is_response =
        msg.get("method").is_none() && (msg.get("result").is_some() || msg.get("error").is_some());
    if is_response {
        if let Some(id) = msg.get("id") {
            if let Some(i) = pending.iter().position(|(p, _)| p == id) {
                let (_, method) = pending.remove(i);
                if method == "initialize" {
                    if let Some(v) = msg
                        .pointer("/result/protocolVersion")
                        .and_then(Value::as_str)
                    {
                        if let Ok(mut s) = shared.session.lock() {
                            s.protocol_version = Some(v.to_string());
                        }
                    }
                }
            }
        }
    }
    let _ = ctx.events.send(TransportEvent::Message(msg)).await;
}

/// Reads a whole body, refusing one above the message cap without
/// buffering it.
async fn read_capped(resp: reqwest::Response) -> Result<Vec<u8>, Failure> {
    if resp.content_length().unwrap_or(0) > MAX_MESSAGE_BYTES as u64 {
        return Err(Failure::other(format!(
            "the MCP server sent a message larger than {} MiB",
            MAX_MESSAGE_BYTES / (1024 * 1024)
        )));
    }
    let mut body = resp.bytes_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            Failure::other(format!(
                "reading the MCP server's answer failed: {}",
                describe_reqwest(&e)
            ))
        })?;
        if buf.len() + chunk.len() > MAX_MESSAGE_BYTES {
            return Err(Failure::other(format!(
                "the MCP server sent a message larger than {} MiB",
                MAX_MESSAGE_BYTES / (1024 * 1024)
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// The error for a non-2xx answer; the body is read only up to an excerpt.
async fn http_failure(shared: &Shared, resp: reqwest::Response) -> Failure {
    let status = resp.status();
    let www_authenticate = resp
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut data = json!({"httpStatus": status.as_u16()});
    if let Some(w) = &www_authenticate {
        data["wwwAuthenticate"] = Value::String(w.clone());
    }
    if status == StatusCode::UNAUTHORIZED {
        return Failure {
            code: AUTH_REQUIRED_CODE,
            message: format!(
                "HTTP 401: authentication required (run `codex mcp login {}`)",
                shared.server
            ),
            data: Some(data),
        };
    }
    let mut body = resp.bytes_stream();
    let mut buf = Vec::new();
    let read = async {
        while let Some(Ok(chunk)) = body.next().await {
            buf.extend_from_slice(&chunk);
            if buf.len() >= ERROR_EXCERPT_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
    let text = excerpt(&buf);
    let reason = status.canonical_reason().unwrap_or("");
    let message = if text.is_empty() {
        format!(
            "HTTP {}{}{reason}",
            status.as_u16(),
            if reason.is_empty() { "" } else { " " }
        )
    } else {
        format!("HTTP {}: {text}", status.as_u16())
    };
    Failure {
        code: TRANSPORT_ERROR_CODE,
        message,
        data: Some(data),
    }
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let mut end = text.len().min(ERROR_EXCERPT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut s: String = text[..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if end < text.len() {
        s.push('…');
    }
    s
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// The `GET` stream for messages the server starts. A server without one
/// (`405`, or any refusal) is fine; a stream that ends is reopened.
async fn get_stream(shared: Arc<Shared>, ctx: TaskCtx) {
    let mut failures = 0;
    while failures < GET_STREAM_ATTEMPTS && !shared.cancel.is_cancelled() {
        let opened = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            r = tokio::time::timeout(
                CONNECT_TIMEOUT,
                shared
                    .request(reqwest::Method::GET)
                    .header(ACCEPT, "text/event-stream")
                    .send(),
            ) => r,
        };
        let resp = match opened {
            Ok(Ok(r)) if r.status().is_success() => r,
            Ok(Ok(r)) => {
                tracing::debug!(
                    "mcp server {}: no GET stream (HTTP {})",
                    shared.server,
                    r.status().as_u16()
                );
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(
                    "mcp server {}: GET stream failed: {}",
                    shared.server,
                    describe_reqwest(&e)
                );
                failures += 1;
                continue;
            }
            Err(_) => {
                failures += 1;
                continue;
            }
        };
        let mut decoder = SseDecoder::new(MAX_MESSAGE_BYTES);
        let mut body = resp.bytes_stream();
        let mut delivered = false;
        let mut none = Vec::new();
        loop {
            let chunk = tokio::select! {
                _ = shared.cancel.cancelled() => return,
                c = body.next() => c,
            };
            let Some(Ok(chunk)) = chunk else { break };
            let Ok(events) = decoder.push(&chunk) else {
                let _ = ctx
                    .events
                    .send(TransportEvent::Problem(format!(
                        "MCP server `{}` sent a message larger than {} MiB on its stream",
                        shared.server,
                        MAX_MESSAGE_BYTES / (1024 * 1024)
                    )))
                    .await;
                break;
            };
            for ev in events {
                delivered = true;
                deliver_event(&shared, &ev.data, &mut none, &ctx).await;
            }
        }
        failures = if delivered { 0 } else { failures + 1 };
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(GET_STREAM_RETRY) => {}
        }
    }
}

/// Ends the session: stops every task and sends `DELETE`.
struct HttpGuard {
    shared: Option<Arc<Shared>>,
    stopped: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

/// Tells the server the session is over (bounded; a server that does not
/// allow it answers `405`, which is fine).
async fn delete_session(shared: Arc<Shared>) {
    if shared.session_id().is_none() {
        return;
    }
    let _ = tokio::time::timeout(
        DELETE_TIMEOUT,
        shared.request(reqwest::Method::DELETE).send(),
    )
    .await;
}

impl TransportGuard for HttpGuard {
    fn shutdown(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        let shared = self.shared.take();
        let stopped = self.stopped.lock().ok().and_then(|mut s| s.take());
        Box::pin(async move {
            if let Some(shared) = shared {
                shared.cancel.cancel();
                delete_session(shared).await;
            }
            if let Some(rx) = stopped {
                let _ = tokio::time::timeout(STOP_WAIT, rx).await;
            }
        })
    }
}

impl Drop for HttpGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.cancel.cancel();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(delete_session(shared));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_of_messages_and_batches() {
        let req = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
        let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
        let resp = json!({"jsonrpc":"2.0","id":"s1","result":{}});
        assert_eq!(
            request_ids(&req),
            vec![(json!(1), "tools/list".to_string())]
        );
        assert!(request_ids(&note).is_empty());
        assert!(request_ids(&resp).is_empty());
        assert_eq!(request_ids(&json!([req, note])).len(), 1);
    }

    #[test]
    fn from_config_resolves_headers_and_names_unset_variables() {
        let cfg = McpTransportConfig::StreamableHttp {
            url: "http://127.0.0.1:1/mcp".into(),
            bearer_token_env_var: None,
            http_headers: [("X-A".to_string(), "a".to_string())].into(),
            env_http_headers: [(
                "X-B".to_string(),
                "CODEX_MCP_HTTP_TEST_SURELY_UNSET".to_string(),
            )]
            .into(),
        };
        let err = HttpSpec::from_config("s", &cfg, None).unwrap_err();
        assert!(err.contains("CODEX_MCP_HTTP_TEST_SURELY_UNSET"), "{err}");
        let cfg = McpTransportConfig::StreamableHttp {
            url: "http://127.0.0.1:1/mcp".into(),
            bearer_token_env_var: None,
            http_headers: [("X-A".to_string(), "a".to_string())].into(),
            env_http_headers: Default::default(),
        };
        let spec = HttpSpec::from_config("s", &cfg, Some("tok".into())).unwrap();
        assert!(spec
            .headers
            .contains(&("Authorization".into(), "Bearer tok".into())));
        assert!(spec.headers.contains(&("X-A".into(), "a".into())));
        assert!(!format!("{spec:?}").contains("tok"));
    }

    #[test]
    fn excerpt_is_short_and_single_line() {
        let long = "x\n".repeat(500);
        let e = excerpt(long.as_bytes());
        assert!(e.len() <= ERROR_EXCERPT_BYTES + 4);
        assert!(!e.contains('\n'));
    }
}
