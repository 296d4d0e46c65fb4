//! What the memories pipeline reports when a step cannot go on.

use std::path::PathBuf;

/// A failed pipeline step.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("memories database {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// The database was migrated by a build whose migration `version`
    /// differs from ours in content; we do not write to a schema we do not
    /// know.
    #[error(
        "memories database {}: migration {version} was applied with a different checksum; it was written by an incompatible build",
        path.display()
    )]
    MigrationMismatch { path: PathBuf, version: i64 },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The extraction model's answer is not the expected JSON object.
    #[error("invalid stage-1 output: {0}")]
    InvalidOutput(String),
    #[error("rollout {}: {message}", path.display())]
    Rollout { path: PathBuf, message: String },
    /// The consolidation agent left `MEMORY.md` / `memory_summary.md`
    /// missing or malformed (upstream's `failed_invalid_artifacts`).
    #[error("invalid consolidation artifacts: {0}")]
    InvalidArtifacts(String),
    /// A pass is already running (use [`super::Pipeline::trigger`] to
    /// coalesce instead).
    #[error("a memories pipeline pass is already running")]
    Busy,
    /// A blocking step's thread went away (panicked or was cancelled).
    #[error("memories pipeline worker stopped: {0}")]
    Worker(String),
}

impl PipelineError {
    pub(crate) fn sqlite(path: &std::path::Path, source: rusqlite::Error) -> Self {
        Self::Sqlite {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
