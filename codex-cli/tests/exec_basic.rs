//! `codex exec` end to end against the mock model: plain answers, human and
//! JSON output, prompts from stdin, output files, errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use codex_test_support::{sse, MockModelServer, MockResponse, TestHome};
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn plain_answer_as_json() {
    let mock = MockModelServer::start(vec![sse::message("Hello from the mock model.")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let run = exec_json(&home, "Say hello.").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(
        run.event_types(),
        [
            "thread.started",
            "item.completed",
            "turn.started",
            "item.completed",
            "turn.completed"
        ]
    );
    let events = run.events();
    assert_eq!(
        events[1]["item"]["type"], "error",
        "unknown-model warning item"
    );
    assert_eq!(
        events[3]["item"],
        json!({"id": "item_1", "type": "agent_message", "text": "Hello from the mock model."})
    );
    assert_eq!(events[4]["usage"]["input_tokens"], 10);

    let reqs = mock.model_requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/v1/responses");
    assert_eq!(r.header("authorization"), Some("Bearer sk-mock-test"));
    assert_eq!(r.header("originator"), Some("codex_exec"));
    assert_eq!(r.body["model"], "mock-model");
    assert_eq!(r.body["stream"], true);
    let input = r.input();
    assert_eq!(input[0]["role"], "developer", "base instructions first");
    let last = input.last().unwrap();
    assert_eq!(last["role"], "user");
    assert_eq!(last["content"][0]["text"], "Say hello.");
    let tools: Vec<&str> = r.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["exec_command", "apply_patch", "update_plan"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_answer_for_humans_goes_to_stdout() {
    let mock = MockModelServer::start(vec![sse::message("The answer is 42.")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let run = run(&home, &["exec", "--skip-git-repo-check", "question"]).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(run.stdout.trim(), "The answer is 42.");
    assert!(
        run.stderr.contains("session"),
        "header on stderr: {}",
        run.stderr
    );
    assert!(run.stderr.contains("tokens used"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn prompt_from_stdin_and_last_message_file() {
    let mock = MockModelServer::start(vec![sse::message("from stdin")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let out_file = home.root().join("last.txt");
    let run = run_with_stdin(
        &home,
        &[
            "exec",
            "--experimental-json",
            "--skip-git-repo-check",
            "-o",
            out_file.to_str().unwrap(),
        ],
        "prompt via stdin\n",
    )
    .await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "from stdin");
    let input = mock.model_requests()[0].input();
    assert_eq!(
        input.last().unwrap()["content"][0]["text"],
        "prompt via stdin"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn output_schema_is_sent() {
    let mock = MockModelServer::start(vec![sse::message("{\"ok\":true}")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let schema = home.root().join("schema.json");
    std::fs::write(
        &schema,
        r#"{"type":"object","properties":{"ok":{"type":"boolean"}}}"#,
    )
    .unwrap();
    let run = run(
        &home,
        &[
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--output-schema",
            schema.to_str().unwrap(),
            "go",
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let body = &mock.model_requests()[0].body;
    assert_eq!(body["text"]["format"]["type"], "json_schema");
    assert_eq!(
        body["text"]["format"]["schema"]["properties"]["ok"]["type"],
        "boolean"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn flags_override_config() {
    let mock = MockModelServer::start(vec![sse::message("ok")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let run = run(
        &home,
        &[
            "exec",
            "--json",
            "--skip-git-repo-check",
            "-m",
            "other-model",
            "-c",
            "model_reasoning_effort=\"high\"",
            "-s",
            "read-only",
            "go",
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let body = &mock.model_requests()[0].body;
    assert_eq!(body["model"], "other-model");
    assert_eq!(body["reasoning"]["effort"], "high");
    let env_ctx = body["input"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|i| {
            let t = i["content"][0]["text"].as_str()?;
            t.starts_with("<environment_context>")
                .then(|| t.to_string())
        })
        .unwrap();
    assert!(
        env_ctx.contains("<sandbox_mode>read-only</sandbox_mode>"),
        "{env_ctx}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_outside_git_repo_without_flag() {
    let home = TestHome::new();
    home.write_config("http://127.0.0.1:9/v1", "");
    let run = run(&home, &["exec", "hi"]).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("--skip-git-repo-check"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_config_names_file_and_key() {
    let home = TestHome::new();
    std::fs::write(
        home.codex_home().join("config.toml"),
        "approval_policy = \"sometimes\"\n",
    )
    .unwrap();
    let run = run(&home, &["exec", "--skip-git-repo-check", "hi"]).await;
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("config.toml"), "{}", run.stderr);
    assert!(run.stderr.contains("approval_policy"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn model_error_fails_the_turn_with_exit_code() {
    let mock = MockModelServer::start(vec![MockResponse::http_error(
        400,
        json!({"error": {"message": "model `nope` does not exist"}}),
    )])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let run = exec_json(&home, "hi").await;
    assert_eq!(run.code, Some(1), "stderr: {}", run.stderr);
    let events = run.events();
    let failed = events
        .iter()
        .find(|e| e["type"] == "turn.failed")
        .expect("turn.failed");
    let msg = failed["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("400") && msg.contains("does not exist"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_api_key_is_a_clear_error() {
    let home = TestHome::new();
    home.write_config("http://example.invalid/v1", "");
    let mut cmd = command(&home, &["exec", "--skip-git-repo-check", "hi"]);
    cmd.env_remove("MOCK_API_KEY");
    let run = run_cmd(cmd, None).await;
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("MOCK_API_KEY"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_completions_provider() {
    let mock = MockModelServer::start(vec![sse::chat_message("Hi from a local model")]).await;
    let home = TestHome::new();
    std::fs::write(
        home.codex_home().join("config.toml"),
        format!(
            "model = \"llama3\"\nmodel_provider = \"local\"\n[model_providers.local]\nname = \"Local\"\nbase_url = \"{}\"\nwire_api = \"chat\"\n",
            mock.url()
        ),
    )
    .unwrap();
    let run = exec_json(&home, "hello").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let msgs = run.completed_items("agent_message");
    assert_eq!(msgs[0]["text"], "Hi from a local model");
    let req = &mock.model_requests()[0];
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.body["messages"][0]["role"], "system");
    assert!(
        req.header("authorization").is_none(),
        "no key for a local server"
    );
    let done = run
        .events()
        .into_iter()
        .find(|e| e["type"] == "turn.completed")
        .unwrap();
    assert_eq!(done["usage"]["input_tokens"], 7);
}
