//! Local generation through the real processes: codexd relays a
//! `Generate` (`codexd/memory`) to codex-memory, which runs it on the model
//! `[memories] extract_model` names (a GGUF, relative to `$CODEX_HOME`).
//! Without a model, or without the `local-llm` feature, the error names
//! the key or the feature. Every wait has a generous deadline.
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
