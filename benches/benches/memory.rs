//! Memory figures:
//!
//! - recall p50/p99 over 10,000 memories: BM25 alone, and BM25 fused with
//!   vector similarity (the deterministic 384-dimension `HashEmbedder`
//!   standing in for MiniLM), straight on the index (the store thread's
//!   work) and the brute-force cosine top-k alone;
//! - the same recall through the in-process service (queue + thread hop);
//! - turn overhead with memories on vs off: whole in-process turns against
//!   the mock model server (`Thread` with the recall seam given the
//!   in-process service), p50 of each and the difference (goal ≤ 2 ms).
//!
//! `cargo bench -p codex-benches --bench memory`. Under `cargo test` it
//! runs a small smoke version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_benches::{ms, percentile, print_table};
use codex_core::config::{Config, ConfigOverrides, LoadOptions};
use codex_core::memory::{
    HashEmbedder, IndexOptions, LocalMemory, LocalMemoryOptions, MemoryIndex, MemoryLayout,
    MemoryRecall, MemoryRequest, NewMemory,
};
use codex_core::{Thread, TurnRequest};
use codex_test_support::{sse, MockModelServer, TestHome};

const DIMS: usize = 384;
/// Syllables of the synthetic vocabulary: 24 × 24 × 4 = 2,304 words, so
/// (like real notes, unlike a tiny word list) a query word occurs in a few
/// dozen memories, not in a quarter of them.
const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ne", "po", "ru", "sa", "te", "vi", "zo", "ba", "de", "fi", "go", "hu", "ja",
    "ke", "li", "mo", "nu", "pa", "re", "si", "to",
];
const ENDINGS: &[&str] = &["", "n", "s", "r"];

struct Counts {
    memories: usize,
    queries: usize,
    turns: usize,
}

/// A deterministic pseudo-random word sequence.
fn words(seed: u64, n: usize) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |m: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % m as u64) as usize
    };
    (0..n)
        .map(|_| {
            format!(
                "{}{}{}",
                SYLLABLES[next(SYLLABLES.len())],
                SYLLABLES[next(SYLLABLES.len())],
                ENDINGS[next(ENDINGS.len())]
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn index_with(home: &std::path::Path, n: usize, vectors: bool) -> MemoryIndex {
    let embedder = HashEmbedder::new(DIMS);
    let mut idx = MemoryIndex::open(
        MemoryLayout::new(home),
        IndexOptions {
            sync_interval: Duration::from_secs(3600),
            ..IndexOptions::default()
        },
        vectors.then(|| Box::new(embedder.clone()) as Box<dyn codex_core::memory::Embedder>),
    )
    .unwrap();
    let entries = (0..n).map(|i| {
        let text = words(i as u64, 12);
        NewMemory {
            embedding: vectors.then(|| embedder.embed_one(&text)),
            text,
            ..NewMemory::default()
        }
    });
    idx.store_mut().rebuild_from(entries).unwrap();
    idx.reload_vectors().unwrap();
    idx
}

fn sample(n: usize, mut f: impl FnMut(usize)) -> Vec<Duration> {
    let mut out: Vec<Duration> = (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect();
    out.sort();
    out
}

fn p50_p99(v: &[Duration]) -> String {
    format!("{} / {}", ms(percentile(v, 0.5)), ms(percentile(v, 0.99)))
}

fn config(home: &TestHome) -> Config {
    Config::load(LoadOptions {
        codex_home: Some(home.codex_home()),
        cli_overrides: vec![],
        overrides: ConfigOverrides {
            cwd: Some(home.workspace()),
            ..Default::default()
        },
    })
    .unwrap()
}

/// Sorted durations of `turns` in-process turns, with or without recall.
async fn turns(memory: Option<LocalMemory>, turns: usize) -> Vec<Duration> {
    let mock = MockModelServer::start(
        (0..turns + 1)
            .map(|i| sse::message(&format!("ok {i}")))
            .collect(),
    )
    .await;
    let home = TestHome::new();
    let extra = if memory.is_some() {
        "\n[features]\nmemories = true\n"
    } else {
        ""
    };
    home.write_config_inline_key(&mock.url(), extra);
    let mut builder = Thread::builder(config(&home)).ephemeral(true);
    if let Some(m) = memory {
        builder.options_mut().memory_recall = Some(Arc::new(m) as Arc<dyn MemoryRecall>);
    }
    let (thread, mut rx) = builder.start().unwrap();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    // One warm-up turn (connection, first request).
    thread.run_turn(TurnRequest::text("warm up")).await.unwrap();
    let mut out = Vec::with_capacity(turns);
    for i in 0..turns {
        let t = Instant::now();
        thread
            .run_turn(TurnRequest::text(words(i as u64 + 7, 8)))
            .await
            .unwrap();
        out.push(t.elapsed());
    }
    out.sort();
    out
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let c = if bench {
        Counts {
            memories: 10_000,
            queries: 1_000,
            turns: 50,
        }
    } else {
        Counts {
            memories: 200,
            queries: 10,
            turns: 2,
        }
    };
    let mut rows = Vec::new();
    let n = c.memories;

    let fts_dir = tempfile::tempdir().unwrap();
    let mut fts = index_with(fts_dir.path(), n, false);
    let v = sample(c.queries, |i| {
        fts.recall(&words(i as u64 + 1_000_000, 4), 5).unwrap();
    });
    rows.push(vec![
        format!("recall, BM25, {n} memories, p50 / p99 (N={})", c.queries),
        p50_p99(&v),
    ]);
    drop(fts);

    let vec_dir = tempfile::tempdir().unwrap();
    let mut hybrid = index_with(vec_dir.path(), n, true);
    let v = sample(c.queries, |i| {
        hybrid.recall(&words(i as u64 + 2_000_000, 4), 5).unwrap();
    });
    rows.push(vec![
        format!("recall, BM25 + {DIMS}-dim vectors, {n} memories, p50 / p99"),
        p50_p99(&v),
    ]);
    drop(hybrid);

    let e = HashEmbedder::new(DIMS);
    let mut cache = codex_core::memory::VectorIndex::new();
    for i in 0..n {
        cache.insert(
            codex_core::memory::MemoryId(i as i64),
            &e.embed_one(&words(i as u64, 12)),
        );
    }
    let queries: Vec<Vec<f32>> = (0..c.queries)
        .map(|i| e.embed_one(&words(i as u64 + 3_000_000, 4)))
        .collect();
    let v = sample(c.queries, |i| {
        cache.top_k(&queries[i], 5);
    });
    rows.push(vec![
        format!("cosine top-5 alone, {n} × {DIMS}, p50 / p99"),
        p50_p99(&v),
    ]);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let svc_dir = tempfile::tempdir().unwrap();
    drop(index_with(svc_dir.path(), n, false));
    let memory =
        LocalMemory::start(LocalMemoryOptions::new(MemoryLayout::new(svc_dir.path()))).unwrap();
    let v = rt.block_on(async {
        let mut out = Vec::with_capacity(c.queries);
        for i in 0..c.queries {
            let t = Instant::now();
            memory
                .call_with_deadline(
                    MemoryRequest::Recall {
                        query: words(i as u64 + 4_000_000, 4),
                        limit: 5,
                    },
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
            out.push(t.elapsed());
        }
        out.sort();
        out
    });
    rows.push(vec![
        format!("recall through the in-process service, BM25, {n} memories, p50 / p99"),
        p50_p99(&v),
    ]);

    let off = rt.block_on(turns(None, c.turns));
    let on = rt.block_on(turns(Some(memory.clone()), c.turns));
    let (p_off, p_on) = (percentile(&off, 0.5), percentile(&on, 0.5));
    rows.push(vec![
        format!("in-process turn, memories off, p50 (N={})", c.turns),
        ms(p_off),
    ]);
    rows.push(vec![
        format!("in-process turn, memories on ({n} memories, recall every turn), p50"),
        ms(p_on),
    ]);
    rows.push(vec![
        "turn overhead of memories, p50 difference (goal ≤ 2 ms)".into(),
        if p_on >= p_off {
            ms(p_on - p_off)
        } else {
            format!("-{}", ms(p_off - p_on))
        },
    ]);
    print_table(&["memory".to_string(), "value".to_string()], &rows);
}
