//! The resource governor's bookkeeping for one worker: CPU use averaged
//! over a window and the resident memory of its whole tree, turned into a
//! pressure level.
//!
//! Levels move up one step per sample (so a thread that suddenly burns CPU
//! passes through `soft`, with its warning, before `hard`), except that
//! reaching the memory cap is terminal at once. They move down as soon as
//! the sample allows.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use codex_core::process::ProcInfo;
use serde::Serialize;

use crate::limits::Limits;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Pressure {
    /// Within limits.
    Normal,
    /// Over a soft limit: warned, runs at lower priority.
    Soft,
    /// Over a hard limit: new turns are refused with `-32001`.
    Hard,
    /// At the memory cap: the worker is killed.
    Terminal,
}

impl Pressure {
    pub fn as_str(self) -> &'static str {
        match self {
            Pressure::Normal => "normal",
            Pressure::Soft => "soft",
            Pressure::Hard => "hard",
            Pressure::Terminal => "terminal",
        }
    }
}

/// What one sample saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Percent of one core, averaged over the CPU window.
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    pub processes: usize,
}

/// A change of level, to be acted on by the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub from: Pressure,
    pub to: Pressure,
    /// Why, in words for the user.
    pub reason: String,
}

#[derive(Debug)]
pub struct Governor {
    level: Pressure,
    usage: Usage,
    /// (when, cumulative CPU time of the tree).
    cpu_samples: VecDeque<(Instant, Duration)>,
    /// Cumulative CPU time seen through per-process counters.
    cpu_total: Duration,
    /// pid → (start time, CPU ticks at the last sample).
    ticks: HashMap<u32, (u64, u64)>,
}

impl Default for Governor {
    fn default() -> Self {
        Self::new()
    }
}

impl Governor {
    pub fn new() -> Self {
        Self {
            level: Pressure::Normal,
            usage: Usage::default(),
            cpu_samples: VecDeque::new(),
            cpu_total: Duration::ZERO,
            ticks: HashMap::new(),
        }
    }

    pub fn level(&self) -> Pressure {
        self.level
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Records a sample of the worker's tree. `cgroup_cpu` is the cgroup's
    /// cumulative CPU time where there is one (it counts processes that
    /// exited between samples, which per-process counters miss).
    pub fn observe(
        &mut self,
        now: Instant,
        members: &[ProcInfo],
        cgroup_cpu: Option<Duration>,
        limits: &Limits,
        ticks_per_second: u64,
        page_size: u64,
    ) -> Option<Transition> {
        let cpu = match cgroup_cpu {
            Some(c) => c,
            None => {
                let mut seen = HashMap::with_capacity(members.len());
                let mut delta_ticks = 0u64;
                for p in members {
                    let before = match self.ticks.get(&p.pid) {
                        Some((start, t)) if *start == p.start_time => *t,
                        _ => 0,
                    };
                    delta_ticks += p.cpu_ticks.saturating_sub(before);
                    seen.insert(p.pid, (p.start_time, p.cpu_ticks));
                }
                self.ticks = seen;
                self.cpu_total +=
                    Duration::from_secs_f64(delta_ticks as f64 / ticks_per_second.max(1) as f64);
                self.cpu_total
            }
        };
        self.cpu_samples.push_back((now, cpu));
        // Keep one sample at or before the window's start.
        while self.cpu_samples.len() > 2
            && self
                .cpu_samples
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= limits.cpu_window)
        {
            self.cpu_samples.pop_front();
        }
        let cpu_percent = match (self.cpu_samples.front(), self.cpu_samples.back()) {
            (Some((t0, c0)), Some((t1, c1))) if t1 > t0 => {
                let wall = t1.duration_since(*t0).as_secs_f64();
                c1.saturating_sub(*c0).as_secs_f64() / wall * 100.0
            }
            _ => 0.0,
        };
        let rss_bytes = members.iter().map(|p| p.rss_pages * page_size).sum();
        self.usage = Usage {
            cpu_percent,
            rss_bytes,
            processes: members.len(),
        };
        self.decide(limits)
    }

    fn decide(&mut self, limits: &Limits) -> Option<Transition> {
        let u = self.usage;
        let cpu = u.cpu_percent;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let (target, reason) = if u.rss_bytes >= limits.memory_cap {
            (
                Pressure::Terminal,
                format!(
                    "resident memory {:.0} MiB reached the cap of {:.0} MiB",
                    mib(u.rss_bytes),
                    mib(limits.memory_cap)
                ),
            )
        } else if u.rss_bytes >= limits.memory_hard || cpu >= limits.cpu_hard_percent as f64 {
            (
                Pressure::Hard,
                over(u, limits.cpu_hard_percent, limits.memory_hard, limits),
            )
        } else if u.rss_bytes >= limits.memory_soft || cpu >= limits.cpu_soft_percent as f64 {
            (
                Pressure::Soft,
                over(u, limits.cpu_soft_percent, limits.memory_soft, limits),
            )
        } else {
            (Pressure::Normal, "back within limits".to_string())
        };
        let next = if target == Pressure::Terminal || target <= self.level {
            target
        } else {
            // One step up per sample.
            match self.level {
                Pressure::Normal => Pressure::Soft,
                _ => Pressure::Hard,
            }
        };
        if next == self.level {
            return None;
        }
        let from = self.level;
        self.level = next;
        let reason = if next == target {
            reason
        } else {
            over(u, limits.cpu_soft_percent, limits.memory_soft, limits)
        };
        Some(Transition {
            from,
            to: next,
            reason,
        })
    }
}

/// "CPU 95% of a core over 10s (limit 90%)" and/or the memory equivalent.
fn over(u: Usage, cpu_limit: u64, mem_limit: u64, limits: &Limits) -> String {
    let mut parts = Vec::new();
    if u.cpu_percent >= cpu_limit as f64 {
        parts.push(format!(
            "CPU {:.0}% of a core over {:.1}s (limit {cpu_limit}%)",
            u.cpu_percent,
            limits.cpu_window.as_secs_f64()
        ));
    }
    if u.rss_bytes >= mem_limit {
        parts.push(format!(
            "resident memory {:.0} MiB (limit {:.0} MiB)",
            u.rss_bytes as f64 / 1048576.0,
            mem_limit as f64 / 1048576.0
        ));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc_with(pid: u32, cpu_ticks: u64, rss_pages: u64) -> ProcInfo {
        ProcInfo {
            pid,
            ppid: 1,
            pgid: pid,
            sid: pid,
            state: 'R',
            start_time: 7,
            cpu_ticks,
            rss_pages,
            comm: "x".into(),
        }
    }

    fn limits() -> Limits {
        let t: toml::Table =
            "cpu_window_ms = 1000\ncpu_soft_percent = 30\ncpu_hard_percent = 60\nmemory_soft_mb = 100\nmemory_hard_mb = 200\nmemory_cap_mb = 300"
                .parse()
                .unwrap();
        Limits::from_config(&t).0
    }

    #[test]
    fn busy_cpu_goes_soft_then_hard_then_back() {
        let l = limits();
        let mut g = Governor::new();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // 100 ticks/s: a full core is 10 ticks per 100 ms.
        assert_eq!(
            g.observe(t0, &[proc_with(1, 0, 10)], None, &l, 100, 4096),
            None
        );
        let tr = g
            .observe(t0 + ms(100), &[proc_with(1, 10, 10)], None, &l, 100, 4096)
            .unwrap();
        assert_eq!((tr.from, tr.to), (Pressure::Normal, Pressure::Soft));
        assert!(tr.reason.contains("CPU"), "{}", tr.reason);
        let tr = g
            .observe(t0 + ms(200), &[proc_with(1, 20, 10)], None, &l, 100, 4096)
            .unwrap();
        assert_eq!(tr.to, Pressure::Hard);
        // Idle for longer than the window: back to normal.
        let mut last = None;
        for i in 3..30 {
            if let Some(tr) = g.observe(
                t0 + ms(100 * i),
                &[proc_with(1, 20, 10)],
                None,
                &l,
                100,
                4096,
            ) {
                last = Some(tr);
            }
        }
        assert_eq!(last.unwrap().to, Pressure::Normal);
        assert!(g.usage().cpu_percent < 1.0);
    }

    #[test]
    fn memory_cap_is_terminal_at_once() {
        let l = limits();
        let mut g = Governor::new();
        let pages = 301 * 1024 * 1024 / 4096;
        let tr = g
            .observe(
                Instant::now(),
                &[proc_with(1, 0, pages)],
                None,
                &l,
                100,
                4096,
            )
            .unwrap();
        assert_eq!(tr.to, Pressure::Terminal);
        assert!(tr.reason.contains("cap"), "{}", tr.reason);
    }

    #[test]
    fn exited_processes_do_not_make_cpu_negative() {
        let l = limits();
        let mut g = Governor::new();
        let t0 = Instant::now();
        g.observe(
            t0,
            &[proc_with(1, 0, 1), proc_with(2, 50, 1)],
            None,
            &l,
            100,
            4096,
        );
        g.observe(
            t0 + Duration::from_millis(500),
            &[proc_with(1, 1, 1)],
            None,
            &l,
            100,
            4096,
        );
        assert!(g.usage().cpu_percent >= 0.0 && g.usage().cpu_percent < 5.0);
    }
}
