//! The pidfile backend's files: `daemon.pid` (upstream's JSON record:
//! pid and process start time, so a reused pid is never mistaken for the
//! daemon) and the operation lock (`flock`) that serialises `start`,
//! `stop` and `restart`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::LifecycleError;

/// `$CODEX_HOME/app-server-daemon/daemon.pid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PidRecord {
    pub pid: u32,
    pub process_start_time: String,
}

/// What the pidfile says about the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidState {
    Missing,
    /// The recorded process is alive and is the daemon.
    Running(PidRecord),
    /// The record names a dead process, or a pid reused by another program.
    Stale(PidRecord),
}

pub fn read(path: &Path) -> Result<PidState, LifecycleError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PidState::Missing),
        Err(e) => return Err(LifecycleError::io("read", path, e)),
    };
    if text.trim().is_empty() {
        return Ok(PidState::Missing);
    }
    let record: PidRecord = match serde_json::from_str(&text) {
        Ok(r) => r,
        // Garbage cannot name a live daemon; treat it as stale.
        Err(_) => {
            return Ok(PidState::Stale(PidRecord {
                pid: 0,
                process_start_time: String::new(),
            }))
        }
    };
    Ok(if is_daemon(&record) {
        PidState::Running(record)
    } else {
        PidState::Stale(record)
    })
}

/// Writes the record atomically (temp file + rename), mode 0600.
pub fn write(path: &Path, record: &PidRecord) -> Result<(), LifecycleError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("pid.tmp");
    let body = serde_json::to_vec(record).map_err(|e| LifecycleError::Other(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| LifecycleError::io("write", &tmp, e))?;
    f.write_all(&body)
        .and_then(|()| f.sync_all())
        .map_err(|e| LifecycleError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| LifecycleError::io("publish", path, e))
}

pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// The start time of `pid` as recorded in pidfiles: clock ticks since boot
/// from `/proc/<pid>/stat` (Linux), `ps -o lstart=` elsewhere.
pub fn process_start_time(pid: u32) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        codex_core::process::read_proc(pid).map(|p| p.start_time.to_string())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let out = std::process::Command::new("ps")
            .args(["-p", &pid.to_string(), "-o", "lstart="])
            .output()
            .ok()?;
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !s.is_empty()).then_some(s)
    }
}

/// Whether the record's process is alive, started when recorded, and is
/// a `codex`/`codexd` (a pid reused by another program is not ours).
pub fn is_daemon(record: &PidRecord) -> bool {
    if record.pid <= 1 || !is_alive(record.pid) {
        return false;
    }
    if process_start_time(record.pid).as_deref() != Some(record.process_start_time.as_str()) {
        return false;
    }
    program_name(record.pid).is_none_or(|n| n == "codexd" || n == "codex")
}

/// Alive and not a zombie.
pub fn is_alive(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        codex_core::process::read_proc(pid).is_some_and(|p| !p.is_zombie())
    }
    #[cfg(not(target_os = "linux"))]
    {
        // SAFETY: kill with signal 0 only checks for existence.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
}

/// The basename of `argv[0]` (`None` where `/proc` is not available).
fn program_name(pid: u32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv0 = cmdline.split(|b| *b == 0).next()?;
    let argv0 = String::from_utf8_lossy(argv0);
    Some(
        Path::new(argv0.as_ref())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )
}

/// An exclusive `flock` on the operation lock, released on drop.
#[derive(Debug)]
pub struct OperationLock {
    _file: File,
}

impl OperationLock {
    /// Waits (polling, up to `deadline`) for the lock.
    pub async fn acquire(path: &Path, deadline: Duration) -> Result<Self, LifecycleError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| LifecycleError::io("open", path, e))?;
        let until = Instant::now() + deadline;
        loop {
            // SAFETY: flock on an fd we own; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Self { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(LifecycleError::io("lock", path, err));
            }
            if Instant::now() >= until {
                return Err(LifecycleError::Other(format!(
                    "timed out after {deadline:?} waiting for the daemon operation lock {} (another `codex app-server daemon` command is running)",
                    path.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The pidfile's directory, created 0700.
pub fn ensure_dir(dir: &Path) -> Result<PathBuf, LifecycleError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| LifecycleError::io("create", dir, e))?;
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_uses_upstream_keys() {
        let r = PidRecord {
            pid: 7,
            process_start_time: "123".into(),
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap_or_default(),
            serde_json::json!({"pid": 7, "processStartTime": "123"})
        );
    }

    #[test]
    fn own_process_is_alive_but_wrong_start_time_is_stale() {
        let pid = std::process::id();
        assert!(is_alive(pid));
        let wrong = PidRecord {
            pid,
            process_start_time: "0".into(),
        };
        assert!(!is_daemon(&wrong));
    }
}
