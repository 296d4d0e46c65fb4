//! What can go wrong in the local lane. Every error about a model file names
//! the file.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("local models are not available: codex was built without the `local-llm` feature; rebuild with `--features local-llm`")]
    FeatureDisabled,
    #[error("model file {path} does not exist (fetch the models with `scripts/fetch-models`)")]
    MissingFile { path: PathBuf },
    #[error("model file {path}: {reason}")]
    NotGguf { path: PathBuf, reason: String },
    #[error("cannot load model {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("{path} cannot produce embeddings: {reason}")]
    NoEmbeddings { path: PathBuf, reason: String },
    #[error("the prompt is {prompt_tokens} tokens; the context holds {n_ctx}")]
    ContextOverflow { prompt_tokens: usize, n_ctx: u32 },
    #[error("the generation grammar is not usable: {0}")]
    Grammar(String),
    #[error("local inference failed: {0}")]
    Inference(String),
    #[error("the local model's queue is full ({capacity} requests waiting); try again later")]
    Overloaded { capacity: usize },
    #[error("the local model did not finish within {0:?}")]
    DeadlineExceeded(Duration),
    #[error("the request was cancelled")]
    Cancelled,
    #[error("the local model's inference thread has stopped")]
    LaneStopped,
}
