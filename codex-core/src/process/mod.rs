//! Process-tree bookkeeping for tool commands: who is alive under whom, and
//! how to make sure nothing a command started outlives it.
//!
//! Every tool command runs as the leader of its own process group. When it
//! ends (or times out, or the turn is interrupted) [`kill_tree`] kills the
//! group and every recorded descendant (also those that left the group with
//! `setsid`). A binary that owns its whole process (the `codex` CLI, a
//! `codex-session` worker) additionally calls [`become_subreaper`], so that
//! orphans re-parent to it instead of init; [`reap_adopted_orphans`] then
//! kills and reaps them. A library embedder that does not opt in gets only the
//! group + snapshot kill, never a sweep of processes it did not start.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static SUBREAPER: AtomicBool = AtomicBool::new(false);
static LIVE_CHILDREN: Mutex<Option<HashSet<u32>>> = Mutex::new(None);
static SPAWN_LOCK: Mutex<()> = Mutex::new(());

/// Held while spawning and registering a child, and while sweeping orphans:
/// a child between `fork` and [`register_child`] is never swept.
pub fn spawn_lock() -> std::sync::MutexGuard<'static, ()> {
    SPAWN_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// One process as seen in `/proc/<pid>/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
    pub state: char,
    /// Start time in clock ticks since boot (distinguishes reused pids).
    pub start_time: u64,
    /// User + system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
    pub comm: String,
}

impl ProcInfo {
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// Parses the contents of `/proc/<pid>/stat`.
pub fn parse_stat(text: &str) -> Option<ProcInfo> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // rest[0] = state (field 3), rest[1] = ppid (4), rest[2] = pgrp (5),
    // rest[3] = session (6), rest[11] = utime (14), rest[12] = stime (15),
    // rest[19] = starttime (22), rest[21] = rss (24).
    let num = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(ProcInfo {
        pid,
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        pgid: rest.get(2)?.parse().ok()?,
        sid: rest.get(3)?.parse().ok()?,
        start_time: num(19)?,
        cpu_ticks: num(11).unwrap_or(0) + num(12).unwrap_or(0),
        rss_pages: num(21).unwrap_or(0),
        comm,
    })
}

/// Reads one process; `None` if it is gone.
pub fn read_proc(pid: u32) -> Option<ProcInfo> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Every process visible in `/proc`.
pub fn list_processes() -> Vec<ProcInfo> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_proc)
        .collect()
}

/// All transitive descendants of `root` (not including it).
pub fn descendants(root: u32) -> Vec<ProcInfo> {
    descendants_in(&list_processes(), root)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

/// Bytes per memory page.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as u64
    } else {
        4096
    }
}

/// Descendants of `root` within an already-read process table.
pub fn descendants_in(all: &[ProcInfo], root: u32) -> Vec<ProcInfo> {
    let mut out = Vec::new();
    let mut frontier = vec![root];
    let mut seen = HashSet::from([root]);
    while let Some(parent) = frontier.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            if seen.insert(p.pid) {
                frontier.push(p.pid);
                out.push(p.clone());
            }
        }
    }
    out
}

/// Sends `signal` to a process group; errors (already gone) are ignored.
pub fn signal_group(pgid: u32, signal: i32) {
    if pgid <= 1 {
        return;
    }
    // SAFETY: killpg has no memory-safety preconditions; a stale pgid only
    // yields ESRCH.
    unsafe {
        libc::killpg(pgid as libc::pid_t, signal);
    }
}

/// Sends `signal` to one process; errors are ignored.
pub fn signal_pid(pid: u32, signal: i32) {
    if pid <= 1 {
        return;
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Sets the niceness of one process (errors, e.g. a process that is gone
/// or a priority an unprivileged user may not raise back, are ignored).
pub fn set_nice(pid: u32, nice: i32) {
    if pid <= 1 {
        return;
    }
    // SAFETY: setpriority has no memory-safety preconditions.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, pid as libc::id_t, nice);
    }
}

/// Kills `leader`, its process group (when it leads one: `leader_group`) and
/// every descendant, including descendants that moved to their own session
/// or group.
///
/// While the leader is unreaped its pid cannot be reused, so its descendants
/// are walked, stopped (so none re-parents mid-walk) and killed. Once the
/// leader has been reaped (`leader_reaped`), only its group is signalled
/// (a group id stays reserved while members exist); children that escaped
/// the group are found by the orphan sweep when this process is a subreaper.
pub fn kill_tree(leader: u32, leader_reaped: bool, leader_group: bool) {
    let mut all: Vec<ProcInfo> = Vec::new();
    if !leader_reaped {
        // Two passes catch children forked between the walk and the stop.
        for _ in 0..2 {
            for p in descendants(leader) {
                if !all.iter().any(|q| q.pid == p.pid) {
                    signal_pid(p.pid, libc::SIGSTOP);
                    all.push(p);
                }
            }
        }
    }
    if leader_group {
        signal_group(leader, libc::SIGKILL);
    }
    if !leader_reaped {
        signal_pid(leader, libc::SIGKILL);
    }
    let own = own_pgid();
    for p in &all {
        // Groups that descendants created themselves (never our own).
        if p.pgid == p.pid && p.pgid != own {
            signal_group(p.pgid, libc::SIGKILL);
        }
        signal_pid(p.pid, libc::SIGKILL);
    }
    if SUBREAPER.load(Ordering::Relaxed) {
        reap_adopted_orphans();
    }
}

/// Kills every live descendant of this process, whatever its group or
/// session: for a host whose supervisor is gone, so that nothing it started
/// runs on. Each round stops what it finds (so nothing forks or re-parents
/// mid-walk) and then kills it; rounds repeat (bounded) until none is left,
/// since a subreaper adopts the children of what it kills. Returns how many
/// processes were killed.
pub fn kill_all_descendants() -> usize {
    let me = std::process::id();
    let own = own_pgid();
    let mut killed = 0;
    for _round in 0..32 {
        let live: Vec<ProcInfo> = descendants(me)
            .into_iter()
            .filter(|p| !p.is_zombie())
            .collect();
        if live.is_empty() {
            break;
        }
        for p in &live {
            signal_pid(p.pid, libc::SIGSTOP);
        }
        for p in &live {
            if p.pgid == p.pid && p.pgid != own {
                signal_group(p.pgid, libc::SIGKILL);
            }
            signal_pid(p.pid, libc::SIGKILL);
        }
        killed += live.len();
        if SUBREAPER.load(Ordering::Relaxed) {
            reap_adopted_orphans();
        } else {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    killed
}

fn own_pgid() -> u32 {
    // SAFETY: getpgrp cannot fail.
    unsafe { libc::getpgrp() as u32 }
}

/// Makes this process the reaper of its orphaned descendants (Linux
/// `PR_SET_CHILD_SUBREAPER`). Call it only from a binary that owns the whole
/// process: afterwards [`reap_adopted_orphans`] kills *every* adopted child.
pub fn become_subreaper() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag only.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        SUBREAPER.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// Whether [`become_subreaper`] succeeded.
pub fn is_subreaper() -> bool {
    SUBREAPER.load(Ordering::Relaxed)
}

/// Registers a child this process spawned on purpose (so the orphan sweep
/// leaves it alone).
pub fn register_child(pid: u32) {
    if let Ok(mut g) = LIVE_CHILDREN.lock() {
        g.get_or_insert_with(HashSet::new).insert(pid);
    }
}

pub fn unregister_child(pid: u32) {
    if let Ok(mut g) = LIVE_CHILDREN.lock() {
        if let Some(set) = g.as_mut() {
            set.remove(&pid);
        }
    }
}

fn is_registered(pid: u32) -> bool {
    LIVE_CHILDREN
        .lock()
        .ok()
        .and_then(|g| g.as_ref().map(|s| s.contains(&pid)))
        .unwrap_or(false)
}

/// Kills and reaps children of this process that it never spawned itself:
/// orphans adopted as subreaper. Repeats until none are left (their own
/// children get adopted as they die), bounded to a few rounds.
pub fn reap_adopted_orphans() -> usize {
    let _lock = spawn_lock();
    let me = std::process::id();
    let mut reaped = 0;
    for _round in 0..8 {
        let adopted: Vec<ProcInfo> = list_processes()
            .into_iter()
            .filter(|p| p.ppid == me && !is_registered(p.pid))
            .collect();
        if adopted.is_empty() {
            break;
        }
        for p in &adopted {
            if !p.is_zombie() {
                // Take its descendants down too before it dies.
                for d in descendants(p.pid) {
                    signal_pid(d.pid, libc::SIGKILL);
                }
                signal_pid(p.pid, libc::SIGKILL);
            }
        }
        for p in &adopted {
            if wait_gone(p.pid) {
                reaped += 1;
            }
        }
    }
    reaped
}

/// Reaps one killed child, polling briefly (a process in uninterruptible
/// sleep must not block us forever). Returns whether it was reaped.
fn wait_gone(pid: u32) -> bool {
    for _ in 0..100 {
        let mut status = 0;
        // SAFETY: waitpid on a specific pid that is our (adopted) child; WNOHANG
        // never blocks.
        let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if rc != 0 {
            return rc > 0;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        let line =
            "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 0 0 0 0 7 3 0 0 20 0 1 0 98765 4096 250";
        let p = parse_stat(line).unwrap();
        assert_eq!(p.cpu_ticks, 10);
        assert_eq!(p.rss_pages, 250);
        assert_eq!(p.pid, 1234);
        assert_eq!(p.comm, "a (b) c");
        assert_eq!(p.ppid, 1);
        assert_eq!(p.pgid, 1234);
        assert_eq!(p.start_time, 98765);
    }

    #[test]
    fn sees_itself() {
        let me = read_proc(std::process::id()).unwrap();
        assert_eq!(me.pid, std::process::id());
    }

    #[test]
    fn descendant_walk() {
        let mk = |pid, ppid| ProcInfo {
            pid,
            ppid,
            pgid: pid,
            sid: pid,
            state: 'S',
            start_time: 0,
            cpu_ticks: 0,
            rss_pages: 0,
            comm: String::new(),
        };
        let all = vec![mk(10, 1), mk(11, 10), mk(12, 11), mk(13, 1)];
        let d: Vec<u32> = descendants_in(&all, 10).iter().map(|p| p.pid).collect();
        assert_eq!(d.len(), 2);
        assert!(d.contains(&11) && d.contains(&12));
    }
}
