//! The stdio transport: the server is a child process speaking
//! newline-delimited JSON-RPC on stdin/stdout.
//!
//! The child stays in its host's process group (a `codex-session` worker's,
//! so whatever kills the worker's group or cgroup kills the server with it)
//! and is registered as a child spawned on purpose (the orphan sweep of a
//! subreaper host leaves it alone). Ending the transport kills the server's
//! whole tree: every descendant, also those that left with `setsid` (see
//! [`crate::process::kill_tree`]); escapees re-parented to the subreaper
//! worker are swept by it. Its stderr is logged and
//! its last lines kept for the error a crash reports.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use super::transport::{
    Transport, TransportError, TransportEvent, TransportGuard, INCOMING_CAPACITY,
    MAX_MESSAGE_BYTES, OUTGOING_CAPACITY,
};
use crate::process;

/// Variables a stdio server gets from our environment without being named
/// (upstream's list), besides `env` and `env_vars`.
pub const DEFAULT_ENV_VARS: &[&str] = &[
    "HOME", "LOGNAME", "PATH", "SHELL", "USER", "LANG", "LC_ALL", "TERM", "TMPDIR", "TZ",
];

/// Lines of a server's stderr kept for its error messages.
const STDERR_TAIL_LINES: usize = 8;
/// How long a killed server's tree may take to disappear.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Debug, Clone)]
pub struct StdioSpec {
    pub server: String,
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub env_vars: Vec<String>,
    pub cwd: PathBuf,
}

/// The server's environment: upstream's defaults, the named variables, then
/// `env`.
pub fn server_env(spec: &StdioSpec) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for k in DEFAULT_ENV_VARS
        .iter()
        .copied()
        .chain(spec.env_vars.iter().map(String::as_str))
    {
        if let Ok(v) = std::env::var(k) {
            env.insert(k.to_string(), v);
        }
    }
    env.extend(spec.env.clone());
    env
}

/// Starts the server.
pub fn spawn(spec: &StdioSpec) -> Result<Transport, TransportError> {
    let mut cmd = Command::new(&spec.command);
    cmd.args(&spec.args)
        .env_clear()
        .envs(server_env(spec))
        .current_dir(existing_dir(&spec.cwd))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = {
        let _lock = process::spawn_lock();
        let child = cmd.spawn().map_err(|e| {
            TransportError(format!(
                "cannot start `{}`: {e}{}",
                spec.command,
                if e.kind() == std::io::ErrorKind::NotFound {
                    " (not found on PATH)"
                } else {
                    ""
                }
            ))
        })?;
        if let Some(pid) = child.id() {
            process::register_child(pid);
        }
        child
    };
    let pid = child.id();
    let (stdin, stdout, stderr) =
        match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
            (Some(i), Some(o), Some(e)) => (i, o, e),
            _ => {
                return Err(TransportError(
                    "the server's pipes could not be opened".into(),
                ))
            }
        };
    let (out_tx, mut out_rx) = mpsc::channel::<Value>(OUTGOING_CAPACITY);
    let (in_tx, in_rx) = mpsc::channel(INCOMING_CAPACITY);
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let server = spec.server.clone();

    // Writer: one line per message.
    let writer_events = in_tx.clone();
    tokio::spawn(async move {
        let mut stdin = stdin;
        while let Some(msg) = out_rx.recv().await {
            let mut line = msg.to_string();
            line.push('\n');
            if let Err(e) = stdin.write_all(line.as_bytes()).await {
                let _ = writer_events
                    .send(TransportEvent::Closed(format!(
                        "writing to the server failed: {e}"
                    )))
                    .await;
                return;
            }
            let _ = stdin.flush().await;
        }
    });
    // Stderr: logged, the tail kept.
    {
        let tail = tail.clone();
        let server = server.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!("mcp server {server} stderr: {line}");
                if let Ok(mut t) = tail.lock() {
                    if t.len() == STDERR_TAIL_LINES {
                        t.pop_front();
                    }
                    t.push_back(truncate_line(&line, 300));
                }
            }
        });
    }
    let (exit_tx, exit_rx) = tokio::sync::oneshot::channel::<()>();
    // Reader, then the exit status.
    {
        let tail = tail.clone();
        tokio::spawn(async move {
            let reason = read_messages(stdout, &in_tx).await;
            let reason = match reason {
                Some(r) => {
                    // The server broke the protocol: end it.
                    let _ = child.start_kill();
                    r
                }
                None => match tokio::time::timeout(KILL_WAIT, child.wait()).await {
                    Ok(Ok(status)) => format!("the server exited ({})", describe(status)),
                    Ok(Err(e)) => format!("the server's stdout closed ({e})"),
                    Err(_) => "the server closed its stdout".to_string(),
                },
            };
            let stderr_tail = tail
                .lock()
                .map(|t| t.iter().cloned().collect::<Vec<_>>().join(" | "))
                .unwrap_or_default();
            let reason = if stderr_tail.is_empty() {
                reason
            } else {
                format!("{reason}; stderr: {stderr_tail}")
            };
            let _ = in_tx.send(TransportEvent::Closed(reason)).await;
            // Reap the leader whatever happens next (the guard kills).
            let _ = exit_tx.send(());
            let _ = child.wait().await;
        });
    }
    Ok(Transport {
        outgoing: out_tx,
        incoming: in_rx,
        guard: Box::new(StdioGuard {
            pid,
            exited: Mutex::new(Some(exit_rx)),
        }),
    })
}

fn existing_dir(p: &Path) -> &Path {
    if p.is_dir() {
        p
    } else {
        Path::new("/")
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    }
}

fn truncate_line(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Reads messages until EOF (`None`) or a protocol violation that ends the
/// connection (`Some(reason)`).
async fn read_messages<R: AsyncRead + Unpin>(
    stdout: R,
    events: &mpsc::Sender<TransportEvent>,
) -> Option<String> {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let buf = match reader.fill_buf().await {
            Ok(b) => b,
            Err(e) => return Some(format!("reading the server's stdout failed: {e}")),
        };
        if buf.is_empty() {
            if !line.is_empty() {
                deliver(&line, events).await;
            }
            return None;
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], i + 1),
            None => (buf, buf.len()),
        };
        let complete = done <= buf.len() && buf.get(done - 1) == Some(&b'\n');
        if line.len() + chunk.len() > MAX_MESSAGE_BYTES {
            return Some(format!(
                "the server sent a message larger than {} MiB",
                MAX_MESSAGE_BYTES / (1024 * 1024)
            ));
        }
        line.extend_from_slice(chunk);
        reader.consume(done);
        if complete {
            deliver(&line, events).await;
            line.clear();
        }
    }
}

async fn deliver(line: &[u8], events: &mpsc::Sender<TransportEvent>) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    let event = match serde_json::from_str::<Value>(text) {
        Ok(v) if v.is_object() || v.is_array() => TransportEvent::Message(v),
        Ok(_) | Err(_) => TransportEvent::Problem(format!(
            "the server wrote a line that is not a JSON-RPC message: {}",
            truncate_line(text, 120)
        )),
    };
    let _ = events.send(event).await;
}

struct StdioGuard {
    pid: Option<u32>,
    exited: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

impl StdioGuard {
    fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            // The leader is unreaped until the reader task sees it exit, so
            // its descendants can still be walked.
            process::kill_tree(pid, false, false);
            process::unregister_child(pid);
        }
    }
}

impl TransportGuard for StdioGuard {
    fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn shutdown(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        let exited = self.exited.lock().ok().and_then(|mut e| e.take());
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(move || {
                self.kill();
            })
            .await;
            if let Some(rx) = exited {
                let _ = tokio::time::timeout(KILL_WAIT, rx).await;
            }
        })
    }
}

impl Drop for StdioGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn garbage_is_a_problem_and_oversize_ends_the_connection() {
        let (tx, mut rx) = mpsc::channel(16);
        let input: &[u8] = b"hello\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n";
        assert_eq!(read_messages(input, &tx).await, None);
        assert!(matches!(rx.recv().await, Some(TransportEvent::Problem(p)) if p.contains("hello")));
        assert!(matches!(rx.recv().await, Some(TransportEvent::Message(m)) if m["id"] == 1));
        let big = vec![b'x'; MAX_MESSAGE_BYTES + 10];
        let r = read_messages(&big[..], &tx).await;
        assert!(r.unwrap().contains("larger than 16 MiB"));
    }
}
