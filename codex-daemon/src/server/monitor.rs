//! The supervisor's one periodic task: the watchdog (a worker silent past
//! its deadline is killed), the resource governor (each worker's tree
//! sampled from `/proc` and its cgroup at a fixed cadence), idle unload,
//! reaping of processes orphaned onto codexd, and the service manager's
//! watchdog (`WATCHDOG=1` from this loop, so a wedged monitor stops the
//! pings).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use codex_core::process::{self, ProcInfo};

use super::thread::LoadedThread;
use super::Server;
use crate::governor::Pressure;

/// Shortest tick, whatever the configuration says.
const MIN_TICK: Duration = Duration::from_millis(20);
/// Niceness of a worker over a soft limit.
const SOFT_NICE: i32 = 10;

pub(crate) async fn run(server: Weak<Server>) {
    let sd_watchdog = crate::activation::watchdog_interval();
    let tick = match server.upgrade() {
        Some(s) => {
            let l = s.limits();
            let tick = (l.watchdog_timeout / 4)
                .min(l.governor_interval)
                .min(l.idle_unload / 4);
            sd_watchdog
                .map_or(tick, |every| tick.min(every / 2))
                .max(MIN_TICK)
        }
        None => return,
    };
    let mut next_ping = Instant::now();
    let ticks_per_second = process::clock_ticks_per_second();
    let page_size = process::page_size();
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_sample = Instant::now();
    loop {
        interval.tick().await;
        let Some(server) = server.upgrade() else {
            return;
        };
        let now = Instant::now();
        let threads = server.loaded_threads();
        for t in &threads {
            watchdog(&server, t);
            idle_unload(&server, t, now);
        }
        if now >= next_sample {
            next_sample = now + server.limits().governor_interval;
            govern(&server, threads, ticks_per_second, page_size).await;
        }
        if let Some(every) = sd_watchdog {
            if now >= next_ping {
                next_ping = now + every;
                crate::activation::watchdog_ping();
            }
        }
    }
}

fn watchdog(server: &Server, t: &Arc<LoadedThread>) {
    let limit = server.limits().watchdog_timeout;
    let silent = t.worker.silent_for();
    if silent > limit && !t.is_unloading() {
        t.kill(format!(
            "it sent no heartbeat for {:.1}s (watchdog deadline {:.1}s), so codexd killed it",
            silent.as_secs_f64(),
            limit.as_secs_f64()
        ));
    }
}

fn idle_unload(server: &Arc<Server>, t: &Arc<LoadedThread>, now: Instant) {
    let Some(idle) = t.idle_for(now) else {
        return;
    };
    if idle < server.limits().idle_unload || t.is_unloading() {
        return;
    }
    tracing::info!(
        "thread {}: unloading its worker after {:.1}s unused",
        t.id,
        idle.as_secs_f64()
    );
    let t = t.clone();
    tokio::spawn(async move { t.stop().await });
}

/// One sample per worker (one `/proc` scan for all of them), then each
/// worker's pressure level is updated and acted on.
async fn govern(
    server: &Arc<Server>,
    threads: Vec<Arc<LoadedThread>>,
    ticks_per_second: u64,
    page_size: u64,
) {
    let containments: Vec<_> = threads.iter().map(|t| t.containment.clone()).collect();
    let samples = tokio::task::spawn_blocking(move || {
        let needs_table = containments.iter().any(|c| c.cgroup_dir().is_none());
        let table: Option<Vec<ProcInfo>> = needs_table.then(process::list_processes);
        let samples: Vec<(Vec<ProcInfo>, Option<Duration>)> = containments
            .iter()
            .map(|c| (c.members(table.as_deref()), c.cgroup_cpu()))
            .collect();
        // Anything adopted by codexd escaped a worker that is gone.
        if process::is_subreaper() {
            process::reap_adopted_orphans();
        }
        samples
    })
    .await;
    let Ok(samples) = samples else {
        return;
    };
    let limits = server.limits();
    let now = Instant::now();
    for (t, (members, cgroup_cpu)) in threads.iter().zip(samples) {
        let transition = t.governor().observe(
            now,
            &members,
            cgroup_cpu,
            limits,
            ticks_per_second,
            page_size,
        );
        if t.pressure() >= Pressure::Soft {
            for p in &members {
                process::set_nice(p.pid, SOFT_NICE);
            }
        }
        if let Some(tr) = transition {
            if tr.to == Pressure::Normal {
                for p in &members {
                    process::set_nice(p.pid, 0);
                }
            }
            t.on_pressure(server, &tr);
        }
    }
}
