//! Interrupting a turn (Ctrl-C / SIGINT) and the per-turn deadline: the turn
//! ends promptly, is recorded as aborted, and leaves no process behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use codex_test_support::{procs, sse, MockModelServer, TestHome};
use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Runs `exec --json`, sends SIGINT once a stdout line satisfies `when`.
async fn run_and_interrupt(
    home: &TestHome,
    when: impl Fn(&Value) -> bool,
) -> (Option<i32>, Vec<Value>) {
    let mut child = command(home, &["exec", "--json", "--skip-git-repo-check", "go"])
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut events = Vec::new();
    let mut sent = false;
    let collect = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let v: Value = serde_json::from_str(&line).unwrap();
            if !sent && when(&v) {
                sent = true;
                std::process::Command::new("kill")
                    .args(["-INT", &pid.to_string()])
                    .status()
                    .unwrap();
            }
            events.push(v);
        }
    };
    tokio::time::timeout(DEADLINE, collect)
        .await
        .expect("stdout closed");
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    (status.code(), events)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_during_a_stalled_stream_aborts_the_turn() {
    let mock =
        MockModelServer::start(vec![sse::stall_after_partial("This answer will never ")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    // Long idle timeout: only the interrupt can end this turn.
    // Only an interrupt (or the turn deadline) can end this turn.
    home.set_stream_idle_timeout_ms(600_000);
    let (code, events) = run_and_interrupt(&home, |v| v["type"] == "turn.started").await;
    assert_eq!(code, Some(130), "{events:?}");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "turn.failed");
    assert_eq!(last["error"]["message"], "turn interrupted");
    let lines = rollout_lines(&home.rollouts()[0]);
    assert_eq!(lines.last().unwrap()["payload"]["type"], "turn_aborted");
    assert_eq!(lines.last().unwrap()["payload"]["reason"], "interrupted");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_during_a_command_kills_it() {
    let marker = "1000.4714";
    let mock = MockModelServer::start(vec![sse::exec_command(
        "call_s",
        &format!("sleep {marker}"),
    )])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let (code, events) = run_and_interrupt(&home, |v| {
        v["type"] == "item.started" && v["item"]["type"] == "command_execution"
    })
    .await;
    let left = procs::wait_none_matching(marker, Duration::from_secs(10));
    procs::kill_matching(marker);
    assert_eq!(code, Some(130), "{events:?}");
    assert!(left.is_empty(), "command survived the interrupt: {left:?}");
    // The history stays valid for a resume: the call got an output.
    let lines = rollout_lines(&home.rollouts()[0]);
    assert!(lines
        .iter()
        .any(|l| l["payload"]["type"] == "function_call_output"
            && l["payload"]["call_id"] == "call_s"));
}

#[tokio::test(flavor = "multi_thread")]
async fn turn_deadline_fails_the_turn() {
    let mock = MockModelServer::start(vec![sse::stall_after_partial("slow ")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "turn_timeout_ms = 1000");
    // Only an interrupt (or the turn deadline) can end this turn.
    home.set_stream_idle_timeout_ms(600_000);
    let run = exec_json(&home, "go").await;
    assert_eq!(run.code, Some(1), "stderr: {}", run.stderr);
    let failed = run
        .events()
        .into_iter()
        .find(|e| e["type"] == "turn.failed")
        .unwrap();
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{failed}"
    );
}
