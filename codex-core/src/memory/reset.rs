//! `memory/reset`: forget every memory of a `$CODEX_HOME` — the files under
//! `memories/` and upstream's stage-1 state (`memories_1.sqlite`
//! `stage1_outputs` and jobs, what upstream's own `memory_reset` test
//! checks). Thread memory modes are kept, as upstream keeps them.

use super::pipeline::{clear_memory_root, PipelineError, Stage1Db};
use super::MemoryLayout;

/// Empties `memories/` (the directory itself stays; a symlinked root is
/// refused) and the stage-1 database when there is one. Missing files are
/// not errors.
pub fn reset_memories(layout: &MemoryLayout) -> Result<(), PipelineError> {
    clear_memory_root(&layout.root())?;
    if layout.stage1_db().exists() {
        Stage1Db::open_in(layout.codex_home())?.reset()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_clears_files_and_stage1_rows() {
        let dir = tempfile::tempdir().unwrap();
        let layout = MemoryLayout::new(dir.path());
        std::fs::create_dir_all(layout.rollout_summaries()).unwrap();
        std::fs::write(layout.memory_md(), "m").unwrap();
        std::fs::write(layout.rollout_summaries().join("old.md"), "s").unwrap();
        let mut db = Stage1Db::open_in(dir.path()).unwrap();
        let now = 1_700_000_000;
        let claim = db
            .try_claim_stage1_job("t", "w", now, 3600, 8, now)
            .unwrap();
        let token = match claim {
            crate::memory::pipeline::Stage1Claim::Claimed { ownership_token } => ownership_token,
            other => panic!("not claimed: {other:?}"),
        };
        assert!(db
            .mark_stage1_succeeded("t", &token, now, "raw", "summary", Some("slug"), now)
            .unwrap());
        assert_eq!(db.all_outputs().unwrap().len(), 1);
        drop(db);
        reset_memories(&layout).unwrap();
        assert!(layout.root().is_dir());
        assert_eq!(std::fs::read_dir(layout.root()).unwrap().count(), 0);
        let db = Stage1Db::open_in(dir.path()).unwrap();
        assert!(db.all_outputs().unwrap().is_empty());
        // Nothing there: still fine.
        let empty = tempfile::tempdir().unwrap();
        reset_memories(&MemoryLayout::new(empty.path())).unwrap();
    }
}
