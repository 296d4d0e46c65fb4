//! A thread's MCP servers: started together in the background when the
//! thread starts, offered to the model as they become ready, reloaded when
//! the configuration changes, and stopped (their trees killed) with the
//! thread.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::config::McpServerConfig;
use super::names;
use super::server::{McpServer, McpTool, ServerHost, ServerStatus};
use crate::protocol::McpStartupState;
use crate::tools::{ToolCall, ToolProvider, ToolSpec};

/// How long a turn's first model request waits for servers still starting
/// (upstream's grace). The model is told about the ones still not ready.
pub const STARTUP_GRACE: Duration = Duration::from_secs(1);

/// The tools every thread with MCP servers gets (upstream's names).
pub const LIST_RESOURCES: &str = "list_mcp_resources";
pub const LIST_RESOURCE_TEMPLATES: &str = "list_mcp_resource_templates";
pub const READ_RESOURCE: &str = "read_mcp_resource";

/// Whether a call is for MCP (a server's tool or a resource tool).
pub fn is_mcp_call(call: &ToolCall) -> bool {
    call.namespace
        .as_deref()
        .is_some_and(|n| n.starts_with(names::PREFIX))
        || call.name.starts_with(names::PREFIX)
        || matches!(
            call.name.as_str(),
            LIST_RESOURCES | LIST_RESOURCE_TEMPLATES | READ_RESOURCE
        )
}

pub struct McpManager {
    servers: Mutex<BTreeMap<String, McpServer>>,
    host: ServerHost,
    grace: Duration,
}

impl std::fmt::Debug for McpManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpManager")
            .field("servers", &self.server_names())
            .finish()
    }
}

/// A server's tool resolved from a model call.
#[derive(Debug, Clone)]
pub struct ResolvedTool {
    pub server: McpServer,
    pub tool: McpTool,
}

impl McpManager {
    /// Starts every enabled server in the background.
    pub fn start(configs: &BTreeMap<String, McpServerConfig>, host: ServerHost) -> Arc<Self> {
        let servers = configs
            .iter()
            .filter(|(_, c)| c.enabled)
            .map(|(name, c)| {
                (
                    name.clone(),
                    McpServer::spawn(name, c.clone(), host.clone()),
                )
            })
            .collect();
        Arc::new(Self {
            servers: Mutex::new(servers),
            host,
            grace: STARTUP_GRACE,
        })
    }

    fn snapshot(&self) -> Vec<McpServer> {
        self.servers
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn server_names(&self) -> Vec<String> {
        self.servers
            .lock()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.servers.lock().map(|s| s.is_empty()).unwrap_or(true)
    }

    pub fn server(&self, name: &str) -> Option<McpServer> {
        self.servers.lock().ok().and_then(|s| s.get(name).cloned())
    }

    pub fn statuses(&self) -> Vec<ServerStatus> {
        self.snapshot().iter().map(McpServer::status).collect()
    }

    /// Waits for the `required` servers: `Err` names the first that could not
    /// start (the thread must not start without it).
    pub async fn wait_required(&self) -> Result<(), String> {
        for s in self.snapshot().into_iter().filter(|s| s.config().required) {
            let deadline =
                tokio::time::Instant::now() + s.config().startup_timeout + Duration::from_secs(1);
            if let Err(e) = s.ready_client(deadline).await {
                return Err(format!(
                    "required MCP server `{}` could not start: {e}",
                    s.name()
                ));
            }
        }
        Ok(())
    }

    /// Waits until no server is starting, at most `grace`.
    pub async fn settle(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        let waits = self.snapshot().into_iter().map(|s| async move {
            let mut rx = s.subscribe();
            loop {
                if rx.borrow_and_update().state != McpStartupState::Starting {
                    return;
                }
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return },
                    _ = tokio::time::sleep_until(deadline) => return,
                }
            }
        });
        futures_util::future::join_all(waits).await;
    }

    /// Applies a new `[mcp_servers]`: removed or changed servers are
    /// stopped, new or changed ones started; unchanged ones keep running.
    pub async fn reload(&self, configs: &BTreeMap<String, McpServerConfig>) {
        let mut stop = Vec::new();
        if let Ok(mut servers) = self.servers.lock() {
            let names: Vec<String> = servers.keys().cloned().collect();
            for name in names {
                let keep = configs.get(&name).is_some_and(|c| {
                    c.enabled
                        && c == servers[&name].config()
                        && servers[&name].status().state != McpStartupState::Failed
                });
                if !keep {
                    if let Some(s) = servers.remove(&name) {
                        stop.push(s);
                    }
                }
            }
            for (name, c) in configs.iter().filter(|(_, c)| c.enabled) {
                if !servers.contains_key(name) {
                    servers.insert(
                        name.clone(),
                        McpServer::spawn(name, c.clone(), self.host.clone()),
                    );
                }
            }
        }
        for s in stop {
            s.stop().await;
        }
    }

    /// Stops every server and kills their trees.
    pub async fn shutdown(&self) {
        let all: Vec<McpServer> = self
            .servers
            .lock()
            .map(|mut s| std::mem::take(&mut *s).into_values().collect())
            .unwrap_or_default();
        futures_util::future::join_all(all.iter().map(McpServer::stop)).await;
    }

    pub fn set_turn(&self, turn_id: Option<&str>) {
        for s in self.snapshot() {
            s.set_turn(turn_id.map(str::to_string));
        }
    }

    /// The server tool a model call names (namespace + function, or the
    /// flat `mcp__SERVER__TOOL`).
    pub fn resolve(&self, namespace: Option<&str>, name: &str) -> Option<ResolvedTool> {
        for server in self.snapshot() {
            let ns = names::namespace(server.name());
            let function = match namespace {
                Some(n) if n == ns => name,
                Some(_) => continue,
                None => match name.strip_prefix(&format!("{ns}__")) {
                    Some(f) => f,
                    None => continue,
                },
            };
            // A server restarting (after a crash or a wedge) still resolves:
            // the call then waits for it instead of failing as unknown.
            let tools = server.resolvable_tools();
            let raw: Vec<String> = tools.iter().map(|t| t.raw_name.clone()).collect();
            let model_names = names::tool_names(server.name(), &raw);
            if let Some(i) = model_names.iter().position(|m| m == function) {
                return Some(ResolvedTool {
                    tool: tools[i].clone(),
                    server,
                });
            }
        }
        None
    }

    /// The `tools` entries now: one namespace per ready server with tools,
    /// and the resource tools.
    pub fn model_specs(&self) -> Vec<ToolSpec> {
        let servers = self.snapshot();
        if servers.is_empty() {
            return Vec::new();
        }
        let mut specs: Vec<ToolSpec> = resource_tool_specs();
        for s in servers {
            let status = s.status();
            if status.state != McpStartupState::Ready || status.tools.is_empty() {
                continue;
            }
            let ns = names::namespace(s.name());
            let raw: Vec<String> = status.tools.iter().map(|t| t.raw_name.clone()).collect();
            let functions: Vec<Value> = names::tool_names(s.name(), &raw)
                .into_iter()
                .zip(&status.tools)
                .map(|(name, t)| {
                    json!({
                        "type": "function",
                        "name": name,
                        "description": t.description,
                        "parameters": t.input_schema,
                        "strict": false,
                    })
                })
                .collect();
            let entry = json!({
                "type": "namespace",
                "name": ns,
                "description": format!("Tools in the {ns} namespace."),
                "tools": functions,
            });
            if let Ok(spec) = ToolSpec::from_json(entry) {
                specs.push(spec);
            }
        }
        specs
    }

    /// What the model is told about servers it cannot use right now.
    pub fn unavailable_notice(&self) -> Option<String> {
        let mut lines = Vec::new();
        for st in self.statuses() {
            match st.state {
                McpStartupState::Ready => {}
                McpStartupState::Starting => lines.push(format!(
                    "- `{}`: still starting; its tools are not available yet and will be offered once it is ready",
                    st.name
                )),
                McpStartupState::Failed | McpStartupState::Cancelled => lines.push(format!(
                    "- `{}`: not available ({})",
                    st.name,
                    st.error.as_deref().unwrap_or("it failed to start")
                )),
            }
        }
        if lines.is_empty() {
            return None;
        }
        Some(format!(
            "<mcp_server_status>\nSome configured MCP servers cannot be used right now:\n{}\n</mcp_server_status>",
            lines.join("\n")
        ))
    }
}

/// The manager as the thread's [`ToolProvider`].
#[derive(Debug, Clone)]
pub struct McpToolProvider(pub Arc<McpManager>);

impl ToolProvider for McpToolProvider {
    fn specs(&self) -> Vec<ToolSpec> {
        self.0.model_specs()
    }

    fn handles(&self, call: &ToolCall) -> bool {
        !self.0.is_empty() && is_mcp_call(call)
    }

    fn prepare(&self, turn_id: &str) -> BoxFuture<'static, ()> {
        let m = self.0.clone();
        m.set_turn(Some(turn_id));
        Box::pin(async move {
            let grace = m.grace;
            m.settle(grace).await;
        })
    }

    fn notice(&self) -> Option<String> {
        self.0.unavailable_notice()
    }
}

fn resource_tool_specs() -> Vec<ToolSpec> {
    let server = json!({"type": "string", "description": "Name of the MCP server (its key in config.toml). Leave it out to list every server's."});
    let cursor = json!({"type": "string", "description": "Cursor from a previous call's nextCursor, for the next page of one server."});
    [
        ToolSpec::function(
            LIST_RESOURCES,
            "Lists resources provided by MCP servers. Resources let servers share data that provides context to language models, such as files, database schemas, or application-specific information. Prefer resources over web search when possible.",
            json!({"type": "object", "properties": {"server": server, "cursor": cursor}, "additionalProperties": false}),
        ),
        ToolSpec::function(
            LIST_RESOURCE_TEMPLATES,
            "Lists resource templates provided by MCP servers. Parameterized resource templates let servers share data that takes parameters and provides context to language models, such as files, database schemas, or application-specific information. Prefer resource templates over web search when possible.",
            json!({"type": "object", "properties": {"server": server, "cursor": cursor}, "additionalProperties": false}),
        ),
        ToolSpec::function(
            READ_RESOURCE,
            "Read a specific resource from an MCP server given the server name and resource URI.",
            json!({
                "type": "object",
                "properties": {
                    "server": {"type": "string", "description": "MCP server name exactly as configured. Must match the 'server' field returned by list_mcp_resources."},
                    "uri": {"type": "string", "description": "Resource URI to read. Must be one of the URIs returned by list_mcp_resources."}
                },
                "required": ["server", "uri"],
                "additionalProperties": false
            }),
        ),
    ]
    .into_iter()
    .collect()
}
