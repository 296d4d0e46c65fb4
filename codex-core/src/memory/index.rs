//! [`MemoryIndex`]: the memory files and their index kept in step. Writes
//! go to the files first and are then indexed; the index is brought up to
//! date with the files on open and at most every `sync_interval` after
//! (each file's size and mtime against the stamp recorded when it was
//! indexed), and refilled from them when the database was set aside as
//! corrupt. Vector recall joins BM25 when an [`Embedder`] is given.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::embed::{Embedder, VectorIndex};
use super::error::MemoryError;
use super::files::{FoundFile, MemoryFiles};
use super::layout::MemoryLayout;
use super::scoring::boost;
use super::store::{Memory, MemoryId, MemoryStore, RecallHit, SourceFile};

/// How often operations look at the files for changes by default.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(5);
/// Warnings kept for status (the oldest dropped first).
const MAX_WARNINGS: usize = 16;
/// Reciprocal-rank fusion constant (the usual 60).
const RRF_K: f64 = 60.0;
/// Texts per embedder call while indexing.
const EMBED_BATCH: usize = 64;

/// How to open a [`MemoryIndex`].
#[derive(Debug, Clone)]
pub struct IndexOptions {
    pub busy_timeout: Duration,
    pub sync_interval: Duration,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            busy_timeout: super::store::DEFAULT_BUSY_TIMEOUT,
            sync_interval: DEFAULT_SYNC_INTERVAL,
        }
    }
}

/// What one look at the files changed in the index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Files (re)indexed.
    pub indexed: usize,
    /// Files whose rows were dropped because the file is gone.
    pub removed: usize,
    /// The whole index was refilled (it had been set aside as corrupt).
    pub rebuilt: bool,
}

/// The memory files and their recall index. Blocking: owned by the memory
/// service's thread.
pub struct MemoryIndex {
    store: MemoryStore,
    files: MemoryFiles,
    embedder: Option<Box<dyn Embedder>>,
    vectors: VectorIndex,
    opts: IndexOptions,
    last_sync: Option<Instant>,
    warnings: Vec<String>,
}

impl MemoryIndex {
    /// Opens the index of `layout` and brings it up to date with the files.
    /// A database locked by someone else still opens (the sync is retried
    /// by the next operation); only an unusable file fails.
    pub fn open(
        layout: MemoryLayout,
        opts: IndexOptions,
        embedder: Option<Box<dyn Embedder>>,
    ) -> Result<MemoryIndex, MemoryError> {
        let store = MemoryStore::open_with_timeout(layout.index_db(), opts.busy_timeout)?;
        let mut index = MemoryIndex {
            store,
            files: MemoryFiles::new(layout),
            embedder,
            vectors: VectorIndex::new(),
            opts,
            last_sync: None,
            warnings: Vec::new(),
        };
        index.collect_store_warnings();
        match index.sync() {
            Ok(_) => {}
            Err(MemoryError::Busy { .. }) => {
                tracing::warn!("memory index is locked by another process; it is brought up to date on first use");
            }
            Err(e) => index.warn(format!("cannot index the memory files: {e}")),
        }
        Ok(index)
    }

    pub fn files(&self) -> &MemoryFiles {
        &self.files
    }

    pub fn store_mut(&mut self) -> &mut MemoryStore {
        &mut self.store
    }

    pub fn has_embedder(&self) -> bool {
        self.embedder.is_some()
    }

    pub fn vector_count(&self) -> usize {
        self.vectors.len()
    }

    /// Problems seen since opening (a corrupt database set aside, files
    /// that could not be indexed), newest last.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Brings the index up to date with the files now.
    pub fn sync(&mut self) -> Result<SyncReport, MemoryError> {
        let result = self.sync_inner();
        if let Err(MemoryError::Corrupt { .. }) = &result {
            self.collect_store_warnings();
            return self.sync_inner();
        }
        result
    }

    fn sync_inner(&mut self) -> Result<SyncReport, MemoryError> {
        let mut report = SyncReport::default();
        if self.store.needs_rebuild() {
            self.store.rebuild_from(Vec::new())?;
            report.rebuilt = true;
        }
        let found = self.files.scan();
        let indexed = self.store.indexed_files()?;
        let changed: Vec<&FoundFile> = found
            .iter()
            .filter(|f| indexed.get(&f.rel) != Some(&f.stamp))
            .collect();
        let present: BTreeMap<&str, ()> = found.iter().map(|f| (f.rel.as_str(), ())).collect();
        let gone: Vec<String> = indexed
            .keys()
            .filter(|k| !present.contains_key(k.as_str()))
            .cloned()
            .collect();
        if !changed.is_empty() || !gone.is_empty() {
            let mut sources = Vec::with_capacity(changed.len());
            let mut vanished = gone.clone();
            for f in changed {
                match self.files.read_entries(&f.rel) {
                    Ok(Some(entries)) => sources.push(SourceFile {
                        path: f.rel.clone(),
                        stamp: f.stamp,
                        entries,
                    }),
                    Ok(None) => vanished.push(f.rel.clone()),
                    Err(e) => self.warn(format!("memory file {} not indexed: {e}", f.rel)),
                }
            }
            self.embed_sources(&mut sources);
            self.store.replace_sources(&sources, &vanished)?;
            report.indexed = sources.len();
            report.removed = vanished.len();
            self.reload_vectors()?;
            tracing::info!(
                indexed = report.indexed,
                removed = report.removed,
                rebuilt = report.rebuilt,
                "memory index brought up to date with the files"
            );
        } else if self.last_sync.is_none() || report.rebuilt {
            self.reload_vectors()?;
        }
        self.last_sync = Some(Instant::now());
        Ok(report)
    }

    /// Syncs when the last look at the files is older than the interval
    /// (or never succeeded).
    fn maybe_sync(&mut self) -> Result<(), MemoryError> {
        let due = self
            .last_sync
            .is_none_or(|t| t.elapsed() >= self.opts.sync_interval)
            || self.store.needs_rebuild();
        if due {
            self.sync()?;
        }
        Ok(())
    }

    /// Runs `op`, first bringing the index up to date; corruption found
    /// on the way refills the index from the files and runs `op` again.
    fn run<T>(
        &mut self,
        mut op: impl FnMut(&mut Self) -> Result<T, MemoryError>,
    ) -> Result<T, MemoryError> {
        self.maybe_sync()?;
        match op(self) {
            Err(MemoryError::Corrupt { .. }) => {
                self.collect_store_warnings();
                self.sync()?;
                op(self)
            }
            other => other,
        }
    }

    /// Writes an ad-hoc note and indexes it.
    pub fn remember(
        &mut self,
        text: &str,
        source_thread_id: Option<&str>,
    ) -> Result<MemoryId, MemoryError> {
        if text.trim().is_empty() {
            return Err(MemoryError::EmptyText);
        }
        self.maybe_sync()?;
        let rel = self.files.write_note(text, source_thread_id)?;
        let id = self.run(|me| me.index_file(&rel))?;
        id.ok_or(MemoryError::EmptyText)
    }

    /// Indexes one file now; the id of its first row.
    fn index_file(&mut self, rel: &str) -> Result<Option<MemoryId>, MemoryError> {
        let found = self.files.scan().into_iter().find(|f| f.rel == rel);
        let entries = match &found {
            Some(_) => self.files.read_entries(rel)?.unwrap_or_default(),
            None => Vec::new(),
        };
        let Some(found) = found else {
            self.store.replace_sources(&[], &[rel.to_string()])?;
            return Ok(None);
        };
        let mut sources = vec![SourceFile {
            path: rel.to_string(),
            stamp: found.stamp,
            entries,
        }];
        self.embed_sources(&mut sources);
        let ids = self.store.replace_sources(&sources, &[])?;
        let first = ids.first().and_then(|f| f.iter().flatten().next().copied());
        if let (Some(source), Some(file_ids)) = (sources.first(), ids.first()) {
            for (entry, id) in source.entries.iter().zip(file_ids) {
                if let (Some(v), Some(id)) = (&entry.embedding, id) {
                    self.vectors.insert(*id, v);
                }
            }
        }
        Ok(first)
    }

    /// Forgets a memory: out of its file (a note is deleted, a section cut
    /// from `MEMORY.md`/`raw_memories.md`) and out of the index.
    pub fn forget(&mut self, id: MemoryId) -> Result<bool, MemoryError> {
        self.run(|me| {
            let Some(memory) = me.store.get(id)? else {
                return Ok(false);
            };
            match &memory.source_path {
                Some(rel) => {
                    me.files.remove_entry(rel, &memory.text)?;
                    me.index_file(rel)?;
                    me.reload_vectors()?;
                }
                None => {
                    me.store.forget(id)?;
                    me.vectors.remove(id);
                }
            }
            Ok(true)
        })
    }

    /// The memories most relevant to `query`: BM25, fused with vector
    /// similarity (reciprocal rank) when an embedder is present, each
    /// relevance times [`boost`] of the memory's score.
    pub fn recall(&mut self, query: &str, limit: usize) -> Result<Vec<RecallHit>, MemoryError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let pool = limit.saturating_mul(3).max(10);
        let fts = self.run(|me| me.store.recall(query, pool))?;
        let query_vec = match (&mut self.embedder, self.vectors.is_empty()) {
            (Some(e), false) => match e.embed(&[query]) {
                Ok(mut v) => v.pop(),
                Err(err) => {
                    tracing::warn!("memory recall without vectors: {err}");
                    None
                }
            },
            _ => None,
        };
        let Some(q) = query_vec else {
            // Only matches are boosted, so a high score never lets an
            // irrelevant memory in.
            let mut hits: Vec<RecallHit> = fts
                .into_iter()
                .map(|mut h| {
                    h.relevance *= boost(h.memory.score);
                    h
                })
                .collect();
            hits.sort_by(|a, b| {
                b.relevance
                    .total_cmp(&a.relevance)
                    .then(a.memory.id.cmp(&b.memory.id))
            });
            hits.truncate(limit);
            return Ok(hits);
        };
        let near = self.vectors.top_k(&q, pool);
        let mut fused: HashMap<MemoryId, f64> = HashMap::new();
        for (rank, hit) in fts.iter().enumerate() {
            *fused.entry(hit.memory.id).or_default() += 1.0 / (RRF_K + rank as f64 + 1.0);
        }
        for (rank, (id, _)) in near.iter().enumerate() {
            *fused.entry(*id).or_default() += 1.0 / (RRF_K + rank as f64 + 1.0);
        }
        let mut known: HashMap<MemoryId, Memory> =
            fts.into_iter().map(|h| (h.memory.id, h.memory)).collect();
        let missing: Vec<MemoryId> = fused
            .keys()
            .copied()
            .filter(|id| !known.contains_key(id))
            .collect();
        for m in self.store.get_many(&missing)? {
            known.insert(m.id, m);
        }
        // The score lifts a fused candidate lightly; it adds none.
        let mut ranked: Vec<(MemoryId, f64)> = fused
            .into_iter()
            .filter_map(|(id, rrf)| Some((id, rrf * boost(known.get(&id)?.score))))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(limit);
        Ok(ranked
            .into_iter()
            .filter_map(|(id, relevance)| {
                known
                    .remove(&id)
                    .map(|memory| RecallHit { memory, relevance })
            })
            .collect())
    }

    pub fn list(&mut self, limit: usize) -> Result<Vec<Memory>, MemoryError> {
        self.run(|me| me.store.list(limit))
    }

    pub fn count(&mut self) -> Result<usize, MemoryError> {
        self.run(|me| me.store.count())
    }

    /// Forgets every memory: deletes everything under `memories/` and
    /// empties the index. Returns the removed entries of `memories/` and
    /// how many rows the index held.
    pub fn reset(&mut self) -> Result<(Vec<String>, usize), MemoryError> {
        let removed = self.files.remove_all()?;
        let rows = self.store.reset()?;
        self.vectors.clear();
        self.last_sync = Some(Instant::now());
        Ok((removed, rows))
    }

    pub fn set_score(&mut self, id: MemoryId, score: f64) -> Result<bool, MemoryError> {
        self.run(|me| me.store.set_score(id, score))
    }

    /// Memories not scored yet (a reindexed file's rows are unscored
    /// again: scores are derived, the files are the truth).
    pub fn unscored(&mut self, limit: usize) -> Result<Vec<Memory>, MemoryError> {
        self.run(|me| me.store.unscored(limit))
    }

    pub fn scored_count(&mut self) -> Result<usize, MemoryError> {
        self.run(|me| me.store.scored_count())
    }

    /// Embeds texts with the configured embedder.
    pub fn embed(&mut self, texts: &[&str]) -> Result<Option<Vec<Vec<f32>>>, MemoryError> {
        match &mut self.embedder {
            Some(e) => e.embed(texts).map(Some),
            None => Ok(None),
        }
    }

    fn embed_sources(&mut self, sources: &mut [SourceFile]) {
        let Some(embedder) = &mut self.embedder else {
            return;
        };
        let mut slots: Vec<(usize, usize)> = Vec::new();
        for (i, s) in sources.iter().enumerate() {
            for j in 0..s.entries.len() {
                slots.push((i, j));
            }
        }
        for chunk in slots.chunks(EMBED_BATCH) {
            let texts: Vec<&str> = chunk
                .iter()
                .filter_map(|(i, j)| sources.get(*i)?.entries.get(*j))
                .map(|e| e.text.as_str())
                .collect();
            let vectors = match embedder.embed(&texts) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!("memories indexed without embeddings: {e}");
                    return;
                }
            };
            for ((i, j), v) in chunk.iter().zip(vectors) {
                if let Some(entry) = sources.get_mut(*i).and_then(|s| s.entries.get_mut(*j)) {
                    entry.embedding = Some(v);
                }
            }
        }
    }

    /// Reloads the vector cache from the database (after writing to the
    /// store directly, as a bench does).
    pub fn reload_vectors(&mut self) -> Result<(), MemoryError> {
        self.vectors.clear();
        if self.embedder.is_none() {
            return Ok(());
        }
        for (id, v) in self.store.embeddings()? {
            self.vectors.insert(id, &v);
        }
        Ok(())
    }

    /// The store's warnings (it logged them already).
    fn collect_store_warnings(&mut self) {
        for w in self.store.take_warnings() {
            self.keep_warning(w.to_string());
        }
    }

    fn warn(&mut self, warning: String) {
        tracing::warn!("{warning}");
        self.keep_warning(warning);
    }

    fn keep_warning(&mut self, warning: String) {
        if self.warnings.len() == MAX_WARNINGS {
            self.warnings.remove(0);
        }
        self.warnings.push(warning);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::HashEmbedder;

    fn open(dir: &tempfile::TempDir, embedder: Option<Box<dyn Embedder>>) -> MemoryIndex {
        MemoryIndex::open(
            MemoryLayout::new(dir.path()),
            IndexOptions::default(),
            embedder,
        )
        .unwrap()
    }

    fn texts(hits: &[RecallHit]) -> Vec<&str> {
        hits.iter().map(|h| h.memory.text.as_str()).collect()
    }

    /// Two notes equally relevant to the query, and a high-scored one
    /// that does not match it.
    fn scored_notes(index: &mut MemoryIndex) -> (MemoryId, MemoryId) {
        let a = index.remember("cargo build tips alpha", None).unwrap();
        let b = index.remember("cargo build tips bravo", None).unwrap();
        let off = index.remember("python gil notes", None).unwrap();
        assert!(index.set_score(off, 1.0).unwrap());
        (a, b)
    }

    #[test]
    fn the_score_orders_equally_relevant_memories_and_lets_no_other_in() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = open(&dir, None);
        let (a, b) = scored_notes(&mut index);
        // Unscored, equal relevance: the older id first.
        let hits = index.recall("cargo build", 10).unwrap();
        assert_eq!(
            texts(&hits),
            ["cargo build tips alpha", "cargo build tips bravo"]
        );
        assert_eq!(hits[0].relevance, hits[1].relevance);
        assert!(index.set_score(b, 0.8).unwrap());
        assert!(index.set_score(a, 0.2).unwrap());
        let hits = index.recall("cargo build", 10).unwrap();
        assert_eq!(
            texts(&hits),
            ["cargo build tips bravo", "cargo build tips alpha"]
        );
        assert!(hits[0].relevance > hits[1].relevance);
        assert!(index.recall("cargo", 1).unwrap()[0].memory.id == b);
        assert_eq!(index.scored_count().unwrap(), 3);
    }

    #[test]
    fn the_score_breaks_ties_in_fused_recall_too() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = open(&dir, Some(Box::new(HashEmbedder::new(64))));
        let (_, b) = scored_notes(&mut index);
        assert!(index.set_score(b, 0.9).unwrap());
        let hits = index.recall("cargo build tips", 2).unwrap();
        assert_eq!(
            texts(&hits),
            ["cargo build tips bravo", "cargo build tips alpha"]
        );
    }

    #[test]
    fn unscored_lists_what_the_scorer_still_has_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = open(&dir, None);
        let (a, b) = scored_notes(&mut index);
        let ids: Vec<MemoryId> = index.unscored(10).unwrap().iter().map(|m| m.id).collect();
        assert_eq!(ids, [a, b]);
        let before = index.store_mut().get(a).unwrap().unwrap();
        assert!(index.set_score(a, 0.5).unwrap());
        let after = index.store_mut().get(a).unwrap().unwrap();
        // Scoring is no edit: the list order stays.
        assert_eq!(after.updated_at_ms, before.updated_at_ms);
        assert_eq!(after.score, 0.5);
        let ids: Vec<MemoryId> = index.unscored(10).unwrap().iter().map(|m| m.id).collect();
        assert_eq!(ids, [b]);
        assert_eq!(index.unscored(0).unwrap(), vec![]);
    }
}
