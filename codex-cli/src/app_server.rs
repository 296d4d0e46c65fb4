//! `codex app-server` / `codexd`: the supervisor speaking the app-server
//! protocol on stdio (default) or a unix socket.

use std::path::PathBuf;

use clap::Args;
use codex_core::config::{find_codex_home, CliOverride};
use codex_daemon::activation::{self, Activated};
use codex_daemon::server::{Server, ServerOptions};
use codex_daemon::transport;

/// The process name the supervisor runs under.
pub const DAEMON_NAME: &str = "codexd";

#[derive(Args, Debug, Clone)]
pub struct AppServerArgs {
    /// Where to listen: `stdio://` (default), `unix://PATH`, `unix://` for
    /// upstream's `$CODEX_HOME/app-server-control/app-server-control.sock`,
    /// or `ws://IP:PORT` (WebSocket; needs `--ws-auth capability-token`).
    /// A unix socket speaks WebSocket (upstream's clients) and JSONL alike.
    /// Under socket activation (`LISTEN_FDS`) the passed socket is served.
    #[arg(long, default_value = "stdio://")]
    pub listen: String,
    /// Authentication of WebSocket clients: `capability-token` (the client
    /// sends `Authorization: Bearer <token>`).
    #[arg(long, value_name = "MODE")]
    pub ws_auth: Option<String>,
    /// Absolute path of the file holding the capability token.
    #[arg(long, value_name = "PATH")]
    pub ws_token_file: Option<String>,
    /// Hex SHA-256 of the capability token (instead of the file).
    #[arg(long, value_name = "HEX")]
    pub ws_token_sha256: Option<String>,
    /// Allow `ws://` on a non-loopback address.
    #[arg(long)]
    pub ws_allow_remote: bool,
    /// A browser origin allowed to connect over WebSocket (repeatable);
    /// requests with any other `Origin` header are refused.
    #[arg(long, value_name = "ORIGIN")]
    pub ws_allow_origin: Vec<String>,
    /// Override a config value for every thread: `-c key=value`.
    #[arg(short = 'c', long = "config", value_name = "key=value")]
    pub config: Vec<String>,
}

/// Runs the supervisor under the name `codexd` (so `ps` shows it): the
/// process re-executes itself with that `argv[0]`, keeping its pid and its
/// stdio. If that is impossible it runs in place.
pub fn exec_as_daemon(raw_args: Vec<std::ffi::OsString>) -> i32 {
    use std::os::unix::process::CommandExt;
    if let Ok(exe) = std::env::current_exe() {
        let err = std::process::Command::new(exe)
            .arg0(DAEMON_NAME)
            .args(&raw_args)
            .exec();
        tracing::warn!("cannot re-exec as {DAEMON_NAME}: {err}; running in place");
    }
    codex_ipc::launcher::set_process_name(DAEMON_NAME);
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Daemon {
        #[command(flatten)]
        args: AppServerArgs,
    }
    let mut argv = vec![std::ffi::OsString::from(DAEMON_NAME)];
    argv.extend(raw_args);
    match Daemon::try_parse_from(argv) {
        Ok(d) => main(d.args),
        Err(e) => {
            let _ = e.print();
            2
        }
    }
}

pub fn main(args: AppServerArgs) -> i32 {
    crate::logging::init("warn");
    // First of all: a socket inherited from the service manager becomes
    // close-on-exec here, before any child can inherit it.
    let activated = match activation::take_listener() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("codexd: {e}");
            return 1;
        }
    };
    codex_ipc::launcher::set_process_name(DAEMON_NAME);
    if let Err(e) = codex_core::process::become_subreaper() {
        tracing::warn!("cannot become child subreaper: {e}");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("codexd: cannot start runtime: {e}");
            return 1;
        }
    };
    rt.block_on(run(args, activated))
}

/// The unix socket the daemon serves.
enum UnixSocket {
    /// Bound here; its files are removed at exit.
    Bound(std::os::unix::net::UnixListener, transport::SocketFiles),
    /// Inherited from the service manager, which owns the file; `link` is
    /// the default path made a symlink to it.
    Activated(Activated, Option<PathBuf>),
}

impl UnixSocket {
    /// Where clients connect.
    fn shown(&self) -> String {
        match self {
            UnixSocket::Bound(_, f) => f.path.display().to_string(),
            UnixSocket::Activated(a, _) => a.path.as_ref().map_or_else(
                || "the inherited socket".into(),
                |p| p.display().to_string(),
            ),
        }
    }

    /// Paths our threads' commands must not reach.
    fn protected(&self) -> Vec<PathBuf> {
        match self {
            UnixSocket::Bound(_, f) => std::iter::once(f.path.clone())
                .chain(f.real.clone())
                .collect(),
            UnixSocket::Activated(a, link) => a.path.iter().chain(link).cloned().collect(),
        }
    }

    fn take_listener(&self) -> std::io::Result<tokio::net::UnixListener> {
        let l = match self {
            UnixSocket::Bound(l, _) => l.try_clone()?,
            UnixSocket::Activated(a, _) => a.listener.try_clone()?,
        };
        tokio::net::UnixListener::from_std(l)
    }

    /// Removes what this daemon created (never the service manager's
    /// socket).
    fn cleanup(&self) {
        match self {
            UnixSocket::Bound(_, f) => f.remove(),
            UnixSocket::Activated(a, Some(link)) => {
                if let Some(target) = &a.path {
                    transport::unlink_socket(link, target);
                }
            }
            UnixSocket::Activated(_, None) => {}
        }
    }
}

/// The unix socket `--listen unix://[PATH]` asks for, bound here unless
/// the service manager passed one (activation wins; a different explicit
/// PATH is warned about).
fn unix_socket(
    listen: &str,
    codex_home: &std::path::Path,
    activated: Option<Activated>,
) -> Result<Option<UnixSocket>, String> {
    let Some(rest) = listen.strip_prefix("unix://") else {
        if activated.is_some() {
            tracing::warn!(
                "closing the socket passed by the service manager (LISTEN_FDS): --listen {listen} is not unix://"
            );
        }
        return Ok(None);
    };
    let default = transport::default_socket_path(codex_home);
    let (path, layout) = match rest {
        // Upstream's location: a symlink to a short path, whatever the home.
        "" => (default.clone(), transport::Layout::Alias),
        p => (
            PathBuf::from(p),
            transport::Layout::for_path(std::path::Path::new(p)),
        ),
    };
    if let Some(a) = activated {
        let link = match (&a.path, rest) {
            (Some(target), "") if *target != default => {
                // Upstream's clients look at the default path.
                match transport::link_socket(&default, target) {
                    Ok(()) => Some(default),
                    Err(e) => {
                        tracing::warn!(
                            "cannot link {} to the activated socket: {e}",
                            default.display()
                        );
                        None
                    }
                }
            }
            (Some(_), "") => None,
            (target, _) => {
                if target.as_deref() != Some(path.as_path()) {
                    tracing::warn!(
                        "--listen unix://{} is not the socket the service manager passed ({}); serving the passed one",
                        path.display(),
                        target
                            .as_ref()
                            .map_or_else(|| "unnamed".into(), |p| p.display().to_string())
                    );
                }
                None
            }
        };
        if rest.is_empty() {
            let _ = transport::ensure_startup_lock(codex_home);
        }
        return Ok(Some(UnixSocket::Activated(a, link)));
    }
    let (listener, files) = transport::bind_unix(&path, layout)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    if rest.is_empty() {
        if let Err(e) = transport::ensure_startup_lock(codex_home) {
            tracing::warn!("cannot create the startup lock: {e}");
        }
    }
    let listener = listener
        .into_std()
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    Ok(Some(UnixSocket::Bound(listener, files)))
}

async fn run(args: AppServerArgs, activated: Option<Activated>) -> i32 {
    let codex_home = match find_codex_home() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("codexd: {e}");
            return 1;
        }
    };
    let overrides = match args
        .config
        .iter()
        .map(|c| CliOverride::parse(c))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("codexd: {e}");
            return 1;
        }
    };
    // Check the WebSocket settings before anything starts.
    let ws = if args.listen.starts_with("ws://") {
        let flags = codex_daemon::ws::WsFlags {
            auth: args.ws_auth.clone(),
            token_file: args.ws_token_file.clone(),
            token_sha256: args.ws_token_sha256.clone(),
            allow_remote: args.ws_allow_remote,
            allowed_origins: args.ws_allow_origin.clone(),
        };
        match codex_daemon::ws::WsConfig::new(&args.listen, &flags) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("codexd: {e}");
                return 2;
            }
        }
    } else {
        None
    };
    // Bound before the server starts: a clash is reported at once, and
    // clients connecting meanwhile wait in the backlog.
    let unix = match unix_socket(&args.listen, &codex_home, activated) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("codexd: {e}");
            return 1;
        }
    };
    // Commands of our threads must not reach the daemon itself.
    let protected_paths = unix
        .iter()
        .flat_map(UnixSocket::protected)
        .chain(args.ws_token_file.iter().map(PathBuf::from))
        .collect();
    let opts = ServerOptions {
        worker_exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("codex")),
        cwd: std::env::current_dir().unwrap_or_else(|_| codex_home.clone()),
        codex_home: codex_home.clone(),
        config_overrides: overrides,
        protected_paths,
        thread_defaults: Default::default(),
    };
    let server = match Server::new(opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("codexd: {e}");
            if let Some(u) = &unix {
                u.cleanup();
            }
            return 1;
        }
    };
    if let Some(unix) = unix {
        let code = until_signal(async {
            let listener = match unix.take_listener() {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("codexd: cannot listen on {}: {e}", unix.shown());
                    return 1;
                }
            };
            tracing::info!("codexd listening on unix://{}", unix.shown());
            activation::notify_ready(&format!("listening on unix://{}", unix.shown()));
            match server.serve_unix_listener(listener).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("codexd: {e}");
                    1
                }
            }
        })
        .await;
        activation::notify_stopping();
        server.shutdown().await;
        unix.cleanup();
        return code;
    }
    match args.listen.as_str() {
        "stdio://" | "stdio" | "-" => {
            server.serve_stdio().await;
            0
        }
        url if url.starts_with("ws://") => {
            let Some(ws) = ws else { return 2 };
            let code = until_signal(async {
                match server.serve_ws(ws).await {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("codexd: {e}");
                        1
                    }
                }
            })
            .await;
            activation::notify_stopping();
            server.shutdown().await;
            code
        }
        other => {
            eprintln!(
                "codexd: unsupported --listen `{other}` (use stdio://, unix://PATH or ws://IP:PORT)"
            );
            2
        }
    }
}

/// Runs `serve` until it returns or SIGINT/SIGTERM arrives (exit code 0).
async fn until_signal(serve: impl std::future::Future<Output = i32>) -> i32 {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("codexd: {e}");
            return 1;
        }
    };
    tokio::select! {
        code = serve => code,
        _ = tokio::signal::ctrl_c() => 0,
        _ = term.recv() => 0,
    }
}
