//! The local small-model lane (feature `local-llm`): embeddings per second
//! (MiniLM, 1 thread, through `LocalLane`), the `local` provider's
//! generation tokens per second (SmolLM2, through the model service the
//! turn loop calls), a grammar-constrained phase-1 extraction (SmolLM2,
//! `LocalExtractor` over `LaneGenerator`, a session filling the prompt
//! budget), and the resident memory of this process before and after each
//! model is loaded. Skips with a message when the models are
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

/// One phase-1 extraction as codex-memory runs it: the compact prompt, a
/// session that fills its budget, the stage-one grammar.
fn extraction(quick: bool) {
    use codex_core::memory::pipeline::phase1::{output_schema, parse_output};
    use codex_core::memory::pipeline::{ExtractionPrompt, LocalExtractor};
    use codex_core::memory::{Generator, LaneGenerator};
    use std::sync::Arc;

    let Some(path) = real_model(SMOLLM2_FILE) else {
        return;
    };
    let mut items = Vec::new();
    for i in 0..12 {
        items.push(serde_json::json!({"type":"message","role":"user","content":[{"type":"input_text",
            "text":format!("Step {i}: the integration test for the payment service fails on CI; make it pass without touching the fixtures.")}]}));
        items.push(serde_json::json!({"type":"function_call","name":"exec_command","call_id":format!("c{i}"),
            "arguments":format!("{{\"cmd\":\"cargo test -p payments --test integration -- case_{i}\"}}")}));
        items.push(serde_json::json!({"type":"function_call_output","call_id":format!("c{i}"),
            "output":format!("test case_{i} ... FAILED\nthread 'case_{i}' panicked: connection refused (127.0.0.1:5432); start postgres with `docker compose up -d db` first")}));
    }
    let prompt = ExtractionPrompt {
        thread_id: "bench".into(),
        instructions: String::new(),
        input: format!(
            "rollout_context:\n- rollout_cwd: /src/payments\n\n\
             rendered conversation (pre-rendered from rollout `.jsonl`; filtered response items):\n\
             {}\n\nIMPORTANT:\n",
            serde_json::Value::Array(items)
        ),
        output_schema: output_schema(),
        reasoning_effort: "low",
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let generator = Arc::new(LaneGenerator::load(&path).expect("load SmolLM2"));
    let extractor = LocalExtractor::new(generator.clone());
    let request = extractor.request(&prompt);
    let runs = if quick { 1 } else { 3 };
    let (mut secs, mut tokens) = (0.0f64, 0usize);
    rt.block_on(async {
        for _ in 0..runs {
            let started = Instant::now();
            let g = generator.generate(request.clone(), DEADLINE).await.unwrap();
            secs += started.elapsed().as_secs_f64();
            tokens += g.output_tokens;
            parse_output(&g.text).expect("the grammar's object parses");
        }
    });
    // The same prompt, one token, no grammar: what the prompt alone costs.
    let prompt_only = codex_core::memory::LocalGenerate {
        max_tokens: 1,
        grammar: None,
        ..request.clone()
    };
    let started = Instant::now();
    rt.block_on(generator.generate(prompt_only, DEADLINE))
        .unwrap();
    let prompt_ms = started.elapsed().as_secs_f64() * 1e3;
    row(
        &format!(
            "phase-1 extraction, grammar (SmolLM2, {}-char prompt)",
            request.system.len() + request.user.len()
        ),
        format!("{:.0} ms, {} tok", secs * 1e3 / runs as f64, tokens / runs),
    );
    row(
        "  of which the prompt alone (1 token, no grammar)",
        format!("{prompt_ms:.0} ms"),
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
    extraction(quick);
}
