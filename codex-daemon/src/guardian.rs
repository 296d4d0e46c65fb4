//! A worker's guardian: when its supervisor is gone, the worker takes its
//! whole tree down before it exits.
//!
//! The guardian is a plain OS thread blocked in `poll` on a duplicate of the
//! link, so it runs even when the worker's engine loop is wedged. When the
//! supervisor's end closes (codexd or `codex exec` killed, or the link let
//! go), it kills every descendant of the worker at once (the worker is their
//! subreaper, so `setsid`/`nohup` escapees are still its descendants), gives
//! the worker's own shutdown a moment to record the turn's end, and then
//! ends the worker itself: with its cgroup (`cgroup.kill`, which takes
//! anything that slipped past the walk) when it has one, else `_exit`.

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use codex_core::process;

/// How long the worker's own shutdown may take once the supervisor is gone.
const SELF_SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Starts the guardian of this worker, watching `link_fd`.
pub fn spawn(link_fd: RawFd) -> std::io::Result<()> {
    // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor we own into a new one
    // (kept out of everything the worker spawns).
    let fd = unsafe { libc::fcntl(link_fd, libc::F_DUPFD_CLOEXEC, 10) };
    if fd == -1 {
        return Err(std::io::Error::last_os_error());
    }
    std::thread::Builder::new()
        .name("codex-guardian".into())
        .spawn(move || {
            wait_for_hangup(fd);
            take_tree_down("the supervisor is gone");
            std::thread::sleep(SELF_SHUTDOWN_GRACE);
            tracing::warn!("codex-session: shutdown took too long; exiting");
            end_self();
        })?;
    Ok(())
}

/// Blocks until the peer of `fd` has closed its end.
fn wait_for_hangup(fd: RawFd) {
    loop {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: `p` is one valid pollfd that outlives the call.
        let rc = unsafe { libc::poll(&mut p, 1, -1) };
        if rc < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // An unpollable link cannot tell us anything: watch nothing.
            tracing::warn!("codex-session: guardian cannot poll its link");
            loop {
                std::thread::park();
            }
        }
        if p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            return;
        }
    }
}

/// Kills everything this worker started (not the worker itself).
pub fn take_tree_down(why: &str) {
    let n = process::kill_all_descendants();
    if n > 0 {
        tracing::info!("codex-session: {why}; killed {n} processes");
    }
}

/// Ends this worker and anything left in its cgroup.
pub fn end_self() -> ! {
    take_tree_down("exiting");
    if let Some(cg) = own_worker_cgroup() {
        let _ = std::fs::write(cg.join("cgroup.kill"), "1");
    }
    // SAFETY: _exit ends the process without running destructors or atexit
    // handlers, which may belong to a wedged runtime.
    unsafe { libc::_exit(1) }
}

/// The per-worker cgroup this process was launched into
/// (`.../codexd-<pid>/worker-<n>`), if any.
pub fn own_worker_cgroup() -> Option<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_string()))?;
    let dir = crate::containment::cgroup2_mount()?.join(rel.trim_start_matches('/'));
    is_worker_cgroup(&dir).then_some(dir)
}

fn is_worker_cgroup(dir: &Path) -> bool {
    let name = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
            .unwrap_or_default()
    };
    name(dir).starts_with("worker-")
        && dir.parent().is_some_and(|p| name(p).starts_with("codexd-"))
        && dir.join("cgroup.kill").exists()
}
