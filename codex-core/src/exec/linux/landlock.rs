//! Landlock (Linux ≥ 5.13) through its three system calls: a ruleset that
//! lets the process read everything and write only beneath the writable
//! roots. Written against the kernel ABI directly: the ABI version decides
//! which access rights exist, and a kernel without Landlock is reported, not
//! ignored.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: libc::c_int = 1;

pub const ACCESS_EXECUTE: u64 = 1 << 0;
pub const ACCESS_WRITE_FILE: u64 = 1 << 1;
pub const ACCESS_READ_FILE: u64 = 1 << 2;
pub const ACCESS_READ_DIR: u64 = 1 << 3;
const ACCESS_REMOVE_DIR: u64 = 1 << 4;
const ACCESS_REMOVE_FILE: u64 = 1 << 5;
const ACCESS_MAKE_CHAR: u64 = 1 << 6;
const ACCESS_MAKE_DIR: u64 = 1 << 7;
const ACCESS_MAKE_REG: u64 = 1 << 8;
const ACCESS_MAKE_SOCK: u64 = 1 << 9;
const ACCESS_MAKE_FIFO: u64 = 1 << 10;
const ACCESS_MAKE_BLOCK: u64 = 1 << 11;
const ACCESS_MAKE_SYM: u64 = 1 << 12;
/// ABI 2.
const ACCESS_REFER: u64 = 1 << 13;
/// ABI 3.
const ACCESS_TRUNCATE: u64 = 1 << 14;
/// ABI 5.
const ACCESS_IOCTL_DEV: u64 = 1 << 15;

/// Rights that make sense on a file (not a directory).
const FILE_RIGHTS: u64 =
    ACCESS_EXECUTE | ACCESS_WRITE_FILE | ACCESS_READ_FILE | ACCESS_TRUNCATE | ACCESS_IOCTL_DEV;
/// Rights that only read (or run) what exists.
pub const READ_RIGHTS: u64 = ACCESS_EXECUTE | ACCESS_READ_FILE | ACCESS_READ_DIR | ACCESS_IOCTL_DEV;

/// Every filesystem right the kernel's Landlock ABI `abi` knows.
pub fn all_rights(abi: u32) -> u64 {
    let mut rights = ACCESS_EXECUTE
        | ACCESS_WRITE_FILE
        | ACCESS_READ_FILE
        | ACCESS_READ_DIR
        | ACCESS_REMOVE_DIR
        | ACCESS_REMOVE_FILE
        | ACCESS_MAKE_CHAR
        | ACCESS_MAKE_DIR
        | ACCESS_MAKE_REG
        | ACCESS_MAKE_SOCK
        | ACCESS_MAKE_FIFO
        | ACCESS_MAKE_BLOCK
        | ACCESS_MAKE_SYM;
    if abi >= 2 {
        rights |= ACCESS_REFER;
    }
    if abi >= 3 {
        rights |= ACCESS_TRUNCATE;
    }
    if abi >= 5 {
        rights |= ACCESS_IOCTL_DEV;
    }
    rights
}

#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("Landlock is not supported by this kernel ({0})")]
    Unsupported(String),
    #[error("Landlock is disabled on this kernel (boot with lsm=...,landlock to enable it)")]
    Disabled,
    #[error("cannot {what}: {source}")]
    Sys {
        what: String,
        source: std::io::Error,
    },
}

/// The Landlock ABI version of the running kernel.
pub fn abi_version() -> Result<u32, LandlockError> {
    // SAFETY: with the VERSION flag the kernel reads no attribute (NULL, 0).
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if v >= 1 {
        return Ok(v as u32);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) => Err(LandlockError::Disabled),
        Some(libc::ENOSYS) => Err(LandlockError::Unsupported(
            "landlock_create_ruleset: ENOSYS".into(),
        )),
        _ => Err(LandlockError::Unsupported(format!(
            "landlock_create_ruleset: {err}"
        ))),
    }
}

/// A ruleset being built.
pub struct Ruleset {
    fd: OwnedFd,
    handled: u64,
}

/// ABI 6: no connecting to abstract unix sockets created outside the
/// sandbox (a D-Bus bus, say).
pub const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
/// ABI 6: no signals to processes outside the sandbox (codexd, the worker,
/// anything else of the same user).
pub const SCOPE_SIGNAL: u64 = 1 << 1;

/// `struct landlock_ruleset_attr`; the size passed tells the kernel which
/// fields exist (net: ABI 4, scoped: ABI 6).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// The scopes this ABI can enforce.
pub fn scopes(abi: u32) -> u64 {
    if abi >= 6 {
        SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    } else {
        0
    }
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

fn sys(what: impl Into<String>) -> LandlockError {
    LandlockError::Sys {
        what: what.into(),
        source: std::io::Error::last_os_error(),
    }
}

impl Ruleset {
    /// A ruleset that restricts every filesystem right the ABI knows, and
    /// every scope it can (see [`scopes`]).
    pub fn new(abi: u32) -> Result<Self, LandlockError> {
        let handled = all_rights(abi);
        let attr = RulesetAttr {
            handled_access_fs: handled,
            handled_access_net: 0,
            scoped: scopes(abi),
        };
        // Older kernels refuse a larger attribute than they know.
        let size = if abi >= 6 {
            std::mem::size_of::<RulesetAttr>()
        } else {
            std::mem::size_of::<u64>()
        };
        // SAFETY: `attr` is a valid ruleset attribute at least `size` bytes
        // long and outlives the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                size,
                0u32,
            )
        };
        if fd < 0 {
            return Err(sys("create a Landlock ruleset"));
        }
        // SAFETY: the kernel returned a new descriptor that we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(Self { fd, handled })
    }

    /// Allows `rights` beneath `path` (a file gets only file rights). A
    /// path that does not exist is skipped.
    pub fn allow(&mut self, path: &Path, rights: u64) -> Result<(), LandlockError> {
        let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
            return Ok(());
        };
        // SAFETY: `c` is a valid NUL-terminated path.
        let pfd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if pfd < 0 {
            return Ok(());
        }
        // SAFETY: open returned a new descriptor that we now own.
        let pfd = unsafe { OwnedFd::from_raw_fd(pfd) };
        let mut rights = rights & self.handled;
        if !path.is_dir() {
            rights &= FILE_RIGHTS;
        }
        let attr = PathBeneathAttr {
            allowed_access: rights,
            parent_fd: pfd.as_raw_fd(),
        };
        // SAFETY: `attr` is a valid path-beneath attribute that outlives the
        // call; both descriptors are open.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                self.fd.as_raw_fd(),
                RULE_PATH_BENEATH,
                &attr as *const PathBeneathAttr,
                0u32,
            )
        };
        if rc < 0 {
            return Err(sys(format!("add a Landlock rule for {}", path.display())));
        }
        Ok(())
    }

    /// Applies the ruleset to this process (and everything it execs).
    /// `no_new_privs` must be set first.
    pub fn restrict_self(self) -> Result<(), LandlockError> {
        // SAFETY: the descriptor is a Landlock ruleset we own.
        let rc =
            unsafe { libc::syscall(libc::SYS_landlock_restrict_self, self.fd.as_raw_fd(), 0u32) };
        if rc < 0 {
            return Err(sys("enforce the Landlock ruleset"));
        }
        Ok(())
    }
}

/// Rights granted beneath a writable root.
pub fn write_rights(abi: u32) -> u64 {
    all_rights(abi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_grow_with_the_abi() {
        assert_eq!(all_rights(1).count_ones(), 13);
        assert!(all_rights(2) & ACCESS_REFER != 0);
        assert!(all_rights(3) & ACCESS_TRUNCATE != 0);
        assert!(all_rights(5) & ACCESS_IOCTL_DEV != 0);
        assert_eq!(READ_RIGHTS & ACCESS_WRITE_FILE, 0);
    }
}
