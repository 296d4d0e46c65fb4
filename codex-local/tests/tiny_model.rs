//! The real llama.cpp code path on the tiny random-weight llama the test
//! support writes: load, tokenize, generate, embed, and the lane's bound and
//! deadline. Structural asserts only (the weights are random).
#![cfg(feature = "local-llm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use codex_local::testing::{write_tiny_llama, GgufWriter, Value};
use codex_local::{
    cosine, ChatMessage, GenerateRequest, LaneOptions, LoadOptions, LocalError, LocalLane,
    LocalModel, StopReason,
};

const LONG: Duration = Duration::from_secs(60);

fn tiny(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("tiny.gguf");
    write_tiny_llama(&path, 42).unwrap();
    path
}

fn load(path: &PathBuf) -> LocalModel {
    LocalModel::load(path, LoadOptions::default()).unwrap()
}

#[test]
fn errors_name_the_file_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.gguf");
    let err = LocalModel::load(&missing, LoadOptions::default()).unwrap_err();
    assert!(matches!(err, LocalError::MissingFile { .. }), "{err}");
    assert!(err.to_string().contains("nope.gguf"), "{err}");
    assert!(err.to_string().contains("scripts/fetch-models"), "{err}");

    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "hello, not a model").unwrap();
    let err = LocalModel::load(&text, LoadOptions::default()).unwrap_err();
    assert!(matches!(err, LocalError::NotGguf { .. }), "{err}");
    assert!(err.to_string().contains("notes.gguf"), "{err}");

    // A GGUF header with nothing llama.cpp can use.
    let empty = dir.path().join("empty.gguf");
    let mut w = GgufWriter::default();
    w.kv("general.architecture", Value::Str("llama".into()));
    w.write(&empty).unwrap();
    let err = LocalModel::load(&empty, LoadOptions::default()).unwrap_err();
    assert!(matches!(err, LocalError::Load { .. }), "{err}");
    assert!(err.to_string().contains("empty.gguf"), "{err}");
}

#[test]
fn tokenize_detokenize_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let model = load(&tiny(&dir));
    for text in ["hello world", "café ☕ naïve", "line\nbreak\ttab"] {
        let tokens = model.tokenize(text);
        assert_eq!(tokens[0], 1, "BOS first");
        assert!(tokens.len() > text.len() / 2);
        assert_eq!(model.detokenize(&tokens).trim_start(), text);
    }
    assert_eq!(model.detokenize(&[]), "");
    assert!(!model.has_chat_template());
    assert_eq!(model.n_ctx(), codex_local::testing::TINY_N_CTX);
}

#[test]
fn generate_is_deterministic_streams_and_stops_at_max_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let model = load(&tiny(&dir));
    let req = GenerateRequest::chat(
        vec![
            ChatMessage::new("system", "be brief"),
            ChatMessage::new("user", "hi"),
        ],
        12,
    );
    let never = AtomicBool::new(false);
    let mut pieces = Vec::new();
    let a = model
        .generate(
            &req,
            &mut |s| {
                pieces.push(s.to_string());
                ControlFlow::Continue(())
            },
            &never,
        )
        .unwrap();
    let b = model
        .generate(&req, &mut |_| ControlFlow::Continue(()), &never)
        .unwrap();
    assert_eq!(a, b, "greedy decoding is deterministic");
    assert!(a.output_tokens <= 12);
    assert!(a.prompt_tokens > 5);
    if a.stop_reason == StopReason::MaxTokens {
        assert_eq!(a.output_tokens, 12);
    }
    assert_eq!(pieces.concat(), a.text, "the stream is the text");

    let raw = GenerateRequest::raw("abc", 0);
    let none = model
        .generate(&raw, &mut |_| ControlFlow::Continue(()), &never)
        .unwrap();
    assert_eq!(none.output_tokens, 0);
    assert_eq!(none.stop_reason, StopReason::MaxTokens);
}

#[test]
fn on_token_and_cancel_stop_generation() {
    let dir = tempfile::tempdir().unwrap();
    let model = load(&tiny(&dir));
    let req = GenerateRequest::raw("once upon a time", 200);
    let never = AtomicBool::new(false);
    let mut calls = 0;
    let g = model
        .generate(
            &req,
            &mut |_| {
                calls += 1;
                if calls == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
            &never,
        )
        .unwrap();
    // Random weights may hit EOS first; otherwise the callback ended it.
    if g.stop_reason != StopReason::EndOfGeneration {
        assert_eq!(g.stop_reason, StopReason::Callback);
        assert_eq!(calls, 2);
    }

    let cancel = AtomicBool::new(false);
    let err = model
        .generate(
            &req,
            &mut |_| {
                cancel.store(true, Ordering::Relaxed);
                ControlFlow::Continue(())
            },
            &cancel,
        )
        .unwrap_err();
    assert!(matches!(err, LocalError::Cancelled), "{err}");
}

#[test]
fn context_overflow_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = load(&tiny(&dir));
    let long = "x".repeat(600);
    let err = model
        .generate(
            &GenerateRequest::raw(long, 4),
            &mut |_| ControlFlow::Continue(()),
            &AtomicBool::new(false),
        )
        .unwrap_err();
    assert!(
        matches!(err, LocalError::ContextOverflow { n_ctx: 256, .. }),
        "{err}"
    );
}

#[test]
fn embed_shapes_and_normalization() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny(&dir);
    let model = LocalModel::load(
        &path,
        LoadOptions {
            embeddings: true,
            ..Default::default()
        },
    )
    .unwrap();
    let v = model.embed(&["alpha", "beta gamma", "alpha"]).unwrap();
    assert_eq!(v.len(), 3);
    for e in &v {
        assert_eq!(e.len(), model.embedding_dim());
        let norm: f32 = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    assert!(
        (cosine(&v[0], &v[2]) - 1.0).abs() < 1e-5,
        "same text, same vector"
    );
    assert!(model.embed(&[]).unwrap().is_empty());

    let generator = load(&path);
    let err = generator.embed(&["x"]).unwrap_err();
    assert!(matches!(err, LocalError::NoEmbeddings { .. }), "{err}");
}

#[tokio::test]
async fn lane_serves_async_callers() {
    let dir = tempfile::tempdir().unwrap();
    let lane =
        LocalLane::start(tiny(&dir), LoadOptions::default(), LaneOptions::default()).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(64);
    let g = lane
        .generate(GenerateRequest::raw("hello", 8), LONG, move |s| {
            let _ = tx.blocking_send(s.to_string());
            ControlFlow::Continue(())
        })
        .unwrap()
        .await
        .unwrap();
    let mut streamed = String::new();
    while let Some(s) = rx.recv().await {
        streamed.push_str(&s);
    }
    assert_eq!(streamed, g.text);
    assert_eq!(lane.queued(), 0);
}

/// Starts a generation that blocks in its first token callback until
/// `release` is sent, and waits until it is running.
fn occupy(
    lane: &LocalLane,
) -> (
    codex_local::Pending<codex_local::Generated>,
    mpsc::Sender<()>,
) {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let mut first = true;
    let pending = lane
        .generate(GenerateRequest::raw("a", 50), LONG, move |_| {
            if first {
                first = false;
                let _ = started_tx.send(());
                let _ = release_rx.recv_timeout(LONG);
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    started_rx
        .recv_timeout(LONG)
        .expect("the generation did not start");
    (pending, release_tx)
}

#[test]
fn a_full_queue_is_shed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let lane = LocalLane::start(
        tiny(&dir),
        LoadOptions::default(),
        LaneOptions { queue_capacity: 2 },
    )
    .unwrap();
    let (running, release) = occupy(&lane);
    let q1 = lane
        .generate(GenerateRequest::raw("b", 2), LONG, |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    let q2 = lane
        .generate(GenerateRequest::raw("c", 2), LONG, |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(lane.queued(), 2);
    let err = lane
        .generate(GenerateRequest::raw("d", 2), LONG, |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err();
    assert!(
        matches!(err, LocalError::Overloaded { capacity: 2 }),
        "{err}"
    );
    release.send(()).unwrap();
    running.wait().unwrap();
    q1.wait().unwrap();
    q2.wait().unwrap();
    // Room again.
    lane.generate(GenerateRequest::raw("e", 2), LONG, |_| {
        ControlFlow::Continue(())
    })
    .unwrap()
    .wait()
    .unwrap();
}

#[test]
fn deadlines_hold_in_the_queue_and_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let lane =
        LocalLane::start(tiny(&dir), LoadOptions::default(), LaneOptions::default()).unwrap();
    let (running, release) = occupy(&lane);
    // Expires while it waits behind the blocked one.
    let queued = lane
        .generate(
            GenerateRequest::raw("b", 4),
            Duration::from_millis(1),
            |_| ControlFlow::Continue(()),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    release.send(()).unwrap();
    running.wait().unwrap();
    let err = queued.wait().unwrap_err();
    assert!(matches!(err, LocalError::DeadlineExceeded(_)), "{err}");

    // Expires mid-generation: the callback outlasts the budget.
    let err = lane
        .generate(
            GenerateRequest::raw("c", 200),
            Duration::from_millis(20),
            |_| {
                std::thread::sleep(Duration::from_millis(25));
                ControlFlow::Continue(())
            },
        )
        .unwrap()
        .wait();
    match err {
        Err(LocalError::DeadlineExceeded(_)) => {}
        // Random weights may end the text before the first callback.
        Ok(g) => assert_eq!(g.stop_reason, StopReason::EndOfGeneration),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn dropping_a_pending_cancels_it_and_dropping_the_lane_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let lane = LocalLane::start(
        tiny(&dir),
        LoadOptions {
            embeddings: true,
            ..Default::default()
        },
        LaneOptions::default(),
    )
    .unwrap();
    let v = lane
        .embed(vec!["one".into(), "two".into()], LONG)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].len(), lane.embedding_dim());
    drop(lane.embed(vec!["dropped".into()], LONG).unwrap());
    let p = lane.embed(vec!["after".into()], LONG).unwrap();
    assert_eq!(p.wait().unwrap().len(), 1);
    drop(lane);
}
