//! The memory store: memories kept in SQLite with an FTS5 index, recalled by
//! BM25 rank.
//!
//! Everything here is synchronous and blocking on purpose: the caller (the
//! memory service, later the `codex-memory` process) runs it on a dedicated
//! thread so SQLite never stalls a turn. The store is built to keep working
//! when its file misbehaves: a database held by another connection never
//! fails [`MemoryStore::open`] (operations wait up to the busy timeout and
//! then report [`MemoryError::Busy`]), and a corrupt database is set aside
//! with a [`MemoryWarning`] and replaced by an empty one that the caller
//! refills with [`MemoryStore::rebuild_from`] from the memory files.

pub mod citation;
pub mod config;
mod error;
mod layout;
pub mod mode;
pub mod pipeline;
pub mod prompt;
mod query;
pub mod reset;
mod schema;
mod store;

#[cfg(test)]
mod tests;

pub use citation::{strip_citations, CitationStreamParser, MemoryCitation, MemoryCitationEntry};
pub use config::MemoriesConfig;
pub use error::{MemoryError, MemoryWarning};
pub use layout::MemoryLayout;
pub use query::fts_query;
pub use schema::SCHEMA_VERSION;
pub use store::{Memory, MemoryId, MemoryStore, NewMemory, RecallHit, DEFAULT_BUSY_TIMEOUT};
