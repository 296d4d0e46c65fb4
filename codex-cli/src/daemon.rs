//! `codex daemon status`: asks a running codexd (on its unix socket) what it
//! is doing: its workers, their pressure levels and resource use, and the
//! limits in force.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

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
        /// The daemon's socket (default: `$CODEX_HOME/codexd/codexd.sock`).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Print the raw `codexd/status` result as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn main(args: DaemonArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("codex: cannot start runtime: {e}");
            return 1;
        }
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

async fn fetch(socket: &std::path::Path) -> anyhow::Result<Value> {
    let stream = tokio::net::UnixStream::connect(socket).await.with_context(|| {
        format!(
            "cannot connect to codexd at {} (is it running? start it with `codex app-server --listen unix://`)",
            socket.display()
        )
    })?;
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    let hello = json!({"id": 0, "method": "initialize", "params": {
        "clientInfo": {"name": "codex_daemon_status", "title": null, "version": env!("CARGO_PKG_VERSION")}
    }});
    let ask = json!({"id": 1, "method": "codexd/status", "params": {}});
    let mut out = String::new();
    for msg in [hello, json!({"method": "initialized"}), ask] {
        out.push_str(&msg.to_string());
        out.push('\n');
    }
    w.write_all(out.as_bytes()).await?;
    while let Some(line) = lines.next_line().await? {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v.get("method").is_some() || v["id"] != 1 {
            continue;
        }
        if let Some(err) = v.get("error") {
            bail!("codexd answered with an error: {err}");
        }
        return Ok(v["result"].clone());
    }
    bail!("codexd closed the connection without answering")
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

/// The human-readable report.
pub fn render(r: &Value) -> String {
    let u = |v: &Value| v.as_u64().unwrap_or(0);
    let l = &r["limits"];
    let mut out = format!(
        "codexd {}  pid {}  up {}  {} connection(s)\ncontainment: {}{}\n",
        r["version"].as_str().unwrap_or("?"),
        u(&r["pid"]),
        duration(u(&r["uptimeMs"])),
        u(&r["connections"]),
        r["containment"]["mode"].as_str().unwrap_or("?"),
        r["containment"]["path"]
            .as_str()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default(),
    );
    out.push_str(&format!(
        "limits: watchdog {} · idle unload {} · CPU soft/hard {}%/{}% over {} · memory soft/hard/cap {}/{}/{} · {} threads max\n",
        duration(u(&l["watchdogTimeoutMs"])),
        duration(u(&l["idleUnloadMs"])),
        u(&l["cpuSoftPercent"]),
        u(&l["cpuHardPercent"]),
        duration(u(&l["cpuWindowMs"])),
        mib(u(&l["memorySoftBytes"])),
        mib(u(&l["memoryHardBytes"])),
        mib(u(&l["memoryCapBytes"])),
        u(&l["maxLoadedThreads"]),
    ));
    let threads = r["threads"].as_array().cloned().unwrap_or_default();
    if threads.is_empty() {
        out.push_str("no threads loaded\n");
        return out;
    }
    out.push_str(&format!(
        "{:<36}  {:>7}  {:<8}  {:<8}  {:>6}  {:>10}  {:>5}  {:>4}\n",
        "THREAD", "PID", "STATUS", "PRESSURE", "CPU%", "RSS", "PROCS", "SUBS"
    ));
    for t in threads {
        out.push_str(&format!(
            "{:<36}  {:>7}  {:<8}  {:<8}  {:>6.1}  {:>10}  {:>5}  {:>4}\n",
            t["threadId"].as_str().unwrap_or("?"),
            u(&t["pid"]),
            t["status"]["type"].as_str().unwrap_or("?"),
            t["pressure"].as_str().unwrap_or("?"),
            t["cpuPercent"].as_f64().unwrap_or(0.0),
            mib(u(&t["rssBytes"])),
            u(&t["processes"]),
            u(&t["subscribers"]),
        ));
    }
    out
}
