//! One configured server under supervision: started in the background,
//! restarted with backoff when it crashes or stops answering, its tools
//! re-listed when it says they changed, and killed (its whole tree) when
//! the thread lets it go.
//!
//! States: `starting` → `ready` | `failed`. A server that was ready and
//! then crashed or wedged is restarted (`starting` again) up to
//! [`MAX_RESTARTS`] times in a row; one that never became ready, or ran out
//! of restarts, stays `failed` until a reload.
//!
//! Wedge detection: a call that times out is a suspicion, not a verdict (a
//! slow tool is allowed); the server is then pinged with a short deadline,
//! and one that does not answer a ping either is killed and restarted.
//! Calls made meanwhile wait for the verdict (the suspect's connection is
//! withheld until the ping answers), so they go to a live server, the old
//! one or its replacement, rather than into the wedge.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::client::{McpClient, McpError, ServerRequests};
use super::config::{McpServerConfig, McpTransportConfig};
use super::stdio::{self, StdioSpec};
use super::transport::{Transport, TransportError};
use crate::approval::{ApprovalHandler, ElicitationRequest};
use crate::protocol::McpStartupState;

/// Restarts in a row (without a stable minute between them) before a server
/// is left `failed`.
pub const MAX_RESTARTS: u32 = 5;
/// A server up this long has its restart count forgiven.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// The longest wait between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest a wedge probe (`ping`) waits.
const MAX_PROBE: Duration = Duration::from_secs(5);

/// One tool as the server listed it.
#[derive(Debug, Clone, PartialEq)]
pub struct McpTool {
    /// The server's own name for it.
    pub raw_name: String,
    pub description: String,
    pub input_schema: Value,
    pub read_only: bool,
    /// The entry as listed (for `mcpServerStatus/list`).
    pub json: Value,
}

impl McpTool {
    fn from_json(v: &Value) -> Option<Self> {
        let raw_name = v.get("name")?.as_str()?.to_string();
        Some(Self {
            description: v
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            input_schema: v
                .get("inputSchema")
                .cloned()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            read_only: v
                .pointer("/annotations/readOnlyHint")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            json: v.clone(),
            raw_name,
        })
    }
}

/// A server's state as the thread sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStatus {
    pub name: String,
    pub state: McpStartupState,
    pub error: Option<String>,
    /// Tools that pass the server's filters (only when ready).
    pub tools: Vec<McpTool>,
    pub server_info: Option<Value>,
    pub capabilities: Option<Value>,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub transport: &'static str,
    pub required: bool,
}

/// What a server needs from its thread.
#[derive(Clone)]
pub struct ServerHost {
    pub thread_id: String,
    pub cwd: PathBuf,
    pub approvals: Arc<dyn ApprovalHandler>,
    /// Called on every state change.
    pub on_status: Arc<dyn Fn(&ServerStatus) + Send + Sync>,
    /// An OAuth access token for an HTTP server, if one is stored.
    /// OAuth access tokens of HTTP servers.
    pub oauth_tokens: Arc<dyn super::oauth::McpTokenSource>,
}

struct Shared {
    name: String,
    config: McpServerConfig,
    host: ServerHost,
    status: watch::Sender<ServerStatus>,
    /// The connection calls may use: empty while starting, and while a
    /// suspect is probed. A watch so that waiting callers see it return.
    client: watch::Sender<Option<McpClient>>,
    /// The tools of the last time the server was ready: calls the model
    /// makes while it restarts resolve against them (and then wait for it).
    known_tools: Mutex<Vec<McpTool>>,
    wedged: Notify,
    tools_changed: Notify,
    stop: CancellationToken,
    /// The turn an elicitation belongs to (the one running).
    turn_id: Mutex<Option<String>>,
}

/// A supervised server. Dropping the last handle does not stop it:
/// [`McpServer::stop`] does (the manager calls it).
#[derive(Clone)]
pub struct McpServer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.shared.name)
            .field("state", &self.shared.status.borrow().state)
            .finish()
    }
}

impl McpServer {
    /// Starts supervising `config` (in the background).
    pub fn spawn(name: &str, config: McpServerConfig, host: ServerHost) -> Self {
        let initial = ServerStatus {
            name: name.to_string(),
            state: McpStartupState::Starting,
            error: None,
            tools: Vec::new(),
            server_info: None,
            capabilities: None,
            pid: None,
            restarts: 0,
            transport: config.transport.kind(),
            required: config.required,
        };
        let (status, _) = watch::channel(initial);
        let shared = Arc::new(Shared {
            name: name.to_string(),
            config,
            host,
            status,
            client: watch::channel(None).0,
            known_tools: Mutex::new(Vec::new()),
            wedged: Notify::new(),
            tools_changed: Notify::new(),
            stop: CancellationToken::new(),
            turn_id: Mutex::new(None),
        });
        tokio::spawn(supervise(shared.clone()));
        Self { shared }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn config(&self) -> &McpServerConfig {
        &self.shared.config
    }

    pub fn status(&self) -> ServerStatus {
        self.shared.status.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<ServerStatus> {
        self.shared.status.subscribe()
    }

    /// The tools a model call may name: the current ones when ready, else
    /// those of the last time it was (a restart in progress, or a server
    /// that failed after it ran: the call then fails with the reason).
    pub fn resolvable_tools(&self) -> Vec<McpTool> {
        let status = self.status();
        if status.state == McpStartupState::Ready {
            return status.tools;
        }
        self.shared
            .known_tools
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default()
    }

    pub fn set_turn(&self, turn_id: Option<String>) {
        if let Ok(mut t) = self.shared.turn_id.lock() {
            *t = turn_id;
        }
    }

    /// Waits until the server is ready (its client) or has failed (the
    /// reason), at most until `deadline`.
    pub async fn ready_client(&self, deadline: tokio::time::Instant) -> Result<McpClient, String> {
        let mut rx = self.subscribe();
        let mut slot = self.shared.client.subscribe();
        loop {
            let state = rx.borrow_and_update().clone();
            match state.state {
                McpStartupState::Ready => {
                    // Not a suspect's (withheld) nor a closed connection the
                    // supervisor has yet to replace.
                    let c = slot.borrow_and_update().clone();
                    if let Some(c) = c.filter(|c| c.closed_reason().is_none()) {
                        return Ok(c);
                    }
                }
                McpStartupState::Failed | McpStartupState::Cancelled => {
                    return Err(state.error.unwrap_or_else(|| "the server failed".into()))
                }
                McpStartupState::Starting => {}
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() {
                    return Err("the server was stopped".into());
                },
                r = slot.changed() => if r.is_err() {
                    return Err("the server was stopped".into());
                },
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(format!("MCP server `{}` is still starting", self.shared.name));
                }
            }
        }
    }

    /// A call timed out: probe the server, and restart it if it does not
    /// answer a ping either.
    pub fn suspect(&self) {
        // Withheld from new calls until the verdict (a second suspicion
        // while probing finds the slot empty and adds nothing).
        let mut taken = None;
        self.shared.client.send_if_modified(|c| {
            taken = c.take();
            taken.is_some()
        });
        let Some(client) = taken else {
            return;
        };
        let probe = self.shared.config.tool_timeout.min(MAX_PROBE);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            match client.request("ping", json!({}), probe).await {
                Err(McpError::Timeout(_)) => {
                    tracing::warn!(
                        "mcp server {}: a call timed out and a ping got no answer within {}s; restarting it",
                        shared.name,
                        probe.as_secs_f64()
                    );
                    shared.wedged.notify_one();
                }
                // Alive (or closed: the supervisor sees that itself): give
                // it back unless something replaced it meanwhile.
                _ => {
                    shared.client.send_if_modified(|c| {
                        let back = c.is_none()
                            && client.closed_reason().is_none()
                            && !shared.stop.is_cancelled();
                        if back {
                            *c = Some(client);
                        }
                        back
                    });
                }
            }
        });
    }

    /// Stops supervising and kills the server's tree (bounded wait).
    pub async fn stop(&self) {
        self.shared.stop.cancel();
        let client = self.shared.client.send_replace(None);
        if let Some(c) = client {
            c.shutdown().await;
        }
    }
}

fn set_status(shared: &Shared, f: impl FnOnce(&mut ServerStatus)) {
    let mut snapshot = None;
    shared.status.send_modify(|s| {
        let before = (s.state, s.error.clone());
        f(s);
        if (s.state, s.error.clone()) != before {
            snapshot = Some(s.clone());
        }
    });
    if let Some(s) = snapshot {
        (shared.host.on_status)(&s);
    }
}

fn backoff(n: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << n.min(8))).min(MAX_BACKOFF)
}

async fn supervise(shared: Arc<Shared>) {
    let mut restarts = 0u32;
    let mut was_ready = false;
    (shared.host.on_status)(&shared.status.borrow().clone());
    loop {
        if shared.stop.is_cancelled() {
            return;
        }
        let started = tokio::select! {
            r = start_once(&shared) => r,
            _ = shared.stop.cancelled() => return,
        };
        let client = match started {
            Ok(c) => c,
            Err(reason) => {
                if was_ready && restarts < MAX_RESTARTS {
                    restarts += 1;
                    tracing::warn!(
                        "mcp server {}: restart failed ({reason}); retrying",
                        shared.name
                    );
                    if wait_or_stop(&shared, backoff(restarts)).await {
                        return;
                    }
                    continue;
                }
                set_status(&shared, |s| {
                    s.state = McpStartupState::Failed;
                    s.error = Some(reason);
                    s.tools.clear();
                    s.pid = None;
                });
                return;
            }
        };
        was_ready = true;
        let up_since = Instant::now();
        let ended = loop {
            tokio::select! {
                r = client.closed() => break r,
                _ = shared.wedged.notified() => break "the server stopped answering (a call timed out and a ping went unanswered)".to_string(),
                _ = shared.tools_changed.notified() => {
                    let deadline = tokio::time::Instant::now() + shared.config.startup_timeout;
                    match list_tools(&shared, &client, deadline).await {
                        Ok(tools) => {
                            remember_tools(&shared, &tools);
                            set_status(&shared, |s| s.tools = tools);
                        }
                        Err(e) => tracing::warn!("mcp server {}: re-listing tools failed: {e}", shared.name),
                    }
                    // Tools changing does not change the state: tell anyway.
                    (shared.host.on_status)(&shared.status.borrow().clone());
                }
                _ = shared.stop.cancelled() => {
                    client.shutdown().await;
                    return;
                }
            }
        };
        shared.client.send_replace(None);
        client.shutdown().await;
        if up_since.elapsed() >= STABLE_AFTER {
            restarts = 0;
        }
        if restarts >= MAX_RESTARTS {
            set_status(&shared, |s| {
                s.state = McpStartupState::Failed;
                s.error = Some(format!(
                    "{ended}; not restarted again after {MAX_RESTARTS} restarts"
                ));
                s.tools.clear();
                s.pid = None;
            });
            return;
        }
        restarts += 1;
        tracing::warn!(
            "mcp server {}: {ended}; restart {restarts}/{MAX_RESTARTS}",
            shared.name
        );
        set_status(&shared, |s| {
            s.state = McpStartupState::Starting;
            s.error = Some(ended.clone());
            s.restarts = restarts;
            s.tools.clear();
            s.pid = None;
        });
        if wait_or_stop(&shared, backoff(restarts - 1)).await {
            return;
        }
    }
}

/// Sleeps; `true` when the server was stopped meanwhile.
async fn wait_or_stop(shared: &Shared, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = shared.stop.cancelled() => true,
    }
}

/// Connects, initializes and lists tools within `startup_timeout`.
async fn start_once(shared: &Arc<Shared>) -> Result<McpClient, String> {
    let timeout = shared.config.startup_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let token = match &shared.config.transport {
        // A bearer token from the environment wins over OAuth (upstream's
        // rule): no need to ask for one.
        McpTransportConfig::StreamableHttp {
            url,
            bearer_token_env_var: None,
            ..
        } => tokio::time::timeout_at(deadline, shared.host.oauth_tokens.token(&shared.name, url))
            .await
            .ok()
            .flatten(),
        _ => None,
    };
    let transport = open_transport(shared, token).map_err(|e| e.0)?;
    let host: Arc<dyn ServerRequests> = Arc::new(Requests {
        shared: Arc::downgrade(shared),
    });
    let client = McpClient::new(&shared.name, transport, host);
    let attempt = async {
        let init = client.initialize(timeout).await?;
        let tools = list_tools(shared, &client, deadline).await?;
        Ok::<_, McpError>((init, tools))
    };
    let outcome = tokio::time::timeout_at(deadline, attempt).await;
    match outcome {
        Ok(Ok((init, tools))) => {
            remember_tools(shared, &tools);
            shared.client.send_replace(Some(client.clone()));
            set_status(shared, |s| {
                s.state = McpStartupState::Ready;
                s.error = None;
                s.tools = tools;
                s.server_info = init.get("serverInfo").cloned();
                s.capabilities = init.get("capabilities").cloned();
                s.pid = client.pid();
            });
            Ok(client)
        }
        Ok(Err(e)) => {
            client.shutdown().await;
            Err(startup_error(&shared.name, &e, timeout))
        }
        Err(_) => {
            client.shutdown().await;
            Err(startup_error(
                &shared.name,
                &McpError::Timeout(timeout),
                timeout,
            ))
        }
    }
}

fn remember_tools(shared: &Shared, tools: &[McpTool]) {
    if let Ok(mut t) = shared.known_tools.lock() {
        *t = tools.to_vec();
    }
}

fn startup_error(name: &str, e: &McpError, timeout: Duration) -> String {
    match e {
        McpError::Timeout(_) => format!(
            "MCP server `{name}` did not start within {}s (raise `startup_timeout_sec` in [mcp_servers.{name}] if it needs longer)",
            timeout.as_secs_f64()
        ),
        other => format!("MCP server `{name}` failed to start: {other}"),
    }
}

async fn list_tools(
    shared: &Shared,
    client: &McpClient,
    deadline: tokio::time::Instant,
) -> Result<Vec<McpTool>, McpError> {
    let listed = client.list_all("tools/list", "tools", deadline).await?;
    Ok(listed
        .iter()
        .filter_map(McpTool::from_json)
        .filter(|t| shared.config.tool_allowed(&t.raw_name))
        .collect())
}

fn open_transport(shared: &Shared, token: Option<String>) -> Result<Transport, TransportError> {
    match &shared.config.transport {
        McpTransportConfig::Stdio {
            command,
            args,
            env,
            env_vars,
            cwd,
        } => stdio::spawn(&StdioSpec {
            server: shared.name.clone(),
            command: command.clone(),
            args: args.clone(),
            env: env.clone(),
            env_vars: env_vars.clone(),
            cwd: cwd
                .as_ref()
                .map(|c| shared.host.cwd.join(c))
                .unwrap_or_else(|| shared.host.cwd.clone()),
        }),
        McpTransportConfig::StreamableHttp { .. } => {
            let spec =
                super::http::HttpSpec::from_config(&shared.name, &shared.config.transport, token)
                    .map_err(TransportError)?;
            super::http::connect(&spec)
        }
    }
}

/// The server's requests, answered for its thread.
struct Requests {
    shared: std::sync::Weak<Shared>,
}

impl ServerRequests for Requests {
    fn elicit(&self, params: Value) -> BoxFuture<'static, Result<Value, String>> {
        let Some(shared) = self.shared.upgrade() else {
            return Box::pin(async { Err("the server is being stopped".to_string()) });
        };
        let turn_id = shared.turn_id.lock().ok().and_then(|t| t.clone());
        let request = ElicitationRequest {
            server: shared.name.clone(),
            turn_id,
            mode: params
                .get("mode")
                .and_then(Value::as_str)
                .unwrap_or("form")
                .to_string(),
            message: params
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            requested_schema: params.get("requestedSchema").cloned(),
            url: params
                .get("url")
                .and_then(Value::as_str)
                .map(str::to_string),
            elicitation_id: params
                .get("elicitationId")
                .and_then(Value::as_str)
                .map(str::to_string),
            meta: params.get("_meta").cloned(),
        };
        let answer = shared.host.approvals.elicit(request);
        Box::pin(async move {
            let a = answer.await;
            let mut v = json!({"action": a.action});
            if let Some(c) = a.content {
                v["content"] = c;
            }
            if let Some(m) = a.meta {
                v["_meta"] = m;
            }
            Ok(v)
        })
    }

    fn tools_changed(&self) {
        if let Some(s) = self.shared.upgrade() {
            s.tools_changed.notify_one();
        }
    }

    fn roots(&self) -> Vec<String> {
        self.shared
            .upgrade()
            .map(|s| vec![s.host.cwd.display().to_string()])
            .unwrap_or_default()
    }
}
