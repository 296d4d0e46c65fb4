//! `codex app-server daemon start|stop|restart|version|install|uninstall`:
//! upstream's daemon management (one JSON object per command) over
//! `codex_daemon::lifecycle`.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use codex_daemon::lifecycle::units::{self, ServiceManager, UnitSpec};
use codex_daemon::lifecycle::{Daemon, DaemonPaths};

#[derive(Args, Debug)]
pub struct DaemonCtlArgs {
    #[command(subcommand)]
    command: DaemonCtlCommand,
}

#[derive(Args, Debug, Clone)]
struct SocketArg {
    /// The daemon's socket (default: upstream's control socket under
    /// `$CODEX_HOME`).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum DaemonCtlCommand {
    /// Start codexd in the background (pidfile backend) unless it runs.
    Start(SocketArg),
    /// Stop the codexd started by `start`, and its workers.
    Stop(SocketArg),
    /// Stop, then start.
    Restart(SocketArg),
    /// Ask the running codexd its version.
    Version(SocketArg),
    /// Write service units: a systemd socket + service pair, or a launchd
    /// LaunchAgent with a `Sockets` entry.
    Install(InstallArgs),
    /// Remove the files `install` wrote.
    Uninstall(UninstallArgs),
}

#[derive(Args, Debug, Clone)]
struct InstallArgs {
    /// Service manager (default: launchd on macOS, systemd elsewhere).
    #[arg(long, value_enum)]
    manager: Option<Manager>,
    /// Directory to write into (default: `$XDG_CONFIG_HOME/systemd/user`,
    /// `~/Library/LaunchAgents`).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print the files instead of writing them.
    #[arg(long, conflicts_with = "dir")]
    print: bool,
    #[command(flatten)]
    socket: SocketArg,
}

#[derive(Args, Debug, Clone)]
struct UninstallArgs {
    /// Service manager (default: launchd on macOS, systemd elsewhere).
    #[arg(long, value_enum)]
    manager: Option<Manager>,
    /// Directory `install` wrote into.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Manager {
    Systemd,
    Launchd,
}

pub fn main(args: DaemonCtlArgs) -> i32 {
    crate::logging::init("warn");
    let Some(rt) = crate::rt::current_thread() else {
        return 1;
    };
    match rt.block_on(run(args.command)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e:#}");
            1
        }
    }
}

fn daemon(socket: &SocketArg) -> anyhow::Result<Daemon> {
    let home = codex_core::config::find_codex_home().context("finding CODEX_HOME")?;
    let exe = std::env::current_exe().context("cannot find this executable")?;
    Ok(Daemon::new(
        DaemonPaths::new(&home, socket.socket.clone()),
        exe,
    ))
}

async fn run(cmd: DaemonCtlCommand) -> anyhow::Result<()> {
    let out = match cmd {
        DaemonCtlCommand::Start(s) => daemon(&s)?.start().await?,
        DaemonCtlCommand::Stop(s) => daemon(&s)?.stop().await?,
        DaemonCtlCommand::Restart(s) => daemon(&s)?.restart().await?,
        DaemonCtlCommand::Version(s) => daemon(&s)?.version().await?,
        DaemonCtlCommand::Install(a) => return install(a),
        DaemonCtlCommand::Uninstall(a) => return uninstall(a),
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

fn manager(m: Option<Manager>) -> ServiceManager {
    match m {
        Some(Manager::Systemd) => ServiceManager::Systemd,
        Some(Manager::Launchd) => ServiceManager::Launchd,
        None => ServiceManager::for_this_os(),
    }
}

fn install(args: InstallArgs) -> anyhow::Result<()> {
    let manager = manager(args.manager);
    let d = daemon(&args.socket)?;
    let codex_home = std::path::absolute(&d.paths.codex_home)?;
    let socket = std::path::absolute(&d.paths.socket)?;
    let bind = upstream_bind_path(&codex_home, &socket)?;
    let spec = UnitSpec {
        codex_exe: std::fs::canonicalize(&d.codex_exe).unwrap_or(d.codex_exe.clone()),
        codex_home,
        socket,
        bind,
        log_file: std::path::absolute(&d.paths.log_file)?,
    };
    let files = manager.files(&spec)?;
    if args.print {
        for f in &files {
            println!("# {}\n{}", f.name, f.contents);
        }
        return Ok(());
    }
    let dir = match args.dir {
        Some(d) => d,
        None => manager.default_dir()?,
    };
    for p in units::write_files(&dir, &files)? {
        println!("wrote {}", p.display());
    }
    println!("Next, run:\n  {}", manager.next_steps(&dir).join("\n  "));
    Ok(())
}

fn uninstall(args: UninstallArgs) -> anyhow::Result<()> {
    let manager = manager(args.manager);
    let dir = match args.dir {
        Some(d) => d,
        None => manager.default_dir()?,
    };
    eprintln!(
        "First unload the service:\n  {}",
        manager.stop_steps().join("\n  ")
    );
    let removed = units::remove_files(&dir, &manager.file_names())?;
    if removed.is_empty() {
        println!("nothing to remove in {}", dir.display());
    }
    for p in removed {
        println!("removed {}", p.display());
    }
    Ok(())
}

/// The socket the service manager binds: for upstream's default path the
/// short path upstream links it to (upstream's clients treat that layout
/// as the local daemon), else the socket itself.
fn upstream_bind_path(
    codex_home: &std::path::Path,
    socket: &std::path::Path,
) -> anyhow::Result<std::path::PathBuf> {
    if socket != codex_daemon::transport::default_socket_path(codex_home) {
        return Ok(socket.to_path_buf());
    }
    let dir = socket
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{} has no directory", socket.display()))?;
    // The short path hashes the link's canonical path: its directory must exist.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    Ok(codex_daemon::transport::short_socket_path(socket)?)
}
