//! Vector recall: the [`Embedder`] seam (the local model lane implements it)
//! and [`VectorIndex`], every stored embedding in one contiguous,
//! normalized `f32` buffer searched by brute-force cosine similarity.
//!
//! Brute force is the right tool at this size: 10,000 memories × 384
//! dimensions is 3.8 M multiply-adds, about a millisecond, with no index
//! to build, keep in sync or rebuild after a crash.

use std::collections::HashMap;

use super::error::MemoryError;
use super::store::MemoryId;

/// Turns texts into vectors of one fixed dimension. Blocking: it runs on
/// the memory service's thread.
pub trait Embedder: Send {
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, MemoryError>;
}

/// A deterministic stand-in for a real embedding model (tests, benches):
/// each lower-cased word is hashed to a few dimensions, so texts sharing
/// words have a high cosine similarity.
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dims: usize,
}

impl HashEmbedder {
    pub fn new(dims: usize) -> Self {
        Self { dims: dims.max(1) }
    }

    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dims];
        for word in text.split(|c: char| !c.is_alphanumeric()) {
            if word.is_empty() {
                continue;
            }
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in word.to_lowercase().bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            for k in 0..3u64 {
                let mixed = h.rotate_left((k * 21) as u32) ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let idx = (mixed % self.dims as u64) as usize;
                let sign = if (mixed >> 63) == 0 { 1.0 } else { -1.0 };
                if let Some(slot) = v.get_mut(idx) {
                    *slot += sign;
                }
            }
        }
        v
    }
}

impl Embedder for HashEmbedder {
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, MemoryError> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }
}

/// Every embedding in memory: ids and one contiguous buffer of unit
/// vectors (`dims` floats each), loaded once and kept in step with the
/// store by its owner.
#[derive(Debug, Default, Clone)]
pub struct VectorIndex {
    dims: usize,
    ids: Vec<MemoryId>,
    /// Where each id's row is.
    rows: HashMap<MemoryId, usize>,
    data: Vec<f32>,
}

impl VectorIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    pub fn clear(&mut self) {
        self.ids.clear();
        self.rows.clear();
        self.data.clear();
        self.dims = 0;
    }

    /// Adds (or replaces) `id`'s vector. A vector of another dimension than
    /// the ones already held is refused (false): a model change needs a
    /// rebuild, not a mix.
    pub fn insert(&mut self, id: MemoryId, vector: &[f32]) -> bool {
        if vector.is_empty() {
            return false;
        }
        if self.ids.is_empty() {
            self.dims = vector.len();
        } else if vector.len() != self.dims {
            return false;
        }
        self.remove(id);
        self.rows.insert(id, self.ids.len());
        self.ids.push(id);
        let norm = norm(vector);
        self.data.extend(vector.iter().map(|x| x / norm));
        true
    }

    pub fn remove(&mut self, id: MemoryId) {
        if let Some(pos) = self.rows.remove(&id) {
            self.ids.swap_remove(pos);
            if let Some(moved) = self.ids.get(pos) {
                self.rows.insert(*moved, pos);
            }
            let start = pos * self.dims;
            let last = self.ids.len() * self.dims;
            if start != last {
                self.data.copy_within(last..last + self.dims, start);
            }
            self.data.truncate(last);
        }
    }

    /// The `k` most similar vectors to `query` (cosine), best first.
    pub fn top_k(&self, query: &[f32], k: usize) -> Vec<(MemoryId, f32)> {
        if k == 0 || query.len() != self.dims || self.ids.is_empty() {
            return Vec::new();
        }
        let qn = norm(query);
        let q: Vec<f32> = query.iter().map(|x| x / qn).collect();
        let mut scored: Vec<(f32, usize)> = self
            .data
            .chunks_exact(self.dims)
            .enumerate()
            .map(|(i, row)| (dot(row, &q), i))
            .collect();
        let k = k.min(scored.len());
        if k < scored.len() {
            scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            scored.truncate(k);
        }
        scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        scored
            .into_iter()
            .filter_map(|(s, i)| self.ids.get(i).map(|id| (*id, s)))
            .collect()
    }
}

fn norm(v: &[f32]) -> f32 {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        n
    } else {
        1.0
    }
}

/// Eight independent sums, so the compiler can vectorize the loop (one
/// running `f32` sum cannot be reordered).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Cosine similarity of two vectors (0 when either is zero or they differ
/// in length).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    dot(a, b) / (norm(a) * norm(b))
}
