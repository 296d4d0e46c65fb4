//! Benchmarks live in `benches/`; run `cargo bench -p codex-benches`.
