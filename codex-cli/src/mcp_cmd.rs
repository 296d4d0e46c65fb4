//! `codex mcp list|get|add|remove|login|logout`: the `[mcp_servers]` of
//! `config.toml`, shown and edited as upstream 0.169 does (its messages,
//! JSON shapes, tables, exit codes and the file layout it writes). Edits go
//! through `codex_core::config::write`, so the rest of the file, comments
//! included, is kept.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use codex_core::config::write::{self, Entry};
use codex_core::config::{
    find_codex_home, read_config_file, CliOverride, Config, ConfigOverrides, LoadOptions,
    TomlTable, CONFIG_FILE_NAME,
};
use codex_core::mcp::{McpServerConfig, McpTransportConfig};
use serde::Serialize;
use serde_json::Value;

#[derive(Args, Debug)]
pub struct McpArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: McpCommand,
}

/// The flags every `codex mcp` subcommand takes, as upstream's do.
#[derive(Args, Debug, Default)]
pub struct CommonArgs {
    /// Override a config value: `-c key=value` (dotted path; value parsed
    /// as TOML, else taken as a string).
    #[arg(short = 'c', long = "config", value_name = "key=value")]
    config: Vec<String>,
    /// Enable a feature (repeatable): `-c features.<name>=true`.
    #[arg(long = "enable", value_name = "FEATURE")]
    enable: Vec<String>,
    /// Disable a feature (repeatable): `-c features.<name>=false`.
    #[arg(long = "disable", value_name = "FEATURE")]
    disable: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum McpCommand {
    /// List the configured MCP servers.
    List(ListArgs),
    /// Show one configured MCP server.
    Get(GetArgs),
    /// Add (or replace) a global MCP server in config.toml.
    Add(AddArgs),
    /// Remove a global MCP server from config.toml.
    Remove(RemoveArgs),
    /// Sign in to an MCP server with OAuth.
    Login(LoginArgs),
    /// Remove the stored OAuth credentials of an MCP server.
    Logout(LogoutArgs),
}

#[derive(Args, Debug)]
struct ListArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Output the configured servers as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct GetArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Name of the MCP server to display
    name: String,
    /// Output the server configuration as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
#[command(
    group(clap::ArgGroup::new("transport").required(true).args(["command", "url"])),
    override_usage = "codex mcp add [OPTIONS] <NAME> (--url <URL> | -- <COMMAND>...)"
)]
struct AddArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Name for the MCP server configuration
    name: String,
    /// Environment variables to set when launching the server. Only valid
    /// with stdio servers
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    env: Vec<(String, String)>,
    /// URL for a streamable HTTP MCP server
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Optional environment variable to read for a bearer token. Only valid
    /// with streamable HTTP servers
    #[arg(
        long,
        value_name = "ENV_VAR",
        requires = "url",
        conflicts_with = "command"
    )]
    bearer_token_env_var: Option<String>,
    /// Optional OAuth client identifier to use for this MCP server
    #[arg(
        long,
        value_name = "CLIENT_ID",
        requires = "url",
        conflicts_with = "command"
    )]
    oauth_client_id: Option<String>,
    /// Optional OAuth client secret for the pre-registered client
    #[arg(long, value_name = "CLIENT_SECRET", requires = "oauth_client_id")]
    oauth_client_secret: Option<String>,
    /// OAuth client-registration strategy for the immediate login only
    #[arg(
        long,
        value_name = "AUTO|CIMD|DCR",
        value_enum,
        requires = "url",
        conflicts_with = "command"
    )]
    oauth_client_registration: Option<ClientRegistration>,
    /// Optional OAuth resource parameter to include during MCP login
    #[arg(
        long,
        value_name = "RESOURCE",
        requires = "url",
        conflicts_with = "command"
    )]
    oauth_resource: Option<String>,
    /// Command to launch the MCP server. Use --url for a streamable HTTP
    /// server
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Args, Debug)]
struct RemoveArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Name of the MCP server configuration to remove
    name: String,
}

/// `codex mcp login`'s flags as upstream has them; the OAuth flow plugs in
/// at [`login`].
#[derive(Args, Debug)]
pub struct LoginArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Name of the MCP server to authenticate with oauth
    pub name: String,
    /// Print the authorization URL and accept the callback URL without
    /// opening a browser
    #[arg(long)]
    pub no_browser: bool,
    /// Comma-separated list of OAuth scopes to request
    #[arg(long, value_name = "SCOPE,SCOPE", value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// OAuth client-registration strategy for this login only
    #[arg(long, value_name = "AUTO|CIMD|DCR", value_enum)]
    pub oauth_client_registration: Option<ClientRegistration>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Name of the MCP server to deauthenticate
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientRegistration {
    Auto,
    Cimd,
    Dcr,
}

pub fn main(args: McpArgs) -> i32 {
    crate::logging::init("error");
    // `-c` may come before the subcommand and after it; upstream applies
    // both, in that order.
    let parent = args.common;
    let result = match args.command {
        McpCommand::List(a) => list(&parent.then(&a.common), a),
        McpCommand::Get(a) => get(&parent.then(&a.common), a),
        McpCommand::Add(a) => add(&parent.then(&a.common), a),
        McpCommand::Remove(a) => remove(&parent.then(&a.common), a),
        McpCommand::Login(a) => return login(cli_overrides(&parent.then(&a.common)), a),
        McpCommand::Logout(a) => return logout(cli_overrides(&parent.then(&a.common)), a),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e:#}");
            1
        }
    }
}

impl CommonArgs {
    fn then(&self, later: &CommonArgs) -> CommonArgs {
        let cat = |a: &[String], b: &[String]| [a, b].concat();
        CommonArgs {
            config: cat(&self.config, &later.config),
            enable: cat(&self.enable, &later.enable),
            disable: cat(&self.disable, &later.disable),
        }
    }
}

/// `codex mcp login NAME`: the OAuth helper replaces this body (the
/// overrides are parsed already; `Err` is a bad `-c`).
fn login(overrides: anyhow::Result<Vec<CliOverride>>, args: LoginArgs) -> i32 {
    use codex_core::auth::{BrokerEvent, BrokerRequest, BrokerResponse};
    let name = args.name.clone();
    // The server must exist and be an HTTP one (checked with the overrides).
    let checked = overrides.and_then(|o| load(&args.common, o));
    match checked {
        Err(e) => {
            eprintln!("Error: {e:#}");
            return 1;
        }
        Ok(config) => match config.mcp_servers.get(&name).map(|c| &c.transport) {
            None => {
                eprintln!("Error: No MCP server named '{name}' found.");
                return 1;
            }
            Some(McpTransportConfig::Stdio { .. }) => {
                eprintln!("Error: OAuth login is only supported for streamable HTTP servers.");
                return 1;
            }
            Some(McpTransportConfig::StreamableHttp { .. }) => {}
        },
    }
    if let Some(r) = args.oauth_client_registration {
        if r != ClientRegistration::Auto {
            eprintln!(
                "codex mcp: warning: --oauth-client-registration {r:?} is not supported; dynamic registration is used unless [mcp_servers.{name}.oauth] client_id is set"
            );
        }
    }
    let Some((broker, rt)) = broker_and_runtime() else {
        return 1;
    };
    rt.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        broker.set_event_sink(tx);
        let scopes = (!args.scopes.is_empty()).then(|| args.scopes.clone());
        let started = match broker
            .handle(BrokerRequest::McpLoginStart {
                server: name.clone(),
                scopes,
            })
            .await
        {
            Ok(BrokerResponse::LoginStarted(s)) => s,
            Ok(other) => {
                eprintln!("Error: unexpected answer {other:?}");
                return 1;
            }
            Err(e) => {
                eprintln!("Error: {e}");
                return 1;
            }
        };
        let url = started.auth_url.unwrap_or_default();
        println!("Authorize `{name}` by opening this URL in your browser:\n{url}\n");
        if !args.no_browser && !codex_core::mcp::oauth::open_browser(&url) {
            eprintln!("(no browser could be opened; open the URL yourself)");
        }
        // The broker's login has its own deadline (upstream's 300 s).
        let deadline = std::time::Duration::from_secs(330);
        loop {
            match tokio::time::timeout(deadline, rx.recv()).await {
                Ok(Some(BrokerEvent::McpLoginCompleted {
                    login_id,
                    success,
                    error,
                    ..
                })) if login_id == started.login_id => {
                    if success {
                        println!("Successfully logged in to MCP server '{name}'.");
                        return 0;
                    }
                    eprintln!(
                        "Error: login to '{name}' failed: {}",
                        error.unwrap_or_default()
                    );
                    return 1;
                }
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => {
                    eprintln!("Error: the login to '{name}' did not complete");
                    return 1;
                }
            }
        }
    })
}

/// `codex mcp logout NAME`: the broker deletes the server's stored tokens.
fn logout(overrides: anyhow::Result<Vec<CliOverride>>, args: LogoutArgs) -> i32 {
    use codex_core::auth::{BrokerRequest, BrokerResponse};
    if let Err(e) = overrides.and_then(|o| load(&args.common, o)) {
        eprintln!("Error: {e:#}");
        return 1;
    }
    let Some((broker, rt)) = broker_and_runtime() else {
        return 1;
    };
    let name = args.name.clone();
    match rt.block_on(broker.handle(BrokerRequest::McpLogout {
        server: name.clone(),
    })) {
        Ok(BrokerResponse::McpLoggedOut { found: true }) => {
            println!("Removed OAuth credentials for '{name}'.");
            0
        }
        Ok(_) => {
            println!("No OAuth credentials stored for '{name}'.");
            0
        }
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

/// The credential broker (the one writer of credentials) and a runtime to
/// ask it on; `None` after saying why not.
fn broker_and_runtime() -> Option<(codex_core::auth::LocalBroker, tokio::runtime::Runtime)> {
    let broker = crate::login::open_broker()
        .map_err(|e| eprintln!("{e}"))
        .ok()?;
    Some((broker, crate::rt::current_thread()?))
}

fn cli_overrides(common: &CommonArgs) -> anyhow::Result<Vec<CliOverride>> {
    let mut out = Vec::new();
    for c in &common.config {
        out.push(CliOverride::parse(c)?);
    }
    for (names, on) in [(&common.enable, true), (&common.disable, false)] {
        for f in names {
            out.push(CliOverride::parse(&format!("features.{f}={on}"))?);
        }
    }
    Ok(out)
}

/// The config as every other command loads it, its warnings on stderr.
fn load(common: &CommonArgs, extra: Vec<CliOverride>) -> anyhow::Result<Config> {
    let mut cli = cli_overrides(common)?;
    cli.extend(extra);
    let config = Config::load(LoadOptions {
        codex_home: None,
        cli_overrides: cli,
        overrides: ConfigOverrides::default(),
    })?;
    for w in &config.warnings {
        eprintln!("codex mcp: warning: {w}");
    }
    Ok(config)
}

/// Upstream's rule (0.169): the characters a server name may use.
fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_:@/.".contains(c));
    if !ok {
        bail!("invalid server name '{name}' (use letters, numbers, '-', '_', ':', '@', '/', '.')");
    }
    Ok(())
}

fn parse_env_pair(raw: &str) -> Result<(String, String), String> {
    let bad = || "environment entries must be in KEY=VALUE form".to_string();
    let (k, v) = raw.split_once('=').ok_or_else(bad)?;
    let k = k.trim();
    if k.is_empty() {
        return Err(bad());
    }
    Ok((k.to_string(), v.to_string()))
}

// ---- list / get ----------------------------------------------------------

#[derive(Serialize)]
struct ListEntry<'a> {
    name: &'a str,
    enabled: bool,
    disabled_reason: Option<String>,
    transport: TransportJson<'a>,
    startup_timeout_sec: Option<f64>,
    tool_timeout_sec: Option<f64>,
    auth_status: &'static str,
}

#[derive(Serialize)]
struct GetEntry<'a> {
    name: &'a str,
    enabled: bool,
    disabled_reason: Option<String>,
    transport: TransportJson<'a>,
    enabled_tools: Option<&'a [String]>,
    disabled_tools: Option<&'a [String]>,
    startup_timeout_sec: Option<f64>,
    tool_timeout_sec: Option<f64>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TransportJson<'a> {
    Stdio {
        command: &'a str,
        args: &'a [String],
        env: Option<&'a BTreeMap<String, String>>,
        env_vars: &'a [String],
        cwd: Option<&'a std::path::Path>,
    },
    StreamableHttp {
        url: &'a str,
        bearer_token_env_var: Option<&'a str>,
        http_headers: Option<&'a BTreeMap<String, String>>,
        env_http_headers: Option<&'a BTreeMap<String, String>>,
        http_headers_helper: Option<String>,
    },
}

fn non_empty<T>(m: &BTreeMap<String, T>) -> Option<&BTreeMap<String, T>> {
    (!m.is_empty()).then_some(m)
}

fn transport_json(t: &McpTransportConfig) -> TransportJson<'_> {
    match t {
        McpTransportConfig::Stdio {
            command,
            args,
            env,
            env_vars,
            cwd,
        } => TransportJson::Stdio {
            command,
            args,
            env: non_empty(env),
            env_vars,
            cwd: cwd.as_deref(),
        },
        McpTransportConfig::StreamableHttp {
            url,
            bearer_token_env_var,
            http_headers,
            env_http_headers,
        } => TransportJson::StreamableHttp {
            url,
            bearer_token_env_var: bearer_token_env_var.as_deref(),
            http_headers: non_empty(http_headers),
            env_http_headers: non_empty(env_http_headers),
            http_headers_helper: None,
        },
    }
}

/// The `[mcp_servers]` table as written (file, then `-c`): upstream shows a
/// timeout the table does not set as `null`, whatever its default.
fn raw_servers(common: &CommonArgs) -> anyhow::Result<TomlTable> {
    let path = find_codex_home()?.join(CONFIG_FILE_NAME);
    let (_, mut table) = read_config_file(&path)?;
    for o in cli_overrides(common)? {
        o.apply(&mut table);
    }
    Ok(table
        .get("mcp_servers")
        .and_then(|v| v.as_table())
        .cloned()
        .unwrap_or_default())
}

/// `startup_timeout_sec` and `tool_timeout_sec` as upstream shows them.
fn timeouts(raw: &TomlTable, name: &str, s: &McpServerConfig) -> (Option<f64>, Option<f64>) {
    let set = |keys: &[&str]| {
        raw.get(name)
            .and_then(|v| v.as_table())
            .is_some_and(|t| keys.iter().any(|k| t.contains_key(*k)))
    };
    (
        set(&["startup_timeout_sec", "startup_timeout_ms"])
            .then_some(s.startup_timeout.as_secs_f64()),
        set(&["tool_timeout_sec"]).then_some(s.tool_timeout.as_secs_f64()),
    )
}

/// Upstream's `auth_status` without contacting the server: a disabled or
/// stdio server has none, a bearer token is one, anything else is unknown
/// (upstream says the same of a server it could not reach).
fn auth_status(s: &McpServerConfig) -> &'static str {
    match &s.transport {
        _ if !s.enabled => "unsupported",
        McpTransportConfig::Stdio { .. } => "unsupported",
        McpTransportConfig::StreamableHttp {
            bearer_token_env_var: Some(_),
            ..
        } => "bearer_token",
        McpTransportConfig::StreamableHttp { .. } => "unknown",
    }
}

fn auth_label(status: &str) -> &'static str {
    match status {
        "bearer_token" => "Bearer token",
        "unsupported" => "Unsupported",
        _ => "Unknown",
    }
}

fn masked<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<String> {
    keys.map(|k| format!("{k}=*****")).collect()
}

fn dash(parts: Vec<String>, sep: &str) -> String {
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(sep)
    }
}

fn stdio_env(env: &BTreeMap<String, String>, env_vars: &[String]) -> String {
    let mut parts = masked(env.keys());
    parts.extend(masked(env_vars.iter()));
    dash(parts, ", ")
}

fn list(common: &CommonArgs, args: ListArgs) -> anyhow::Result<()> {
    let config = load(common, Vec::new())?;
    let raw = raw_servers(common)?;
    let servers = &config.mcp_servers;
    if args.json {
        let entries: Vec<ListEntry> = servers
            .iter()
            .map(|(name, s)| {
                let (startup, tool) = timeouts(&raw, name, s);
                ListEntry {
                    name,
                    enabled: s.enabled,
                    disabled_reason: None,
                    transport: transport_json(&s.transport),
                    startup_timeout_sec: startup,
                    tool_timeout_sec: tool,
                    auth_status: auth_status(s),
                }
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    if servers.is_empty() {
        println!("No MCP servers configured yet. Try `codex mcp add my-tool -- my-command`.");
        return Ok(());
    }
    let status = |s: &McpServerConfig| if s.enabled { "enabled" } else { "disabled" };
    let mut stdio = vec![row(&[
        "Name", "Command", "Args", "Env", "Cwd", "Status", "Auth",
    ])];
    let mut http = vec![row(&[
        "Name",
        "Url",
        "Bearer Token Env Var",
        "Status",
        "Auth",
    ])];
    for (name, s) in servers {
        let auth = auth_label(auth_status(s));
        match &s.transport {
            McpTransportConfig::Stdio {
                command,
                args,
                env,
                env_vars,
                cwd,
            } => stdio.push(vec![
                name.clone(),
                command.clone(),
                dash(args.clone(), " "),
                stdio_env(env, env_vars),
                cwd.as_ref()
                    .map(|c| c.display().to_string())
                    .unwrap_or_else(|| "-".into()),
                status(s).into(),
                auth.into(),
            ]),
            McpTransportConfig::StreamableHttp {
                url,
                bearer_token_env_var,
                ..
            } => http.push(vec![
                name.clone(),
                url.clone(),
                bearer_token_env_var.clone().unwrap_or_else(|| "-".into()),
                status(s).into(),
                auth.into(),
            ]),
        }
    }
    let tables: Vec<String> = [stdio, http]
        .into_iter()
        .filter(|t| t.len() > 1)
        .map(|t| render_table(&t))
        .collect();
    print!("{}", tables.join("\n"));
    Ok(())
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Upstream's table: every cell padded to its column's width (the last
/// too), columns two spaces apart.
fn render_table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map(Vec::len).unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map(|c| c.chars().count()).unwrap_or(0))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(&line.join("  "));
        out.push('\n');
    }
    out
}

fn get(common: &CommonArgs, args: GetArgs) -> anyhow::Result<()> {
    let config = load(common, Vec::new())?;
    let Some(s) = config.mcp_servers.get(&args.name) else {
        bail!("No MCP server named '{}' found.", args.name);
    };
    let (startup, tool) = timeouts(&raw_servers(common)?, &args.name, s);
    if args.json {
        let entry = GetEntry {
            name: &args.name,
            enabled: s.enabled,
            disabled_reason: None,
            transport: transport_json(&s.transport),
            enabled_tools: s.enabled_tools.as_deref(),
            disabled_tools: (!s.disabled_tools.is_empty()).then_some(&s.disabled_tools[..]),
            startup_timeout_sec: startup,
            tool_timeout_sec: tool,
        };
        println!("{}", serde_json::to_string_pretty(&entry)?);
        return Ok(());
    }
    let name = &args.name;
    if !s.enabled {
        println!("{name} (disabled)");
        return Ok(());
    }
    let mut out = vec![name.clone(), "  enabled: true".to_string()];
    if let Some(t) = &s.enabled_tools {
        out.push(format!("  enabled_tools: {}", dash(t.clone(), ", ")));
    }
    if !s.disabled_tools.is_empty() {
        out.push(format!("  disabled_tools: {}", s.disabled_tools.join(", ")));
    }
    match &s.transport {
        McpTransportConfig::Stdio {
            command,
            args,
            env,
            env_vars,
            cwd,
        } => {
            out.push("  transport: stdio".into());
            out.push(format!("  command: {command}"));
            out.push(format!("  args: {}", dash(args.clone(), " ")));
            out.push(format!(
                "  cwd: {}",
                cwd.as_ref()
                    .map(|c| c.display().to_string())
                    .unwrap_or_else(|| "-".into())
            ));
            out.push(format!("  env: {}", stdio_env(env, env_vars)));
        }
        McpTransportConfig::StreamableHttp {
            url,
            bearer_token_env_var,
            http_headers,
            env_http_headers,
        } => {
            out.push("  transport: streamable_http".into());
            out.push(format!("  url: {url}"));
            out.push(format!(
                "  bearer_token_env_var: {}",
                bearer_token_env_var.as_deref().unwrap_or("-")
            ));
            out.push(format!(
                "  http_headers: {}",
                dash(masked(http_headers.keys()), ", ")
            ));
            let env_headers = env_http_headers
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push(format!("  env_http_headers: {}", dash(env_headers, ", ")));
            out.push("  http_headers_helper: -".into());
        }
    }
    if let Some(t) = startup {
        out.push(format!("  startup_timeout_sec: {t}"));
    }
    if let Some(t) = tool {
        out.push(format!("  tool_timeout_sec: {t}"));
    }
    out.push(format!("  remove: codex mcp remove {name}"));
    println!("{}", out.join("\n"));
    Ok(())
}

// ---- add / remove --------------------------------------------------------

fn add(common: &CommonArgs, args: AddArgs) -> anyhow::Result<()> {
    validate_name(&args.name)?;
    let name = args.name.clone();
    if args.url.is_some() && !args.env.is_empty() {
        bail!("--env is only valid with stdio servers (this one has --url)");
    }
    let entries = server_table(&args, None)?;
    // The new table, checked as the runtime will read it, before the file
    // is touched: a server this runtime would not start is not written.
    let mut check = CliOverride::parse(&format!("x={}", inline_literal(&entries)))?;
    check.path = vec!["mcp_servers".into(), name.clone()];
    let config = load(common, vec![check])?;
    if !config.mcp_servers.contains_key(&name) {
        bail!("the server cannot be used, so it was not added (see the warning above)");
    }
    // With an OAuth client, upstream records the redirect URI to register.
    let callback = match (&args.url, &args.oauth_client_id) {
        (Some(url), Some(_)) => Some(
            codex_core::mcp::oauth::callback_url(url, config.mcp_oauth_callback_url.as_deref())
                .map_err(|e| anyhow!("{e}"))?,
        ),
        _ => None,
    };
    let callback = callback.as_deref();
    let entries = server_table(&args, callback)?;
    if let Some(reg) = args.oauth_client_registration {
        let reg = reg
            .to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default();
        eprintln!(
            "codex mcp: warning: --oauth-client-registration {reg} is not used: `codex mcp add` does not log in here; pass it to `codex mcp login {name}`"
        );
    }
    let path = find_codex_home()?.join(CONFIG_FILE_NAME);
    write::set_table(&path, &["mcp_servers", &name], Some(&entries))
        .with_context(|| format!("failed to write MCP servers to {}", path.display()))?;
    println!("Added global MCP server '{name}'.");
    if let Some(url) = callback {
        println!("OAuth callback URL: {url}");
    }
    if args.url.is_some() && args.bearer_token_env_var.is_none() {
        println!("MCP server may or may not require login. Run `codex mcp login {name}` to login.");
    }
    Ok(())
}

/// `[mcp_servers.NAME]` with upstream's keys in upstream's order.
fn server_table(args: &AddArgs, callback: Option<&str>) -> anyhow::Result<Vec<(String, Entry)>> {
    let s = |v: &str| Entry::Value(Value::from(v));
    let mut t = Vec::new();
    match &args.url {
        Some(url) => {
            t.push(("url".into(), s(url)));
            if let Some(v) = &args.bearer_token_env_var {
                t.push(("bearer_token_env_var".into(), s(v)));
            }
            if let Some(v) = &args.oauth_resource {
                t.push(("oauth_resource".into(), s(v)));
            }
            if let Some(id) = &args.oauth_client_id {
                let mut oauth = vec![("client_id".to_string(), s(id))];
                if let Some(secret) = &args.oauth_client_secret {
                    oauth.push(("client_secret".into(), s(secret)));
                }
                if let Some(cb) = callback {
                    oauth.push(("callback_url".into(), s(cb)));
                }
                t.push(("oauth".into(), Entry::Table(oauth)));
            }
        }
        None => {
            let (command, rest) = args
                .command
                .split_first()
                .ok_or_else(|| anyhow!("command is required"))?;
            t.push(("command".into(), s(command)));
            if !rest.is_empty() {
                t.push(("args".into(), Entry::Value(Value::from(rest.to_vec()))));
            }
            if !args.env.is_empty() {
                let env: BTreeMap<&str, &str> = args
                    .env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let env = env
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), s(v)))
                    .collect();
                t.push(("env".into(), Entry::Table(env)));
            }
        }
    }
    Ok(t)
}

/// The table as a TOML inline table (for the `-c`-style check). A JSON
/// string is a valid TOML basic string, escapes included.
fn inline_literal(entries: &[(String, Entry)]) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let value = |v: &Value| -> String {
        match v {
            Value::String(s) => q(s),
            Value::Array(items) => {
                let items: Vec<String> = items
                    .iter()
                    .map(|i| i.as_str().map(q).unwrap_or_else(|| i.to_string()))
                    .collect();
                format!("[{}]", items.join(", "))
            }
            other => other.to_string(),
        }
    };
    let parts: Vec<String> = entries
        .iter()
        .map(|(k, e)| match e {
            Entry::Value(v) => format!("{} = {}", q(k), value(v)),
            Entry::Table(sub) => format!("{} = {}", q(k), inline_literal(sub)),
        })
        .collect();
    format!("{{ {} }}", parts.join(", "))
}

fn remove(common: &CommonArgs, args: RemoveArgs) -> anyhow::Result<()> {
    validate_name(&args.name)?;
    // Loaded for its errors and warnings, as upstream refuses a broken file.
    load(common, Vec::new())?;
    let path = find_codex_home()?.join(CONFIG_FILE_NAME);
    let (_, table) = read_config_file(&path)?;
    let present = table
        .get("mcp_servers")
        .and_then(|t| t.as_table())
        .is_some_and(|t| t.contains_key(&args.name));
    let removed = present
        && write::set_table(&path, &["mcp_servers", &args.name], None)
            .with_context(|| format!("failed to write MCP servers to {}", path.display()))?;
    if removed {
        println!("Removed global MCP server '{}'.", args.name);
    } else {
        println!("No MCP server named '{}' found.", args.name);
    }
    Ok(())
}
