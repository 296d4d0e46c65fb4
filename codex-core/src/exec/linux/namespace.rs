//! The sandbox's private mount namespace (inside a user namespace when not
//! root). Landlock can only add rights beneath a directory, never take some
//! back below it, so what must stay out of reach below a readable or
//! writable directory is arranged here:
//! - read-only islands inside writable roots (`.git`, `$CODEX_HOME`) are
//!   bind-mounted read-only over themselves;
//! - hidden paths are covered: a directory by an empty read-only tmpfs, a
//!   file or socket by `/dev/null` (reads give nothing, `connect` is
//!   refused).
//!
//! Landlock, applied afterwards, forbids the confined process to change its
//! mounts, so nothing here can be undone from inside. Must run while the
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

/// Enters a new mount namespace (and user namespace when not root) whose
/// mounts no longer propagate to or from the host's.
pub fn enter() -> Result<(), NamespaceError> {
    let here = Path::new("/");
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let flags = if uid == 0 {
        libc::CLONE_NEWNS
    } else {
        libc::CLONE_NEWUSER | libc::CLONE_NEWNS
    };
    // SAFETY: unshare has no memory-safety preconditions.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(err(here, "unshare (user/mount namespace)"));
    }
    if uid != 0 {
        // Keep our own identity inside the user namespace.
        let map = |f: &'static str, text: String| {
            write_file(f, &text).map_err(|source| NamespaceError {
                path: here.display().to_string(),
                what: "write the namespace id maps",
                source,
            })
        };
        map("/proc/self/setgroups", "deny".into())?;
        map("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
        map("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    }
    let root = cstr(here);
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
        return Err(err(here, "make mounts private"));
    }
    Ok(())
}

/// The flags a remount of the mount at `p` must keep (in a user namespace
/// they are locked).
fn kept_flags(p: &CString) -> libc::c_ulong {
    // SAFETY: an all-zero statvfs is a valid value of the type.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-parameter and `p` a valid C string.
    if unsafe { libc::statvfs(p.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let mut keep = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & st_flag != 0 {
            keep |= ms_flag;
        }
    }
    keep
}

/// Bind-mounts `path` read-only over itself (after [`enter`]).
pub fn bind_read_only(path: &Path) -> Result<(), NamespaceError> {
    let p = cstr(path);
    // SAFETY: mount with valid NUL-terminated strings (or NULL where the
    // kernel ignores the argument).
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
    let kept = kept_flags(&p);
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
    Ok(())
}

/// Covers `path` (after [`enter`]): a directory with an empty read-only
/// tmpfs, anything else with `/dev/null`. A path that does not exist is
/// left alone.
pub fn hide(path: &Path) -> Result<(), NamespaceError> {
    let Ok(meta) = path.symlink_metadata() else {
        return Ok(());
    };
    if meta.file_type().is_symlink() {
        // Mounting on a symlink would cover its target; hide that instead.
        return match std::fs::canonicalize(path) {
            Ok(target) if target != path => hide(&target),
            _ => Ok(()),
        };
    }
    let p = cstr(path);
    let rc = if meta.is_dir() {
        let fstype = cstr(Path::new("tmpfs"));
        let opts = CString::new("size=4k,nr_inodes=1,mode=0").unwrap_or_default();
        // SAFETY: mount with valid NUL-terminated strings.
        unsafe {
            libc::mount(
                fstype.as_ptr(),
                p.as_ptr(),
                fstype.as_ptr(),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                opts.as_ptr().cast(),
            )
        }
    } else {
        let null = cstr(Path::new("/dev/null"));
        // SAFETY: as above.
        unsafe {
            libc::mount(
                null.as_ptr(),
                p.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        }
    };
    if rc != 0 {
        return Err(NamespaceError {
            path: path.display().to_string(),
            what: "hide",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Pathname unix sockets bound on this host now (`/proc/net/unix`), as
/// paths that exist and are sockets.
pub fn bound_unix_sockets() -> Vec<PathBuf> {
    use std::os::unix::fs::FileTypeExt as _;
    let text = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let mut out: Vec<PathBuf> = text
        .lines()
        .skip(1)
        .filter_map(socket_path_field)
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .filter(|p| {
            p.symlink_metadata()
                .is_ok_and(|m| m.file_type().is_socket())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The path column of a `/proc/net/unix` line (`Num RefCount Protocol Flags
/// Type St Inode Path`); a path may contain spaces.
fn socket_path_field(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    for _ in 0..7 {
        let end = rest.find(char::is_whitespace)?;
        rest = rest[end..].trim_start();
    }
    (!rest.is_empty()).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_may_hold_spaces() {
        let l = "0000000000000000: 00000002 00000000 00010000 0001 01  1234 /run/a b.sock";
        assert_eq!(socket_path_field(l), Some("/run/a b.sock"));
        let unnamed = "0000000000000000: 00000003 00000000 00000000 0001 03 99";
        assert_eq!(socket_path_field(unnamed), None);
        let abs = "0000000000000000: 00000002 00000000 00010000 0001 01 77 @/tmp/dbus-x";
        assert_eq!(socket_path_field(abs), Some("@/tmp/dbus-x"));
    }
}
