//! `[features] memories` and `[memories]`: upstream's keys with upstream's
//! defaults, plus this runtime's recall settings. Keys we read but do not act
//! on are named in a warning.

use std::path::PathBuf;
use std::time::Duration;

/// Default deadline of one recall: a turn never waits longer for memories.
pub const DEFAULT_RECALL_TIMEOUT: Duration = Duration::from_millis(50);
/// Default number of memories a recall injects at most.
pub const DEFAULT_RECALL_LIMIT: usize = 5;

/// What the memories feature does for a thread.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoriesConfig {
    /// `[features] memories` (upstream: stable, off by default).
    pub enabled: bool,
    /// New threads get `memory_mode = "enabled"` (else `"disabled"`).
    pub generate_memories: bool,
    /// Inject the memory read path ("## Memory") into the developer message.
    pub use_memories: bool,
    /// MCP or web search marks the thread's memory mode `"polluted"`
    /// (alias `no_memories_if_mcp_or_web_search`).
    pub disable_on_external_context: bool,
    /// Offer the `memories` tools (`list`, `read`, `search`, `add_ad_hoc_note`).
    pub dedicated_tools: bool,
    pub max_raw_memories_for_consolidation: usize,
    pub max_unused_days: u32,
    pub max_rollout_age_days: u32,
    pub max_rollouts_per_startup: usize,
    pub min_rollout_idle_hours: u32,
    pub min_rate_limit_remaining_percent: u32,
    /// Model of phase 1 (extraction); a path ending in `.gguf` names a local
    /// model run by codex-memory.
    pub extract_model: Option<String>,
    /// Ours: a local GGUF that scores memories in the background
    /// (`score_model`, relative to `$CODEX_HOME`); unset: nothing is scored.
    pub score_model: Option<String>,
    /// Model of phase 2 (consolidation).
    pub consolidation_model: Option<String>,
    pub consolidation_service_tier: Option<String>,
    /// Ours: how long a turn waits for recall (`recall_timeout_ms`).
    pub recall_timeout: Duration,
    /// Ours: at most this many recalled memories per turn (`recall_limit`;
    /// 0 turns per-turn recall off).
    pub recall_limit: usize,
    /// Ours: a local embedding GGUF (e.g. all-MiniLM-L6-v2) that enables
    /// vector recall (`embedding_model`).
    pub embedding_model: Option<PathBuf>,
}

impl Default for MemoriesConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            generate_memories: true,
            use_memories: true,
            disable_on_external_context: false,
            dedicated_tools: false,
            max_raw_memories_for_consolidation: 256,
            max_unused_days: 30,
            max_rollout_age_days: 10,
            max_rollouts_per_startup: 2,
            min_rollout_idle_hours: 6,
            min_rate_limit_remaining_percent: 25,
            extract_model: None,
            score_model: None,
            consolidation_model: None,
            consolidation_service_tier: None,
            recall_timeout: DEFAULT_RECALL_TIMEOUT,
            recall_limit: DEFAULT_RECALL_LIMIT,
            embedding_model: None,
        }
    }
}

/// Reads `[features] memories` and `[memories]`; every problem is a warning
/// naming the key (a bad value keeps the default).
pub fn parse(
    features: Option<&toml::Table>,
    memories: Option<&toml::Table>,
) -> (MemoriesConfig, Vec<String>) {
    let mut cfg = MemoriesConfig::default();
    let mut warnings = Vec::new();
    if let Some(f) = features {
        match f.get("memories") {
            None => {}
            Some(toml::Value::Boolean(b)) => cfg.enabled = *b,
            Some(_) => warnings.push("`features.memories` must be a boolean (ignored)".into()),
        }
    }
    let Some(m) = memories else {
        return (cfg, warnings);
    };
    for (key, value) in m {
        let mut bad = |what: &str| {
            warnings.push(format!("`memories.{key}` must be {what} (ignored)"));
        };
        match key.as_str() {
            "generate_memories" => set_bool(value, &mut cfg.generate_memories, &mut bad),
            "use_memories" => set_bool(value, &mut cfg.use_memories, &mut bad),
            "disable_on_external_context" | "no_memories_if_mcp_or_web_search" => {
                set_bool(value, &mut cfg.disable_on_external_context, &mut bad)
            }
            "dedicated_tools" => set_bool(value, &mut cfg.dedicated_tools, &mut bad),
            "max_raw_memories_for_consolidation" => set_int(
                value,
                1,
                4096,
                &mut cfg.max_raw_memories_for_consolidation,
                &mut bad,
            ),
            "max_unused_days" => set_int(value, 0, 36_500, &mut cfg.max_unused_days, &mut bad),
            "max_rollout_age_days" => {
                set_int(value, 0, 36_500, &mut cfg.max_rollout_age_days, &mut bad)
            }
            "max_rollouts_per_startup" => {
                set_int(value, 1, 128, &mut cfg.max_rollouts_per_startup, &mut bad)
            }
            "min_rollout_idle_hours" => set_int(
                value,
                0,
                24 * 365,
                &mut cfg.min_rollout_idle_hours,
                &mut bad,
            ),
            "min_rate_limit_remaining_percent" => set_int(
                value,
                0,
                100,
                &mut cfg.min_rate_limit_remaining_percent,
                &mut bad,
            ),
            "extract_model" => set_string(value, &mut cfg.extract_model, &mut bad),
            "score_model" => {
                let mut s = None;
                set_string(value, &mut s, &mut bad);
                match s {
                    Some(s) if is_gguf(&s) => cfg.score_model = Some(s),
                    Some(_) => bad("a local `.gguf` path (scoring runs only on the local lane)"),
                    None => {}
                }
            }
            "consolidation_model" => set_string(value, &mut cfg.consolidation_model, &mut bad),
            "consolidation_service_tier" => {
                set_string(value, &mut cfg.consolidation_service_tier, &mut bad)
            }
            "recall_timeout_ms" => {
                let mut ms = DEFAULT_RECALL_TIMEOUT.as_millis() as u64;
                set_int(value, 1, 10_000, &mut ms, &mut bad);
                cfg.recall_timeout = Duration::from_millis(ms);
            }
            "recall_limit" => set_int(value, 0, 50, &mut cfg.recall_limit, &mut bad),
            "embedding_model" => {
                let mut s = None;
                set_string(value, &mut s, &mut bad);
                cfg.embedding_model = s.map(PathBuf::from);
            }
            "scope" | "dual_write" => warnings.push(format!(
                "`memories.{key}` is not supported by this runtime (ignored)"
            )),
            _ => warnings.push(format!("unknown key `memories.{key}` (ignored)")),
        }
    }
    (cfg, warnings)
}

fn is_gguf(value: &str) -> bool {
    std::path::Path::new(value.trim())
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

fn set_bool(value: &toml::Value, slot: &mut bool, bad: &mut impl FnMut(&str)) {
    match value {
        toml::Value::Boolean(b) => *slot = *b,
        _ => bad("a boolean"),
    }
}

fn set_string(value: &toml::Value, slot: &mut Option<String>, bad: &mut impl FnMut(&str)) {
    match value {
        toml::Value::String(s) if !s.trim().is_empty() => *slot = Some(s.clone()),
        _ => bad("a non-empty string"),
    }
}

fn set_int<T: TryFrom<i64>>(
    value: &toml::Value,
    min: i64,
    max: i64,
    slot: &mut T,
    bad: &mut impl FnMut(&str),
) {
    match value {
        toml::Value::Integer(n) if (min..=max).contains(n) => match T::try_from(*n) {
            Ok(v) => *slot = v,
            Err(_) => bad(&format!("an integer in {min}..={max}")),
        },
        _ => bad(&format!("an integer in {min}..={max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_are_upstreams() {
        let (cfg, w) = parse(None, None);
        assert!(!cfg.enabled && cfg.generate_memories && cfg.use_memories);
        assert_eq!(cfg.max_raw_memories_for_consolidation, 256);
        assert_eq!(cfg.max_rollouts_per_startup, 2);
        assert_eq!(cfg.min_rollout_idle_hours, 6);
        assert!(w.is_empty());
    }

    #[test]
    fn keys_are_read_and_bad_ones_named() {
        let f = table("memories = true");
        let m = table(
            "use_memories = false\nno_memories_if_mcp_or_web_search = true\n\
             max_rollouts_per_startup = 500\nrecall_timeout_ms = 20\nscope = \"all\"\nbogus = 1\n",
        );
        let (cfg, w) = parse(Some(&f), Some(&m));
        assert!(cfg.enabled && !cfg.use_memories && cfg.disable_on_external_context);
        assert_eq!(cfg.max_rollouts_per_startup, 2);
        assert_eq!(cfg.recall_timeout, Duration::from_millis(20));
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w
            .iter()
            .any(|w| w.contains("memories.max_rollouts_per_startup")));
        assert!(w.iter().any(|w| w.contains("memories.scope")));
        assert!(w.iter().any(|w| w.contains("memories.bogus")));
    }

    #[test]
    fn score_model_must_be_a_gguf() {
        let (cfg, w) = parse(None, Some(&table("score_model = \"models/s.gguf\"")));
        assert_eq!(cfg.score_model.as_deref(), Some("models/s.gguf"));
        assert!(w.is_empty(), "{w:?}");
        let (cfg, w) = parse(None, Some(&table("score_model = \"gpt-5.1-codex-mini\"")));
        assert_eq!(cfg.score_model, None);
        assert!(
            w.len() == 1 && w[0].contains("memories.score_model") && w[0].contains(".gguf"),
            "{w:?}"
        );
    }
}
