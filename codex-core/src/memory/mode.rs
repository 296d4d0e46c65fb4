//! A thread's memory mode (`enabled` | `disabled` | `polluted`), kept across
//! unload and resume.
//!
//! Upstream keeps it in `state_5.sqlite` (`threads.memory_mode`); we have no
//! state database, so each thread has a one-word sidecar file,
//! `$CODEX_HOME/memory_modes/<thread-id>`, written atomically (temp file +
//! rename) by whoever changes it — codexd for `thread/memoryMode/set`, the
//! worker when a thread starts or is polluted — and read by the worker when
//! it builds the "## Memory" section or recalls. A missing or unreadable
//! file means the default for new threads (`generate_memories`), the
//! rollout format stays upstream's, and the directory is outside
//! `memories/`, which `memory/reset` clears and phase 2 rewrites.

use std::path::{Path, PathBuf};

use super::MemoriesConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadMemoryMode {
    Enabled,
    Disabled,
    /// External context (MCP, web search) entered the thread while
    /// `disable_on_external_context` was on: no memories are used or made.
    Polluted,
}

impl ThreadMemoryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ThreadMemoryMode::Enabled => "enabled",
            ThreadMemoryMode::Disabled => "disabled",
            ThreadMemoryMode::Polluted => "polluted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "enabled" => Some(ThreadMemoryMode::Enabled),
            "disabled" => Some(ThreadMemoryMode::Disabled),
            "polluted" => Some(ThreadMemoryMode::Polluted),
            _ => None,
        }
    }

    /// The mode a new thread gets.
    pub fn initial(cfg: &MemoriesConfig) -> Self {
        if cfg.generate_memories {
            ThreadMemoryMode::Enabled
        } else {
            ThreadMemoryMode::Disabled
        }
    }
}

/// `$CODEX_HOME/memory_modes/<thread-id>`. A thread id is a UUID; anything
/// else (a path separator, `..`) gets no file.
pub fn mode_path(codex_home: &Path, thread_id: &str) -> Option<PathBuf> {
    let ok = !thread_id.is_empty()
        && thread_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ok.then(|| codex_home.join("memory_modes").join(thread_id))
}

/// The recorded mode, if any.
pub fn stored(codex_home: &Path, thread_id: &str) -> Option<ThreadMemoryMode> {
    let path = mode_path(codex_home, thread_id)?;
    let text = std::fs::read_to_string(path).ok()?;
    ThreadMemoryMode::parse(&text)
}

/// The thread's mode: recorded, else the default for new threads.
pub fn load(codex_home: &Path, thread_id: &str, cfg: &MemoriesConfig) -> ThreadMemoryMode {
    stored(codex_home, thread_id).unwrap_or_else(|| ThreadMemoryMode::initial(cfg))
}

/// Records a thread's mode (atomically).
pub fn store(codex_home: &Path, thread_id: &str, mode: ThreadMemoryMode) -> std::io::Result<()> {
    let path = mode_path(codex_home, thread_id).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid thread id")
    })?;
    let dir = path.parent().unwrap_or(codex_home);
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{thread_id}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, mode.as_str())?;
    std::fs::rename(&tmp, &path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Records the initial mode of a thread that has none yet.
pub fn ensure_initial(
    codex_home: &Path,
    thread_id: &str,
    cfg: &MemoriesConfig,
) -> std::io::Result<ThreadMemoryMode> {
    match stored(codex_home, thread_id) {
        Some(m) => Ok(m),
        None => {
            let m = ThreadMemoryMode::initial(cfg);
            store(codex_home, thread_id, m)?;
            Ok(m)
        }
    }
}

/// External context entered the thread: with `disable_on_external_context`
/// an `enabled` thread becomes `polluted` (upstream's rule). Returns whether
/// the mode changed.
pub fn note_external_context(codex_home: &Path, thread_id: &str, cfg: &MemoriesConfig) -> bool {
    if !cfg.enabled || !cfg.disable_on_external_context {
        return false;
    }
    if load(codex_home, thread_id, cfg) != ThreadMemoryMode::Enabled {
        return false;
    }
    match store(codex_home, thread_id, ThreadMemoryMode::Polluted) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("could not mark thread {thread_id} polluted: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_persist_and_default_from_config() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let mut cfg = MemoriesConfig {
            enabled: true,
            ..Default::default()
        };
        assert_eq!(load(home, "t1", &cfg), ThreadMemoryMode::Enabled);
        cfg.generate_memories = false;
        assert_eq!(load(home, "t1", &cfg), ThreadMemoryMode::Disabled);
        assert_eq!(
            ensure_initial(home, "t1", &cfg).unwrap(),
            ThreadMemoryMode::Disabled
        );
        cfg.generate_memories = true;
        // Recorded at creation: a later config change does not move it.
        assert_eq!(load(home, "t1", &cfg), ThreadMemoryMode::Disabled);
        store(home, "t1", ThreadMemoryMode::Enabled).unwrap();
        assert_eq!(stored(home, "t1"), Some(ThreadMemoryMode::Enabled));
        assert!(store(home, "../x", ThreadMemoryMode::Enabled).is_err());
    }

    #[test]
    fn external_context_pollutes_only_when_configured() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let mut cfg = MemoriesConfig {
            enabled: true,
            ..Default::default()
        };
        assert!(!note_external_context(home, "t", &cfg));
        cfg.disable_on_external_context = true;
        assert!(note_external_context(home, "t", &cfg));
        assert_eq!(stored(home, "t"), Some(ThreadMemoryMode::Polluted));
        assert!(!note_external_context(home, "t", &cfg));
    }
}
