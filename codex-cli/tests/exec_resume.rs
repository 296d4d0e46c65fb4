//! Session files: what a turn writes, and resuming from them (including a
//! file whose last line was torn by a crash).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;

use codex_test_support::{sse, MockModelServer, TestHome};
use common::*;
use serde_json::Value;

fn thread_id(run: &Run) -> String {
    run.events()[0]["thread_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_ignores_a_torn_last_line() {
    let mock = MockModelServer::start(vec![
        sse::message("first answer"),
        sse::message("second answer"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let first = exec_json(&home, "first prompt").await;
    assert_eq!(first.code, Some(0), "stderr: {}", first.stderr);
    let id = thread_id(&first);
    let rollouts = home.rollouts();
    assert_eq!(rollouts.len(), 1);
    let path = &rollouts[0];
    assert!(path.to_str().unwrap().ends_with(&format!("-{id}.jsonl")));

    // A crash mid-write leaves half a line and no newline.
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(br#"{"timestamp":"2026-01-01T00:00:00.000Z","type":"response_item","payload":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"TORN"#).unwrap();
    drop(f);

    let second = run(
        &home,
        &[
            "exec",
            "--json",
            "--skip-git-repo-check",
            "resume",
            &id,
            "second prompt",
        ],
    )
    .await;
    assert_eq!(second.code, Some(0), "stderr: {}", second.stderr);
    assert_eq!(thread_id(&second), id, "same thread");
    assert_eq!(
        second.completed_items("agent_message")[0]["text"],
        "second answer"
    );

    // The model saw the whole earlier conversation, and nothing of the torn line.
    let req = &mock.model_requests()[1];
    let texts: Vec<String> = req
        .input()
        .iter()
        .filter_map(|i| i["content"][0]["text"].as_str().map(str::to_string))
        .collect();
    assert!(texts.iter().any(|t| t == "first prompt"), "{texts:?}");
    assert!(texts.iter().any(|t| t == "first answer"), "{texts:?}");
    assert_eq!(texts.last().unwrap(), "second prompt");
    assert!(!texts.iter().any(|t| t.contains("TORN")));

    // Still one file; the torn bytes stay on their own line, new lines parse.
    assert_eq!(home.rollouts().len(), 1);
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let bad: Vec<&&str> = lines
        .iter()
        .filter(|l| serde_json::from_str::<Value>(l).is_err())
        .collect();
    assert_eq!(bad.len(), 1, "only the torn line is unparsable");
    assert!(bad[0].contains("TORN"));
    assert!(text.ends_with('\n'));
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["payload"]["type"], "task_complete");
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_last_picks_the_newest_session_in_this_directory() {
    let mock = MockModelServer::start(vec![
        sse::message("one"),
        sse::message("two"),
        sse::message("three"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let _a = exec_json(&home, "first thread").await;
    let b = exec_json(&home, "second thread").await;
    let resumed = run(
        &home,
        &[
            "exec",
            "--json",
            "--skip-git-repo-check",
            "resume",
            "--last",
            "again",
        ],
    )
    .await;
    assert_eq!(resumed.code, Some(0), "stderr: {}", resumed.stderr);
    assert_eq!(thread_id(&resumed), thread_id(&b));
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_unknown_id_is_a_clear_error() {
    let home = TestHome::new();
    home.write_config("http://127.0.0.1:9/v1", "");
    let run = run(
        &home,
        &[
            "exec",
            "--skip-git-repo-check",
            "resume",
            "0199a213-81c0-7800-8aa1-bbab2a035a53",
            "hi",
        ],
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("no saved session found"),
        "{}",
        run.stderr
    );
}

/// The file written for upstream's scenario b (one `echo hello` call) has the
/// line types and key fields of `conformance/golden/rollout-example.jsonl`.
#[tokio::test(flavor = "multi_thread")]
async fn session_file_matches_upstream_shape() {
    let mock = MockModelServer::start(vec![
        sse::exec_command("call_echo_1", "echo hello"),
        sse::message("The command printed: hello"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let run = exec_json(&home, "Run echo hello and tell me what it printed.").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let lines = rollout_lines(&home.rollouts()[0]);
    for l in &lines {
        assert!(l["timestamp"].as_str().unwrap().ends_with('Z'), "{l}");
        assert!(l["type"].is_string() && l["payload"].is_object(), "{l}");
    }
    // (line type, payload type) in upstream's order, minus the line types only
    // newer upstream writes (world_state, token_usage_record,
    // thread_settings_applied); ours may have more lines in between.
    let golden: &[(&str, &str)] = &[
        ("session_meta", ""),
        ("event_msg", "task_started"),
        ("response_item", "message"),
        ("response_item", "message"),
        ("turn_context", ""),
        ("response_item", "message"),
        ("event_msg", "item_completed"),
        ("response_item", "function_call"),
        ("event_msg", "item_completed"),
        ("response_item", "function_call_output"),
        ("event_msg", "token_count"),
        ("event_msg", "item_completed"),
        ("response_item", "message"),
        ("event_msg", "token_count"),
        ("event_msg", "task_complete"),
    ];
    let ours: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["type"].as_str().unwrap().to_string(),
                l["payload"]["type"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut it = ours.iter();
    for (t, p) in golden {
        let want_payload = if *t == "session_meta" || *t == "turn_context" {
            ""
        } else {
            p
        };
        assert!(
            it.any(|(ot, op)| ot == t && (want_payload.is_empty() || op == want_payload)),
            "missing ({t}, {p}) in order; ours: {ours:?}"
        );
    }
    let meta = &lines[0]["payload"];
    for key in [
        "id",
        "timestamp",
        "cwd",
        "originator",
        "cli_version",
        "source",
        "model_provider",
    ] {
        assert!(!meta[key].is_null(), "session_meta.{key}");
    }
    assert!(meta["base_instructions"]["text"].as_str().unwrap().len() > 100);
    assert_eq!(meta["source"], "exec");
    assert_eq!(meta["id"], run.events()[0]["thread_id"]);
    let ctx = lines.iter().find(|l| l["type"] == "turn_context").unwrap();
    for key in [
        "cwd",
        "approval_policy",
        "sandbox_policy",
        "model",
        "turn_id",
    ] {
        assert!(!ctx["payload"][key].is_null(), "turn_context.{key}");
    }
    assert_eq!(ctx["payload"]["sandbox_policy"]["type"], "workspace-write");
    let call = lines
        .iter()
        .find(|l| l["payload"]["type"] == "function_call")
        .unwrap();
    assert_eq!(call["payload"]["name"], "exec_command");
    assert_eq!(call["payload"]["call_id"], "call_echo_1");
    let out = lines
        .iter()
        .find(|l| l["payload"]["type"] == "function_call_output")
        .unwrap();
    assert!(out["payload"]["output"]
        .as_str()
        .unwrap()
        .contains("Process exited with code 0"));
    let done = lines.last().unwrap();
    assert_eq!(done["payload"]["type"], "task_complete");
    assert_eq!(
        done["payload"]["last_agent_message"],
        "The command printed: hello"
    );
}
