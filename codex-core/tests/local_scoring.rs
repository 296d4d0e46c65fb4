//! Scoring on the local lane for real: the scoring request
//! (`codex_core::memory::scoring`) over a `LaneGenerator` (llama.cpp) with
//! SmolLM2 (skipped with a printed reason when absent, unless
//! `CODEX_REQUIRE_MODELS=1`). The grammar makes every answer a digit; which
//! digit is the model's judgement and is not asserted.
#![cfg(feature = "local-llm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use codex_core::memory::{scoring, Generator, LaneGenerator};
use codex_local::testing::{real_model, SMOLLM2_FILE};

#[tokio::test]
async fn smollm2_scores_notes_with_one_digit() {
    let Some(path) = real_model(SMOLLM2_FILE) else {
        return;
    };
    let generator = LaneGenerator::load(&path).unwrap();
    for note in [
        "The user always runs `cargo nextest` instead of `cargo test`; CI uses the same.",
        "lol ok",
        "The repo's tests need `cargo build -p codex-test-support --bins` first.",
        "It was sunny.",
    ] {
        let started = std::time::Instant::now();
        let g = generator
            .generate(scoring::request(note), Duration::from_secs(120))
            .await
            .unwrap();
        let score = scoring::parse(&g.text).unwrap_or_else(|| panic!("{:?}", g.text));
        eprintln!(
            "{note:?}: {:?} -> {score} in {:?}",
            g.text,
            started.elapsed()
        );
        assert!((0.1..=1.0).contains(&score));
    }
}
