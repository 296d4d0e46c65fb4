//! `[mcp_servers.NAME]`: upstream's keys, defaults and transport rules.
//!
//! The transport is chosen by the key present: `command` is a stdio child,
//! `url` a streamable HTTP server. A server whose table cannot be used (no
//! transport, both, a key of the other transport, a bad value) is left out
//! with a warning that names it and the reason; the rest still start. Keys
//! upstream has and this runtime does not act on are named in a warning.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Upstream's default deadline for a server's `initialize` + `tools/list`.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Upstream's default deadline of one `tools/call`.
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(300);

/// One configured server.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServerConfig {
    pub transport: McpTransportConfig,
    pub enabled: bool,
    /// A required server that cannot start fails the thread start.
    pub required: bool,
    pub supports_parallel_tool_calls: bool,
    pub startup_timeout: Duration,
    pub tool_timeout: Duration,
    /// Allow-list of raw MCP tool names (`None`: all).
    pub enabled_tools: Option<Vec<String>>,
    /// Deny-list, applied after the allow-list.
    pub disabled_tools: Vec<String>,
    pub default_tools_approval_mode: ApprovalMode,
    /// `[mcp_servers.N.tools.TOOL] approval_mode`.
    pub tool_approval_modes: BTreeMap<String, ApprovalMode>,
    /// OAuth: `scopes`, `oauth_resource`, `oauth.client_id`.
    pub scopes: Vec<String>,
    pub oauth_resource: Option<String>,
    pub oauth_client_id: Option<String>,
    /// `oauth.client_secret`, sent with a configured `client_id`.
    pub oauth_client_secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum McpTransportConfig {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        /// Names of variables passed through from the worker's environment.
        env_vars: Vec<String>,
        cwd: Option<PathBuf>,
    },
    StreamableHttp {
        url: String,
        bearer_token_env_var: Option<String>,
        http_headers: BTreeMap<String, String>,
        /// Header name → environment variable holding its value.
        env_http_headers: BTreeMap<String, String>,
    },
}

impl McpTransportConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            McpTransportConfig::Stdio { .. } => "stdio",
            McpTransportConfig::StreamableHttp { .. } => "streamable_http",
        }
    }
}

/// `default_tools_approval_mode` / per-tool `approval_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// Tools that declare `readOnlyHint` run; others follow the approval
    /// policy.
    #[default]
    Auto,
    /// Always ask (under `never`: refused).
    Prompt,
    /// Run without asking.
    Approve,
    /// As `auto`: read-only tools run, writes are asked for.
    Writes,
}

impl ApprovalMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::Auto => "auto",
            ApprovalMode::Prompt => "prompt",
            ApprovalMode::Approve => "approve",
            ApprovalMode::Writes => "writes",
        }
    }
}

impl McpServerConfig {
    /// The approval mode of one raw tool name.
    pub fn approval_mode(&self, tool: &str) -> ApprovalMode {
        self.tool_approval_modes
            .get(tool)
            .copied()
            .unwrap_or(self.default_tools_approval_mode)
    }

    /// Whether the raw tool name passes `enabled_tools` / `disabled_tools`.
    pub fn tool_allowed(&self, tool: &str) -> bool {
        let allowed = self
            .enabled_tools
            .as_ref()
            .map(|a| a.iter().any(|t| t == tool))
            .unwrap_or(true);
        allowed && !self.disabled_tools.iter().any(|t| t == tool)
    }

    pub fn stdio(command: impl Into<String>, args: Vec<String>) -> Self {
        Self {
            transport: McpTransportConfig::Stdio {
                command: command.into(),
                args,
                env: BTreeMap::new(),
                env_vars: Vec::new(),
                cwd: None,
            },
            enabled: true,
            required: false,
            supports_parallel_tool_calls: false,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            tool_timeout: DEFAULT_TOOL_TIMEOUT,
            enabled_tools: None,
            disabled_tools: Vec::new(),
            default_tools_approval_mode: ApprovalMode::Auto,
            tool_approval_modes: BTreeMap::new(),
            scopes: Vec::new(),
            oauth_resource: None,
            oauth_client_id: None,
            oauth_client_secret: None,
        }
    }
}

/// The raw table as upstream writes it. Every upstream key is here, so
/// that what is left over is a key upstream does not have either.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    command: Option<String>,
    args: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    env_vars: Option<Vec<RawEnvVar>>,
    cwd: Option<PathBuf>,
    url: Option<String>,
    bearer_token: Option<toml::Value>,
    bearer_token_env_var: Option<String>,
    http_headers: Option<BTreeMap<String, String>>,
    env_http_headers: Option<BTreeMap<String, String>>,
    enabled: Option<bool>,
    required: Option<bool>,
    supports_parallel_tool_calls: Option<bool>,
    startup_timeout_sec: Option<f64>,
    startup_timeout_ms: Option<u64>,
    tool_timeout_sec: Option<f64>,
    enabled_tools: Option<Vec<String>>,
    disabled_tools: Option<Vec<String>>,
    default_tools_approval_mode: Option<ApprovalMode>,
    tools: Option<BTreeMap<String, RawTool>>,
    scopes: Option<Vec<String>>,
    oauth: Option<RawOAuth>,
    oauth_resource: Option<String>,
    // Legacy or environment-selection keys upstream ignores here too.
    #[serde(rename = "experimental_environment")]
    _experimental_environment: Option<toml::Value>,
    #[serde(rename = "name")]
    _name: Option<toml::Value>,
    // Upstream keys whose semantics this runtime does not implement.
    http_headers_helper: Option<toml::Value>,
    startup_readiness: Option<toml::Value>,
    tool_input_schema_max_bytes: Option<toml::Value>,
    environment_id: Option<toml::Value>,
    auth: Option<toml::Value>,
    callback_url: Option<toml::Value>,
    callback_port: Option<toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawEnvVar {
    Name(String),
    Sourced {
        name: String,
        #[serde(default)]
        source: Option<String>,
    },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    approval_mode: Option<ApprovalMode>,
    output_token_limit: Option<toml::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawOAuth {
    client_id: Option<String>,
    client_secret: Option<String>,
    /// Written by `codex mcp add` (upstream's): the redirect URI to register
    /// with the provider; informational here.
    #[serde(rename = "callback_url")]
    _callback_url: Option<String>,
    #[serde(flatten)]
    rest: BTreeMap<String, toml::Value>,
}

/// Reads `[mcp_servers]`: the usable servers, and a warning for every key or
/// server that is not acted on.
pub fn parse_servers(table: &toml::Table) -> (BTreeMap<String, McpServerConfig>, Vec<String>) {
    let mut servers = BTreeMap::new();
    let mut warnings = Vec::new();
    for (name, value) in table {
        match parse_server(name, value, &mut warnings) {
            Ok(cfg) => {
                servers.insert(name.clone(), cfg);
            }
            Err(reason) => warnings.push(format!(
                "[mcp_servers.{name}]: {reason}; this server is not started"
            )),
        }
    }
    (servers, warnings)
}

fn parse_server(
    name: &str,
    value: &toml::Value,
    warnings: &mut Vec<String>,
) -> Result<McpServerConfig, String> {
    let raw: RawServer = value
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())?;
    let at = |key: &str| format!("[mcp_servers.{name}] `{key}`");
    let transport = match (&raw.command, &raw.url) {
        (Some(_), Some(_)) => {
            return Err("invalid transport: both `command` and `url` are set".into())
        }
        (None, None) => {
            return Err(
                "invalid transport: set `command` (stdio) or `url` (streamable HTTP)".into(),
            )
        }
        (Some(command), None) => {
            for (key, set) in [
                ("bearer_token_env_var", raw.bearer_token_env_var.is_some()),
                ("http_headers", raw.http_headers.is_some()),
                ("env_http_headers", raw.env_http_headers.is_some()),
                ("bearer_token", raw.bearer_token.is_some()),
                ("scopes", raw.scopes.is_some()),
                ("oauth", raw.oauth.is_some()),
                ("oauth_resource", raw.oauth_resource.is_some()),
            ] {
                if set {
                    return Err(format!("`{key}` is not supported for stdio"));
                }
            }
            let mut env_vars = Vec::new();
            for v in raw.env_vars.clone().unwrap_or_default() {
                match v {
                    RawEnvVar::Name(n) => env_vars.push(n),
                    RawEnvVar::Sourced { name: n, source } => {
                        if source.as_deref().is_some_and(|s| s != "local") {
                            warnings.push(format!(
                                "{}: source `{}` of `{n}` is not supported (remote environments do not exist here); read locally",
                                at("env_vars"),
                                source.unwrap_or_default()
                            ));
                        }
                        env_vars.push(n);
                    }
                }
            }
            if command.trim().is_empty() {
                return Err("`command` is empty".into());
            }
            McpTransportConfig::Stdio {
                command: command.clone(),
                args: raw.args.clone().unwrap_or_default(),
                env: raw.env.clone().unwrap_or_default(),
                env_vars,
                cwd: raw.cwd.clone(),
            }
        }
        (None, Some(url)) => {
            for (key, set) in [
                ("args", raw.args.is_some()),
                ("env", raw.env.is_some()),
                ("env_vars", raw.env_vars.is_some()),
                ("cwd", raw.cwd.is_some()),
            ] {
                if set {
                    return Err(format!("`{key}` is not supported for streamable_http"));
                }
            }
            if raw.bearer_token.is_some() {
                return Err(
                    "`bearer_token` is not supported: put the token in an environment variable and name it in `bearer_token_env_var`".into(),
                );
            }
            url::Url::parse(url).map_err(|e| format!("`url` {url:?} is not a URL: {e}"))?;
            McpTransportConfig::StreamableHttp {
                url: url.clone(),
                bearer_token_env_var: raw.bearer_token_env_var.clone(),
                http_headers: raw.http_headers.clone().unwrap_or_default(),
                env_http_headers: raw.env_http_headers.clone().unwrap_or_default(),
            }
        }
    };
    let secs = |key: &str, v: f64| -> Result<Duration, String> {
        Duration::try_from_secs_f64(v)
            .map_err(|_| format!("`{key}` must be a non-negative number of seconds, not {v}"))
    };
    let startup_timeout = match (raw.startup_timeout_ms, raw.startup_timeout_sec) {
        (_, Some(s)) => secs("startup_timeout_sec", s)?,
        (Some(ms), None) => Duration::from_millis(ms),
        (None, None) => DEFAULT_STARTUP_TIMEOUT,
    };
    let tool_timeout = match raw.tool_timeout_sec {
        Some(s) => secs("tool_timeout_sec", s)?,
        None => DEFAULT_TOOL_TIMEOUT,
    };
    let mut tool_approval_modes = BTreeMap::new();
    for (tool, t) in raw.tools.clone().unwrap_or_default() {
        if let Some(m) = t.approval_mode {
            tool_approval_modes.insert(tool.clone(), m);
        }
        if t.output_token_limit.is_some() {
            warnings.push(format!(
                "[mcp_servers.{name}.tools.{tool}] `output_token_limit` is not supported (ignored): tool_output_token_limit applies"
            ));
        }
    }
    for (key, set) in [
        ("http_headers_helper", raw.http_headers_helper.is_some()),
        ("startup_readiness", raw.startup_readiness.is_some()),
        (
            "tool_input_schema_max_bytes",
            raw.tool_input_schema_max_bytes.is_some(),
        ),
        ("environment_id", raw.environment_id.is_some()),
        ("auth", raw.auth.is_some()),
        ("callback_url", raw.callback_url.is_some()),
        ("callback_port", raw.callback_port.is_some()),
    ] {
        if set {
            warnings.push(format!("{} is not supported (ignored)", at(key)));
        }
    }
    if raw.supports_parallel_tool_calls == Some(true) {
        warnings.push(format!(
            "{} = true is not acted on: a turn runs its calls one at a time",
            at("supports_parallel_tool_calls")
        ));
    }
    if let Some(o) = &raw.oauth {
        for k in o.rest.keys() {
            warnings.push(format!(
                "{} is not supported (ignored)",
                at(&format!("oauth.{k}"))
            ));
        }
    }
    Ok(McpServerConfig {
        transport,
        enabled: raw.enabled.unwrap_or(true),
        required: raw.required.unwrap_or(false),
        supports_parallel_tool_calls: raw.supports_parallel_tool_calls.unwrap_or(false),
        startup_timeout,
        tool_timeout,
        enabled_tools: raw.enabled_tools.clone(),
        disabled_tools: raw.disabled_tools.clone().unwrap_or_default(),
        default_tools_approval_mode: raw.default_tools_approval_mode.unwrap_or_default(),
        tool_approval_modes,
        scopes: raw.scopes.clone().unwrap_or_default(),
        oauth_resource: raw.oauth_resource.clone(),
        oauth_client_id: raw.oauth.as_ref().and_then(|o| o.client_id.clone()),
        oauth_client_secret: raw.oauth.as_ref().and_then(|o| o.client_secret.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (BTreeMap<String, McpServerConfig>, Vec<String>) {
        let t: toml::Table = toml::from_str(text).unwrap();
        parse_servers(t["mcp_servers"].as_table().unwrap())
    }

    #[test]
    fn stdio_and_http_with_upstream_defaults() {
        let (s, w) = parse(
            r#"
[mcp_servers.echo]
command = "python3"
args = ["echo.py"]
env = { A = "1" }
env_vars = ["HOME", { name = "TOKEN", source = "local" }]
disabled_tools = ["hidden-tool"]
startup_timeout_sec = 20
tool_timeout_sec = 2.5
[mcp_servers.echo.tools.echo_text]
approval_mode = "approve"
[mcp_servers.docs]
url = "http://127.0.0.1:9/mcp"
bearer_token_env_var = "DOCS_TOKEN"
startup_timeout_ms = 1500
"#,
        );
        assert!(w.is_empty(), "{w:?}");
        let echo = &s["echo"];
        assert_eq!(echo.startup_timeout, Duration::from_secs(20));
        assert_eq!(echo.tool_timeout, Duration::from_millis(2500));
        assert!(echo.enabled && !echo.required);
        assert!(!echo.tool_allowed("hidden-tool") && echo.tool_allowed("echo_text"));
        assert_eq!(echo.approval_mode("echo_text"), ApprovalMode::Approve);
        assert_eq!(echo.approval_mode("other"), ApprovalMode::Auto);
        match &echo.transport {
            McpTransportConfig::Stdio { env_vars, .. } => assert_eq!(env_vars, &["HOME", "TOKEN"]),
            other => panic!("{other:?}"),
        }
        let docs = &s["docs"];
        assert_eq!(docs.startup_timeout, Duration::from_millis(1500));
        assert_eq!(docs.tool_timeout, DEFAULT_TOOL_TIMEOUT);
        assert_eq!(docs.transport.kind(), "streamable_http");
    }

    #[test]
    fn unusable_servers_and_unserved_keys_are_named() {
        let (s, w) = parse(
            r#"
[mcp_servers.both]
command = "x"
url = "http://x"
[mcp_servers.none]
args = ["a"]
[mcp_servers.mixed]
command = "x"
http_headers = { A = "b" }
[mcp_servers.inline]
url = "http://x"
bearer_token = "secret"
[mcp_servers.typo]
command = "x"
comand = "y"
[mcp_servers.helper]
command = "x"
startup_readiness = "eager"
supports_parallel_tool_calls = true
"#,
        );
        assert_eq!(s.keys().collect::<Vec<_>>(), ["helper"]);
        let all = w.join("\n");
        assert!(
            all.contains("[mcp_servers.both]: invalid transport"),
            "{all}"
        );
        assert!(
            all.contains("[mcp_servers.none]: invalid transport"),
            "{all}"
        );
        assert!(
            all.contains("`http_headers` is not supported for stdio"),
            "{all}"
        );
        assert!(all.contains("`bearer_token` is not supported"), "{all}");
        assert!(all.contains("unknown field `comand`"), "{all}");
        assert!(
            all.contains("[mcp_servers.helper] `startup_readiness` is not supported"),
            "{all}"
        );
    }
}
