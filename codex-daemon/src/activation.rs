//! Service-manager integration through `sd-notify`: socket activation (the
//! listening socket on fd 3 when `LISTEN_PID` is this process and
//! `LISTEN_FDS` ≥ 1) and notifications on `NOTIFY_SOCKET` (`READY=1` with
//! `STATUS=`, `WATCHDOG=1`, `STOPPING=1`). Without those variables nothing
//! happens.
//!
//! The daemon keeps the variables in its own environment (`sd-notify` reads
//! `NOTIFY_SOCKET` at each notification); its children never see them: the
//! one launcher and the tool command environment drop
//! [`codex_core::exec::env::SERVICE_MANAGER_VARS`].

use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("socket activation: {0}")]
    Env(std::io::Error),
    #[error("socket activation: fd {fd} is not a listening unix stream socket")]
    NotAUnixListener { fd: RawFd },
    #[error("socket activation: {0}")]
    Io(#[from] std::io::Error),
}

/// The listening socket the service manager handed over, if any.
#[derive(Debug)]
pub struct Activated {
    pub listener: UnixListener,
    /// Its path (`None` for an abstract or unnamed socket).
    pub path: Option<PathBuf>,
}

/// Set once the inherited descriptors were taken, so they are owned once.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Takes the inherited listening socket (`SD_LISTEN_FDS_START`, fd 3). Call
/// it first thing, before any child is spawned: the descriptors are marked
/// close-on-exec here. Sockets past the first are closed with a warning.
pub fn take_listener() -> Result<Option<Activated>, ActivationError> {
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    let fds: Vec<RawFd> = sd_notify::listen_fds()
        .map_err(ActivationError::Env)?
        .collect();
    let Some((&first, rest)) = fds.split_first() else {
        return Ok(None);
    };
    for &fd in rest {
        tracing::warn!("socket activation: ignoring (closing) the extra inherited socket on fd {fd}; codexd serves one");
        // SAFETY: the service manager passed this descriptor to us; nothing
        // else in the process knows it.
        unsafe { libc::close(fd) };
    }
    if !is_unix_listener(first) {
        return Err(ActivationError::NotAUnixListener { fd: first });
    }
    // SAFETY: fd 3 was passed to this process by the service manager and is
    // owned by nothing else; from here the listener owns (and closes) it.
    let listener = unsafe { UnixListener::from_raw_fd(first) };
    listener.set_nonblocking(true)?;
    let path = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(PathBuf::from));
    Ok(Some(Activated { listener, path }))
}

fn sockopt(fd: RawFd, name: libc::c_int) -> Option<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(value)
}

fn is_unix_listener(fd: RawFd) -> bool {
    sockopt(fd, libc::SO_DOMAIN) == Some(libc::AF_UNIX)
        && sockopt(fd, libc::SO_TYPE) == Some(libc::SOCK_STREAM)
        && sockopt(fd, libc::SO_ACCEPTCONN) == Some(1)
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("sd_notify: {e}");
    }
}

/// `READY=1` and a human-readable `STATUS=`.
pub fn notify_ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `STOPPING=1` as shutdown begins.
pub fn notify_stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when the
/// service manager asked for it (and `WATCHDOG_PID`, if set, is us).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

/// `WATCHDOG=1`: the daemon's monitor is alive.
pub fn watchdog_ping() {
    notify(&[NotifyState::Watchdog]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn only_listening_unix_stream_sockets_qualify() {
        let dir = tempfile::tempdir().unwrap();
        let l = UnixListener::bind(dir.path().join("s")).unwrap();
        assert!(is_unix_listener(l.as_raw_fd()));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(!is_unix_listener(a.as_raw_fd()));
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(!is_unix_listener(udp.as_raw_fd()));
    }
}
