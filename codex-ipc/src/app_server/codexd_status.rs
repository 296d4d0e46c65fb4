//! `codexd/status`: what the supervisor is doing (workers, pressure, limits),
//! for `codex daemon status` and operators. Not an upstream method (hence
//! the `codexd/` prefix); both ends use these types.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::objects::ThreadStatusView;

/// The method name.
pub const METHOD: &str = "codexd/status";

/// The `codexd/status` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub pid: u32,
    pub version: String,
    pub uptime_ms: u64,
    pub connections: usize,
    pub broker: BrokerStatus,
    /// The `codex-memory` process (absent from daemons without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryProcessStatus>,
    pub containment: ContainmentStatus,
    pub limits: LimitsStatus,
    pub load: LoadStatus,
    /// Sorted by thread id.
    pub threads: Vec<ThreadStatusEntry>,
}

/// Load shed since the daemon started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadStatus {
    /// Requests answered `-32001 Server overloaded; retry later.`
    pub overloaded: u64,
    /// Connections dropped because their client stopped reading.
    pub slow_clients_disconnected: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    pub pid: u32,
    pub restarts: u64,
}

/// The `codex-memory` process and its index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryProcessStatus {
    /// 0 while it is down or not started.
    pub pid: u32,
    pub restarts: u64,
    pub state: crate::supervised::ServiceState,
    /// `[features] memories` (on: started with the daemon; off: started by
    /// the first memory request).
    pub enabled: bool,
    /// Memories in the index, as last reported (`null` before the first
    /// report).
    pub count: Option<usize>,
    /// Of them, the scored ones (`[memories] score_model`), as last
    /// reported.
    #[serde(default)]
    pub scored: Option<usize>,
    pub db_path: Option<PathBuf>,
    /// Problems the index reported (a corrupt database set aside, ...).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Its cgroup, where cgroups are available.
    pub cgroup: Option<PathBuf>,
    /// The memories pipeline (phase 1 and 2), run by an internal worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineStatus>,
}

/// The memories pipeline as codexd runs it: at most one pipeline worker at
/// a time, at most one pass waiting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStatus {
    /// `[features] memories` and `[memories] generate_memories`.
    pub enabled: bool,
    /// The running pipeline worker (`null`: none).
    pub pid: Option<u32>,
    /// A pass is waiting for the running one.
    pub pending: bool,
    /// Passes finished (or failed) since the daemon started.
    pub passes: u64,
    pub last: Option<PipelinePass>,
}

/// What one pass did (also the pipeline worker's report over its link).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelinePass {
    /// When it ended (unix seconds).
    pub finished_at: i64,
    pub scanned: usize,
    pub eligible: usize,
    pub claimed: usize,
    pub extracted: usize,
    pub no_output: usize,
    pub failed: usize,
    /// The first failures: `thread id: reason`.
    #[serde(default)]
    pub failures: Vec<String>,
    /// `notRun`, `skipped`, or upstream's phase-2 status (`succeeded`,
    /// `failed_agent`, ...).
    pub phase2: String,
    #[serde(default)]
    pub phase2_detail: Option<String>,
    /// Stage-1 outputs phase 2 selected.
    #[serde(default)]
    pub selected: Option<usize>,
    #[serde(default)]
    pub cancelled: bool,
    /// Why the pass stopped early, or why the worker failed (killed,
    /// timed out, could not start).
    #[serde(default)]
    pub error: Option<String>,
}

/// How workers' process trees are contained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainmentStatus {
    pub mode: ContainmentMode,
    /// The cgroup under which workers run (`null` without cgroups).
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContainmentMode {
    Cgroup,
    ProcessTreeSweep,
}

/// The limits in force (durations in ms, sizes in bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitsStatus {
    pub watchdog_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub idle_unload_ms: u64,
    pub governor_interval_ms: u64,
    pub cpu_window_ms: u64,
    pub cpu_soft_percent: u64,
    pub cpu_hard_percent: u64,
    pub memory_soft_bytes: u64,
    pub memory_hard_bytes: u64,
    pub memory_cap_bytes: u64,
    pub max_open_files: u64,
    pub max_processes: u64,
    pub max_data_bytes: u64,
    pub max_loaded_threads: usize,
    pub thread_queue: usize,
}

/// One loaded thread (one worker process).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadStatusEntry {
    pub thread_id: String,
    pub pid: u32,
    pub status: ThreadStatusView,
    pub pressure: PressureLevel,
    /// Percent of one core over the CPU window, one decimal.
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    pub processes: usize,
    pub subscribers: usize,
    pub queued: usize,
    pub silent_ms: u64,
    pub cgroup: Option<PathBuf>,
    /// The thread's MCP servers and their state.
    #[serde(default)]
    pub mcp_servers: Vec<McpServerEntry>,
}

/// One MCP server of a thread, as its worker last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServerEntry {
    pub name: String,
    pub state: codex_core::protocol::McpStartupState,
    pub error: Option<String>,
}

/// The governor's level for a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PressureLevel {
    Normal,
    Soft,
    Hard,
    Terminal,
}

impl PressureLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            PressureLevel::Normal => "normal",
            PressureLevel::Soft => "soft",
            PressureLevel::Hard => "hard",
            PressureLevel::Terminal => "terminal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_with_the_wire_names() {
        let report = StatusReport {
            pid: 10,
            version: "0.1.0".into(),
            uptime_ms: 1500,
            connections: 2,
            broker: BrokerStatus {
                pid: 11,
                restarts: 0,
            },
            memory: None,
            containment: ContainmentStatus {
                mode: ContainmentMode::ProcessTreeSweep,
                path: None,
            },
            limits: LimitsStatus {
                watchdog_timeout_ms: 1,
                heartbeat_interval_ms: 2,
                idle_unload_ms: 3,
                governor_interval_ms: 4,
                cpu_window_ms: 5,
                cpu_soft_percent: 6,
                cpu_hard_percent: 7,
                memory_soft_bytes: 8,
                memory_hard_bytes: 9,
                memory_cap_bytes: 10,
                max_open_files: 11,
                max_processes: 12,
                max_data_bytes: 13,
                max_loaded_threads: 14,
                thread_queue: 15,
            },
            load: LoadStatus {
                overloaded: 16,
                slow_clients_disconnected: 17,
            },
            threads: vec![ThreadStatusEntry {
                thread_id: "thr".into(),
                pid: 12,
                status: ThreadStatusView::Active {
                    waiting_on_approval: true,
                },
                pressure: PressureLevel::Soft,
                cpu_percent: 12.5,
                rss_bytes: 4096,
                processes: 3,
                subscribers: 1,
                queued: 0,
                silent_ms: 20,
                cgroup: Some("/sys/fs/cgroup/x".into()),
                mcp_servers: vec![],
            }],
        };
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(
            v,
            json!({
                "pid": 10, "version": "0.1.0", "uptimeMs": 1500, "connections": 2,
                "broker": {"pid": 11, "restarts": 0},
                "containment": {"mode": "processTreeSweep", "path": null},
                "limits": {
                    "watchdogTimeoutMs": 1, "heartbeatIntervalMs": 2, "idleUnloadMs": 3,
                    "governorIntervalMs": 4, "cpuWindowMs": 5, "cpuSoftPercent": 6,
                    "cpuHardPercent": 7, "memorySoftBytes": 8, "memoryHardBytes": 9,
                    "memoryCapBytes": 10, "maxOpenFiles": 11, "maxProcesses": 12,
                    "maxDataBytes": 13, "maxLoadedThreads": 14, "threadQueue": 15,
                },
                "load": {"overloaded": 16, "slowClientsDisconnected": 17},
                "threads": [{
                    "threadId": "thr", "pid": 12,
                    "status": {"type": "active", "activeFlags": ["waitingOnApproval"]},
                    "pressure": "soft", "cpuPercent": 12.5, "rssBytes": 4096, "processes": 3,
                    "subscribers": 1, "queued": 0, "silentMs": 20, "cgroup": "/sys/fs/cgroup/x",
                    "mcpServers": [],
                }],
            })
        );
        let back: StatusReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, report);
    }
}
