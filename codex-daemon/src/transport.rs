//! Transport plumbing: the unix socket (0600 in a 0700 directory).

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The default socket path: `$CODEX_HOME/codexd/codexd.sock`.
pub fn default_socket_path(codex_home: &Path) -> std::path::PathBuf {
    codex_home.join("codexd").join("codexd.sock")
}

/// Binds the socket: the directory is created 0700 (and tightened if it
/// exists), a stale socket from a dead daemon is replaced, a live one is an
/// error, and the socket itself is 0600.
pub fn bind_unix(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("socket path has no directory"))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another codexd is already listening on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    // Create the socket with no permissions for anyone else from the start.
    // SAFETY: umask only changes this process's file-creation mask.
    let old = unsafe { libc::umask(0o177) };
    let listener = tokio::net::UnixListener::bind(path);
    // SAFETY: restores the previous mask.
    unsafe {
        libc::umask(old);
    }
    let listener = listener?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}
