//! The real models `scripts/fetch-models` puts in `models/` (or
//! `$CODEX_MODELS_DIR`). Skipped with a printed reason when they are absent,
//! unless `CODEX_REQUIRE_MODELS=1`.
#![cfg(feature = "local-llm")]

use std::ops::ControlFlow;
use std::sync::atomic::AtomicBool;

use codex_local::testing::{real_model, MINILM_FILE, SMOLLM2_FILE};
use codex_local::{cosine, ChatMessage, GenerateRequest, LoadOptions, LocalModel};

#[test]
fn minilm_embeddings_match_the_known_similarity() {
    let Some(path) = real_model(MINILM_FILE) else {
        return;
    };
    let model = LocalModel::load(
        &path,
        LoadOptions {
            embeddings: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(model.embedding_dim(), 384);
    // llama.cpp's WPM tokenizer gives HF's ids.
    assert_eq!(
        model.tokenize("A man is eating food."),
        vec![101, 1037, 2158, 2003, 5983, 2833, 1012, 102]
    );
    let v = model
        .embed(&["A man is eating food.", "A man is eating a piece of bread."])
        .unwrap();
    let c = cosine(&v[0], &v[1]);
    assert!((c - 0.755).abs() <= 0.01, "cosine {c}");
}

#[test]
fn smollm2_knows_the_capital_of_france() {
    let Some(path) = real_model(SMOLLM2_FILE) else {
        return;
    };
    let model = LocalModel::load(&path, LoadOptions::default()).unwrap();
    assert!(model.has_chat_template());
    let req = GenerateRequest::chat(
        vec![ChatMessage::new("user", "What is the capital of France?")],
        48,
    );
    let mut streamed = String::new();
    let g = model
        .generate(
            &req,
            &mut |s| {
                streamed.push_str(s);
                ControlFlow::Continue(())
            },
            &AtomicBool::new(false),
        )
        .unwrap();
    assert!(g.text.contains("Paris"), "{:?}", g.text);
    assert_eq!(streamed, g.text);
    assert!(!g.text.contains("<|im_end|>"), "{:?}", g.text);
}
