//! Running one tool command: spawned through the [`Sandbox`] seam as the
//! leader of its own process group, output captured (bounded) and streamed,
//! and the whole tree killed when the command ends, times out or is
//! cancelled, so nothing it started outlives it.

pub mod env;
pub mod output;
pub mod sandbox;

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

pub use output::{HeadTailBuffer, Utf8Chunker};
pub use sandbox::{CommandSpec, Sandbox, SandboxError, Unconfined};

use crate::config::SandboxPolicy;
use crate::process;

/// Exit code reported for a command killed by its deadline (as `timeout(1)`).
pub const TIMEOUT_EXIT_CODE: i32 = 124;
/// Bytes of output kept per command (head + tail).
pub const DEFAULT_CAPTURE_BYTES: usize = 1024 * 1024;
/// After the command exits, how long we keep draining its pipes.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub spec: CommandSpec,
    pub policy: SandboxPolicy,
    pub timeout: Duration,
    pub capture_bytes: usize,
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
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| ExecError::Spawn {
        program: spec.program.clone(),
        source,
    })?;
    let pid = child.id();
    let guard = TreeGuard::new(pid);

    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut buf = HeadTailBuffer::new(req.capture_bytes);
    let mut out_chunker = Utf8Chunker::default();
    let mut err_chunker = Utf8Chunker::default();
    let mut ob = vec![0u8; 8192];
    let mut eb = vec![0u8; 8192];
    let deadline = tokio::time::sleep(req.timeout);
    tokio::pin!(deadline);

    let end = loop {
        tokio::select! {
            n = read_some(&mut stdout, &mut ob) => {
                if n > 0 {
                    buf.push(&ob[..n]);
                    let text = out_chunker.push(&ob[..n]);
                    if !text.is_empty() { on_output(&text); }
                } else {
                    stdout = None;
                }
            }
            n = read_some(&mut stderr, &mut eb) => {
                if n > 0 {
                    buf.push(&eb[..n]);
                    let text = err_chunker.push(&eb[..n]);
                    if !text.is_empty() { on_output(&text); }
                } else {
                    stderr = None;
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
    // which also closes the pipes those processes held.
    let leader_reaped = matches!(end, ExecEnd::Exited(_) | ExecEnd::Signaled(_));
    guard.kill_now(leader_reaped).await;
    if matches!(end, ExecEnd::TimedOut | ExecEnd::Cancelled) {
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    }
    let drain_until = tokio::time::Instant::now() + DRAIN_GRACE;
    while stdout.is_some() || stderr.is_some() {
        let step = tokio::time::timeout_at(drain_until, async {
            tokio::select! {
                n = read_some(&mut stdout, &mut ob), if stdout.is_some() => (0, n),
                n = read_some(&mut stderr, &mut eb), if stderr.is_some() => (1, n),
            }
        })
        .await;
        match step {
            Ok((0, 0)) => stdout = None,
            Ok((_, 0)) => stderr = None,
            Ok((0, n)) => {
                buf.push(&ob[..n]);
                let text = out_chunker.push(&ob[..n]);
                if !text.is_empty() {
                    on_output(&text);
                }
            }
            Ok((_, n)) => {
                buf.push(&eb[..n]);
                let text = err_chunker.push(&eb[..n]);
                if !text.is_empty() {
                    on_output(&text);
                }
            }
            Err(_) => break,
        }
    }
    for rest in [out_chunker.finish(), err_chunker.finish()] {
        if !rest.is_empty() {
            on_output(&rest);
        }
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
}

impl TreeGuard {
    fn new(pid: Option<u32>) -> Self {
        if let Some(pid) = pid {
            process::register_child(pid);
        }
        Self { pid }
    }

    async fn kill_now(mut self, leader_reaped: bool) {
        if let Some(pid) = self.pid.take() {
            // /proc walking and reaping are blocking syscalls.
            let _ = tokio::task::spawn_blocking(move || {
                process::kill_tree(pid, leader_reaped);
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
            process::kill_tree(pid, false);
            process::unregister_child(pid);
        }
    }
}
