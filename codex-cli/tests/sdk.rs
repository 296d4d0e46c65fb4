//! The official TypeScript SDK (`@openai/codex-sdk`) drives our binary via
//! `codexPathOverride`, receives the turn's items, and resumes the thread.
//!
//! Needs `node` and `npm ci --omit=optional` in `tests/sdk` (the README's
//! test command does both). Without them the test reports a skip, unless
//! `CODEX_REQUIRE_SDK=1` (set by `scripts/test`), which makes it fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use codex_test_support::{sse, MockModelServer, TestHome};
use common::*;
use serde_json::Value;

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/sdk")
}

fn sdk_available() -> bool {
    let have_node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let have_pkg = sdk_dir()
        .join("node_modules/@openai/codex-sdk/package.json")
        .exists();
    if have_node && have_pkg {
        return true;
    }
    let msg = format!(
        "TypeScript SDK test needs node and `npm ci --omit=optional` in {} (node: {have_node}, package: {have_pkg})",
        sdk_dir().display()
    );
    if std::env::var("CODEX_REQUIRE_SDK").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn typescript_sdk_runs_a_turn_with_a_command() {
    if !sdk_available() {
        return;
    }
    let mock = MockModelServer::start(vec![
        sse::exec_command("call_echo_1", "echo hello"),
        sse::message("The command printed: hello"),
        sse::message("Still here."),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(sdk_dir().join("run_turn.mjs"))
        .args(["--codex", CODEX, "--cwd"])
        .arg(home.workspace())
        .args(["--prompt", "Run echo hello and tell me what it printed."])
        .args(["--resume-prompt", "Are you still there?"])
        .current_dir(sdk_dir())
        .env("CODEX_HOME", home.codex_home())
        .env("HOME", home.home())
        .env("MOCK_API_KEY", "sk-mock-test")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let run = run_cmd(cmd, None).await;
    assert_eq!(
        run.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = lines
        .iter()
        .filter(|l| l["turn"] == 1)
        .filter_map(|l| l["event"]["type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "thread.started",
            "item.completed",
            "turn.started",
            "item.started",
            "item.completed",
            "item.completed",
            "turn.completed"
        ]
    );
    let summary = &lines.last().unwrap()["summary"];
    let first = &summary["first"];
    assert_eq!(first["ok"], true);
    assert_eq!(first["thread_id"], lines[0]["event"]["thread_id"]);
    let items = first["items"].as_array().unwrap();
    let cmd = items
        .iter()
        .find(|i| i["type"] == "command_execution")
        .unwrap();
    assert_eq!(cmd["command"], "/bin/bash -lc 'echo hello'");
    assert_eq!(cmd["exit_code"], 0);
    assert_eq!(cmd["aggregated_output"], "hello\n");
    let msg = items.iter().find(|i| i["type"] == "agent_message").unwrap();
    assert_eq!(msg["text"], "The command printed: hello");
    // The SDK identifies itself to the model as the originator.
    assert_eq!(
        mock.model_requests()[0].header("originator"),
        Some("codex_sdk_ts")
    );
}
