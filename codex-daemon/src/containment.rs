//! Keeping track of everything a worker started, and taking all of it down.
//!
//! Two mechanisms, chosen at runtime:
//! - **cgroup v2**: where a writable (delegated) cgroup2 hierarchy is found,
//!   each worker gets its own cgroup under `codexd-<pid>/`; membership
//!   survives `setsid`, and `cgroup.kill` takes the whole tree at once.
//! - **recorded process-tree sweep**: otherwise the governor records every
//!   process of a worker's tree it samples (pid + start time), and on death
//!   those still alive are killed; orphans re-parented to codexd (a child
//!   subreaper) are killed and reaped too.
//!
//! Either way the worker's process group is killed first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use codex_core::process::{self, ProcInfo};

/// The cgroup2 directory that holds this daemon's workers.
#[derive(Debug)]
pub struct Cgroups {
    base: PathBuf,
    next: std::sync::atomic::AtomicU64,
}

impl Cgroups {
    /// Finds a writable cgroup2 hierarchy with `cgroup.kill` and creates
    /// `codexd-<pid>` in it; cleans up the directories of dead daemons.
    pub fn detect() -> Option<Cgroups> {
        let mount = cgroup2_mount()?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_string()))?;
        let parent = mount.join(own.trim_start_matches('/'));
        if !parent.is_dir() {
            return None;
        }
        cleanup_stale(&parent);
        let base = parent.join(format!("codexd-{}", std::process::id()));
        if std::fs::create_dir(&base).is_err() && !base.is_dir() {
            return None;
        }
        if !base.join("cgroup.kill").exists() {
            let _ = std::fs::remove_dir(&base);
            return None;
        }
        tracing::info!("containment: cgroup v2 at {}", base.display());
        Some(Cgroups {
            base,
            next: std::sync::atomic::AtomicU64::new(1),
        })
    }

    /// A new cgroup for one worker (`worker-<n>`).
    pub fn create(&self) -> Option<WorkerCgroup> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.base.join(format!("worker-{n}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => Some(WorkerCgroup { dir }),
            Err(e) => {
                tracing::warn!("cannot create cgroup {}: {e}", dir.display());
                None
            }
        }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.base);
    }
}

pub(crate) fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        // ... mount-point ... - fstype source options
        let (left, right) = l.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mount_point = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(mount_point))
    })
}

/// What `codex doctor` reports about cgroup v2, without creating anything:
/// the mount, this process's own cgroup, and whether codexd could make
/// worker cgroups there (a writable cgroup2 directory: access(2) asks the
/// kernel, so root and delegation both count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupSupport {
    pub mount: Option<PathBuf>,
    pub own: Option<PathBuf>,
    pub delegated: bool,
}

pub fn cgroup_support() -> CgroupSupport {
    let mount = cgroup2_mount();
    let own = mount.as_ref().and_then(|m| {
        let rel = std::fs::read_to_string("/proc/self/cgroup")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_string()))?;
        Some(m.join(rel.trim_start_matches('/')))
    });
    // codexd makes its own child cgroup here (which has `cgroup.kill`, even
    // when this one is the root, which has none): it needs a writable
    // cgroup2 directory.
    let delegated = own.as_ref().is_some_and(|d| {
        d.join("cgroup.procs").exists() && {
            let c = std::ffi::CString::new(d.as_os_str().as_encoded_bytes()).unwrap_or_default();
            // SAFETY: access(2) reads the NUL-terminated path and nothing else.
            unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
        }
    });
    CgroupSupport {
        mount,
        own,
        delegated,
    }
}

/// Kills and removes `codexd-<pid>` directories whose daemon is gone.
fn cleanup_stale(parent: &Path) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("codexd-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if process::read_proc(pid).is_some() {
            continue;
        }
        let dir = e.path();
        for sub in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if sub.path().is_dir() {
                let wc = WorkerCgroup { dir: sub.path() };
                wc.kill_and_remove(Duration::from_secs(1));
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }
}

#[derive(Debug)]
pub struct WorkerCgroup {
    dir: PathBuf,
}

impl WorkerCgroup {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its `cgroup.procs` (a worker launched with it joins it).
    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    pub fn add(&self, pid: u32) -> std::io::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }

    pub fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// `cgroup.kill`, then waits (bounded) until it is empty and removes it.
    pub fn kill_and_remove(&self, wait: Duration) {
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        let deadline = Instant::now() + wait;
        while !self.pids().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// One worker's process tree.
#[derive(Debug)]
pub struct Containment {
    pub worker_pid: u32,
    cgroup: Option<WorkerCgroup>,
    /// pid → start time of every process seen in the tree.
    recorded: Mutex<HashMap<u32, u64>>,
}

impl Containment {
    /// Starts tracking a just-launched worker. `cgroup` is the cgroup it was
    /// launched into (see `LaunchSpec::cgroup_procs`); it is kept only if
    /// the worker really is in it.
    pub fn new(worker_pid: u32, cgroup: Option<WorkerCgroup>) -> Self {
        let cgroup = cgroup.and_then(|cg| {
            if cg.pids().contains(&worker_pid) {
                Some(cg)
            } else {
                tracing::warn!(
                    "worker {worker_pid} did not join {}; falling back to a process-tree sweep",
                    cg.dir.display()
                );
                cg.kill_and_remove(Duration::ZERO);
                None
            }
        });
        let c = Self {
            worker_pid,
            cgroup,
            recorded: Mutex::new(HashMap::new()),
        };
        c.members(None);
        c
    }

    /// The worker's cgroup directory, if it has one.
    pub fn cgroup_dir(&self) -> Option<&Path> {
        self.cgroup.as_ref().map(|c| c.dir.as_path())
    }

    /// CPU time used by the whole cgroup so far, including processes that
    /// already exited (`cpu.stat` `usage_usec`).
    pub fn cgroup_cpu(&self) -> Option<Duration> {
        let cg = self.cgroup.as_ref()?;
        let stat = std::fs::read_to_string(cg.dir.join("cpu.stat")).ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_micros)
    }

    /// The processes of the worker's tree now, from `table` (a process
    /// table read once for every worker) or from `/proc`. Every one is
    /// recorded for the sweep.
    pub fn members(&self, table: Option<&[ProcInfo]>) -> Vec<ProcInfo> {
        let procs: Vec<ProcInfo> = match (&self.cgroup, table) {
            (Some(cg), _) => cg
                .pids()
                .into_iter()
                .filter_map(process::read_proc)
                .collect(),
            (None, Some(all)) => {
                let mut v: Vec<ProcInfo> = all
                    .iter()
                    .filter(|p| p.pid == self.worker_pid)
                    .cloned()
                    .collect();
                v.extend(process::descendants_in(all, self.worker_pid));
                v
            }
            (None, None) => {
                let mut v: Vec<ProcInfo> =
                    process::read_proc(self.worker_pid).into_iter().collect();
                v.extend(process::descendants(self.worker_pid));
                v
            }
        };
        if let Ok(mut rec) = self.recorded.lock() {
            for p in &procs {
                rec.insert(p.pid, p.start_time);
            }
        }
        procs
    }

    /// Kills everything: the worker's group, its cgroup (or every recorded
    /// process still alive with the same start time), then reaps orphans
    /// re-parented to this process. Blocking; run it off the async threads.
    pub fn kill_all(&self) {
        process::signal_group(self.worker_pid, libc::SIGKILL);
        if let Some(cg) = &self.cgroup {
            cg.kill_and_remove(Duration::from_secs(2));
        }
        let recorded: Vec<(u32, u64)> = self
            .recorded
            .lock()
            .map(|r| r.iter().map(|(p, t)| (*p, *t)).collect())
            .unwrap_or_default();
        for (pid, start) in recorded {
            if pid == std::process::id() {
                continue;
            }
            if let Some(p) = process::read_proc(pid) {
                if p.start_time == start && !p.is_zombie() {
                    process::signal_pid(pid, libc::SIGKILL);
                }
            }
        }
        if process::is_subreaper() {
            process::reap_adopted_orphans();
        }
    }
}
