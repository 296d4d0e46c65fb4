//! The local small-model lane (feature `local-llm`): embeddings per second
//! (MiniLM, 1 thread, through `LocalLane`), the `local` provider's
//! generation tokens per second (SmolLM2, through the model service the
//! turn loop calls), and the resident memory of this process before and
//! after each model is loaded. Skips with a message when the models are
//! absent (`scripts/fetch-models`).
//!
//! `cargo bench -p codex-benches --features local-llm --bench local_lane`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use codex_core::client::{ModelEvent, ModelRequest};
use codex_core::protocol::ResponseItem;
use codex_local::testing::{real_model, MINILM_FILE, SMOLLM2_FILE};
use codex_local::{LaneOptions, LoadOptions, LocalLane};
use futures_util::StreamExt;
use tower::ServiceExt;

const DEADLINE: Duration = Duration::from_secs(600);

/// (VmRSS, VmHWM) of this process in MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn row(name: &str, value: String) {
    println!("| {name:<58} | {value:>16} |");
}

fn embeddings(quick: bool) {
    let Some(path) = real_model(MINILM_FILE) else {
        return;
    };
    let started = Instant::now();
    let lane = LocalLane::start(
        &path,
        LoadOptions {
            embeddings: true,
            ..LoadOptions::default()
        },
        LaneOptions::default(),
    )
    .expect("load MiniLM");
    row(
        "MiniLM-L6 f16 load",
        format!("{:.0} ms", started.elapsed().as_secs_f64() * 1e3),
    );
    let n = if quick { 16 } else { 256 };
    let texts: Vec<String> = (0..n)
        .map(|i| format!("Memory note {i}: the user prefers small commits with clear messages and runs cargo clippy before every push."))
        .collect();
    let started = Instant::now();
    for chunk in texts.chunks(16) {
        let v = lane
            .embed(chunk.to_vec(), DEADLINE)
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(v.len(), chunk.len());
    }
    let secs = started.elapsed().as_secs_f64();
    row(
        "embeddings/s (MiniLM, 1 thread, ~25 tokens, lane)",
        format!("{:.0}", n as f64 / secs),
    );
    let (rss, hwm) = rss_mib();
    row(
        "RSS with MiniLM loaded (peak)",
        format!("{rss:.0} MiB ({hwm:.0})"),
    );
}

fn generation(quick: bool) {
    let Some(path) = real_model(SMOLLM2_FILE) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let provider = codex_core::config::built_in_providers(None)
        .remove(codex_core::config::LOCAL_PROVIDER_ID)
        .unwrap();
    let svc = codex_core::client::local_model_service(&path, &provider).unwrap();
    let prompt = "Write a long story about a lighthouse keeper and a storm.";
    let request = || ModelRequest {
        model: "SmolLM2-135M-Instruct".into(),
        input: vec![ResponseItem::user_text(prompt)],
        instructions: String::new(),
        tools: vec![],
        reasoning: None,
        verbosity: None,
        output_schema: None,
        thread_id: "bench".into(),
        turn_id: "t".into(),
    };
    let runs = if quick { 1 } else { 3 };
    rt.block_on(async {
        // The first call loads the model.
        let started = Instant::now();
        let mut first = svc.clone().oneshot(request()).await.unwrap();
        let mut first_delta = None;
        while let Some(ev) = first.next().await {
            if matches!(ev.unwrap(), ModelEvent::OutputTextDelta { .. }) && first_delta.is_none() {
                first_delta = Some(started.elapsed());
            }
        }
        row(
            "local provider: load + first token (SmolLM2 Q4_1)",
            format!(
                "{:.0} ms",
                first_delta.unwrap_or_default().as_secs_f64() * 1e3
            ),
        );
        let (mut tokens, mut secs) = (0u64, 0.0f64);
        for _ in 0..runs {
            let started = Instant::now();
            let mut s = svc.clone().oneshot(request()).await.unwrap();
            while let Some(ev) = s.next().await {
                if let ModelEvent::Completed { usage: Some(u), .. } = ev.unwrap() {
                    tokens += u.output_tokens;
                }
            }
            secs += started.elapsed().as_secs_f64();
        }
        row(
            "local provider tokens/s (SmolLM2, 1 thread, incl. prompt)",
            format!("{:.0}", tokens as f64 / secs),
        );
    });
    let (rss, hwm) = rss_mib();
    row(
        "RSS with MiniLM + SmolLM2 loaded (peak)",
        format!("{rss:.0} MiB ({hwm:.0})"),
    );
}

fn main() {
    // `cargo test --benches` runs each case once, small.
    let quick = !std::env::args().any(|a| a == "--bench");
    println!("| {:<58} | {:>16} |", "local lane", "value");
    println!("|{:-<60}|{:-<18}|", "", "");
    let (rss, _) = rss_mib();
    row("RSS without a model", format!("{rss:.0} MiB"));
    embeddings(quick);
    generation(quick);
}
