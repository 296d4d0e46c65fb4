//! `codex app-server` / `codexd`: the supervisor speaking the app-server
//! protocol on stdio (default) or a unix socket.

use std::path::PathBuf;

use clap::Args;
use codex_core::config::{find_codex_home, CliOverride};
use codex_daemon::server::{Server, ServerOptions};

/// The process name the supervisor runs under.
pub const DAEMON_NAME: &str = "codexd";

#[derive(Args, Debug, Clone)]
pub struct AppServerArgs {
    /// Where to listen: `stdio://` (default), `unix://PATH`, `unix://` for
    /// `$CODEX_HOME/codexd/codexd.sock`, or `ws://IP:PORT` (WebSocket; needs
    /// `--ws-auth capability-token`).
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
    rt.block_on(run(args))
}

async fn run(args: AppServerArgs) -> i32 {
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
    let socket_path = args.listen.strip_prefix("unix://").map(|p| match p {
        "" => codex_daemon::transport::default_socket_path(&codex_home),
        p => PathBuf::from(p),
    });
    // Commands of our threads must not reach the daemon itself.
    let protected_paths = socket_path
        .iter()
        .cloned()
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
    let server = match Server::new(opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("codexd: {e}");
            return 1;
        }
    };
    match args.listen.as_str() {
        "stdio://" | "stdio" | "-" => {
            server.serve_stdio().await;
            0
        }
        url if url.starts_with("unix://") => {
            let Some(path) = socket_path else { return 2 };
            let code = until_signal(async {
                match server.serve_unix(&path).await {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("codexd: cannot listen on {}: {e}", path.display());
                        1
                    }
                }
            })
            .await;
            server.shutdown().await;
            let _ = std::fs::remove_file(&path);
            code
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
