//! Running codexd as a background service, as upstream's
//! `codex app-server daemon` does: a pidfile backend (`pidfile`), the
//! socket probe (`probe`), service units for systemd and launchd (`units`)
//! and the health checks of `codex doctor` (`doctor`). The CLI only parses
//! flags and prints what these return.
//!
//! Files (upstream 0.169's names): `$CODEX_HOME/app-server-daemon/daemon.pid`
//! (`{"pid","processStartTime"}`), `daemon.lock` (the operation lock: two
//! concurrent `start`s yield one daemon) and `daemon.stderr.log` (the
//! daemon's stdout and stderr).

pub mod doctor;
pub mod pidfile;
pub mod probe;
pub mod units;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;

use pidfile::{OperationLock, PidRecord, PidState};

const STATE_DIR: &str = "app-server-daemon";
const PID_FILE: &str = "daemon.pid";
const LOCK_FILE: &str = "daemon.lock";
const LOG_FILE: &str = "daemon.stderr.log";
/// How long a command waits for another one holding the operation lock.
const LOCK_DEADLINE: Duration = Duration::from_secs(75);
/// How long a started daemon has to answer `initialize`.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// SIGTERM, then this long for codexd to stop its workers and exit.
const STOP_GRACE: Duration = Duration::from_secs(20);
/// After SIGKILL, how long the processes have to disappear.
const KILL_WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);
/// Lines of the daemon's log shown when it fails to start.
const LOG_TAIL_LINES: usize = 30;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl LifecycleError {
    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `status` of upstream's lifecycle output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LifecycleStatus {
    AlreadyRunning,
    Started,
    Restarted,
    Stopped,
    NotRunning,
    Running,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BackendKind {
    Pid,
}

/// The one JSON object each command prints (upstream's keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleOutput {
    pub status: LifecycleStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub managed_codex_path: PathBuf,
    pub managed_codex_version: Option<String>,
    pub socket_path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_server_version: Option<String>,
}

/// Where the backend keeps its files, and what it runs.
#[derive(Debug, Clone)]
pub struct DaemonPaths {
    pub codex_home: PathBuf,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub pid_file: PathBuf,
    pub lock_file: PathBuf,
    pub log_file: PathBuf,
}

impl DaemonPaths {
    /// The default socket (`transport::default_socket_path`) unless given.
    pub fn new(codex_home: &Path, socket: Option<PathBuf>) -> Self {
        let state_dir = codex_home.join(STATE_DIR);
        Self {
            codex_home: codex_home.to_path_buf(),
            socket: socket.unwrap_or_else(|| crate::transport::default_socket_path(codex_home)),
            pid_file: state_dir.join(PID_FILE),
            lock_file: state_dir.join(LOCK_FILE),
            log_file: state_dir.join(LOG_FILE),
            state_dir,
        }
    }
}

/// The pidfile backend.
#[derive(Debug, Clone)]
pub struct Daemon {
    pub paths: DaemonPaths,
    /// The `codex` binary the daemon runs (`codex app-server --listen …`).
    pub codex_exe: PathBuf,
    /// How long `stop` waits after SIGTERM before SIGKILL.
    pub stop_grace: Duration,
}

impl Daemon {
    pub fn new(paths: DaemonPaths, codex_exe: PathBuf) -> Self {
        Self {
            paths,
            codex_exe,
            stop_grace: STOP_GRACE,
        }
    }

    /// Starts the daemon unless one is running (`alreadyRunning`, naming it).
    pub async fn start(&self) -> Result<LifecycleOutput, LifecycleError> {
        let _lock = self.lock().await?;
        self.start_locked(LifecycleStatus::Started).await
    }

    /// Stops the managed daemon (`notRunning` when there is none).
    pub async fn stop(&self) -> Result<LifecycleOutput, LifecycleError> {
        let _lock = self.lock().await?;
        match self.stop_locked().await? {
            Some(pid) => Ok(self.output(
                LifecycleStatus::Stopped,
                Some(BackendKind::Pid),
                Some(pid),
                None,
            )),
            None => Ok(self.output(LifecycleStatus::NotRunning, None, None, None)),
        }
    }

    pub async fn restart(&self) -> Result<LifecycleOutput, LifecycleError> {
        let _lock = self.lock().await?;
        self.stop_locked().await?;
        self.start_locked(LifecycleStatus::Restarted).await
    }

    /// Asks the running daemon its version (an error when none answers).
    pub async fn version(&self) -> Result<LifecycleOutput, LifecycleError> {
        let info = probe::probe(&self.paths.socket, probe::PROBE_DEADLINE)
            .await
            .map_err(|e| {
                LifecycleError::Other(format!(
                    "app server is not running on {}: {e}",
                    self.paths.socket.display()
                ))
            })?;
        let (backend, pid) = match pidfile::read(&self.paths.pid_file)? {
            PidState::Running(r) => (Some(BackendKind::Pid), Some(r.pid)),
            _ => (None, None),
        };
        Ok(self.output(
            LifecycleStatus::Running,
            backend,
            pid,
            Some(info.app_server_version),
        ))
    }

    async fn lock(&self) -> Result<OperationLock, LifecycleError> {
        pidfile::ensure_dir(&self.paths.state_dir)?;
        OperationLock::acquire(&self.paths.lock_file, LOCK_DEADLINE).await
    }

    async fn start_locked(
        &self,
        started: LifecycleStatus,
    ) -> Result<LifecycleOutput, LifecycleError> {
        match pidfile::read(&self.paths.pid_file)? {
            PidState::Running(r) => {
                let info = self.wait_ready(r.pid, None).await?;
                return Ok(self.output(
                    LifecycleStatus::AlreadyRunning,
                    Some(BackendKind::Pid),
                    Some(r.pid),
                    Some(info.app_server_version),
                ));
            }
            PidState::Stale(_) => pidfile::remove(&self.paths.pid_file),
            PidState::Missing => {}
        }
        // A daemon started some other way (by hand, by systemd) owns the
        // socket: report it rather than fight over the path.
        if let Ok(info) = probe::probe(&self.paths.socket, probe::PROBE_DEADLINE).await {
            return Ok(self.output(
                LifecycleStatus::AlreadyRunning,
                None,
                None,
                Some(info.app_server_version),
            ));
        }
        let mut child = self.spawn()?;
        let pid = child.id();
        let Some(start_time) = pidfile::process_start_time(pid) else {
            let _ = child.kill();
            return Err(LifecycleError::Other(format!(
                "the daemon (pid {pid}) exited at once{}",
                self.log_tail()
            )));
        };
        pidfile::write(
            &self.paths.pid_file,
            &PidRecord {
                pid,
                process_start_time: start_time,
            },
        )?;
        match self.wait_ready(pid, Some(&mut child)).await {
            Ok(info) => Ok(self.output(
                started,
                Some(BackendKind::Pid),
                Some(pid),
                Some(info.app_server_version),
            )),
            Err(e) => {
                codex_core::process::signal_group(pid, libc::SIGKILL);
                codex_core::process::signal_pid(pid, libc::SIGKILL);
                let _ = child.wait();
                pidfile::remove(&self.paths.pid_file);
                Err(e)
            }
        }
    }

    /// `codex app-server --listen unix://SOCKET` in its own session, stdio
    /// to the log file.
    fn spawn(&self) -> Result<std::process::Child, LifecycleError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        use std::os::unix::process::CommandExt as _;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.paths.log_file)
            .map_err(|e| LifecycleError::io("open", &self.paths.log_file, e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| LifecycleError::io("open", &self.paths.log_file, e))?;
        let cwd = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_dir())
            .unwrap_or_else(|| self.paths.codex_home.clone());
        // The default socket is named as upstream's daemon names it
        // (`unix://`: a symlink to a short path under /tmp, which upstream's
        // clients also look for); another one by its path.
        let listen =
            if self.paths.socket == crate::transport::default_socket_path(&self.paths.codex_home) {
                "unix://".to_string()
            } else {
                format!("unix://{}", self.paths.socket.display())
            };
        let mut cmd = std::process::Command::new(&self.codex_exe);
        cmd.arg("app-server")
            .arg("--listen")
            .arg(listen)
            .env("CODEX_HOME", &self.paths.codex_home)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // SAFETY: setsid is async-signal-safe and touches no memory of the
        // parent; the daemon leads its own session and process group, so it
        // outlives this command and a terminal's hangup.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn().map_err(|e| {
            LifecycleError::Other(format!(
                "cannot start the daemon with {}: {e}",
                self.codex_exe.display()
            ))
        })
    }

    /// Polls the socket until the daemon answers `initialize`; fails with
    /// the log's tail when it exits or the deadline passes.
    async fn wait_ready(
        &self,
        pid: u32,
        mut child: Option<&mut std::process::Child>,
    ) -> Result<probe::ProbeInfo, LifecycleError> {
        let until = Instant::now() + START_DEADLINE;
        loop {
            let last = match probe::probe(&self.paths.socket, probe::PROBE_DEADLINE).await {
                Ok(info) => return Ok(info),
                Err(e) => e,
            };
            let exited = match child.as_deref_mut() {
                Some(c) => c.try_wait().ok().flatten().map(|s| s.to_string()),
                None => (!pidfile::is_alive(pid)).then(|| "gone".to_string()),
            };
            if let Some(status) = exited {
                return Err(LifecycleError::Other(format!(
                    "the daemon (pid {pid}) exited before answering on {} ({status}){}",
                    self.paths.socket.display(),
                    self.log_tail()
                )));
            }
            if Instant::now() >= until {
                return Err(LifecycleError::Other(format!(
                    "app server did not become ready on {} within {START_DEADLINE:?} (last error: {last}){}",
                    self.paths.socket.display(),
                    self.log_tail()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops the recorded daemon and everything it started; the pid it
    /// stopped, or `None` when none was running.
    async fn stop_locked(&self) -> Result<Option<u32>, LifecycleError> {
        let record = match pidfile::read(&self.paths.pid_file)? {
            PidState::Running(r) => r,
            PidState::Stale(_) | PidState::Missing => {
                pidfile::remove(&self.paths.pid_file);
                if probe::probe(&self.paths.socket, probe::PROBE_DEADLINE)
                    .await
                    .is_ok()
                {
                    return Err(LifecycleError::Other(format!(
                        "app server is running on {} but is not managed by codex app-server daemon",
                        self.paths.socket.display()
                    )));
                }
                return Ok(None);
            }
        };
        let pid = record.pid;
        // Workers lead their own sessions: remember them (with start times)
        // to sweep what a killed daemon could not stop.
        let tree = tree_of(pid);
        codex_core::process::signal_pid(pid, libc::SIGTERM);
        if !wait_gone(|| pidfile::is_daemon(&record), self.stop_grace).await {
            tracing::warn!(
                "codexd {pid} ignored SIGTERM for {:?}; killing its group",
                self.stop_grace
            );
            codex_core::process::signal_group(pid, libc::SIGKILL);
            codex_core::process::signal_pid(pid, libc::SIGKILL);
            if !wait_gone(|| pidfile::is_daemon(&record), KILL_WAIT).await {
                return Err(LifecycleError::Other(format!(
                    "codexd {pid} did not exit after SIGKILL"
                )));
            }
        }
        let alive = |t: &[(u32, u64)]| -> Vec<(u32, u64)> {
            t.iter().copied().filter(|p| same_process(*p)).collect()
        };
        // The workers' guardians take them down once the daemon is gone.
        if !wait_gone(|| !alive(&tree).is_empty(), KILL_WAIT).await {
            tracing::warn!(
                "codexd {pid} exited but left {:?}; killing them",
                alive(&tree)
            );
            for (p, _) in alive(&tree) {
                codex_core::process::signal_group(p, libc::SIGKILL);
                codex_core::process::signal_pid(p, libc::SIGKILL);
            }
            wait_gone(|| !alive(&tree).is_empty(), KILL_WAIT).await;
        }
        pidfile::remove(&self.paths.pid_file);
        Ok(Some(pid))
    }

    fn output(
        &self,
        status: LifecycleStatus,
        backend: Option<BackendKind>,
        pid: Option<u32>,
        app_server_version: Option<String>,
    ) -> LifecycleOutput {
        LifecycleOutput {
            status,
            backend,
            pid,
            managed_codex_path: self.codex_exe.clone(),
            managed_codex_version: Some(env!("CARGO_PKG_VERSION").into()),
            socket_path: self.paths.socket.clone(),
            cli_version: Some(env!("CARGO_PKG_VERSION").into()),
            app_server_version,
        }
    }

    /// The last lines of the daemon's log, for error messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.paths.log_file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        if tail.trim().is_empty() {
            format!("\n(the log {} is empty)", self.paths.log_file.display())
        } else {
            format!(
                "\n\nlast lines of {}:\n{tail}",
                self.paths.log_file.display()
            )
        }
    }
}

/// `pid` and its descendants, with start times.
fn tree_of(pid: u32) -> Vec<(u32, u64)> {
    codex_core::process::descendants(pid)
        .into_iter()
        .filter(|p| !p.is_zombie())
        .map(|p| (p.pid, p.start_time))
        .collect()
}

fn same_process((pid, start): (u32, u64)) -> bool {
    codex_core::process::read_proc(pid).is_some_and(|p| p.start_time == start && !p.is_zombie())
}

/// Waits until `present()` is false; whether it became false in time.
async fn wait_gone(present: impl Fn() -> bool, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    while present() {
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "daemon" that ignores SIGTERM, with a child in its group that
    /// does too: `stop` escalates to SIGKILL of the group.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn stop_kills_the_group_of_a_daemon_that_ignores_sigterm() {
        use std::os::unix::process::CommandExt as _;
        let dir = tempfile_dir();
        let paths = DaemonPaths::new(&dir, Some(dir.join("none.sock")));
        let mut cmd = std::process::Command::new("bash");
        cmd.args([
            "-c",
            "trap '' TERM; (exec -a codex-child sleep 600) & exec -a codexd sleep 600",
        ])
        .process_group(0);
        let mut child = cmd.spawn().unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(30);
        let grandchild = loop {
            let d = codex_core::process::descendants(pid);
            if let Some(p) = d.first() {
                if program_is(pid, "codexd") {
                    break p.pid;
                }
            }
            assert!(Instant::now() < deadline, "bash never exec'd");
            tokio::time::sleep(POLL).await;
        };
        pidfile::ensure_dir(&paths.state_dir).unwrap();
        let record = PidRecord {
            pid,
            process_start_time: pidfile::process_start_time(pid).unwrap(),
        };
        pidfile::write(&paths.pid_file, &record).unwrap();
        let mut d = Daemon::new(paths.clone(), "/bin/false".into());
        d.stop_grace = Duration::from_millis(300);
        let out = d.stop().await.unwrap();
        assert_eq!(out.status, LifecycleStatus::Stopped);
        assert_eq!(out.pid, Some(pid));
        let _ = child.wait();
        assert!(!pidfile::is_alive(pid));
        assert!(!pidfile::is_alive(grandchild), "the group was killed");
        assert!(!paths.pid_file.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn program_is(pid: u32, name: &str) -> bool {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.split(|b| *b == 0).next() == Some(name.as_bytes()))
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "codex-lifecycle-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn output_uses_upstream_keys() {
        let d = Daemon::new(
            DaemonPaths::new(Path::new("/h"), Some("/h/s.sock".into())),
            "/bin/codex".into(),
        );
        let v = serde_json::to_value(d.output(
            LifecycleStatus::AlreadyRunning,
            Some(BackendKind::Pid),
            Some(3),
            Some("1".into()),
        ))
        .unwrap_or_default();
        assert_eq!(v["status"], "alreadyRunning");
        assert_eq!(v["backend"], "pid");
        assert_eq!(v["socketPath"], "/h/s.sock");
        assert_eq!(v["managedCodexPath"], "/bin/codex");
        for k in [
            "cliVersion",
            "appServerVersion",
            "managedCodexVersion",
            "pid",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
    }
}
