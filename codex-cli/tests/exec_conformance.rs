//! Differential check against upstream: the normalized `codex exec --json`
//! event streams of conformance scenarios `a_plain` and `b_shell_echo`, as
//! recorded from upstream `@openai/codex` 0.169.0 (`conformance/golden/`),
//! must equal ours for the same scripted model. Ids are normalized the way the
//! harness does (`<uuid:N>` by first appearance).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use codex_test_support::{sse, MockModelServer, MockResponse, TestHome};
use common::*;
use serde_json::Value;

const GOLDEN_A_PLAIN: &str = r#"{"thread_id": "<uuid:1>", "type": "thread.started"}
{"item": {"id": "item_0", "message": "Model metadata for `mock-model` not found. Defaulting to fallback metadata; this can degrade performance and cause issues.", "type": "error"}, "type": "item.completed"}
{"type": "turn.started"}
{"item": {"id": "item_1", "text": "Hello from the mock model.", "type": "agent_message"}, "type": "item.completed"}
{"type": "turn.completed", "usage": {"cache_write_input_tokens": 0, "cached_input_tokens": 0, "input_tokens": 10, "output_tokens": 5, "reasoning_output_tokens": 0}}"#;

const GOLDEN_B_SHELL_ECHO: &str = r#"{"thread_id": "<uuid:1>", "type": "thread.started"}
{"item": {"id": "item_0", "message": "Model metadata for `mock-model` not found. Defaulting to fallback metadata; this can degrade performance and cause issues.", "type": "error"}, "type": "item.completed"}
{"type": "turn.started"}
{"item": {"aggregated_output": "", "command": "/bin/bash -lc 'echo hello'", "exit_code": null, "id": "item_1", "status": "in_progress", "type": "command_execution"}, "type": "item.started"}
{"item": {"aggregated_output": "hello\n", "command": "/bin/bash -lc 'echo hello'", "exit_code": 0, "id": "item_1", "status": "completed", "type": "command_execution"}, "type": "item.completed"}
{"item": {"id": "item_2", "text": "The command printed: hello", "type": "agent_message"}, "type": "item.completed"}
{"type": "turn.completed", "usage": {"cache_write_input_tokens": 0, "cached_input_tokens": 0, "input_tokens": 20, "output_tokens": 10, "reasoning_output_tokens": 0}}"#;

fn normalize(events: Vec<Value>) -> Vec<Value> {
    let mut uuids: Vec<String> = Vec::new();
    events
        .into_iter()
        .map(|mut e| {
            if let Some(id) = e["thread_id"].as_str().map(str::to_string) {
                if !uuids.contains(&id) {
                    uuids.push(id.clone());
                }
                let n = uuids.iter().position(|u| *u == id).unwrap() + 1;
                e["thread_id"] = Value::String(format!("<uuid:{n}>"));
            }
            e
        })
        .collect()
}

fn golden(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn scenario(script: Vec<MockResponse>, prompt: &str, flag: &str) -> Vec<Value> {
    let mock = MockModelServer::start(script).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let run = run(&home, &["exec", flag, "--skip-git-repo-check", prompt]).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    normalize(run.events())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_matches_upstream() {
    let ours = scenario(
        vec![MockResponse::sse(sse::message_events(
            "resp_1",
            "Hello from the mock model.",
            3,
        ))],
        "Say hello.",
        "--json",
    )
    .await;
    assert_eq!(ours, golden(GOLDEN_A_PLAIN));
}

#[tokio::test(flavor = "multi_thread")]
async fn b_shell_echo_matches_upstream() {
    for flag in ["--json", "--experimental-json"] {
        let ours = scenario(
            vec![
                sse::exec_command("call_echo_1", "echo hello"),
                MockResponse::sse(sse::message_events(
                    "resp_2",
                    "The command printed: hello",
                    2,
                )),
            ],
            "Run echo hello and tell me what it printed.",
            flag,
        )
        .await;
        assert_eq!(ours, golden(GOLDEN_B_SHELL_ECHO), "{flag}");
    }
}
