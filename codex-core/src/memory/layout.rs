//! Where memories live: upstream's `$CODEX_HOME/memories/` layout (shared
//! with upstream 0.169, so a user moving between the two keeps them) and our
//! recall index beside it.

use std::path::{Path, PathBuf};

/// The paths of the memories of one `$CODEX_HOME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLayout {
    codex_home: PathBuf,
}

impl MemoryLayout {
    pub fn new(codex_home: impl Into<PathBuf>) -> Self {
        Self {
            codex_home: codex_home.into(),
        }
    }

    pub fn codex_home(&self) -> &Path {
        &self.codex_home
    }

    /// `$CODEX_HOME/memories`: the files are the source of truth.
    pub fn root(&self) -> PathBuf {
        self.codex_home.join("memories")
    }

    /// Inlined into the "## Memory" developer section.
    pub fn memory_summary(&self) -> PathBuf {
        self.root().join("memory_summary.md")
    }

    /// The consolidated handbook (phase 2's output).
    pub fn memory_md(&self) -> PathBuf {
        self.root().join("MEMORY.md")
    }

    /// Phase 2's input: the selected stage-1 raw memories.
    pub fn raw_memories(&self) -> PathBuf {
        self.root().join("raw_memories.md")
    }

    /// `rollout_summaries/<slug>.md`, one per extracted thread.
    pub fn rollout_summaries(&self) -> PathBuf {
        self.root().join("rollout_summaries")
    }

    pub fn skills(&self) -> PathBuf {
        self.root().join("skills")
    }

    pub fn phase2_workspace_diff(&self) -> PathBuf {
        self.root().join("phase2_workspace_diff.md")
    }

    /// `extensions/ad_hoc/notes/<timestamp>-<slug>.md`: notes the user asked
    /// for (and what `remember` writes).
    pub fn ad_hoc_notes(&self) -> PathBuf {
        self.root().join("extensions").join("ad_hoc").join("notes")
    }

    /// Upstream's stage-1 database (`stage1_outputs`, `jobs`).
    pub fn stage1_db(&self) -> PathBuf {
        self.codex_home
            .join(super::pipeline::stage1::MEMORIES_DB_FILENAME)
    }

    /// Our recall index (FTS5 + vectors), rebuilt from the files when lost.
    /// Outside `memories/`, which phase 2's sub-agent may write.
    pub fn index_db(&self) -> PathBuf {
        self.codex_home.join("memory_index_1.sqlite")
    }
}
