//! Running one tool command: spawned through the [`Sandbox`] seam as the
//! leader of its own process group, output captured (bounded) and streamed,
//! and the whole tree killed when the command ends, times out or is
//! cancelled, so nothing it started outlives it.

pub mod env;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod output;
pub mod protection;
pub mod sandbox;
pub mod seatbelt;

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

pub use output::{HeadTailBuffer, Utf8Chunker};
pub use protection::Protection;
pub use sandbox::{platform_sandbox, CommandSpec, Sandbox, SandboxError, Unconfined};

use crate::config::SandboxPolicy;
use crate::process;

/// Exit code reported for a command killed by its deadline (as `timeout(1)`).
pub const TIMEOUT_EXIT_CODE: i32 = 124;
/// Bytes of output kept per command (head + tail).
pub const DEFAULT_CAPTURE_BYTES: usize = 1024 * 1024;
/// After the command exits, how long we keep draining its pipes.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// How a command's processes are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Each command leads a new session: its own process group (killed as a
    /// whole) and no controlling terminal. For hosts that share their process
    /// group with others: library embedders, the in-process CLI.
    #[default]
    OwnSession,
    /// Commands stay in this process's group. For `codex-session` workers,
    /// which lead their own session: the worker's group holds the worker and
    /// everything it runs, so killing the group takes the whole tree. Per
    /// command cleanup then walks the command's descendants (and relies on
    /// the worker being a subreaper for orphans).
    InheritGroup,
}

#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub spec: CommandSpec,
    pub policy: SandboxPolicy,
    pub timeout: Duration,
    pub capture_bytes: usize,
    pub isolation: Isolation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEnd {
    Exited(i32),
    Signaled(i32),
    TimedOut,
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub end: ExecEnd,
    /// stdout and stderr interleaved in arrival order (bounded).
    pub aggregated: String,
    pub total_bytes: u64,
    pub duration: Duration,
    pub pid: Option<u32>,
}

impl ExecOutput {
    /// The exit code as a shell would report it.
    pub fn exit_code(&self) -> i32 {
        match self.end {
            ExecEnd::Exited(c) => c,
            ExecEnd::Signaled(s) => 128 + s,
            ExecEnd::TimedOut => TIMEOUT_EXIT_CODE,
            ExecEnd::Cancelled => 130,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("failed to spawn `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("working directory {0} does not exist")]
    NoCwd(std::path::PathBuf),
}

/// Runs `req` to completion. `on_output` receives output text as it arrives.
pub async fn run(
    req: ExecRequest,
    sandbox: &dyn Sandbox,
    cancel: CancellationToken,
    mut on_output: impl FnMut(&str) + Send,
) -> Result<ExecOutput, ExecError> {
    if !req.spec.cwd.is_dir() {
        return Err(ExecError::NoCwd(req.spec.cwd.clone()));
    }
    let spec = sandbox.wrap(req.spec, &req.policy)?;
    let started = Instant::now();
    // stdout and stderr share one socket, so the captured output keeps the
    // order in which the command wrote it.
    let spawn_err = |source| ExecError::Spawn {
        program: spec.program.clone(),
        source,
    };
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(spawn_err)?;
    let theirs_err = theirs.try_clone().map_err(spawn_err)?;
    ours.set_nonblocking(true).map_err(spawn_err)?;
    let mut reader = Some(tokio::net::UnixStream::from_std(ours).map_err(spawn_err)?);
    let mut cmd = Command::new(&spec.program);
    if let Some(arg0) = &spec.arg0 {
        use std::os::unix::process::CommandExt as _;
        cmd.as_std_mut().arg0(arg0);
    }
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stderr(Stdio::from(std::os::fd::OwnedFd::from(theirs_err)))
        .kill_on_drop(true);
    if req.isolation == Isolation::OwnSession {
        // A new session: the command leads its own process group (so the
        // whole group can be killed) and has no controlling terminal (so a
        // tool that opens /dev/tty to prompt fails at once instead of
        // stopping forever).
        // SAFETY: setsid is async-signal-safe and touches no memory; it runs
        // in the forked child before exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    // Spawn and register under the spawn lock, so a concurrent orphan sweep
    // never mistakes this child for an adopted orphan.
    let (mut child, guard) = {
        let _lock = process::spawn_lock();
        let child = cmd.spawn().map_err(spawn_err)?;
        let guard = TreeGuard::new(child.id(), req.isolation == Isolation::OwnSession);
        (child, guard)
    };
    // Our copies of the write ends must close, or the reader never sees EOF.
    drop(cmd);
    let pid = child.id();

    let mut buf = HeadTailBuffer::new(req.capture_bytes);
    let mut chunker = Utf8Chunker::default();
    let mut rb = vec![0u8; 16 * 1024];
    let deadline = tokio::time::sleep(req.timeout);
    tokio::pin!(deadline);
    let mut take = |data: &[u8], buf: &mut HeadTailBuffer, chunker: &mut Utf8Chunker| {
        buf.push(data);
        let text = chunker.push(data);
        if !text.is_empty() {
            on_output(&text);
        }
    };

    let end = loop {
        tokio::select! {
            n = read_some(&mut reader, &mut rb) => {
                if n > 0 {
                    take(&rb[..n], &mut buf, &mut chunker);
                } else {
                    reader = None;
                }
            }
            status = child.wait() => {
                break match status {
                    Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                        (Some(c), _) => ExecEnd::Exited(c),
                        (None, Some(sig)) => ExecEnd::Signaled(sig),
                        (None, None) => ExecEnd::Exited(-1),
                    },
                    Err(_) => ExecEnd::Exited(-1),
                };
            }
            _ = &mut deadline => break ExecEnd::TimedOut,
            _ = cancel.cancelled() => break ExecEnd::Cancelled,
        }
    };

    // The leader is done (or must be): take down everything it left behind,
    // which also closes the socket those processes held.
    let leader_reaped = matches!(end, ExecEnd::Exited(_) | ExecEnd::Signaled(_));
    guard.kill_now(leader_reaped).await;
    if !leader_reaped {
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    }
    let drain_until = tokio::time::Instant::now() + DRAIN_GRACE;
    while reader.is_some() {
        match tokio::time::timeout_at(drain_until, read_some(&mut reader, &mut rb)).await {
            Ok(0) | Err(_) => reader = None,
            Ok(n) => take(&rb[..n], &mut buf, &mut chunker),
        }
    }
    let rest = chunker.finish();
    if !rest.is_empty() {
        on_output(&rest);
    }
    Ok(ExecOutput {
        end,
        aggregated: buf.to_string_lossy(),
        total_bytes: buf.total_bytes(),
        duration: started.elapsed(),
        pid,
    })
}

async fn read_some<R: tokio::io::AsyncRead + Unpin>(r: &mut Option<R>, buf: &mut [u8]) -> usize {
    match r {
        Some(r) => r.read(buf).await.unwrap_or(0),
        None => std::future::pending().await,
    }
}

/// Owns a command's process tree: registered while alive, killed (group,
/// descendants, adopted orphans) when done or dropped.
struct TreeGuard {
    pid: Option<u32>,
    /// The command leads its own process group.
    group: bool,
}

impl TreeGuard {
    fn new(pid: Option<u32>, group: bool) -> Self {
        if let Some(pid) = pid {
            process::register_child(pid);
        }
        Self { pid, group }
    }

    async fn kill_now(mut self, leader_reaped: bool) {
        if let Some(pid) = self.pid.take() {
            // /proc walking and reaping are blocking syscalls.
            let group = self.group;
            let _ = tokio::task::spawn_blocking(move || {
                process::kill_tree(pid, leader_reaped, group);
                process::unregister_child(pid);
            })
            .await;
        }
    }
}

impl Drop for TreeGuard {
    fn drop(&mut self) {
        // Dropped mid-run (the future was cancelled): the leader is unreaped.
        if let Some(pid) = self.pid.take() {
            process::kill_tree(pid, false, self.group);
            process::unregister_child(pid);
        }
    }
}
