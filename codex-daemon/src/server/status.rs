//! `codexd/status`: what the supervisor is doing, for `codex daemon status`
//! and for operators. Not an upstream method (hence the `codexd/` prefix).

use serde_json::{json, Value};

use super::Server;

/// The method name.
pub const METHOD: &str = "codexd/status";

impl Server {
    pub(crate) fn status_report(&self) -> Value {
        let mut threads: Vec<Value> = self
            .loaded_threads()
            .iter()
            .map(|t| {
                let usage = t.governor().usage();
                json!({
                    "threadId": t.id,
                    "pid": t.worker.pid,
                    "status": t.status().to_json(),
                    "pressure": t.pressure().as_str(),
                    "cpuPercent": (usage.cpu_percent * 10.0).round() / 10.0,
                    "rssBytes": usage.rss_bytes,
                    "processes": usage.processes,
                    "subscribers": t.subscriber_count(),
                    "queued": t.worker.queued(),
                    "silentMs": t.worker.silent_for().as_millis() as u64,
                    "cgroup": t.containment.cgroup_dir(),
                })
            })
            .collect();
        threads.sort_by(|a, b| a["threadId"].as_str().cmp(&b["threadId"].as_str()));
        let l = self.limits();
        json!({
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "uptimeMs": self.started.elapsed().as_millis() as u64,
            "connections": self.conns.lock().map(|c| c.len()).unwrap_or(0),
            "broker": {"pid": self.broker.pid(), "restarts": self.broker.restarts()},
            "containment": match &self.cgroups {
                Some(c) => json!({"mode": "cgroup", "path": c.base()}),
                None => json!({"mode": "processTreeSweep", "path": null}),
            },
            "limits": {
                "watchdogTimeoutMs": l.watchdog_timeout.as_millis() as u64,
                "heartbeatIntervalMs": l.heartbeat_interval.as_millis() as u64,
                "idleUnloadMs": l.idle_unload.as_millis() as u64,
                "governorIntervalMs": l.governor_interval.as_millis() as u64,
                "cpuWindowMs": l.cpu_window.as_millis() as u64,
                "cpuSoftPercent": l.cpu_soft_percent,
                "cpuHardPercent": l.cpu_hard_percent,
                "memorySoftBytes": l.memory_soft,
                "memoryHardBytes": l.memory_hard,
                "memoryCapBytes": l.memory_cap,
                "maxOpenFiles": l.max_open_files,
                "maxProcesses": l.max_processes,
                "maxDataBytes": l.max_data,
                "maxLoadedThreads": l.max_loaded_threads,
                "threadQueue": l.thread_queue,
            },
            "threads": threads,
        })
    }
}
