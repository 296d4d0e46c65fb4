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
    /// Where to listen: `stdio://` (default), `unix://PATH`, or `unix://`
    /// for `$CODEX_HOME/codexd/codexd.sock`.
    #[arg(long, default_value = "stdio://")]
    pub listen: String,
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
    let opts = ServerOptions {
        worker_exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("codex")),
        cwd: std::env::current_dir().unwrap_or_else(|_| codex_home.clone()),
        codex_home: codex_home.clone(),
        config_overrides: overrides,
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
            let path = match &url["unix://".len()..] {
                "" => codex_daemon::transport::default_socket_path(&codex_home),
                p => PathBuf::from(p),
            };
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("codexd: {e}");
                        return 1;
                    }
                };
            let code = tokio::select! {
                r = server.serve_unix(&path) => match r {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("codexd: cannot listen on {}: {e}", path.display());
                        1
                    }
                },
                _ = tokio::signal::ctrl_c() => 0,
                _ = term.recv() => 0,
            };
            server.shutdown().await;
            let _ = std::fs::remove_file(&path);
            code
        }
        other => {
            eprintln!("codexd: unsupported --listen `{other}` (use stdio:// or unix://PATH)");
            2
        }
    }
}
