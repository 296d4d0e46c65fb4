//! The `codex` command. A thin binary: it parses flags and wires library
//! pieces together; behaviour lives in `codex-core` and `codex-ipc`.

mod app_server;
mod audit;
mod daemon;
mod daemon_ctl;
mod doctor;
mod exec;
mod logging;
mod login;
mod mcp_cmd;
mod memory_cmd;
mod proxy;
mod rt;
mod sandbox;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "codex",
    version,
    about = "Codex: a coding agent that runs as a supervised local service",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run Codex non-interactively: one turn from a prompt, then exit.
    #[command(visible_alias = "e")]
    Exec(Box<exec::ExecArgs>),
    /// Serve the app-server protocol (JSON-RPC over stdio or a unix socket)
    /// as `codexd`, with one `codex-session` worker per thread;
    /// `codex app-server proxy` bridges stdio to a running one.
    AppServer(AppServerCli),
    /// Talk to a running codexd (`codex daemon status`).
    Daemon(daemon::DaemonArgs),
    /// Run a command under a sandbox policy, as the agent's commands run.
    Sandbox(sandbox::SandboxArgs),
    /// Sign in (ChatGPT in a browser, `--device-auth`, or `--with-api-key`),
    /// or `codex login status`.
    Login(login::LoginArgs),
    /// Remove the stored credentials.
    Logout,
    /// Diagnose the installation, config, auth, sandbox support, the
    /// daemon and the model provider (`--json` for one JSON object).
    Doctor(doctor::DoctorArgs),
    /// Show the audit trail: every command and patch, with its policy,
    /// sandbox, decision and outcome.
    Audit(audit::AuditArgs),
    /// Manage external MCP servers for Codex
    Mcp(mcp_cmd::McpArgs),
    /// Memories: `status`, `list`, `search QUERY`, `add TEXT`, `forget ID`,
    /// `reset` (through a running codexd, else in-process).
    Memory(memory_cmd::MemoryArgs),
}

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct AppServerCli {
    #[command(subcommand)]
    command: Option<AppServerCommand>,
    #[command(flatten)]
    args: app_server::AppServerArgs,
}

#[derive(Subcommand, Debug)]
enum AppServerCommand {
    /// stdio ↔ a running codexd (its unix socket, or `--remote ws://…`).
    Proxy(proxy::ProxyArgs),
    /// Manage a background codexd (upstream's `daemon start|stop|restart|
    /// version`), or write its systemd/launchd service (`install`).
    Daemon(daemon_ctl::DaemonCtlArgs),
}

fn main() {
    // One binary, several roles: a worker is this binary started under its
    // role's name by the launcher.
    let argv0 = std::env::args().next().unwrap_or_default();
    #[cfg(target_os = "linux")]
    if std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == codex_core::exec::linux::HELPER_ARGV0)
    {
        // The sandbox helper: confine, then exec the command. Before any
        // thread exists (namespaces need a single-threaded process).
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        std::process::exit(codex_core::exec::linux::helper_main(&args));
    }
    if let Some(role) = codex_ipc::launcher::Role::from_argv0(&argv0) {
        logging::init("warn");
        let code = match role {
            codex_ipc::launcher::Role::Session => codex_daemon::worker::main(),
            codex_ipc::launcher::Role::Broker => codex_daemon::broker::main(),
            codex_ipc::launcher::Role::Memory => codex_daemon::memory::main(),
        };
        std::process::exit(code);
    }
    if std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == app_server::DAEMON_NAME)
    {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        #[command(name = "codexd", version, about = "The Codex supervisor daemon")]
        struct Daemon {
            #[command(flatten)]
            args: app_server::AppServerArgs,
        }
        std::process::exit(app_server::main(Daemon::parse().args));
    }
    let cli = Cli::parse();
    let code = match cli.command {
        Some(Command::Exec(args)) => exec::main(*args),
        Some(Command::AppServer(AppServerCli {
            command: Some(AppServerCommand::Proxy(args)),
            ..
        })) => proxy::main(args),
        Some(Command::AppServer(AppServerCli {
            command: Some(AppServerCommand::Daemon(args)),
            ..
        })) => daemon_ctl::main(args),
        Some(Command::AppServer(_)) => {
            // Re-exec as `codexd` with the same arguments.
            let raw: Vec<std::ffi::OsString> = std::env::args_os()
                .skip_while(|a| a != "app-server")
                .skip(1)
                .collect();
            app_server::exec_as_daemon(raw)
        }
        Some(Command::Daemon(args)) => daemon::main(args),
        Some(Command::Sandbox(args)) => sandbox::main(args),
        Some(Command::Audit(args)) => audit::main(args),
        Some(Command::Doctor(args)) => doctor::main(args),
        Some(Command::Mcp(args)) => mcp_cmd::main(args),
        Some(Command::Memory(args)) => memory_cmd::main(args),
        Some(Command::Login(args)) => login::main(args),
        Some(Command::Logout) => login::logout(),
        None => {
            eprintln!("codex: no command given. Try `codex exec \"<prompt>\"` or `codex --help`.");
            2
        }
    };
    std::process::exit(code);
}
