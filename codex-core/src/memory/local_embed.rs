//! The local lane as the memory index's [`Embedder`]: one embedding model
//! (e.g. all-MiniLM-L6-v2 as GGUF) on a [`codex_local::LocalLane`] — one
//! instance per codex-memory, one inference thread, a bounded queue.

use std::path::Path;
use std::time::Duration;

use codex_local::{LaneOptions, LoadOptions, LocalLane};

use super::{Embedder, MemoryError};

/// How long one embedding request (a recall's query, a batch of new
/// memories) may take, queue wait included.
const EMBED_DEADLINE: Duration = Duration::from_secs(10);
/// Texts per request when indexing many memories.
const BATCH: usize = 16;

pub struct LaneEmbedder {
    lane: LocalLane,
}

impl LaneEmbedder {
    /// Loads `model` for embeddings (errors name the file and the reason,
    /// including a build without the `local-llm` feature).
    pub fn load(model: &Path) -> Result<Self, MemoryError> {
        let load = LoadOptions {
            embeddings: true,
            ..LoadOptions::default()
        };
        let lane = LocalLane::start(model, load, LaneOptions::default())
            .map_err(|e| MemoryError::Embedding(e.to_string()))?;
        Ok(Self { lane })
    }

    pub fn dims(&self) -> usize {
        self.lane.embedding_dim()
    }
}

impl Embedder for LaneEmbedder {
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, MemoryError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            let owned = chunk.iter().map(|t| t.to_string()).collect();
            let vectors = self
                .lane
                .embed(owned, EMBED_DEADLINE)
                .and_then(|pending| pending.wait())
                .map_err(|e| MemoryError::Embedding(e.to_string()))?;
            out.extend(vectors);
        }
        Ok(out)
    }
}
