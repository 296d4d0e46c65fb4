//! `codexd/status`: what the supervisor is doing, for `codex daemon status`
//! and for operators (the shape is codex-ipc's `StatusReport`).

use std::sync::atomic::Ordering;

use codex_ipc::app_server::codexd_status::{
    BrokerStatus, ContainmentMode, ContainmentStatus, LimitsStatus, LoadStatus, McpServerEntry,
    MemoryProcessStatus, PressureLevel, StatusReport, ThreadStatusEntry,
};

use super::Server;
use crate::governor::Pressure;

pub use codex_ipc::app_server::codexd_status::METHOD;

impl Server {
    pub(crate) fn status_report(&self) -> StatusReport {
        let mut threads: Vec<ThreadStatusEntry> = self
            .loaded_threads()
            .iter()
            .map(|t| {
                let usage = t.governor().usage();
                ThreadStatusEntry {
                    thread_id: t.id.clone(),
                    pid: t.worker.pid,
                    status: t.status(),
                    pressure: pressure_level(t.pressure()),
                    cpu_percent: (usage.cpu_percent * 10.0).round() / 10.0,
                    rss_bytes: usage.rss_bytes,
                    processes: usage.processes,
                    subscribers: t.subscriber_count(),
                    queued: t.worker.queued(),
                    silent_ms: t.worker.silent_for().as_millis() as u64,
                    cgroup: t.containment.cgroup_dir().map(|p| p.to_path_buf()),
                    mcp_servers: t
                        .mcp_states()
                        .into_iter()
                        .map(|(name, state, error)| McpServerEntry { name, state, error })
                        .collect(),
                }
            })
            .collect();
        threads.sort_by(|a, b| a.thread_id.cmp(&b.thread_id));
        let l = self.limits();
        let ms = |d: std::time::Duration| d.as_millis() as u64;
        StatusReport {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_ms: ms(self.started.elapsed()),
            connections: self.conns.lock().map(|c| c.len()).unwrap_or(0),
            broker: BrokerStatus {
                pid: self.broker.pid(),
                restarts: self.broker.restarts(),
            },
            memory: Some(self.memory_process_status()),
            containment: match &self.cgroups {
                Some(c) => ContainmentStatus {
                    mode: ContainmentMode::Cgroup,
                    path: Some(c.base().to_path_buf()),
                },
                None => ContainmentStatus {
                    mode: ContainmentMode::ProcessTreeSweep,
                    path: None,
                },
            },
            load: LoadStatus {
                overloaded: self.counters.overloaded.load(Ordering::Relaxed),
                slow_clients_disconnected: self.counters.slow_clients.load(Ordering::Relaxed),
            },
            limits: LimitsStatus {
                watchdog_timeout_ms: ms(l.watchdog_timeout),
                heartbeat_interval_ms: ms(l.heartbeat_interval),
                idle_unload_ms: ms(l.idle_unload),
                governor_interval_ms: ms(l.governor_interval),
                cpu_window_ms: ms(l.cpu_window),
                cpu_soft_percent: l.cpu_soft_percent,
                cpu_hard_percent: l.cpu_hard_percent,
                memory_soft_bytes: l.memory_soft,
                memory_hard_bytes: l.memory_hard,
                memory_cap_bytes: l.memory_cap,
                max_open_files: l.max_open_files,
                max_processes: l.max_processes,
                max_data_bytes: l.max_data,
                max_loaded_threads: l.max_loaded_threads,
                thread_queue: l.thread_queue,
            },
            threads,
        }
    }
}

impl Server {
    fn memory_process_status(&self) -> MemoryProcessStatus {
        let last = self.memory.last_status();
        MemoryProcessStatus {
            pid: self.memory.pid(),
            restarts: self.memory.restarts(),
            state: self.memory.state(),
            enabled: self.memory_enabled,
            count: last.as_ref().map(|s| s.count),
            scored: last.as_ref().map(|s| s.scored),
            db_path: last.as_ref().map(|s| s.db_path.clone()),
            warnings: last.map(|s| s.warnings).unwrap_or_default(),
            cgroup: self.memory_cgroup_dir(),
            pipeline: Some(self.pipeline.status()),
        }
    }
}

fn pressure_level(p: Pressure) -> PressureLevel {
    match p {
        Pressure::Normal => PressureLevel::Normal,
        Pressure::Soft => PressureLevel::Soft,
        Pressure::Hard => PressureLevel::Hard,
        Pressure::Terminal => PressureLevel::Terminal,
    }
}
