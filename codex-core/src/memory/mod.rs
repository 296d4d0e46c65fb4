//! The memory subsystem. The files under `$CODEX_HOME/memories/` are the
//! source of truth ([`files`]); the store is their index: SQLite with FTS5
//! (BM25 recall) and embeddings (vector recall, [`embed`]), kept in step by
//! [`index::MemoryIndex`] and served by [`service`] (in-process, or in the
//! `codex-memory` process). [`recall`] is what a turn injects.
//!
//! The store and index are synchronous and blocking on purpose: the memory
//! service runs them on a dedicated
//! thread so SQLite never stalls a turn. The store is built to keep working
//! when its file misbehaves: a database held by another connection never
//! fails [`MemoryStore::open`] (operations wait up to the busy timeout and
//! then report [`MemoryError::Busy`]), and a corrupt database is set aside
//! with a [`MemoryWarning`] and replaced by an empty one that the caller
//! refills with [`MemoryStore::rebuild_from`] from the memory files.

pub mod citation;
pub mod config;
pub mod embed;
mod error;
pub mod files;
pub mod generate;
pub mod index;
mod layout;
mod local_embed;
pub mod local_generate;
pub mod mode;
pub mod pipeline;
pub mod prompt;
mod query;
pub mod recall;
pub mod reset;
mod schema;
pub mod scoring;
pub mod service;
mod store;

#[cfg(test)]
mod service_tests;
#[cfg(test)]
mod tests;

pub use citation::{strip_citations, CitationStreamParser, MemoryCitation, MemoryCitationEntry};
pub use config::MemoriesConfig;
pub use embed::{Embedder, HashEmbedder, VectorIndex};
pub use error::{MemoryError, MemoryWarning};
pub use generate::{GeneratePurpose, Generator, LocalGenerate, LocalGenerated};
pub use index::{IndexOptions, MemoryIndex, SyncReport};
pub use layout::MemoryLayout;
pub use local_embed::LaneEmbedder;
pub use local_generate::LaneGenerator;
pub use query::fts_query;
pub use schema::SCHEMA_VERSION;
pub use service::{
    LocalMemory, LocalMemoryOptions, MemoryEntry, MemoryRecall, MemoryRequest, MemoryResponse,
    MemoryServiceError, MemoryStatus,
};
pub use store::{
    FileStamp, Memory, MemoryId, MemoryStore, NewMemory, RecallHit, SourceFile,
    DEFAULT_BUSY_TIMEOUT,
};
