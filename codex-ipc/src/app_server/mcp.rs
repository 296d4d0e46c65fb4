//! The MCP methods' params and results: `mcpServerStatus/list`
//! (`McpServerStatus`), `mcpServer/tool/call`, `mcpServer/resource/read`.

use std::collections::BTreeMap;

use codex_core::mcp::{McpServerConfig, McpTransportConfig, ServerStatus};
use codex_core::protocol::McpStartupState;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `ListMcpServerStatusParams`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMcpServerStatusParams {
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

/// `ListMcpServerStatusResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMcpServerStatusResponse {
    pub data: Vec<McpServerStatusWire>,
    pub next_cursor: Option<String>,
}

/// `McpServerStatus`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServerStatusWire {
    pub name: String,
    pub auth_status: String,
    pub runtime_status: Option<String>,
    pub server_info: Option<Value>,
    pub server_capabilities: Option<Value>,
    pub http_origin: Option<String>,
    pub plugin_id: Option<String>,
    pub tools: BTreeMap<String, Value>,
    pub tools_error: Option<String>,
    pub tool_list_meta: Option<Value>,
    pub resources: Vec<Value>,
    pub resource_templates: Vec<Value>,
}

/// `McpAuthStatus` of a configured server.
pub fn auth_status(config: Option<&McpServerConfig>) -> &'static str {
    match config.map(|c| &c.transport) {
        Some(McpTransportConfig::Stdio { .. }) => "unsupported",
        Some(McpTransportConfig::StreamableHttp {
            bearer_token_env_var: Some(_),
            ..
        }) => "bearerToken",
        Some(McpTransportConfig::StreamableHttp { .. }) => "notLoggedIn",
        None => "unknown",
    }
}

fn http_origin(config: Option<&McpServerConfig>) -> Option<String> {
    match config.map(|c| &c.transport) {
        Some(McpTransportConfig::StreamableHttp { url, .. }) => url::Url::parse(url)
            .ok()
            .map(|u| u.origin().ascii_serialization()),
        _ => None,
    }
}

impl McpServerStatusWire {
    /// A server of a loaded thread.
    pub fn from_status(s: &ServerStatus, config: Option<&McpServerConfig>) -> Self {
        Self {
            name: s.name.clone(),
            auth_status: auth_status(config).into(),
            runtime_status: Some(
                match s.state {
                    McpStartupState::Starting => "starting",
                    McpStartupState::Ready => "connected",
                    McpStartupState::Failed => "failed",
                    McpStartupState::Cancelled => "cancelled",
                }
                .into(),
            ),
            server_info: s.server_info.clone(),
            server_capabilities: s.capabilities.clone(),
            http_origin: http_origin(config),
            plugin_id: None,
            tools: s
                .tools
                .iter()
                .map(|t| (t.raw_name.clone(), t.json.clone()))
                .collect(),
            tools_error: (s.state == McpStartupState::Failed)
                .then(|| s.error.clone())
                .flatten(),
            tool_list_meta: None,
            resources: Vec::new(),
            resource_templates: Vec::new(),
        }
    }

    /// A configured server outside any thread (nothing is running).
    pub fn from_config(name: &str, config: &McpServerConfig) -> Self {
        Self {
            name: name.to_string(),
            auth_status: auth_status(Some(config)).into(),
            runtime_status: (!config.enabled).then(|| "disabled".into()),
            server_info: None,
            server_capabilities: None,
            http_origin: http_origin(Some(config)),
            plugin_id: None,
            tools: BTreeMap::new(),
            tools_error: None,
            tool_list_meta: None,
            resources: Vec::new(),
            resource_templates: Vec::new(),
        }
    }
}

/// `McpServerToolCallParams`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServerToolCallParams {
    pub thread_id: String,
    pub server: String,
    pub tool: String,
    #[serde(default)]
    pub arguments: Option<Value>,
    #[serde(default, rename = "_meta")]
    pub meta: Option<Value>,
}

/// `McpResourceReadParams`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpResourceReadParams {
    pub server: String,
    pub uri: String,
    #[serde(default)]
    pub thread_id: Option<String>,
    /// Echoed in the result.
    #[serde(default)]
    pub origin_call_id: Option<String>,
    /// Sent to the server as the request's `_meta`.
    #[serde(default, rename = "_meta")]
    pub meta: Option<Value>,
    /// Apps connectors (not served: named in a warning when given).
    #[serde(default)]
    pub connector_id: Option<Value>,
    #[serde(default)]
    pub target: Option<Value>,
}

/// `McpServerOauthLoginParams`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServerOauthLoginParams {
    pub name: String,
    #[serde(default)]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    #[serde(default)]
    pub client_registration: Option<String>,
}

/// `McpServerOauthLoginResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServerOauthLoginResponse {
    pub authorization_url: String,
    pub login_id: Option<String>,
}
