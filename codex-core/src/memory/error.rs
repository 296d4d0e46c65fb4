//! What the memory store reports: errors a caller must handle and warnings
//! it should surface but that did not stop the store.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A failed memory-store operation.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// Another connection holds a lock we needed for longer than the busy
    /// timeout. The store stays usable: retry once the holder lets go.
    #[error(
        "memory database {} is locked by another connection (gave up after {} ms)",
        path.display(),
        waited.as_millis()
    )]
    Busy { path: PathBuf, waited: Duration },
    /// The file was written by a newer build; we refuse to touch it rather
    /// than guess at its schema.
    #[error(
        "memory database {} has schema version {found}, newer than {supported} (the newest this build knows); upgrade codex or move the file away",
        path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// Corruption found during an operation: the file was set aside and an
    /// empty store took its place (see [`MemoryWarning::SetAside`]).
    #[error(
        "memory database {} was corrupt and was set aside as {}; the store is empty until rebuilt",
        path.display(),
        moved_to.display()
    )]
    Corrupt { path: PathBuf, moved_to: PathBuf },
    /// A memory needs some text to be recalled by.
    #[error("a memory's text is empty")]
    EmptyText,
    /// The embedding model failed (not loaded, overloaded, timed out).
    #[error("embedding model: {0}")]
    Embedding(String),
    #[error("memory database {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("memory database {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// Something went wrong but the store carried on; callers log it and may act
/// on it (a set-aside store wants [`super::MemoryStore::rebuild_from`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryWarning {
    /// The database was unreadable, so it (and its `-wal`/`-shm` files) was
    /// renamed and a fresh, empty database created in its place.
    SetAside {
        path: PathBuf,
        moved_to: PathBuf,
        reason: String,
    },
}

impl fmt::Display for MemoryWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryWarning::SetAside {
                path,
                moved_to,
                reason,
            } => write!(
                f,
                "memory database {} is corrupt ({reason}); set aside as {} and started empty",
                path.display(),
                moved_to.display()
            ),
        }
    }
}
