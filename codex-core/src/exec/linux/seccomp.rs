//! A minimal seccomp-BPF assembler: system calls answered with an error
//! instead of running. Used to take the network and the kernel keyring away
//! from a sandboxed command, and by tests to simulate a kernel without
//! Landlock.
//!
//! Every program starts with the same guard: a call made under another
//! architecture (32-bit calls on x86_64), or through the x32 ABI (the
//! native architecture with `__X32_SYSCALL_BIT` set in the number), is
//! refused before any rule is looked at: its numbers differ and would slip
//! past rules written for the native ones.

/// `AUDIT_ARCH_*` of the native architecture: system calls of any other
/// (e.g. 32-bit calls on x86_64) are refused wholesale, since their numbers
/// differ and could slip past the filter.
#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: u32 = 0xC000_00B7;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("seccomp filters are only defined for x86_64 and aarch64");

/// `__X32_SYSCALL_BIT`: x32 system calls are the x86_64 architecture with
/// this bit set in the number.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;

// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// Low 32 bits of `args[0]` (little endian); `args[n]` is 8 bytes further.
const OFF_ARG0: u32 = 16;

/// `BPF_LD | BPF_W | BPF_ABS` (0x00 | 0x00 | 0x20).
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K` (0x05 | 0x10 | 0x00).
const BPF_JMP_JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JSET | BPF_K` (0x05 | 0x40 | 0x00).
#[cfg(target_arch = "x86_64")]
const BPF_JMP_JSET_K: u16 = 0x45;
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
    /// Runs only when argument `n` (a pointer, all 64 bits) is zero; fails
    /// with the errno otherwise (`sendto` with a destination address).
    ErrnoUnlessArgNull(u32, i32),
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

fn arg_lo(n: u32) -> u32 {
    OFF_ARG0 + 8 * n
}

/// The filter program for `rules`; everything else is allowed.
pub fn build(rules: &[Rule]) -> Vec<libc::sock_filter> {
    let mut p = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jeq(NATIVE_ARCH, 1, 0),
        stmt(BPF_RET_K, errno(libc::ENOSYS)),
        stmt(BPF_LD_W_ABS, OFF_NR),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        p.push(libc::sock_filter {
            code: BPF_JMP_JSET_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        });
        p.push(stmt(BPF_RET_K, errno(libc::EPERM)));
    }
    for r in rules {
        let nr = r.nr as u32;
        match r.action {
            Action::Errno(e) => {
                p.push(jeq(nr, 0, 1));
                p.push(stmt(BPF_RET_K, errno(e)));
            }
            Action::ErrnoUnlessArg0(v, e) => {
                p.push(jeq(nr, 0, 4));
                p.push(stmt(BPF_LD_W_ABS, arg_lo(0)));
                p.push(jeq(v, 0, 1));
                p.push(stmt(BPF_RET_K, RET_ALLOW));
                p.push(stmt(BPF_RET_K, errno(e)));
            }
            Action::ErrnoUnlessArgNull(n, e) => {
                p.push(jeq(nr, 0, 6));
                p.push(stmt(BPF_LD_W_ABS, arg_lo(n)));
                p.push(jeq(0, 0, 3));
                p.push(stmt(BPF_LD_W_ABS, arg_lo(n) + 4));
                p.push(jeq(0, 0, 1));
                p.push(stmt(BPF_RET_K, RET_ALLOW));
                p.push(stmt(BPF_RET_K, errno(e)));
            }
        }
    }
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    p
}

/// What the filter of a confined command takes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterPolicy {
    /// Sockets of every family (the policy grants network access).
    pub network: bool,
    /// `connect` to (and datagrams addressed to) local sockets, which the
    /// mount namespace then limits to the allowed ones. Without network and
    /// without this, `connect` fails with `EPERM` whatever the socket.
    pub unix_connect: bool,
}

/// The filter of a confined command. Always: the kernel keyring
/// (`keyctl`, `add_key`, `request_key`) is unavailable. Without network:
/// sockets of every family but `AF_UNIX` fail with `EPERM`, and io_uring
/// (which can open and connect sockets on its own) is unavailable.
pub fn confinement(policy: FilterPolicy) -> Vec<libc::sock_filter> {
    let deny = |nr| Rule {
        nr,
        action: Action::Errno(libc::EPERM),
    };
    let mut rules = vec![
        deny(libc::SYS_keyctl),
        deny(libc::SYS_add_key),
        deny(libc::SYS_request_key),
    ];
    if !policy.network {
        rules.push(Rule {
            nr: libc::SYS_socket,
            action: Action::ErrnoUnlessArg0(libc::AF_UNIX as u32, libc::EPERM),
        });
        rules.push(deny(libc::SYS_io_uring_setup));
        rules.push(deny(libc::SYS_io_uring_enter));
        rules.push(deny(libc::SYS_io_uring_register));
        if !policy.unix_connect {
            rules.push(deny(libc::SYS_connect));
            rules.push(Rule {
                nr: libc::SYS_sendto,
                action: Action::ErrnoUnlessArgNull(4, libc::EPERM),
            });
        }
    }
    build(&rules)
}

/// No network (and no local sockets to connect to): the filter of a
/// read-only or workspace-write command that names no unix socket.
pub fn no_network() -> Vec<libc::sock_filter> {
    confinement(FilterPolicy {
        network: false,
        unix_connect: false,
    })
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

    /// Runs `body` in a forked child under `prog` (the test process stays
    /// unfiltered) and returns its exit code.
    fn in_filtered_child(prog: &[libc::sock_filter], body: fn() -> i32) -> i32 {
        // SAFETY: the child only makes system calls and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = if install(prog).is_err() { 10 } else { body() };
            // SAFETY: ends the forked child without running destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status));
        libc::WEXITSTATUS(status)
    }

    fn errno_now() -> i32 {
        // SAFETY: reads this thread's errno.
        unsafe { *libc::__errno_location() }
    }

    #[test]
    fn program_shape() {
        let p = build(&[Rule {
            nr: libc::SYS_socket,
            action: Action::ErrnoUnlessArg0(libc::AF_UNIX as u32, libc::EPERM),
        }]);
        let guard = if cfg!(target_arch = "x86_64") { 2 } else { 0 };
        // arch check (3) + load nr + x32 guard + socket rule (5) + allow.
        assert_eq!(p.len(), 4 + guard + 5 + 1);
        assert_eq!(p.last().unwrap().k, RET_ALLOW);
        // The socket rule skips exactly its own body when it does not match.
        assert_eq!(p[4 + guard].jf, 4);
        assert_eq!(p[6 + guard].k, libc::AF_UNIX as u32);
    }

    /// Regression: the filter checked the architecture but not the x32 bit,
    /// so `socket` called by its x32 number escaped "no network" on
    /// kernels with x32 enabled. The answer must be the filter's (`EPERM`),
    /// not the kernel's (`ENOSYS` where x32 is disabled).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_system_calls_are_refused_by_the_filter_itself() {
        let code = in_filtered_child(&no_network(), || {
            // SAFETY: a raw socket call; the descriptor leaks into the
            // exiting child.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_socket | X32_SYSCALL_BIT as i64,
                    libc::AF_INET,
                    libc::SOCK_STREAM,
                    0,
                )
            };
            match (rc, errno_now()) {
                (-1, libc::EPERM) => 0,
                (-1, libc::ENOSYS) => 21,
                (-1, _) => 22,
                _ => 23,
            }
        });
        assert_eq!(code, 0, "21: ENOSYS (the kernel's answer), 23: a socket");
        // Even an allowed call is refused under its x32 number.
        let code = in_filtered_child(&build(&[]), || {
            // SAFETY: getpid takes no arguments.
            let rc = unsafe { libc::syscall(libc::SYS_getpid | X32_SYSCALL_BIT as i64) };
            i32::from(!(rc == -1 && errno_now() == libc::EPERM))
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn without_unix_connect_local_sockets_are_unreachable_but_pairs_work() {
        let code = in_filtered_child(&no_network(), || {
            // SAFETY: plain socket calls on descriptors this child owns; the
            // address structure outlives the calls.
            unsafe {
                let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                if fd < 0 {
                    return 31;
                }
                let mut addr: libc::sockaddr_un = std::mem::zeroed();
                addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
                addr.sun_path[0] = b'/' as libc::c_char;
                let rc = libc::connect(
                    fd,
                    &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_un>() as u32,
                );
                if rc != -1 || errno_now() != libc::EPERM {
                    return 32;
                }
                let mut pair = [0; 2];
                if libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, pair.as_mut_ptr()) != 0 {
                    return 33;
                }
                // send() is sendto() without an address: allowed.
                if libc::send(pair[0], b"x".as_ptr().cast(), 1, 0) != 1 {
                    return 34;
                }
                let rc = libc::sendto(
                    fd,
                    b"x".as_ptr().cast(),
                    1,
                    0,
                    &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_un>() as u32,
                );
                if rc != -1 || errno_now() != libc::EPERM {
                    return 35;
                }
                if libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0) != -1
                    || errno_now() != libc::EPERM
                {
                    return 36;
                }
            }
            0
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn filter_denies_inet_sockets_but_not_unix_ones_in_a_child() {
        let prog = confinement(FilterPolicy {
            network: false,
            unix_connect: true,
        });
        let code = in_filtered_child(&prog, || {
            // SAFETY: plain socket calls; descriptors are leaked into the
            // exiting child.
            unsafe {
                let inet = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                if inet >= 0 || errno_now() != libc::EPERM {
                    return 11;
                }
                if libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) < 0 {
                    return 12;
                }
            }
            0
        });
        assert_eq!(code, 0);
    }
}
