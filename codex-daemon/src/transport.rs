//! Transport plumbing: the unix socket (0600 in a 0700 directory), at
//! upstream's locations so that upstream's clients find this daemon.
//!
//! Upstream's layout (observed on 0.169): the control socket
//! `$CODEX_HOME/app-server-control/app-server-control.sock` is a symlink to
//! the real socket `/tmp/codex-daemon-<euid>/<hex sha256 of the canonical
//! link path>` (short, so any home fits `sun_path`), with
//! `app-server-startup.lock` beside the link (the lock clients hold while
//! they start a daemon) and `<real socket>.lock` beside the real socket (held
//! while binding).

use std::io::{Error, ErrorKind};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use codex_core::exec::protection::daemon_socket_root;
pub use codex_ipc::app_server::connection::connectable;

/// Directory of the control socket under `$CODEX_HOME`.
pub const CONTROL_DIR: &str = "app-server-control";
/// File name of the control socket.
pub const CONTROL_SOCKET: &str = "app-server-control.sock";
/// File name of the startup lock beside it.
pub const STARTUP_LOCK: &str = "app-server-startup.lock";
/// Longest path `bind` takes (`sun_path` is 108 bytes with its NUL).
const SUN_PATH_MAX: usize = 107;

/// The default socket path: `$CODEX_HOME/app-server-control/app-server-control.sock`.
pub fn default_socket_path(codex_home: &Path) -> PathBuf {
    codex_home.join(CONTROL_DIR).join(CONTROL_SOCKET)
}

/// The startup lock: `$CODEX_HOME/app-server-control/app-server-startup.lock`.
/// Whoever starts a daemon holds it (`flock`) from "nothing answers" until
/// the socket answers, so concurrent starters yield one daemon; the daemon
/// itself never holds it.
pub fn startup_lock_path(codex_home: &Path) -> PathBuf {
    codex_home.join(CONTROL_DIR).join(STARTUP_LOCK)
}

/// Where the real socket behind the symlink `link` lives.
pub fn short_socket_path(link: &Path) -> std::io::Result<PathBuf> {
    let (parent, name) = match (link.parent(), link.file_name()) {
        (Some(p), Some(n)) => (p, n),
        _ => return Err(Error::other("socket path has no directory")),
    };
    let canonical = std::fs::canonicalize(parent)?.join(name);
    let digest = <sha2::Sha256 as sha2::Digest>::digest(canonical.as_os_str().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(daemon_socket_root().join(hex))
}

/// How a socket path is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The socket is bound at the path itself.
    Direct,
    /// The path is a symlink to a short real socket (upstream's default).
    Alias,
}

impl Layout {
    /// `Direct` when the path fits `sun_path`, else `Alias`.
    pub fn for_path(path: &Path) -> Self {
        if path.as_os_str().len() <= SUN_PATH_MAX {
            Layout::Direct
        } else {
            Layout::Alias
        }
    }
}

/// The files of a bound socket: what clients connect to and what is
/// removed at shutdown.
#[derive(Debug, Clone)]
pub struct SocketFiles {
    /// The path clients connect to.
    pub path: PathBuf,
    /// The real socket behind the `path` symlink, when aliased.
    pub real: Option<PathBuf>,
    /// Identity of the socket file bound (device, inode, change time: an
    /// inode number alone may be reused), so cleanup never removes a
    /// successor's.
    ino: FileId,
}

impl SocketFiles {
    /// The socket file itself (the symlink's target when aliased).
    pub fn socket_file(&self) -> &Path {
        self.real.as_deref().unwrap_or(&self.path)
    }

    /// Removes the socket (and its symlink) if they are still this one.
    pub fn remove(&self) {
        let file = self.socket_file();
        let ours = std::fs::symlink_metadata(file)
            .map(|m| file_id(&m) == self.ino)
            .unwrap_or(false);
        if !ours {
            return;
        }
        let _ = std::fs::remove_file(file);
        if let Some(real) = &self.real {
            if std::fs::read_link(&self.path).ok().as_deref() == Some(real.as_path()) {
                let _ = std::fs::remove_file(&self.path);
            }
            let _ = std::fs::remove_file(lock_path_of(real));
        }
    }
}

type FileId = (u64, u64, i64, i64);

fn file_id(m: &std::fs::Metadata) -> FileId {
    (m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
}

fn lock_path_of(real: &Path) -> PathBuf {
    let mut s = real.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Creates `dir` 0700 (its parents as needed), or checks that an existing
/// one is a directory of ours (not a symlink) and tightens it to 0700.
pub fn prepare_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(Error::new(
            ErrorKind::AlreadyExists,
            format!("{} exists and is not a directory", dir.display()),
        ));
    }
    if meta.uid() != effective_uid() {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {}, not to this user",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Clears `path` for a new socket: a live one is an error, a stale socket
/// (or, with `allow_link`, a symlink) is removed, anything else is refused.
fn clear_stale(path: &Path, allow_link: bool) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if std::os::unix::net::UnixStream::connect(connectable(path)).is_ok() {
        return Err(Error::new(
            ErrorKind::AddrInUse,
            format!(
                "another app-server is already listening on {}",
                path.display()
            ),
        ));
    }
    let kind = meta.file_type();
    if kind.is_socket() || (allow_link && kind.is_symlink()) {
        return std::fs::remove_file(path);
    }
    Err(Error::new(
        ErrorKind::AlreadyExists,
        format!("{} exists and is not a socket", path.display()),
    ))
}

/// Binds the socket at `path` with `layout`: directories 0700 (created, or
/// tightened if they exist), a stale socket from a dead daemon replaced, a
/// live one an error, the socket itself 0600. Aliased, the real socket is
/// bound under [`daemon_socket_root`] and `path` becomes a symlink to it.
pub fn bind_unix(
    path: &Path,
    layout: Layout,
) -> std::io::Result<(tokio::net::UnixListener, SocketFiles)> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::other("socket path has no directory"))?;
    prepare_private_dir(dir)?;
    match layout {
        Layout::Direct => {
            clear_stale(path, false)?;
            let (listener, ino) = bind_private(path)?;
            let files = SocketFiles {
                path: path.to_path_buf(),
                real: None,
                ino,
            };
            Ok((listener, files))
        }
        Layout::Alias => {
            let real = short_socket_path(path)?;
            prepare_private_dir(&daemon_socket_root())?;
            let _bind_lock = BindLock::take(&lock_path_of(&real))?;
            clear_stale(path, true)?;
            clear_stale(&real, false)?;
            let (listener, ino) = bind_private(&real)?;
            let files = SocketFiles {
                path: path.to_path_buf(),
                real: Some(real),
                ino,
            };
            if let Err(e) = std::os::unix::fs::symlink(files.socket_file(), path) {
                files.remove();
                return Err(e);
            }
            Ok((listener, files))
        }
    }
}

/// Makes `link` a symlink to `target` (a socket bound by someone else: the
/// service manager's), replacing a stale socket or symlink there; a live
/// socket is left alone (an error).
pub fn link_socket(link: &Path, target: &Path) -> std::io::Result<()> {
    if let Some(dir) = link.parent() {
        prepare_private_dir(dir)?;
    }
    if std::fs::read_link(link).ok().as_deref() == Some(target) {
        return Ok(());
    }
    clear_stale(link, true)?;
    std::os::unix::fs::symlink(target, link)
}

/// Removes the symlink `link` if it still points to `target`.
pub fn unlink_socket(link: &Path, target: &Path) {
    if std::fs::read_link(link).ok().as_deref() == Some(target) {
        let _ = std::fs::remove_file(link);
    }
}

/// Creates the startup lock file beside the default socket (upstream's
/// layout; clients lock it while they start a daemon).
pub fn ensure_startup_lock(codex_home: &Path) -> std::io::Result<()> {
    let path = startup_lock_path(codex_home);
    if let Some(dir) = path.parent() {
        prepare_private_dir(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

/// Binds with no permissions for anyone else from the start.
fn bind_private(path: &Path) -> std::io::Result<(tokio::net::UnixListener, FileId)> {
    // SAFETY: umask only changes this process's file-creation mask.
    let old = unsafe { libc::umask(0o177) };
    let listener = tokio::net::UnixListener::bind(path);
    // SAFETY: restores the previous mask.
    unsafe {
        libc::umask(old);
    }
    let listener = listener?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let meta = std::fs::symlink_metadata(path)?;
    Ok((listener, file_id(&meta)))
}

/// An exclusive `flock` held while binding, so two daemons starting on the
/// same path cannot both clear and bind it.
struct BindLock {
    _file: std::fs::File,
}

impl BindLock {
    fn take(path: &Path) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(Error::new(
                ErrorKind::AddrInUse,
                format!("another app-server is binding {}", path.display()),
            ));
        }
        Ok(Self { _file: file })
    }
}

/// Whether an app-server answers on `path` within `deadline`: it accepts the
/// connection and completes a WebSocket upgrade (which upstream's daemon and
/// this one both serve on their sockets).
pub async fn daemon_answering(path: &Path, deadline: Duration) -> bool {
    let probe = async {
        let stream = tokio::net::UnixStream::connect(connectable(path))
            .await
            .ok()?;
        let (mut ws, _) = tokio_tungstenite::client_async("ws://localhost/", stream)
            .await
            .ok()?;
        let _ = ws.close(None).await;
        Some(())
    };
    matches!(tokio::time::timeout(deadline, probe).await, Ok(Some(())))
}

pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_paths_are_upstreams() {
        let home = Path::new("/h/.codex");
        assert_eq!(
            default_socket_path(home),
            Path::new("/h/.codex/app-server-control/app-server-control.sock")
        );
        assert_eq!(
            startup_lock_path(home),
            Path::new("/h/.codex/app-server-control/app-server-startup.lock")
        );
    }

    #[test]
    fn the_short_path_hashes_the_canonical_link_path() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("x.sock");
        let real = short_socket_path(&link).unwrap();
        let canonical = std::fs::canonicalize(dir.path()).unwrap().join("x.sock");
        let digest = <sha2::Sha256 as sha2::Digest>::digest(canonical.as_os_str().as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(real, daemon_socket_root().join(hex));
        assert!(real.as_os_str().len() <= SUN_PATH_MAX);
        assert_eq!(Layout::for_path(&link), Layout::Direct);
        let long = dir.path().join("d".repeat(120));
        assert_eq!(Layout::for_path(&long), Layout::Alias);
    }

    #[tokio::test]
    async fn an_aliased_socket_replaces_stale_ones_and_refuses_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("a".repeat(110));
        assert_eq!(Layout::for_path(&link), Layout::Alias);
        let (listener, files) = bind_unix(&link, Layout::Alias).unwrap();
        let real = files.real.clone().unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), real);
        // Too long to connect to itself; its target is reachable.
        let connect = || std::os::unix::net::UnixStream::connect(connectable(&link));
        assert!(connect().is_ok());
        let live = bind_unix(&link, Layout::Alias).unwrap_err();
        assert_eq!(live.kind(), ErrorKind::AddrInUse, "{live}");
        // A daemon that died without cleaning up leaves a stale pair.
        drop(listener);
        let (_listener, again) = bind_unix(&link, Layout::Alias).unwrap();
        assert!(connect().is_ok());
        // The first daemon's cleanup must not remove its successor's socket.
        files.remove();
        assert!(connect().is_ok());
        again.remove();
        assert!(std::fs::symlink_metadata(&link).is_err());
        assert!(std::fs::symlink_metadata(&real).is_err());
    }

    #[tokio::test]
    async fn a_path_that_is_not_a_socket_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        std::fs::write(&path, "data").unwrap();
        let e = bind_unix(&path, Layout::Direct).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
    }
}
