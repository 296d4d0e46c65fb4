//! `memory/reset`: forget every memory of a `$CODEX_HOME` — the files under
//! `memories/` and upstream's stage-1 rows (`memories_1.sqlite`
//! `stage1_outputs`, what upstream's own `memory_reset` test checks).
//!
//! TODO(merge): the stage-1 database belongs to the pipeline module and our
//! recall index to the memory service; once they land, call their reset
//! (through codex-memory under codexd) instead of the direct `DELETE` here.

use std::path::Path;

use super::MemoryLayout;

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("could not remove {path}: {source}")]
    Files {
        path: String,
        source: std::io::Error,
    },
    #[error("could not clear stage-1 memories in {path}: {source}")]
    Stage1 {
        path: String,
        source: rusqlite::Error,
    },
}

/// Removes everything under `memories/` (the directory itself stays) and the
/// `stage1_outputs` rows. Missing files and tables are not errors.
pub fn reset_memories(layout: &MemoryLayout) -> Result<(), ResetError> {
    clear_dir(&layout.root())?;
    clear_stage1(&layout.stage1_db())
}

fn clear_dir(root: &Path) -> Result<(), ResetError> {
    let err = |path: &Path, source| ResetError::Files {
        path: path.display().to_string(),
        source,
    };
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(root, e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| err(root, e))?.path();
        // `symlink_metadata`: a link is removed, never followed.
        let is_dir = std::fs::symlink_metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        let removed = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(&path, e)),
            _ => {}
        }
    }
    Ok(())
}

fn clear_stage1(db: &Path) -> Result<(), ResetError> {
    if !db.exists() {
        return Ok(());
    }
    let err = |source| ResetError::Stage1 {
        path: db.display().to_string(),
        source,
    };
    let conn = rusqlite::Connection::open(db).map_err(err)?;
    conn.busy_timeout(super::DEFAULT_BUSY_TIMEOUT)
        .map_err(err)?;
    let has_table: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'stage1_outputs'",
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    if has_table {
        conn.execute("DELETE FROM stage1_outputs", [])
            .map_err(err)?;
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
        let conn = rusqlite::Connection::open(layout.stage1_db()).unwrap();
        conn.execute_batch(
            "CREATE TABLE stage1_outputs(thread_id TEXT PRIMARY KEY, raw_memory TEXT);
             INSERT INTO stage1_outputs VALUES ('t', 'r');",
        )
        .unwrap();
        drop(conn);
        reset_memories(&layout).unwrap();
        assert!(layout.root().is_dir());
        assert_eq!(std::fs::read_dir(layout.root()).unwrap().count(), 0);
        let conn = rusqlite::Connection::open(layout.stage1_db()).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM stage1_outputs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        // Nothing there: still fine.
        let empty = tempfile::tempdir().unwrap();
        reset_memories(&MemoryLayout::new(empty.path())).unwrap();
    }
}
