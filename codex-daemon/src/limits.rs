//! Every limit and timing of the supervisor, in one place: defaults, the
//! `[codexd]` config keys that change them, and hard ceilings (and floors)
//! that configuration cannot go beyond.

use std::time::Duration;

use serde::Serialize;

/// Fixed bounds of every client connection (not configurable).
pub mod connection {
    /// Largest accepted message from a client (a line, or a WebSocket
    /// message); larger ones are dropped with a warning. Upstream's cap
    /// (advertised to WebSocket clients in the 101 answer).
    pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
    /// Requests waiting to be processed; beyond it requests are answered
    /// `-32001` at once.
    pub const INGRESS_MESSAGES: usize = 128;
    /// Messages waiting to be written to a client; beyond it the client is
    /// considered stuck and disconnected (its threads carry on).
    pub const EGRESS_MESSAGES: usize = 8192;
    /// Bytes waiting to be written to a client; same policy.
    pub const EGRESS_BYTES: usize = 64 * 1024 * 1024;
}

/// Fixed bounds of the `codex-broker` process (not configurable).
pub mod broker {
    /// Requests the broker works on at once; beyond it a request is
    /// answered `Overloaded` at once (the supervisor answers `-32001`, a
    /// worker retries with backoff).
    pub const MAX_IN_FLIGHT: usize = codex_core::auth::broker::DEFAULT_MAX_IN_FLIGHT;
}

/// One tunable: its config key, default, and the range config may choose in.
struct Knob {
    key: &'static str,
    default: u64,
    min: u64,
    max: u64,
}

const WATCHDOG_TIMEOUT_MS: Knob = Knob {
    key: "watchdog_timeout_ms",
    default: 5_000,
    min: 200,
    max: 600_000,
};
const IDLE_UNLOAD_MS: Knob = Knob {
    key: "idle_unload_ms",
    default: 30 * 60 * 1000,
    min: 100,
    max: 30 * 24 * 3600 * 1000,
};
const GOVERNOR_INTERVAL_MS: Knob = Knob {
    key: "governor_interval_ms",
    default: 1_000,
    min: 20,
    max: 60_000,
};
const CPU_WINDOW_MS: Knob = Knob {
    key: "cpu_window_ms",
    default: 10_000,
    min: 20,
    max: 600_000,
};
const CPU_SOFT_PERCENT: Knob = Knob {
    key: "cpu_soft_percent",
    default: 90,
    min: 1,
    max: 6_400,
};
const CPU_HARD_PERCENT: Knob = Knob {
    key: "cpu_hard_percent",
    default: 180,
    min: 1,
    max: 6_400,
};
const MEMORY_SOFT_MB: Knob = Knob {
    key: "memory_soft_mb",
    default: 2_048,
    min: 16,
    max: 262_144,
};
const MEMORY_HARD_MB: Knob = Knob {
    key: "memory_hard_mb",
    default: 3_072,
    min: 16,
    max: 262_144,
};
const MEMORY_CAP_MB: Knob = Knob {
    key: "memory_cap_mb",
    default: 4_096,
    min: 32,
    max: 262_144,
};
const MAX_OPEN_FILES: Knob = Knob {
    key: "max_open_files",
    default: 4_096,
    min: 64,
    max: 1_048_576,
};
const MAX_PROCESSES: Knob = Knob {
    key: "max_processes",
    default: 4_096,
    min: 16,
    max: 1_048_576,
};
const MAX_DATA_MB: Knob = Knob {
    key: "max_data_mb",
    default: 16_384,
    min: 64,
    max: 1_048_576,
};
const MAX_LOADED_THREADS: Knob = Knob {
    key: "max_loaded_threads",
    default: 512,
    min: 1,
    max: 16_384,
};
const THREAD_QUEUE: Knob = Knob {
    key: "thread_queue",
    default: 64,
    min: 1,
    max: 4_096,
};

/// `cgroups = true|false`.
const CGROUPS_KEY: &str = "cgroups";

const KNOBS: &[&Knob] = &[
    &WATCHDOG_TIMEOUT_MS,
    &IDLE_UNLOAD_MS,
    &GOVERNOR_INTERVAL_MS,
    &CPU_WINDOW_MS,
    &CPU_SOFT_PERCENT,
    &CPU_HARD_PERCENT,
    &MEMORY_SOFT_MB,
    &MEMORY_HARD_MB,
    &MEMORY_CAP_MB,
    &MAX_OPEN_FILES,
    &MAX_PROCESSES,
    &MAX_DATA_MB,
    &MAX_LOADED_THREADS,
    &THREAD_QUEUE,
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    /// A worker that sends nothing (not even a heartbeat) this long is killed.
    pub watchdog_timeout: Duration,
    /// How often workers send heartbeats.
    pub heartbeat_interval: Duration,
    /// A thread with no subscriber and no turn unloads after this.
    pub idle_unload: Duration,
    /// How often the governor samples each worker.
    pub governor_interval: Duration,
    /// CPU use is averaged over this window.
    pub cpu_window: Duration,
    /// Percent of one core (averaged) that makes a worker `soft`/`hard`.
    pub cpu_soft_percent: u64,
    pub cpu_hard_percent: u64,
    /// Resident memory of a worker's whole tree: `soft`, `hard`, and the
    /// cap at which it is killed.
    pub memory_soft: u64,
    pub memory_hard: u64,
    pub memory_cap: u64,
    /// rlimits of every worker (inherited by its tools).
    pub max_open_files: u64,
    pub max_processes: u64,
    pub max_data: u64,
    /// Workers this daemon runs at most; more → `-32001`.
    pub max_loaded_threads: usize,
    /// Requests queued for one thread's worker; more → `-32001`.
    pub thread_queue: usize,
    /// Use per-worker cgroups where a writable cgroup2 hierarchy exists
    /// (`cgroups = false`: always the recorded process-tree sweep).
    pub use_cgroups: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self::from_config(&toml::Table::new()).0
    }
}

impl Limits {
    /// Reads `[codexd]`; returns the limits and warnings (unknown keys,
    /// values clamped to a floor or ceiling).
    pub fn from_config(table: &toml::Table) -> (Limits, Vec<String>) {
        let mut warnings = Vec::new();
        for key in table.keys() {
            if key != CGROUPS_KEY && !KNOBS.iter().any(|k| k.key == key) {
                warnings.push(format!("[codexd] unknown key `{key}` (ignored)"));
            }
        }
        let mut get = |k: &Knob| -> u64 {
            let Some(v) = table.get(k.key) else {
                return k.default;
            };
            let Some(n) = v.as_integer().filter(|n| *n >= 0).map(|n| n as u64) else {
                warnings.push(format!(
                    "[codexd] `{}` must be a non-negative integer; using {}",
                    k.key, k.default
                ));
                return k.default;
            };
            let clamped = n.clamp(k.min, k.max);
            if clamped != n {
                warnings.push(format!(
                    "[codexd] `{}` = {n} is outside {}..={}; using {clamped}",
                    k.key, k.min, k.max
                ));
            }
            clamped
        };
        let ms = Duration::from_millis;
        let mb = |n: u64| n * 1024 * 1024;
        let watchdog_timeout = ms(get(&WATCHDOG_TIMEOUT_MS));
        let mut limits = Limits {
            heartbeat_interval: (watchdog_timeout / 4).clamp(ms(50), ms(2_000)),
            watchdog_timeout,
            idle_unload: ms(get(&IDLE_UNLOAD_MS)),
            governor_interval: ms(get(&GOVERNOR_INTERVAL_MS)),
            cpu_window: ms(get(&CPU_WINDOW_MS)),
            cpu_soft_percent: get(&CPU_SOFT_PERCENT),
            cpu_hard_percent: get(&CPU_HARD_PERCENT),
            memory_soft: mb(get(&MEMORY_SOFT_MB)),
            memory_hard: mb(get(&MEMORY_HARD_MB)),
            memory_cap: mb(get(&MEMORY_CAP_MB)),
            max_open_files: get(&MAX_OPEN_FILES),
            max_processes: get(&MAX_PROCESSES),
            max_data: mb(get(&MAX_DATA_MB)),
            max_loaded_threads: get(&MAX_LOADED_THREADS) as usize,
            thread_queue: get(&THREAD_QUEUE) as usize,
            use_cgroups: match table.get(CGROUPS_KEY) {
                None => true,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => {
                    warnings.push(format!(
                        "[codexd] `{CGROUPS_KEY}` must be true or false; using true"
                    ));
                    true
                }
            },
        };
        // Keep the thresholds ordered.
        if limits.cpu_hard_percent < limits.cpu_soft_percent {
            warnings.push("[codexd] cpu_hard_percent < cpu_soft_percent; raising it".into());
            limits.cpu_hard_percent = limits.cpu_soft_percent;
        }
        if limits.memory_hard < limits.memory_soft {
            warnings.push("[codexd] memory_hard_mb < memory_soft_mb; raising it".into());
            limits.memory_hard = limits.memory_soft;
        }
        if limits.memory_cap < limits.memory_hard {
            warnings.push("[codexd] memory_cap_mb < memory_hard_mb; raising it".into());
            limits.memory_cap = limits.memory_hard;
        }
        (limits, warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ceilings() {
        let d = Limits::default();
        assert_eq!(d.watchdog_timeout, Duration::from_secs(5));
        assert_eq!(d.idle_unload, Duration::from_secs(1800));
        let t: toml::Table = "watchdog_timeout_ms = 1\nmemory_cap_mb = 99999999\nbogus = 1\nmemory_soft_mb = 100\nmemory_hard_mb = 50"
            .parse()
            .unwrap();
        let (l, w) = Limits::from_config(&t);
        assert_eq!(l.watchdog_timeout, Duration::from_millis(200), "floor");
        assert_eq!(l.memory_cap, 262_144 * 1024 * 1024, "ceiling");
        assert_eq!(l.memory_hard, l.memory_soft, "ordered");
        assert!(w.iter().any(|w| w.contains("bogus")));
        assert!(w.iter().any(|w| w.contains("watchdog_timeout_ms")));
    }
}
