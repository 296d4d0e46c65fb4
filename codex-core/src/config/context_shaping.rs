//! `[context_shaping]` (ours, not upstream's): a local small model condenses
//! the middle of an oversized tool output before it enters the history the
//! frontier model is sent. Off by default; every problem is a warning naming
//! the key (a bad value keeps the default).

use std::path::{Path, PathBuf};
use std::time::Duration;

// The defaults fit SmolLM2-135M on one inference thread (LOCAL-MODEL.md:
// prompt ~250 tok/s, generation ~140 tok/s): ~600 real prompt tokens (the
// byte estimate undercounts digits and symbols) and 128 generated take
// about 3.5 s on an idle machine.

/// Default longest summary the local model may write.
pub const DEFAULT_MAX_SUMMARY_TOKENS: u64 = 128;
/// Default most of the elided middle the local model is shown (estimated
/// tokens; its context holds 4096 at most by default).
pub const DEFAULT_MAX_INPUT_TOKENS: u64 = 384;
/// Default deadline of one condensation; past it the output is truncated.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5000);

/// What context shaping does for a thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextShapingConfig {
    /// `enabled` (default false).
    pub enabled: bool,
    /// `model`: the GGUF the local lane condenses with (relative paths are
    /// taken from `$CODEX_HOME`). None: the pass is inert.
    pub model: Option<PathBuf>,
    /// `min_tokens`: only outputs larger than this are shaped. None: the
    /// output's truncation budget (only outputs that would be truncated).
    pub min_tokens: Option<u64>,
    /// `head_tokens` / `tail_tokens` kept verbatim. None: a quarter of the
    /// output's budget each.
    pub head_tokens: Option<u64>,
    pub tail_tokens: Option<u64>,
    /// `max_summary_tokens`: the longest summary asked for.
    pub max_summary_tokens: u64,
    /// `max_input_tokens`: the most of the middle the model is shown.
    pub max_input_tokens: u64,
    /// `timeout_ms`: a condensation that takes longer is abandoned.
    pub timeout: Duration,
}

impl Default for ContextShapingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            model: None,
            min_tokens: None,
            head_tokens: None,
            tail_tokens: None,
            max_summary_tokens: DEFAULT_MAX_SUMMARY_TOKENS,
            max_input_tokens: DEFAULT_MAX_INPUT_TOKENS,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl ContextShapingConfig {
    /// Enabled with a model: tool outputs may be shaped.
    pub fn active(&self) -> bool {
        self.enabled && self.model.is_some()
    }
}

/// Reads `[context_shaping]`.
pub fn parse(
    table: Option<&toml::Table>,
    codex_home: &Path,
) -> (ContextShapingConfig, Vec<String>) {
    let mut cfg = ContextShapingConfig::default();
    let mut warnings = Vec::new();
    let Some(t) = table else {
        return (cfg, warnings);
    };
    for (key, value) in t {
        let mut bad = |what: &str| {
            warnings.push(format!("`context_shaping.{key}` must be {what} (ignored)"));
        };
        match key.as_str() {
            "enabled" => match value {
                toml::Value::Boolean(b) => cfg.enabled = *b,
                _ => bad("a boolean"),
            },
            "model" => match value {
                toml::Value::String(s) if !s.trim().is_empty() => {
                    let p = PathBuf::from(s);
                    cfg.model = Some(if p.is_relative() {
                        codex_home.join(p)
                    } else {
                        p
                    });
                }
                _ => bad("a non-empty path"),
            },
            "min_tokens" => cfg.min_tokens = int(value, 1, 1 << 30, &mut bad).or(cfg.min_tokens),
            "head_tokens" => cfg.head_tokens = int(value, 0, 1 << 30, &mut bad).or(cfg.head_tokens),
            "tail_tokens" => cfg.tail_tokens = int(value, 0, 1 << 30, &mut bad).or(cfg.tail_tokens),
            "max_summary_tokens" => {
                if let Some(n) = int(value, 8, 8192, &mut bad) {
                    cfg.max_summary_tokens = n;
                }
            }
            "max_input_tokens" => {
                if let Some(n) = int(value, 16, 65_536, &mut bad) {
                    cfg.max_input_tokens = n;
                }
            }
            "timeout_ms" => {
                if let Some(n) = int(value, 1, 600_000, &mut bad) {
                    cfg.timeout = Duration::from_millis(n);
                }
            }
            _ => warnings.push(format!("unknown key `context_shaping.{key}` (ignored)")),
        }
    }
    if cfg.enabled {
        match &cfg.model {
            None => warnings.push(
                "`context_shaping.enabled` is true but `context_shaping.model` is not set: \
                 oversized tool outputs are truncated as before"
                    .into(),
            ),
            Some(m) if !m.is_file() => warnings.push(format!(
                "`context_shaping.model` {} does not exist: oversized tool outputs are \
                 truncated as before",
                m.display()
            )),
            Some(_) => {}
        }
    }
    (cfg, warnings)
}

fn int(value: &toml::Value, min: i64, max: i64, bad: &mut impl FnMut(&str)) -> Option<u64> {
    match value {
        toml::Value::Integer(n) if (min..=max).contains(n) => u64::try_from(*n).ok(),
        _ => {
            bad(&format!("an integer in {min}..={max}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str, home: &Path) -> (ContextShapingConfig, Vec<String>) {
        let t: toml::Table = s.parse().unwrap();
        parse(Some(&t), home)
    }

    #[test]
    fn off_by_default_and_silent() {
        let (cfg, w) = parse(None, Path::new("/h"));
        assert_eq!(cfg, ContextShapingConfig::default());
        assert!(!cfg.active());
        assert!(w.is_empty());
    }

    #[test]
    fn keys_are_read_and_bad_ones_named() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("shape.gguf"), b"x").unwrap();
        let (cfg, w) = parse_str(
            "enabled = true\nmodel = \"shape.gguf\"\nmin_tokens = 500\nhead_tokens = 100\n\
             tail_tokens = 50\nmax_summary_tokens = 2\ntimeout_ms = 300\nmax_input_tokens = 64\n\
             bogus = 1\n",
            home.path(),
        );
        assert!(cfg.active());
        assert_eq!(cfg.model, Some(home.path().join("shape.gguf")));
        assert_eq!(cfg.min_tokens, Some(500));
        assert_eq!((cfg.head_tokens, cfg.tail_tokens), (Some(100), Some(50)));
        assert_eq!(cfg.max_summary_tokens, DEFAULT_MAX_SUMMARY_TOKENS);
        assert_eq!(cfg.max_input_tokens, 64);
        assert_eq!(cfg.timeout, Duration::from_millis(300));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w
            .iter()
            .any(|w| w.contains("`context_shaping.max_summary_tokens`")));
        assert!(w.iter().any(|w| w.contains("`context_shaping.bogus`")));
    }

    #[test]
    fn config_load_reads_the_table_and_overrides() {
        use crate::config::{CliOverride, Config, ConfigOverrides, LoadOptions};
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("shape.gguf"), b"x").unwrap();
        std::fs::write(
            home.path().join("config.toml"),
            "[context_shaping]\nenabled = true\nmodel = \"shape.gguf\"\nhead = 1\n",
        )
        .unwrap();
        let cfg = Config::load(LoadOptions {
            codex_home: Some(home.path().to_path_buf()),
            cli_overrides: vec![CliOverride::parse("context_shaping.timeout_ms=250").unwrap()],
            overrides: ConfigOverrides {
                cwd: Some(home.path().to_path_buf()),
                ..Default::default()
            },
        })
        .unwrap();
        assert!(cfg.context_shaping.active());
        assert_eq!(
            cfg.context_shaping.model,
            Some(home.path().join("shape.gguf"))
        );
        assert_eq!(cfg.context_shaping.timeout, Duration::from_millis(250));
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        assert!(
            cfg.warnings[0].contains("`context_shaping.head`"),
            "{:?}",
            cfg.warnings
        );
    }

    #[test]
    fn enabled_without_a_usable_model_says_so() {
        let (cfg, w) = parse_str("enabled = true\n", Path::new("/h"));
        assert!(!cfg.active());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("`context_shaping.model` is not set"), "{w:?}");
        let (cfg, w) = parse_str(
            "enabled = true\nmodel = \"/nope/x.gguf\"\n",
            Path::new("/h"),
        );
        assert!(cfg.active());
        assert!(w[0].contains("/nope/x.gguf does not exist"), "{w:?}");
        let (_, w) = parse_str("enabled = \"yes\"\n", Path::new("/h"));
        assert!(w[0].contains("`context_shaping.enabled` must be a boolean"));
    }
}
