//! `codex daemon status`: asks a running codexd (on its unix socket) what it
//! is doing: its workers, their pressure levels and resource use, and the
//! limits in force.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use codex_ipc::app_server::client::{Client, ClientError};
use codex_ipc::app_server::codexd_status::{ContainmentMode, StatusReport, METHOD};
use codex_ipc::app_server::methods::ClientInfo;
use codex_ipc::app_server::objects::ThreadStatusView;

/// How long the whole exchange may take.
const DEADLINE: Duration = Duration::from_secs(10);

#[derive(Args, Debug)]
pub struct DaemonArgs {
    #[command(subcommand)]
    command: DaemonCommand,
}

#[derive(Subcommand, Debug)]
enum DaemonCommand {
    /// Show the running daemon's workers, pressure levels and limits.
    Status {
        /// The daemon's socket (default: `$CODEX_HOME/app-server-control/app-server-control.sock`).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Print the raw `codexd/status` result as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn main(args: DaemonArgs) -> i32 {
    let Some(rt) = crate::rt::current_thread() else {
        return 1;
    };
    let DaemonCommand::Status { socket, json } = args.command;
    match rt.block_on(status(socket, json)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("codex daemon status: {e:#}");
            1
        }
    }
}

async fn status(socket: Option<PathBuf>, as_json: bool) -> anyhow::Result<()> {
    let socket = match socket {
        Some(s) => s,
        None => codex_daemon::transport::default_socket_path(
            &codex_core::config::find_codex_home().context("finding CODEX_HOME")?,
        ),
    };
    let report = tokio::time::timeout(DEADLINE, fetch(&socket))
        .await
        .with_context(|| format!("no answer from {} within {DEADLINE:?}", socket.display()))??;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

async fn fetch(socket: &std::path::Path) -> anyhow::Result<StatusReport> {
    let info = ClientInfo {
        name: "codex_daemon_status".into(),
        title: None,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let mut client = match Client::connect_unix(socket, info, DEADLINE).await {
        Ok(c) => c,
        Err(e @ ClientError::Connect { .. }) => {
            return Err(anyhow::Error::new(e).context(
                "cannot reach codexd (is it running? start it with `codex app-server --listen unix://`)",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    Ok(client
        .request(METHOD, &serde_json::Map::new(), DEADLINE)
        .await?)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{:.1}s", ms as f64 / 1000.0),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn service_state(s: codex_ipc::supervised::ServiceState) -> &'static str {
    use codex_ipc::supervised::ServiceState;
    match s {
        ServiceState::NotStarted => "not started",
        ServiceState::Starting => "starting",
        ServiceState::Running => "running",
        ServiceState::Restarting => "restarting",
        ServiceState::Stopped => "stopped",
    }
}

/// `memories pipeline: running (pid 123), 1 pending · 3 passes · last: ...`
fn pipeline_line(p: &codex_ipc::app_server::codexd_status::PipelineStatus) -> String {
    let now = match p.pid {
        Some(pid) => format!("running (pid {pid})"),
        None => "idle".to_string(),
    };
    let pending = if p.pending { ", 1 pending" } else { "" };
    let last = match &p.last {
        None => "no pass yet".to_string(),
        Some(l) => {
            let mut text = format!(
                "last: {} extracted, {} failed of {} eligible; phase 2 {}",
                l.extracted, l.failed, l.eligible, l.phase2
            );
            if let Some(e) = &l.error {
                text.push_str(&format!(" ({e})"));
            }
            text
        }
    };
    format!(
        "memories pipeline: {now}{pending} · {} pass(es) · {last}\n",
        p.passes
    )
}

/// The human-readable report.
pub fn render(r: &StatusReport) -> String {
    let l = &r.limits;
    let mut out = format!(
        "codexd {}  pid {}  up {}  {} connection(s)\ncontainment: {}{}\n",
        r.version,
        r.pid,
        duration(r.uptime_ms),
        r.connections,
        match r.containment.mode {
            ContainmentMode::Cgroup => "cgroup",
            ContainmentMode::ProcessTreeSweep => "processTreeSweep",
        },
        r.containment
            .path
            .as_ref()
            .map(|p| format!(" ({})", p.display()))
            .unwrap_or_default(),
    );
    out.push_str(&format!(
        "limits: watchdog {} · idle unload {} · CPU soft/hard {}%/{}% over {} · memory soft/hard/cap {}/{}/{} · {} threads max\n",
        duration(l.watchdog_timeout_ms),
        duration(l.idle_unload_ms),
        l.cpu_soft_percent,
        l.cpu_hard_percent,
        duration(l.cpu_window_ms),
        mib(l.memory_soft_bytes),
        mib(l.memory_hard_bytes),
        mib(l.memory_cap_bytes),
        l.max_loaded_threads,
    ));
    out.push_str(&format!(
        "load shed: {} requests answered -32001 · {} clients that stopped reading disconnected\n",
        r.load.overloaded, r.load.slow_clients_disconnected
    ));
    if let Some(m) = &r.memory {
        out.push_str(&format!(
            "codex-memory: {} · pid {} · {} restart(s) · {} memories{}\n",
            service_state(m.state),
            m.pid,
            m.restarts,
            m.count.map(|c| c.to_string()).unwrap_or_else(|| "?".into()),
            m.db_path
                .as_ref()
                .map(|p| format!(" in {}", p.display()))
                .unwrap_or_default(),
        ));
        for w in &m.warnings {
            out.push_str(&format!("codex-memory warning: {w}\n"));
        }
        if let Some(p) = m.pipeline.as_ref().filter(|p| p.enabled) {
            out.push_str(&pipeline_line(p));
        }
    }
    if r.threads.is_empty() {
        out.push_str("no threads loaded\n");
        return out;
    }
    out.push_str(&format!(
        "{:<36}  {:>7}  {:<8}  {:<8}  {:>6}  {:>10}  {:>5}  {:>4}\n",
        "THREAD", "PID", "STATUS", "PRESSURE", "CPU%", "RSS", "PROCS", "SUBS"
    ));
    for t in &r.threads {
        out.push_str(&format!(
            "{:<36}  {:>7}  {:<8}  {:<8}  {:>6.1}  {:>10}  {:>5}  {:>4}\n",
            t.thread_id,
            t.pid,
            match t.status {
                ThreadStatusView::NotLoaded => "notLoaded",
                ThreadStatusView::Idle => "idle",
                ThreadStatusView::Active { .. } => "active",
            },
            t.pressure.as_str(),
            t.cpu_percent,
            mib(t.rss_bytes),
            t.processes,
            t.subscribers,
        ));
    }
    out
}
