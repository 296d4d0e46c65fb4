//! The embedded `local` provider: `codex exec --local` runs a whole turn on
//! SmolLM2 in-process, with no server and no network (`OPENAI_BASE_URL`
//! points at a closed port), through the same events as a remote model.
//! Needs the `local-llm` feature and `scripts/fetch-models`; without the
//! feature, the clear "rebuild" error is what is tested.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use codex_test_support::TestHome;
use common::*;

const QUESTION: &str = "What is the capital of France?";

#[cfg(not(feature = "local-llm"))]
#[tokio::test(flavor = "multi_thread")]
async fn without_the_feature_local_says_how_to_get_it() {
    let home = TestHome::new();
    let run = run(
        &home,
        &["exec", "--local", "--skip-git-repo-check", QUESTION],
    )
    .await;
    assert_eq!(run.code, Some(1), "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("--features local-llm"),
        "{}",
        run.stderr
    );
}

#[cfg(feature = "local-llm")]
mod with_the_feature {
    use super::*;
    use codex_local::testing::{real_model, SMOLLM2_FILE};
    use common::app_server::StdioServer;
    use serde_json::{json, Value};

    /// Nothing listens on the discard port: any network use fails loudly.
    const CLOSED: &str = "http://127.0.0.1:9/v1";

    fn offline(home: &TestHome, args: &[&str]) -> tokio::process::Command {
        let mut cmd = command(home, args);
        cmd.env("OPENAI_BASE_URL", CLOSED)
            .env("CODEX_EXEC_NO_DAEMON", "1");
        cmd
    }

    /// `[memories] embedding_model` with MiniLM: notes are embedded as they
    /// are remembered, and recall finds one that shares no word with the
    /// query (BM25 alone cannot).
    #[tokio::test(flavor = "multi_thread")]
    async fn memory_recall_finds_a_note_by_meaning_with_minilm() {
        use codex_local::testing::MINILM_FILE;
        let Some(model) = real_model(MINILM_FILE) else {
            return;
        };
        let home = TestHome::new();
        std::fs::write(
            home.codex_home().join("config.toml"),
            format!(
                "[features]\nmemories = true\n\n[memories]\nembedding_model = {:?}\n",
                model.display().to_string()
            ),
        )
        .unwrap();
        for note in [
            "The user prefers tabs over spaces when indenting code.",
            "Deploys go through the staging cluster before production.",
        ] {
            let r = run(&home, &["memory", "add", note]).await;
            assert_eq!(r.code, Some(0), "{}", r.stderr);
        }
        let status = run(&home, &["memory", "status", "--json"]).await;
        let v: Value = serde_json::from_str(&status.stdout).unwrap();
        assert_eq!(v["status"]["embedder"], true, "{}", status.stdout);
        assert_eq!(v["status"]["vectors"], 2, "{}", status.stdout);
        let r = run(
            &home,
            &[
                "memory",
                "search",
                "--json",
                "whitespace style in source files",
            ],
        )
        .await;
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        let first = v["memories"][0]["text"].as_str().unwrap_or_default();
        assert!(first.contains("tabs"), "{}", r.stdout);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn exec_local_json_answers_offline() {
        let Some(model) = real_model(SMOLLM2_FILE) else {
            return;
        };
        let home = TestHome::new();
        let m = model.display().to_string();
        let args = [
            "exec",
            "--local",
            "-m",
            &m,
            "--json",
            "--skip-git-repo-check",
            QUESTION,
        ];
        let run = run_cmd(offline(&home, &args), None).await;
        assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
        assert_eq!(
            run.event_types(),
            [
                "thread.started",
                "turn.started",
                "item.completed",
                "turn.completed"
            ],
            "stdout: {}",
            run.stdout
        );
        let answer = &run.completed_items("agent_message")[0]["text"];
        assert!(answer.as_str().unwrap().contains("Paris"), "{answer}");
        let events = run.events();
        let usage = &events[3]["usage"];
        assert!(usage["input_tokens"].as_u64().unwrap() > 10, "{usage}");
        assert!(usage["output_tokens"].as_u64().unwrap() > 0, "{usage}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn exec_local_for_humans() {
        let Some(model) = real_model(SMOLLM2_FILE) else {
            return;
        };
        let home = TestHome::new();
        let m = model.display().to_string();
        let args = [
            "exec",
            "--local",
            "-m",
            &m,
            "--skip-git-repo-check",
            QUESTION,
        ];
        let run = run_cmd(offline(&home, &args), None).await;
        assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
        assert!(run.stdout.contains("Paris"), "stdout: {}", run.stdout);
        assert!(
            run.stderr.contains("SmolLM2"),
            "header names the model: {}",
            run.stderr
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_missing_model_names_the_file_and_the_script() {
        let home = TestHome::new();
        let args = [
            "exec",
            "--local",
            "-m",
            "/nonexistent/model.gguf",
            "--skip-git-repo-check",
            QUESTION,
        ];
        let run = run_cmd(offline(&home, &args), None).await;
        assert_eq!(run.code, Some(1), "stderr: {}", run.stderr);
        assert!(
            run.stderr.contains("/nonexistent/model.gguf"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("scripts/fetch-models"),
            "{}",
            run.stderr
        );
    }

    /// The provider as configured, through the app server: the answer
    /// streams as `item/agentMessage/delta`s that add up to the message.
    #[tokio::test(flavor = "multi_thread")]
    async fn configured_provider_streams_deltas_through_the_app_server() {
        let Some(model) = real_model(SMOLLM2_FILE) else {
            return;
        };
        let home = TestHome::new();
        std::fs::write(
            home.codex_home().join("config.toml"),
            format!(
                "model_provider = \"local\"\nlocal_model_path = {}\napproval_policy = \"never\"\n",
                Value::from(model.display().to_string())
            ),
        )
        .unwrap();
        let mut cmd = common::app_server::app_server_command(&home, &[]);
        cmd.env("OPENAI_BASE_URL", CLOSED)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut server = StdioServer::from_command(cmd);
        let c = &mut server.client;
        c.initialize("local-test").await;
        let started = c.call("thread/start", json!({})).await;
        assert_eq!(started["modelProvider"], "local", "{started}");
        let thread_id = started["thread"]["id"].as_str().unwrap().to_string();
        c.start_turn(&thread_id, QUESTION).await;
        let done = c.turn_completed(&thread_id).await;
        assert_eq!(done["params"]["turn"]["status"], "completed", "{done}");
        let deltas: String = c
            .seen_method("item/agentMessage/delta")
            .iter()
            .map(|d| {
                d["params"]["delta"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        let message = c
            .seen_method("item/completed")
            .into_iter()
            .find(|n| n["params"]["item"]["type"] == "agentMessage")
            .expect("an agent message");
        let text = message["params"]["item"]["text"].as_str().unwrap();
        assert!(text.contains("Paris"), "{text}");
        assert_eq!(deltas, text, "the deltas add up to the message");
    }
}
