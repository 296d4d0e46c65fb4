//! Read-only islands inside writable roots (`.git`): Landlock can only add
//! rights beneath a directory, never take some back below it, so those
//! paths are bind-mounted read-only over themselves in a private mount
//! namespace (inside a user namespace when not root). Must run while the
//! process is single-threaded.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot make {path} read-only: {what}: {source}")]
pub struct NamespaceError {
    pub path: String,
    pub what: &'static str,
    pub source: std::io::Error,
}

fn err(path: &Path, what: &'static str) -> NamespaceError {
    NamespaceError {
        path: path.display().to_string(),
        what,
        source: std::io::Error::last_os_error(),
    }
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

fn write_file(path: &str, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Enters a new mount namespace (and user namespace when not root) and
/// bind-mounts each of `paths` read-only over itself.
pub fn make_read_only(paths: &[PathBuf]) -> Result<(), NamespaceError> {
    let Some(first) = paths.first() else {
        return Ok(());
    };
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let flags = if uid == 0 {
        libc::CLONE_NEWNS
    } else {
        libc::CLONE_NEWUSER | libc::CLONE_NEWNS
    };
    // SAFETY: unshare has no memory-safety preconditions.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(err(first, "unshare (user/mount namespace)"));
    }
    if uid != 0 {
        // Keep our own identity inside the user namespace.
        let map = |f: &'static str, text: String| {
            write_file(f, &text).map_err(|source| NamespaceError {
                path: first.display().to_string(),
                what: "write the namespace id maps",
                source,
            })
        };
        map("/proc/self/setgroups", "deny".into())?;
        map("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
        map("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    }
    let root = cstr(Path::new("/"));
    // SAFETY: mount with valid NUL-terminated strings (or NULL where the
    // kernel ignores the argument).
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(err(first, "make mounts private"));
    }
    for path in paths {
        let p = cstr(path);
        // SAFETY: as above.
        let rc = unsafe {
            libc::mount(
                p.as_ptr(),
                p.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(err(path, "bind mount"));
        }
        // A remount must keep the flags the mount already has (in a user
        // namespace they are locked).
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid out-parameter.
        let kept = if unsafe { libc::statvfs(p.as_ptr(), &mut st) } == 0 {
            let f = st.f_flag;
            let mut keep = 0;
            for (st_flag, ms_flag) in [
                (libc::ST_NOSUID, libc::MS_NOSUID),
                (libc::ST_NODEV, libc::MS_NODEV),
                (libc::ST_NOEXEC, libc::MS_NOEXEC),
                (libc::ST_NOATIME, libc::MS_NOATIME),
                (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
                (libc::ST_RELATIME, libc::MS_RELATIME),
            ] {
                if f & st_flag != 0 {
                    keep |= ms_flag;
                }
            }
            keep
        } else {
            0
        };
        // SAFETY: as above.
        let rc = unsafe {
            libc::mount(
                std::ptr::null(),
                p.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | kept,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(err(path, "remount read-only"));
        }
    }
    Ok(())
}
