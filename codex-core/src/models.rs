//! Model metadata: context windows and reasoning support of the models we know,
//! with a fallback (and a warning) for the ones we do not.

/// What the runtime knows about a model slug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    pub slug: &'static str,
    pub display_name: &'static str,
    pub description: &'static str,
    /// Raw context window in tokens.
    pub context_window: u64,
    pub default_reasoning_effort: &'static str,
    pub reasoning_efforts: &'static [&'static str],
    /// Shown in pickers and `model/list`.
    pub visible: bool,
    /// Lower sorts first; the first visible model is the default.
    pub priority: u32,
}

/// Context window assumed for unknown models.
pub const FALLBACK_CONTEXT_WINDOW: u64 = 272_000;
/// Share of the raw window the runtime plans to use (headroom for the answer).
pub const EFFECTIVE_WINDOW_PERCENT: u64 = 95;

/// Built-in catalog of the OpenAI provider.
pub static CATALOG: &[ModelInfo] = &[
    ModelInfo { slug: "gpt-6-astra", display_name: "GPT-6-Astra", description: "Frontier intelligence for the most demanding work.", context_window: 272000, default_reasoning_effort: "low", reasoning_efforts: &["low", "medium", "high", "xhigh", "max", "ultra"], visible: true, priority: 2 },
    ModelInfo { slug: "gpt-6.1-sol", display_name: "GPT-6.1-Sol", description: "Latest workhorse model for coding and everyday work.", context_window: 272000, default_reasoning_effort: "low", reasoning_efforts: &["low", "medium", "high", "xhigh", "max", "ultra"], visible: true, priority: 1 },
    ModelInfo { slug: "gpt-6.1-terra", display_name: "GPT-6.1 Terra", description: "GPT-6.1 Terra Codex model.", context_window: 500000, default_reasoning_effort: "low", reasoning_efforts: &["low", "medium", "high", "xhigh", "max", "ultra"], visible: true, priority: 7 },
    ModelInfo { slug: "gpt-6-sol", display_name: "GPT-6-Sol", description: "Previous generation workhorse model.", context_window: 272000, default_reasoning_effort: "medium", reasoning_efforts: &["low", "medium", "high", "xhigh", "max", "ultra"], visible: true, priority: 3 },
    ModelInfo { slug: "gpt-6-luna", display_name: "GPT-6-Luna", description: "Fast and affordable model for easier tasks.", context_window: 272000, default_reasoning_effort: "medium", reasoning_efforts: &["low", "medium", "high", "xhigh", "max"], visible: true, priority: 4 },
    ModelInfo { slug: "gpt-5.6-sol", display_name: "GPT-5.6-Sol", description: "Older generation workhorse model.", context_window: 272000, default_reasoning_effort: "low", reasoning_efforts: &["low", "medium", "high", "xhigh", "max", "ultra"], visible: true, priority: 5 },
    ModelInfo { slug: "gpt-5.6-terra", display_name: "GPT-5.6-Terra", description: "Older balanced model for straightforward work.", context_window: 272000, default_reasoning_effort: "medium", reasoning_efforts: &["low", "medium", "high", "xhigh", "max", "ultra"], visible: true, priority: 8 },
    ModelInfo { slug: "gpt-5.6-luna", display_name: "GPT-5.6-Luna", description: "Older fast and efficient model.", context_window: 272000, default_reasoning_effort: "medium", reasoning_efforts: &["low", "medium", "high", "xhigh", "max"], visible: true, priority: 9 },
    ModelInfo { slug: "gpt-daybreak-blue-latest", display_name: "Daybreak Blue", description: "Latest frontier agentic coding model for broad defensive cybersecurity work.", context_window: 272000, default_reasoning_effort: "low", reasoning_efforts: &["low", "medium", "high", "xhigh", "max", "ultra"], visible: false, priority: 11 },
    ModelInfo { slug: "gpt-daybreak-red-latest", display_name: "Daybreak Red", description: "Cyber-permissive variant of our latest frontier agentic coding model for advanced, authorized cybersecurity research.", context_window: 372000, default_reasoning_effort: "medium", reasoning_efforts: &["low", "medium", "high", "xhigh", "max", "ultra"], visible: false, priority: 12 },
    ModelInfo { slug: "gpt-5.5", display_name: "GPT-5.5", description: "Legacy coding model.", context_window: 272000, default_reasoning_effort: "medium", reasoning_efforts: &["low", "medium", "high", "xhigh"], visible: true, priority: 13 },
    ModelInfo { slug: "codex-auto-review", display_name: "Codex Auto Review", description: "Automatic approval review model for Codex.", context_window: 272000, default_reasoning_effort: "medium", reasoning_efforts: &["low", "medium", "high", "xhigh", "max"], visible: false, priority: 43 },
];

/// Looks up a model by slug (exact match, then the longest catalog slug that
/// prefixes it, so dated snapshots resolve to their family).
pub fn find_model(slug: &str) -> Option<&'static ModelInfo> {
    CATALOG.iter().find(|m| m.slug == slug).or_else(|| {
        CATALOG
            .iter()
            .filter(|m| slug.starts_with(m.slug))
            .max_by_key(|m| m.slug.len())
    })
}

/// The effective context window the turn loop budgets with.
pub fn effective_context_window(slug: &str, configured: Option<u64>) -> u64 {
    let raw = configured
        .or_else(|| find_model(slug).map(|m| m.context_window))
        .unwrap_or(FALLBACK_CONTEXT_WINDOW);
    raw * EFFECTIVE_WINDOW_PERCENT / 100
}

/// The warning shown when a model has no metadata (upstream's wording).
pub fn unknown_model_warning(slug: &str) -> String {
    format!(
        "Model metadata for `{slug}` not found. Defaulting to fallback metadata; this can degrade performance and cause issues."
    )
}

/// Visible models, default first.
pub fn visible_models() -> Vec<&'static ModelInfo> {
    let mut v: Vec<_> = CATALOG.iter().filter(|m| m.visible).collect();
    v.sort_by_key(|m| m.priority);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert!(find_model("gpt-5.5").is_some());
        assert_eq!(
            find_model("gpt-5.5-2026-01-01").map(|m| m.slug),
            Some("gpt-5.5")
        );
        assert!(find_model("mock-model").is_none());
        assert_eq!(effective_context_window("mock-model", None), 258_400);
        assert_eq!(visible_models()[0].slug, crate::config::DEFAULT_MODEL);
    }
}
