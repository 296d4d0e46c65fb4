//! Local generation through the real processes: codexd relays a
//! `Generate` (`codexd/memory`) to codex-memory, which runs it on the model
//! `[memories] extract_model` names (a GGUF, relative to `$CODEX_HOME`).
//! Without a model, or without the `local-llm` feature, the error names
//! the key or the feature. With `[memories] score_model`, codex-memory
//! scores new memories in the background. Every wait has a generous
//! deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use codex_test_support::TestHome;
use common::app_server::{Client, SocketServer, WAIT};
use serde_json::{json, Value};

fn home_with(memories: &str) -> TestHome {
    let home = TestHome::new();
    std::fs::write(
        home.codex_home().join("config.toml"),
        format!("[features]\nmemories = true\n\n[memories]\n{memories}"),
    )
    .unwrap();
    home
}

fn generate(purpose: &str, grammar: Option<&str>) -> Value {
    json!({"op": "generate", "request": {
        "purpose": purpose,
        "system": "Answer yes or no.",
        "user": "Is water wet?",
        "max_tokens": 8,
        "grammar": grammar,
    }})
}

/// The `codexd/memory` answer: `Ok(result)` or `Err(error message)`.
async fn ask(c: &mut Client, request: Value) -> Result<Value, String> {
    let id = c.request("codexd/memory", request).await;
    let r = c.response(id).await;
    match r.get("error") {
        Some(e) => Err(e["message"].as_str().unwrap_or_default().to_string()),
        None => Ok(r["result"].clone()),
    }
}

/// codex-memory's warnings once it runs (`codexd/status`).
async fn memory_warnings(c: &mut Client) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let st = c.status().await;
        let m = &st["memory"];
        if m["state"] == "running" && m["dbPath"].is_string() {
            return m["warnings"]
                .as_array()
                .map(|w| {
                    w.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
        }
        assert!(Instant::now() < deadline, "codex-memory not running: {st}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_model_generate_names_the_key() {
    let home = home_with("extract_model = \"gpt-5.1-codex-mini\"\n");
    let server = SocketServer::start(&home).await;
    let mut c = server.client("gen").await;
    memory_warnings(&mut c).await;
    let e = ask(&mut c, generate("extract", None)).await.unwrap_err();
    assert!(e.contains("memories.extract_model"), "{e}");
    assert!(e.contains("no local generation model"), "{e}");
    let e = ask(&mut c, generate("shape", None)).await.unwrap_err();
    assert!(e.contains("context_shaping.model"), "{e}");
}

fn remember(text: &str) -> Value {
    json!({"op": "remember", "text": text})
}

/// `op: list`'s memories.
async fn list(c: &mut Client) -> Vec<Value> {
    let r = ask(c, json!({"op": "list", "limit": 50})).await.unwrap();
    r["memories"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_score_model_nothing_is_scored_and_nothing_warns() {
    let home = home_with("");
    let server = SocketServer::start(&home).await;
    let mut c = server.client("score").await;
    assert!(memory_warnings(&mut c).await.is_empty());
    ask(&mut c, remember("prefers tabs over spaces"))
        .await
        .unwrap();
    let memories = list(&mut c).await;
    assert_eq!(memories.len(), 1, "{memories:?}");
    assert_eq!(memories[0]["score"], 0.0, "{memories:?}");
    let st = c.status().await;
    assert_eq!(st["memory"]["scored"], 0, "{st}");
    assert!(memory_warnings(&mut c).await.is_empty());
}

#[cfg(not(feature = "local-llm"))]
#[tokio::test(flavor = "multi_thread")]
async fn without_the_feature_a_score_model_is_a_warning() {
    let home = home_with("score_model = \"models/any.gguf\"\n");
    let server = SocketServer::start(&home).await;
    let mut c = server.client("score").await;
    let warnings = memory_warnings(&mut c).await;
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("memories.score_model") && w.contains("--features local-llm")),
        "{warnings:?}"
    );
}

#[cfg(not(feature = "local-llm"))]
#[tokio::test(flavor = "multi_thread")]
async fn without_the_feature_a_gguf_model_says_how_to_get_it() {
    let home = home_with("extract_model = \"models/any.gguf\"\n");
    let server = SocketServer::start(&home).await;
    let mut c = server.client("gen").await;
    let warnings = memory_warnings(&mut c).await;
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("memories.extract_model") && w.contains("--features local-llm")),
        "{warnings:?}"
    );
    let e = ask(&mut c, generate("extract", None)).await.unwrap_err();
    assert!(e.contains("memories.extract_model"), "{e}");
    assert!(e.contains("--features local-llm"), "{e}");
}

#[cfg(feature = "local-llm")]
mod with_the_feature {
    use super::*;
    use codex_local::testing::write_tiny_llama;

    #[tokio::test(flavor = "multi_thread")]
    async fn codex_memory_answers_generate_on_the_configured_model() {
        let home = home_with("extract_model = \"models/tiny.gguf\"\n");
        let models = home.codex_home().join("models");
        std::fs::create_dir_all(&models).unwrap();
        write_tiny_llama(&models.join("tiny.gguf"), 42).unwrap();
        let server = SocketServer::start(&home).await;
        let mut c = server.client("gen").await;
        let warnings = memory_warnings(&mut c).await;
        assert!(warnings.is_empty(), "{warnings:?}");
        // The random weights say something; the grammar decides what.
        let r = ask(
            &mut c,
            generate("extract", Some(r#"root ::= "yes" | "no""#)),
        )
        .await
        .unwrap();
        let text = r["generated"]["text"].as_str().unwrap();
        assert!(text == "yes" || text == "no", "{r}");
        // The model is loaded once and serves the next request too.
        let r = ask(&mut c, generate("extract", Some(r#"root ::= "ok""#)))
            .await
            .unwrap();
        assert_eq!(r["generated"]["text"], "ok", "{r}");
        // Shaping has no model of its own here.
        let e = ask(&mut c, generate("shape", None)).await.unwrap_err();
        assert!(e.contains("context_shaping.model"), "{e}");
        // A bad grammar fails that request only.
        let e = ask(&mut c, generate("extract", Some("root ::= (")))
            .await
            .unwrap_err();
        assert!(e.contains("grammar"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_remembered_note_is_scored_in_the_background() {
        let home = home_with("score_model = \"models/tiny.gguf\"\n");
        let models = home.codex_home().join("models");
        std::fs::create_dir_all(&models).unwrap();
        write_tiny_llama(&models.join("tiny.gguf"), 7).unwrap();
        let server = SocketServer::start(&home).await;
        let mut c = server.client("score").await;
        let warnings = memory_warnings(&mut c).await;
        assert!(warnings.is_empty(), "{warnings:?}");
        ask(&mut c, remember("prefers tabs")).await.unwrap();
        // The scorer looks every 10 s; the random weights answer some digit.
        let deadline = Instant::now() + Duration::from_secs(180);
        let score = loop {
            let memories = list(&mut c).await;
            let score = memories[0]["score"].as_f64().unwrap();
            if score > 0.0 {
                break score;
            }
            assert!(Instant::now() < deadline, "never scored: {memories:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert!((0.1..=1.0).contains(&score), "{score}");
        // The status counts it (reported after the batch).
        let deadline = Instant::now() + WAIT;
        loop {
            let st = c.status().await;
            if st["memory"]["scored"] == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "scored not reported: {st}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(memory_warnings(&mut c).await.is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_missing_model_file_is_a_status_warning_naming_the_key() {
        let home = home_with("extract_model = \"models/absent.gguf\"\n");
        let server = SocketServer::start(&home).await;
        let mut c = server.client("gen").await;
        let warnings = memory_warnings(&mut c).await;
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("memories.extract_model") && w.contains("absent.gguf")),
            "{warnings:?}"
        );
        let e = ask(&mut c, generate("extract", None)).await.unwrap_err();
        assert!(
            e.contains("memories.extract_model") && e.contains("does not exist"),
            "{e}"
        );
    }
}
