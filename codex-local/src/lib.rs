//! The local small-model lane: GGUF models run on this machine through
//! llama.cpp (`llama-cpp-2`), for embeddings and short greedy generations.
//!
//! llama.cpp is only built with the `local-llm` cargo feature (it needs
//! `cmake` and `libclang-dev` and several minutes of C++). Without it the
//! crate still compiles, in seconds, and every entry point returns
//! [`LocalError::FeatureDisabled`]. This is the only crate that links
//! llama.cpp.
//!
//! - [`LocalModel`]: one loaded model; `tokenize`, `detokenize`, `embed`,
//!   `generate` run on the caller's thread.
//! - [`LocalLane`]: one model on one dedicated inference thread behind a
//!   bounded queue; what a long-lived process hosts.
//! - [`testing`]: a GGUF v3 writer and a tiny random-weight llama model for
//!   tests and benches.

mod error;
mod lane;
#[cfg(feature = "local-llm")]
mod model;
#[cfg(not(feature = "local-llm"))]
#[path = "disabled.rs"]
mod model;
mod stream;
pub mod testing;
mod types;

pub use error::LocalError;
pub use lane::{LaneOptions, LocalLane, Pending, DEFAULT_QUEUE_CAPACITY};
pub use model::LocalModel;
pub use types::{
    ChatMessage, GenerateRequest, Generated, LoadOptions, StopReason, DEFAULT_N_THREADS,
};

/// Whether this build links llama.cpp (the `local-llm` feature).
pub const ENABLED: bool = cfg!(feature = "local-llm");

/// Cosine similarity of two vectors (0 when either is all zeros or their
/// lengths differ).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        dot += f64::from(*x) * f64::from(*y);
        na += f64::from(*x) * f64::from(*x);
        nb += f64::from(*y) * f64::from(*y);
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    (dot / (na.sqrt() * nb.sqrt())) as f32
}

/// Scales `v` to unit length in place (left as is when all zeros).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for x in v {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[-1.0, -1.0]) + 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn normalize_gives_unit_length() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut z = vec![0.0; 3];
        l2_normalize(&mut z);
        assert_eq!(z, vec![0.0; 3]);
    }
}
