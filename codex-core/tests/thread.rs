//! The library API end to end, in-process: threads against the mock model
//! server, and resuming session files written by crashes or by upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use codex_core::config::{Config, ConfigOverrides, LoadOptions};
use codex_core::protocol::{Event, ResponseItem, ThreadItem, UserInput};
use codex_core::{Thread, ThreadOptions, TurnRequest, TurnStatus};
use codex_test_support::{sse, MockModelServer, MockResponse, TestHome};
use serde_json::{json, Value};

fn config(home: &TestHome) -> Config {
    Config::load(LoadOptions {
        codex_home: Some(home.codex_home()),
        cli_overrides: vec![],
        overrides: ConfigOverrides {
            cwd: Some(home.workspace()),
            ..Default::default()
        },
    })
    .unwrap()
}

fn text(t: &str) -> Vec<UserInput> {
    vec![UserInput::Text { text: t.into() }]
}

async fn drain(rx: &mut tokio::sync::mpsc::Receiver<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        out.push(ev);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn reasoning_items_are_reported_and_sent_back() {
    let reasoning = json!({"type": "response.output_item.done", "item": {
        "type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Thinking about it"}],
        "encrypted_content": "opaque"}});
    let mock = MockModelServer::start(vec![
        MockResponse::sse(vec![
            sse::created("r1"),
            reasoning,
            sse::function_call_done("call_1", "exec_command", &json!({"cmd": "true"})),
            sse::completed("r1", 3, 4),
        ]),
        sse::message("done"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config_inline_key(&mock.url(), "");
    let (thread, mut rx) = Thread::start(config(&home), ThreadOptions::new("test", "cli")).unwrap();
    let outcome = thread
        .run_turn(TurnRequest {
            input: text("go"),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(outcome.status, TurnStatus::Completed);
    assert_eq!(outcome.last_agent_message.as_deref(), Some("done"));
    assert_eq!(outcome.usage.input_tokens, 13);
    let events = drain(&mut rx).await;
    let reasoning_done = events.iter().find_map(|e| match e {
        Event::ItemCompleted {
            item: ThreadItem::Reasoning(r),
            ..
        } => Some(r.clone()),
        _ => None,
    });
    assert_eq!(reasoning_done.unwrap().summary, vec!["Thinking about it"]);
    // The reasoning item (with its encrypted content) goes back to the model.
    let second = &mock.model_requests()[1];
    let sent = second
        .input()
        .into_iter()
        .find(|i| i["type"] == "reasoning")
        .unwrap();
    assert_eq!(sent["encrypted_content"], "opaque");
    assert!(events.last().unwrap().is_terminal());
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_closes_an_unfinished_turn() {
    let mock = MockModelServer::start(vec![sse::message("after crash")]).await;
    let home = TestHome::new();
    home.write_config_inline_key(&mock.url(), "");
    // A file whose writer died mid-turn: a call without output, no turn end.
    let id = "0199a213-81c0-7800-8aa1-bbab2a035a53";
    let dir = home.codex_home().join("sessions/2026/01/02");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("rollout-2026-01-02T03-04-05-{id}.jsonl"));
    let lines = [
        json!({"timestamp": "2026-01-02T03:04:05.000Z", "type": "session_meta", "payload": {
            "id": id, "timestamp": "2026-01-02T03:04:05.000Z", "cwd": home.workspace(),
            "originator": "codex_exec", "cli_version": "0.1.0", "source": "exec",
            "model_provider": "mock", "base_instructions": {"text": "be brief"}}}),
        json!({"timestamp": "2026-01-02T03:04:05.100Z", "type": "event_msg", "payload": {"type": "task_started", "turn_id": "t1"}}),
        json!({"timestamp": "2026-01-02T03:04:05.200Z", "type": "response_item", "payload": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "first"}]}}),
        json!({"timestamp": "2026-01-02T03:04:05.300Z", "type": "response_item", "payload": {"type": "function_call", "name": "exec_command", "arguments": "{\"cmd\":\"sleep 100\"}", "call_id": "call_lost"}}),
    ];
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, body).unwrap();

    let (thread, mut rx, loaded) =
        Thread::resume(config(&home), &path, ThreadOptions::new("test", "exec")).unwrap();
    assert_eq!(thread.id(), id);
    assert_eq!(loaded.unfinished_turn_id.as_deref(), Some("t1"));
    let outcome = thread
        .run_turn(TurnRequest {
            input: text("second"),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(outcome.status, TurnStatus::Completed);
    let _ = drain(&mut rx).await;

    let written: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        written[4]["payload"]["type"], "turn_aborted",
        "closed before new lines"
    );
    assert_eq!(written[4]["payload"]["turn_id"], "t1");
    // The model got a valid history: the lost call has an output, and the
    // base instructions come from the file.
    let req = &mock.model_requests()[0];
    let input = req.input();
    assert_eq!(input[0]["content"][0]["text"], "be brief");
    assert!(input
        .iter()
        .any(|i| i["type"] == "function_call_output" && i["call_id"] == "call_lost"));
}

#[tokio::test(flavor = "multi_thread")]
async fn resumes_a_session_written_by_upstream() {
    let mock = MockModelServer::start(vec![sse::message("continuing")]).await;
    let home = TestHome::new();
    home.write_config_inline_key(&mock.url(), "");
    let id = "01a21311-7196-78b1-aea3-749265d267db";
    let path = home.codex_home().join(format!(
        "sessions/2026/11/25/rollout-2026-11-25T10-00-00-{id}.jsonl"
    ));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Line shapes of upstream 0.169.0 (golden/rollout-example.jsonl).
    let lines = [
        json!({"ordinal": 0, "timestamp": "2026-11-25T10:00:00.000Z", "type": "session_meta", "payload": {
            "account_scoped": true, "base_instructions": {"provenance": {"model": "m", "type": "model"}, "text": "upstream prompt"},
            "cli_version": "0.169.0", "context_window": {"window_id": "w"}, "cwd": home.workspace(), "history_mode": "paginated",
            "id": id, "model_provider": "mock", "originator": "codex_conformance", "runtime_workspace_roots": [home.workspace()],
            "session_id": id, "source": "vscode", "timestamp": "2026-11-25T10:00:00.000Z"}}),
        json!({"ordinal": 1, "timestamp": "2026-11-25T10:00:00.100Z", "type": "event_msg", "payload": {"type": "task_started", "turn_id": "t1", "collaboration_mode_kind": "default"}}),
        json!({"ordinal": 2, "timestamp": "2026-11-25T10:00:00.200Z", "type": "world_state", "payload": {"full": true, "state": {}}}),
        json!({"ordinal": 3, "timestamp": "2026-11-25T10:00:00.300Z", "type": "turn_context", "payload": {"approval_policy": "never", "approvals_reviewer": "user", "cwd": home.workspace(), "model": "m", "sandbox_policy": {"type": "read-only"}, "summary": "none", "turn_id": "t1"}}),
        json!({"ordinal": 4, "timestamp": "2026-11-25T10:00:00.400Z", "type": "response_item", "metadata": {"history_sequence": 3}, "payload": {"type": "message", "role": "user", "id": "msg_x", "content": [{"type": "input_text", "text": "hello upstream"}], "internal_chat_message_metadata_passthrough": {"turn_id": "t1"}}}),
        json!({"ordinal": 5, "timestamp": "2026-11-25T10:00:00.500Z", "type": "response_item", "payload": {"type": "message", "role": "assistant", "id": "msg_y", "status": "completed", "content": [{"type": "output_text", "text": "hi from upstream", "annotations": []}]}}),
        json!({"ordinal": 6, "timestamp": "2026-11-25T10:00:00.600Z", "type": "token_usage_record", "payload": {"response_id": "r"}}),
        json!({"ordinal": 7, "timestamp": "2026-11-25T10:00:00.700Z", "type": "event_msg", "payload": {"type": "task_complete", "turn_id": "t1", "last_agent_message": "hi from upstream"}}),
    ];
    std::fs::write(
        &path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let (thread, _rx, loaded) =
        Thread::resume(config(&home), &path, ThreadOptions::new("test", "exec")).unwrap();
    assert!(loaded.unfinished_turn_id.is_none());
    assert_eq!(loaded.skipped_lines, 0);
    let history = thread.history().await;
    assert_eq!(history.len(), 2);
    assert!(matches!(&history[1], ResponseItem::Message { role, .. } if role == "assistant"));
    let outcome = thread
        .run_turn(TurnRequest {
            input: text("and now?"),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(outcome.status, TurnStatus::Completed);
    let texts: Vec<String> = mock.model_requests()[0]
        .input()
        .iter()
        .filter_map(|i| i["content"][0]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        texts,
        [
            "upstream prompt",
            "hello upstream",
            "hi from upstream",
            "and now?"
        ]
    );
}
