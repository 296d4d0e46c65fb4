//! The one worker launcher: every worker process (`codex-session`,
//! `codex-broker`, `codex-memory`) is started here, by the daemon, by
//! `codex exec` and by the C ABI alike.
//!
//! A worker gets:
//! - its **link**, one end of a socketpair, as file descriptor 3
//!   (`CODEX_LINK_FD=3`); EOF on the link means the other side is gone;
//! - its **own session and process group** (`setsid`): it has no controlling
//!   terminal, and killing its group takes everything it started that did not
//!   leave the group;
//! - **parent-death handling**: `PR_SET_PDEATHSIG`, armed from a dedicated
//!   launcher thread that lives as long as the process (the signal fires
//!   when the *thread* that forked dies, so spawning from a short-lived
//!   runtime thread would be wrong), plus a check that the parent did not
//!   already die before the signal was armed. The signal is `SIGKILL`, except
//!   for a `codex-session`: it must outlive its supervisor long enough to
//!   take its tools down (its guardian does, on EOF of the link), so its
//!   signal is `SIGCONT`, which only wakes a stopped worker so it can;
//! - an environment **without the service manager's variables**
//!   (`LISTEN_*`, `NOTIFY_SOCKET`, `WATCHDOG_*`: the daemon's own);
//! - its **role in `ps`**: `argv[0]` is the role name, and the worker sets its
//!   thread name (`comm`) to it at start.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::sync::oneshot;

/// File descriptor number of the link in a worker.
pub const LINK_FD: i32 = 3;
/// Environment variable telling a worker where its link is.
pub const LINK_FD_ENV: &str = "CODEX_LINK_FD";

/// What a worker process is for; its name in `ps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Session,
    Broker,
    Memory,
}

impl Role {
    pub fn process_name(self) -> &'static str {
        match self {
            Role::Session => "codex-session",
            Role::Broker => "codex-broker",
            Role::Memory => "codex-memory",
        }
    }

    /// What the worker gets when its parent dies.
    pub fn parent_death(self) -> ParentDeath {
        match self {
            Role::Session => ParentDeath::Wake,
            Role::Broker | Role::Memory => ParentDeath::Kill,
        }
    }

    /// The role named by an `argv[0]` (its file name), if any.
    pub fn from_argv0(argv0: &str) -> Option<Role> {
        let name = std::path::Path::new(argv0).file_name()?.to_str()?;
        [Role::Session, Role::Broker, Role::Memory]
            .into_iter()
            .find(|r| r.process_name() == name)
    }
}

/// The parent-death signal of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentDeath {
    /// `SIGKILL`: the worker has nothing to clean up.
    Kill,
    /// `SIGCONT`: the worker notices on its own (EOF on the link) and takes
    /// its tree down; the signal only resumes it if it was stopped.
    Wake,
}

/// A resource limit applied to a worker (and inherited by all it starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rlimit {
    /// `RLIMIT_NOFILE`: open file descriptors.
    OpenFiles,
    /// `RLIMIT_NPROC`: processes of the user (not enforced for root).
    Processes,
    /// `RLIMIT_DATA`: data segment and private writable mappings, bytes.
    Data,
}

/// How to start a worker.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub role: Role,
    /// The executable (normally our own binary).
    pub exe: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub cwd: Option<PathBuf>,
    /// Limits only ever lowered (soft and hard), never raised.
    pub rlimits: Vec<(Rlimit, u64)>,
    /// A cgroup v2 `cgroup.procs` file the worker joins before it runs any
    /// code of its own (so nothing it forks can start outside the cgroup).
    pub cgroup_procs: Option<PathBuf>,
    pub parent_death: ParentDeath,
}

impl LaunchSpec {
    /// A worker running `exe` (the `codex` binary) under `role`.
    pub fn new(role: Role, exe: PathBuf) -> Self {
        Self {
            role,
            exe,
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            rlimits: Vec::new(),
            cgroup_procs: None,
            parent_death: role.parent_death(),
        }
    }

    /// A worker running this same binary under `role` (for the `codex`
    /// binary itself; a library host names the binary with [`Self::new`]).
    pub fn current_exe(role: Role) -> std::io::Result<Self> {
        Ok(Self::new(role, std::env::current_exe()?))
    }
}

/// A started worker.
#[derive(Debug)]
pub struct Launched {
    pub pid: u32,
    /// Owned by the caller, who must reap it (`wait`).
    pub child: tokio::process::Child,
    pub link: tokio::net::UnixStream,
}

impl Launched {
    /// Kills the worker's whole process group.
    pub fn kill_group(&self) {
        kill_group(self.pid);
    }
}

/// Sends SIGKILL to the process group `pgid` (a worker's pid).
pub fn kill_group(pgid: u32) {
    if pgid > 1 {
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe {
            libc::killpg(pgid as libc::pid_t, libc::SIGKILL);
        }
    }
}

type Job = (LaunchSpec, oneshot::Sender<std::io::Result<Launched>>);

/// Spawns workers from one long-lived thread (see the module docs).
#[derive(Clone)]
pub struct Launcher {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Launcher {
    /// Starts the launcher thread; workers are reaped by `runtime`'s process
    /// driver.
    pub fn new(runtime: tokio::runtime::Handle) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("codex-launcher".into())
            .spawn(move || {
                let _guard = runtime.enter();
                while let Ok((spec, reply)) = rx.recv() {
                    let _ = reply.send(spawn(spec));
                }
            })?;
        Ok(Self { jobs: tx })
    }

    /// Starts a worker and returns it with its link.
    pub async fn launch(&self, spec: LaunchSpec) -> std::io::Result<Launched> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send((spec, reply))
            .map_err(|_| std::io::Error::other("launcher thread is gone"))?;
        rx.await
            .map_err(|_| std::io::Error::other("launcher thread is gone"))?
    }
}

fn spawn(spec: LaunchSpec) -> std::io::Result<Launched> {
    let (ours, theirs) = UnixStream::pair()?;
    let theirs: OwnedFd = theirs.into();
    let theirs_fd = theirs.as_raw_fd();
    let parent = std::process::id() as libc::pid_t;
    let mut cmd = tokio::process::Command::new(&spec.exe);
    {
        use std::os::unix::process::CommandExt as _;
        let std_cmd = cmd.as_std_mut();
        std_cmd.arg0(spec.role.process_name());
    }
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(LINK_FD_ENV, LINK_FD.to_string());
    // The service manager's variables are the daemon's alone.
    for k in codex_core::exec::env::SERVICE_MANAGER_VARS {
        cmd.env_remove(k);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(false);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    // Prepared before the fork: the child may not allocate.
    let cgroup_procs = spec
        .cgroup_procs
        .as_ref()
        .and_then(|p| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok());
    let rlimits = spec.rlimits.clone();
    #[cfg(target_os = "linux")]
    let death_signal = match spec.parent_death {
        ParentDeath::Kill => libc::SIGKILL,
        ParentDeath::Wake => libc::SIGCONT,
    };
    // SAFETY: everything below runs in the forked child before exec and only
    // calls async-signal-safe functions (setsid, prctl, getppid, open, write,
    // close, getrlimit, setrlimit, dup2, fcntl, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(path) = &cgroup_procs {
                // "0" moves the writing process. On failure the worker runs
                // outside the cgroup; the supervisor notices and sweeps
                // its tree instead.
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd >= 0 {
                    libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                }
            }
            for (res, value) in &rlimits {
                let mut cur = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                let res = match res {
                    Rlimit::OpenFiles => libc::RLIMIT_NOFILE,
                    Rlimit::Processes => libc::RLIMIT_NPROC,
                    Rlimit::Data => libc::RLIMIT_DATA,
                };
                if libc::getrlimit(res, &mut cur) == 0 {
                    let hard = cur.rlim_max.min(*value as libc::rlim_t);
                    let new = libc::rlimit {
                        rlim_cur: cur.rlim_cur.min(hard),
                        rlim_max: hard,
                    };
                    libc::setrlimit(res, &new);
                }
            }
            #[cfg(target_os = "linux")]
            {
                if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal, 0, 0, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the signal was armed.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
            }
            #[cfg(not(target_os = "linux"))]
            let _ = parent;
            if theirs_fd == LINK_FD {
                let flags = libc::fcntl(LINK_FD, libc::F_GETFD);
                if flags == -1
                    || libc::fcntl(LINK_FD, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == -1
                {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(theirs_fd, LINK_FD) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Registered under the spawn lock: an orphan sweep in this process never
    // takes a worker for an adopted orphan.
    let child = {
        let _lock = codex_core::process::spawn_lock();
        let child = cmd.spawn()?;
        if let Some(pid) = child.id() {
            codex_core::process::register_child(pid);
        }
        child
    };
    drop(theirs);
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("worker exited at once"))?;
    ours.set_nonblocking(true)?;
    Ok(Launched {
        pid,
        child,
        link: tokio::net::UnixStream::from_std(ours)?,
    })
}

/// In a worker: takes the link handed over by the launcher.
pub fn take_link() -> std::io::Result<UnixStream> {
    let fd: i32 = std::env::var(LINK_FD_ENV)
        .map_err(|_| {
            std::io::Error::other(format!(
                "{LINK_FD_ENV} is not set: not started by the launcher"
            ))
        })?
        .parse()
        .map_err(|_| std::io::Error::other(format!("{LINK_FD_ENV} is not a file descriptor")))?;
    // SAFETY: fcntl(F_GETFD) only inspects the descriptor table.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(std::io::Error::other(format!(
            "link descriptor {fd} is not open"
        )));
    }
    std::env::remove_var(LINK_FD_ENV);
    // SAFETY: the launcher passed us this descriptor and nothing else in this
    // process owns it; it is taken once (the variable is removed above).
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    // Keep the link out of everything this worker spawns.
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags != -1 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
    Ok(stream)
}

/// Sets this process's name as shown by `ps -e`/`top` (`comm`).
pub fn set_process_name(name: &str) {
    #[cfg(target_os = "linux")]
    {
        let mut buf = [0u8; 16];
        let n = name.len().min(15);
        buf[..n].copy_from_slice(&name.as_bytes()[..n]);
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
        // bytes from `buf`, which outlives the call.
        unsafe {
            libc::prctl(libc::PR_SET_NAME, buf.as_ptr() as libc::c_ulong, 0, 0, 0);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = name;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_from_argv0() {
        assert_eq!(
            Role::from_argv0("/usr/bin/codex-session"),
            Some(Role::Session)
        );
        assert_eq!(Role::from_argv0("codex-broker"), Some(Role::Broker));
        assert_eq!(Role::from_argv0("codex"), None);
    }
}
