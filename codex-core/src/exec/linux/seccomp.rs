//! A minimal seccomp-BPF assembler: system calls answered with an error
//! instead of running. Used to take the network away from a sandboxed
//! command (every socket but `AF_UNIX`), and by tests to simulate a kernel
//! without Landlock.

/// `AUDIT_ARCH_*` of the native architecture: system calls of any other
/// (e.g. 32-bit calls on x86_64) are refused wholesale, since their numbers
/// differ and could slip past the filter.
#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: u32 = 0xC000_00B7;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("seccomp filters are only defined for x86_64 and aarch64");

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;

// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// Low 32 bits of `args[0]` (little endian).
const OFF_ARG0: u32 = 16;

/// `BPF_LD | BPF_W | BPF_ABS` (0x00 | 0x00 | 0x20).
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K` (0x05 | 0x10 | 0x00).
const BPF_JMP_JEQ_K: u16 = 0x15;
/// `BPF_RET | BPF_K`.
const BPF_RET_K: u16 = 0x06;

/// What happens to one system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Fails with this errno.
    Errno(i32),
    /// Runs only when its first argument is this value; fails with the
    /// errno otherwise.
    ErrnoUnlessArg0(u32, i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub nr: i64,
    pub action: Action,
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: BPF_JMP_JEQ_K,
        jt,
        jf,
        k,
    }
}

fn errno(e: i32) -> u32 {
    RET_ERRNO | (e as u32 & 0xffff)
}

/// The filter program for `rules`; everything else is allowed.
pub fn build(rules: &[Rule]) -> Vec<libc::sock_filter> {
    let mut p = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jeq(NATIVE_ARCH, 1, 0),
        stmt(BPF_RET_K, errno(libc::ENOSYS)),
        stmt(BPF_LD_W_ABS, OFF_NR),
    ];
    for r in rules {
        let nr = r.nr as u32;
        match r.action {
            Action::Errno(e) => {
                p.push(jeq(nr, 0, 1));
                p.push(stmt(BPF_RET_K, errno(e)));
            }
            Action::ErrnoUnlessArg0(v, e) => {
                p.push(jeq(nr, 0, 4));
                p.push(stmt(BPF_LD_W_ABS, OFF_ARG0));
                p.push(jeq(v, 0, 1));
                p.push(stmt(BPF_RET_K, RET_ALLOW));
                p.push(stmt(BPF_RET_K, errno(e)));
            }
        }
    }
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    p
}

/// No network: sockets of every family but `AF_UNIX` fail with `EPERM`, and
/// io_uring (which can open sockets on its own) is unavailable.
pub fn no_network() -> Vec<libc::sock_filter> {
    build(&[
        Rule {
            nr: libc::SYS_socket,
            action: Action::ErrnoUnlessArg0(libc::AF_UNIX as u32, libc::EPERM),
        },
        Rule {
            nr: libc::SYS_io_uring_setup,
            action: Action::Errno(libc::EPERM),
        },
    ])
}

/// The Landlock system calls fail with `ENOSYS`, as on a kernel without
/// Landlock (for tests).
pub fn no_landlock() -> Vec<libc::sock_filter> {
    let deny = |nr| Rule {
        nr,
        action: Action::Errno(libc::ENOSYS),
    };
    build(&[
        deny(libc::SYS_landlock_create_ruleset),
        deny(libc::SYS_landlock_add_rule),
        deny(libc::SYS_landlock_restrict_self),
    ])
}

/// Installs `program` on the calling thread (inherited across fork and
/// exec). Sets `no_new_privs` first, as an unprivileged filter requires.
/// Async-signal-safe: usable between fork and exec.
pub fn install(program: &[libc::sock_filter]) -> std::io::Result<()> {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with these options reads `prog`, which points at
    // `program`; both outlive the calls.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
            0,
            0,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_shape() {
        let p = no_network();
        // arch check (3) + load nr + socket rule (5) + io_uring rule (2) + allow.
        assert_eq!(p.len(), 4 + 5 + 2 + 1);
        assert_eq!(p.last().unwrap().k, RET_ALLOW);
        // The socket rule skips exactly its own body when it does not match.
        assert_eq!(p[4].jf, 4);
        assert_eq!(p[6].k, libc::AF_UNIX as u32);
    }

    #[test]
    fn filter_denies_inet_sockets_but_not_unix_ones_in_a_child() {
        let prog = no_network();
        // Run in a forked child so the test process stays unfiltered.
        // SAFETY: the child only makes system calls and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = (|| {
                if install(&prog).is_err() {
                    return 10;
                }
                // SAFETY: plain socket calls; descriptors are leaked into
                // the exiting child.
                unsafe {
                    let inet = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                    let errno = *libc::__errno_location();
                    if inet >= 0 || errno != libc::EPERM {
                        return 11;
                    }
                    if libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) < 0 {
                        return 12;
                    }
                }
                0
            })();
            // SAFETY: ends the forked child without running destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }
}
