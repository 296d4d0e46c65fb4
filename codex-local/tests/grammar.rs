//! Grammar-constrained generation on the tiny random llama: whatever the
//! random weights prefer, the output follows the grammar, and a grammar
//! llama.cpp cannot use is a clear error before any decoding.
#![cfg(feature = "local-llm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::ControlFlow;
use std::sync::atomic::AtomicBool;

use codex_local::testing::write_tiny_llama;
use codex_local::{ChatMessage, GenerateRequest, LoadOptions, LocalError, LocalModel, StopReason};

fn model(dir: &tempfile::TempDir, seed: u64) -> LocalModel {
    let path = dir.path().join(format!("tiny-{seed}.gguf"));
    write_tiny_llama(&path, seed).unwrap();
    LocalModel::load(&path, LoadOptions::default()).unwrap()
}

fn generate(
    model: &LocalModel,
    req: &GenerateRequest,
) -> Result<codex_local::Generated, LocalError> {
    model.generate(
        req,
        &mut |_| ControlFlow::Continue(()),
        &AtomicBool::new(false),
    )
}

fn ask(grammar: &str, max_tokens: u32) -> GenerateRequest {
    GenerateRequest::chat(vec![ChatMessage::new("user", "answer")], max_tokens)
        .with_grammar(grammar)
}

#[test]
fn output_follows_a_tiny_grammar() {
    let dir = tempfile::tempdir().unwrap();
    for seed in [1, 7, 42] {
        let m = model(&dir, seed);
        let g = generate(&m, &ask(r#"root ::= "yes" | "no""#, 32)).unwrap();
        assert!(
            g.text == "yes" || g.text == "no",
            "seed {seed}: {:?}",
            g.text
        );
        // The grammar is complete, so only end-of-generation was allowed.
        assert_eq!(g.stop_reason, StopReason::EndOfGeneration, "seed {seed}");
    }
}

#[test]
fn bounded_json_completes_within_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(&dir, 42);
    let grammar = r#"root ::= "{\"a\":\"" [a-z]{0,12} "\",\"n\":" [0-9]{1,3} "}""#;
    let g = generate(&m, &ask(grammar, 64)).unwrap();
    assert_eq!(g.stop_reason, StopReason::EndOfGeneration, "{:?}", g.text);
    let v: serde_json::Value = serde_json::from_str(&g.text).expect(&g.text);
    assert!(v["a"].is_string() && v["n"].is_number(), "{v}");
    // Unconstrained, the same model says something else entirely.
    let free = generate(
        &m,
        &GenerateRequest::chat(vec![ChatMessage::new("user", "answer")], 16),
    )
    .unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(&free.text).is_err(),
        "{:?}",
        free.text
    );
}

#[test]
fn a_bad_grammar_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(&dir, 42);
    for (grammar, says) in [
        (r#"root ::= "yes"#, "could not parse"),
        ("root ::= ( \"a\"", "could not parse"),
        ("root ::= undefined-rule", "could not parse"),
        (r#"answer ::= "yes""#, "root"),
    ] {
        let err = generate(&m, &ask(grammar, 8)).unwrap_err();
        assert!(matches!(err, LocalError::Grammar(_)), "{grammar}: {err}");
        assert!(err.to_string().contains(says), "{grammar}: {err}");
        assert!(err.to_string().contains("grammar"), "{grammar}: {err}");
    }
    // The model is still usable afterwards.
    assert!(generate(&m, &ask(r#"root ::= "ok""#, 8)).is_ok());
}
