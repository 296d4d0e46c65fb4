//! The local generation seam: short completions from the small model that
//! `codex-memory` hosts (one instance per daemon, one inference thread),
//! used for phase-1 extraction (`[memories] extract_model` naming a GGUF)
//! and for context shaping. [`Generator`] is what callers hold: the
//! worker's client over the link, or an in-process lane.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::service::MemoryServiceError;

/// What a generation is for (the host may keep one model per purpose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeneratePurpose {
    /// Phase 1: one rollout's memory, as stage-one JSON.
    Extract,
    /// Condensing the middle of an oversized tool output.
    Shape,
    /// Rating one memory's usefulness with a digit (`[memories]
    /// score_model`; see [`super::scoring`]).
    Score,
}

/// One greedy completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalGenerate {
    pub purpose: GeneratePurpose,
    /// The system message (may be empty).
    pub system: String,
    /// The one user message.
    pub user: String,
    pub max_tokens: u32,
    /// A GBNF grammar the output must follow (e.g. the stage-one JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar: Option<String>,
}

/// A finished completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalGenerated {
    pub text: String,
    pub output_tokens: usize,
}

pub type GenerateFuture =
    Pin<Box<dyn Future<Output = Result<LocalGenerated, MemoryServiceError>> + Send>>;

/// Runs a [`LocalGenerate`] on the local lane, giving up by `deadline`
/// (the caller bounds its wait with it too). No model configured for the
/// purpose: [`MemoryServiceError::NoModel`].
pub trait Generator: Send + Sync {
    fn generate(&self, request: LocalGenerate, deadline: Duration) -> GenerateFuture;
}
