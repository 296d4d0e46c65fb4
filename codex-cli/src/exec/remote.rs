//! `codex exec` through a running codexd: `--remote unix://PATH|ws://…`,
//! or the default socket when a daemon answers there (checked cheaply: no
//! socket file, no attempt). Settings the embedded supervisor applies to
//! all its threads (`ThreadDefaults`) become `thread/start` params here;
//! what a daemon cannot honour is said, never dropped silently.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use codex_core::config::{CliOverride, Config, SandboxPolicy};
use codex_daemon::runtime::{Endpoint, Message, Runtime, RuntimeOptions};
use codex_ipc::app_server::methods::ClientInfo;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// Set to `1` to never use a running daemon (same as `--no-daemon`).
pub const NO_DAEMON_ENV: &str = "CODEX_EXEC_NO_DAEMON";
/// How long auto-detection may spend on a socket that exists.
const DETECT_DEADLINE: Duration = Duration::from_secs(2);

/// What the user asked for.
pub struct RemoteRequest<'a> {
    pub remote: Option<&'a str>,
    pub token_env: Option<&'a str>,
    pub no_daemon: bool,
    /// Flags a daemon's threads cannot follow (auto-detection then embeds).
    pub local_only: Vec<&'static str>,
}

/// Where the exec's thread will run, when not embedded.
pub enum Target {
    Explicit(Endpoint),
    /// The default socket, if a daemon answers there.
    Detect(PathBuf),
}

/// The daemon endpoint to try, or `None` for the embedded supervisor.
pub fn target(req: &RemoteRequest<'_>, codex_home: &Path) -> anyhow::Result<Option<Target>> {
    if let Some(url) = req.remote {
        for flag in &req.local_only {
            eprintln!(
                "warning: {flag} cannot be honoured by a running daemon (ignored with --remote)"
            );
        }
        return Ok(Some(Target::Explicit(parse_remote(url, req.token_env)?)));
    }
    if req.token_env.is_some() {
        bail!("--remote-auth-token-env needs --remote ws://HOST:PORT");
    }
    let off = std::env::var(NO_DAEMON_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    if req.no_daemon || off || !req.local_only.is_empty() {
        return Ok(None);
    }
    let socket = codex_daemon::transport::default_socket_path(codex_home);
    // No socket file, no daemon: nothing to wait for.
    Ok(socket.exists().then_some(Target::Detect(socket)))
}

fn parse_remote(url: &str, token_env: Option<&str>) -> anyhow::Result<Endpoint> {
    if let Some(path) = url.strip_prefix("unix://") {
        if token_env.is_some() {
            eprintln!("warning: --remote-auth-token-env is not used over unix:// (the socket's permissions admit the client)");
        }
        // `unix://` alone is the default socket, as upstream's `--remote`.
        let path = if path.is_empty() {
            codex_daemon::transport::default_socket_path(&codex_core::config::find_codex_home()?)
        } else {
            PathBuf::from(path)
        };
        return Ok(Endpoint::UnixWebSocket(path));
    }
    if url.starts_with("ws://") || url.starts_with("wss://") {
        let token = match token_env {
            Some(var) => Some(
                std::env::var(var)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .with_context(|| format!("--remote-auth-token-env {var}: ${var} is not set"))?,
            ),
            None => None,
        };
        return Ok(Endpoint::WebSocket {
            url: url.to_string(),
            token,
        });
    }
    bail!("--remote must be unix://PATH or ws://HOST:PORT, not `{url}`")
}

/// Opens the runtime on a daemon. `Ok(None)`: auto-detection found none.
pub async fn open(
    target: Target,
    client_info: ClientInfo,
) -> anyhow::Result<Option<(Runtime, mpsc::Receiver<Message>)>> {
    let options = |endpoint| {
        let mut o = RuntimeOptions::new(endpoint);
        o.client_info = client_info;
        o
    };
    match target {
        Target::Explicit(endpoint) => {
            let what = describe(&endpoint);
            let opts = options(endpoint);
            let opened = Runtime::open(opts)
                .await
                .with_context(|| format!("cannot reach the daemon at {what}"))?;
            Ok(Some(opened))
        }
        Target::Detect(socket) => {
            let opts = options(Endpoint::UnixWebSocket(socket.clone()));
            match tokio::time::timeout(DETECT_DEADLINE, Runtime::open(opts)).await {
                Ok(Ok(opened)) => Ok(Some(opened)),
                Ok(Err(e)) => {
                    tracing::info!("no daemon on {}: {e}; running embedded", socket.display());
                    Ok(None)
                }
                Err(_) => {
                    tracing::info!(
                        "no answer on {} within {DETECT_DEADLINE:?}; running embedded",
                        socket.display()
                    );
                    Ok(None)
                }
            }
        }
    }
}

fn describe(e: &Endpoint) -> String {
    match e {
        Endpoint::Unix(p) | Endpoint::UnixWebSocket(p) => format!("unix://{}", p.display()),
        Endpoint::WebSocket { url, .. } => url.clone(),
        Endpoint::Embedded(_) => "the embedded supervisor".into(),
    }
}

/// The `thread/start` / `thread/resume` params that carry what the
/// embedded path sets through `ThreadDefaults`: the resolved approval
/// policy (exec's "never ask" default included), the `-c` overrides and
/// the extra writable roots.
pub fn thread_params(
    params: &mut Map<String, Value>,
    config: &Config,
    overrides: &[CliOverride],
    add_dirs: &[PathBuf],
) {
    params.insert(
        "approvalPolicy".into(),
        Value::from(config.approval_policy.to_string()),
    );
    let mut cfg = Map::new();
    for o in overrides {
        cfg.insert(
            o.path.join("."),
            serde_json::to_value(&o.value).unwrap_or(Value::Null),
        );
    }
    if !add_dirs.is_empty() {
        if let SandboxPolicy::WorkspaceWrite { writable_roots, .. } = &config.sandbox_policy {
            let roots: Vec<Value> = writable_roots
                .iter()
                .map(|r| {
                    Value::from(
                        std::fs::canonicalize(r)
                            .unwrap_or_else(|_| r.clone())
                            .display()
                            .to_string(),
                    )
                })
                .collect();
            cfg.insert(
                "sandbox_workspace_write.writable_roots".into(),
                Value::Array(roots),
            );
        }
    }
    if !cfg.is_empty() {
        params.insert("config".into(), Value::Object(cfg));
    }
}
