//! Tool calls through the real binary: command output goes back to the
//! model, patches edit files (or change nothing when malformed), plans show
//! up as to-do lists, and commands leave no process behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use codex_test_support::{procs, sse, MockModelServer, MockResponse, TestHome};
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn exec_command_output_goes_back_to_the_model() {
    let mock = MockModelServer::start(vec![
        sse::exec_command("call_echo_1", "echo hello; echo oops >&2; exit 3"),
        sse::message("The command printed: hello"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let run = exec_json(&home, "Run it.").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let cmd = &run.completed_items("command_execution")[0];
    assert_eq!(
        cmd["command"],
        "/bin/bash -lc 'echo hello; echo oops >&2; exit 3'"
    );
    assert_eq!(cmd["exit_code"], 3);
    assert_eq!(cmd["status"], "failed");
    // stdout and stderr interleave in the order they were written.
    assert_eq!(cmd["aggregated_output"], "hello\noops\n");

    let reqs = mock.model_requests();
    assert_eq!(reqs.len(), 2);
    let output = reqs[1]
        .function_output("call_echo_1")
        .expect("function_call_output");
    assert!(output.starts_with("Chunk ID: "), "{output}");
    assert!(output.contains("\nWall time: "), "{output}");
    assert!(
        output.contains("\nProcess exited with code 3\n"),
        "{output}"
    );
    assert!(output.ends_with("\nOutput:\nhello\noops\n"), "{output}");
    // The call itself is in the second request's history.
    let call = reqs[1]
        .input()
        .into_iter()
        .find(|i| i["type"] == "function_call")
        .unwrap();
    assert_eq!(call["call_id"], "call_echo_1");
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_patch_edits_a_file() {
    let patch = "*** Begin Patch\n*** Update File: notes.txt\n@@\n alpha\n-beta\n+BETA\n gamma\n*** Add File: new/added.txt\n+fresh\n*** End Patch";
    let mock = MockModelServer::start(vec![
        sse::apply_patch("call_p1", patch),
        sse::message("done"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    std::fs::write(home.workspace().join("notes.txt"), "alpha\nbeta\ngamma\n").unwrap();
    let run = exec_json(&home, "edit").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(home.workspace().join("notes.txt")).unwrap(),
        "alpha\nBETA\ngamma\n"
    );
    assert_eq!(
        std::fs::read_to_string(home.workspace().join("new/added.txt")).unwrap(),
        "fresh\n"
    );
    let change = &run.completed_items("file_change")[0];
    assert_eq!(change["status"], "completed");
    let kinds: Vec<&str> = change["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["update", "add"]);
    let output = mock.model_requests()[1].function_output("call_p1").unwrap();
    assert_eq!(
        output,
        "Success. Updated the following files:\nA new/added.txt\nM notes.txt\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_patch_changes_nothing() {
    // The first file would apply, the second does not match: nothing changes.
    let patch = "*** Begin Patch\n*** Add File: created.txt\n+should not exist\n*** Update File: notes.txt\n@@\n-no such line\n+x\n*** End Patch";
    let mock = MockModelServer::start(vec![
        sse::apply_patch("call_bad", patch),
        sse::apply_patch("call_garbage", "this is not a patch"),
        sse::message("gave up"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    std::fs::write(home.workspace().join("notes.txt"), "alpha\n").unwrap();
    let run = exec_json(&home, "edit").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(!home.workspace().join("created.txt").exists());
    assert_eq!(
        std::fs::read_to_string(home.workspace().join("notes.txt")).unwrap(),
        "alpha\n"
    );
    let reqs = mock.model_requests();
    let out = reqs[1].function_output("call_bad").unwrap();
    assert!(
        out.starts_with("apply_patch verification failed: Failed to find expected lines"),
        "{out}"
    );
    assert!(out.contains("no such line"), "{out}");
    let out = reqs[2].function_output("call_garbage").unwrap();
    assert!(
        out.contains("The first line of the patch must be '*** Begin Patch'"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_patch_via_exec_command_heredoc() {
    let cmd = "apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: via_shell.txt\n+hi\n*** End Patch\nEOF";
    let mock =
        MockModelServer::start(vec![sse::exec_command("call_h", cmd), sse::message("ok")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let run = exec_json(&home, "edit").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(home.workspace().join("via_shell.txt")).unwrap(),
        "hi\n"
    );
    assert_eq!(run.completed_items("file_change").len(), 1);
    assert!(run.completed_items("command_execution").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_outside_workspace_is_refused_under_never() {
    let home = TestHome::new();
    let outside = home.root().join("outside.txt");
    let patch = format!(
        "*** Begin Patch\n*** Add File: {}\n+x\n*** End Patch",
        outside.display()
    );
    let mock =
        MockModelServer::start(vec![sse::apply_patch("call_o", &patch), sse::message("ok")]).await;
    // The test home lives in /tmp: take /tmp out of the writable roots.
    home.write_config(
        &mock.url(),
        "[sandbox_workspace_write]\nexclude_slash_tmp = true\nexclude_tmpdir_env_var = true",
    );
    let run = exec_json(&home, "edit").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(!outside.exists());
    let out = mock.model_requests()[1].function_output("call_o").unwrap();
    assert!(out.contains("patch rejected"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn update_plan_becomes_a_todo_list() {
    let plan1 = json!({"plan": [{"step": "read", "status": "in_progress"}, {"step": "write", "status": "pending"}]});
    let plan2 = json!({"plan": [{"step": "read", "status": "completed"}, {"step": "write", "status": "completed"}]});
    let mock = MockModelServer::start(vec![
        MockResponse::sse(sse::function_call_events(
            "r1",
            "call_plan1",
            "update_plan",
            plan1,
        )),
        MockResponse::sse(sse::function_call_events(
            "r2",
            "call_plan2",
            "update_plan",
            plan2,
        )),
        sse::message("all done"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let run = exec_json(&home, "plan it").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let events = run.events();
    let todo: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["item"]["type"] == "todo_list")
        .collect();
    assert_eq!(todo.len(), 3, "{events:?}");
    assert_eq!(todo[0]["type"], "item.started");
    assert_eq!(todo[1]["type"], "item.updated");
    assert_eq!(todo[2]["type"], "item.completed");
    assert_eq!(todo[0]["item"]["id"], todo[2]["item"]["id"]);
    assert_eq!(
        todo[2]["item"]["items"][1],
        json!({"text": "write", "completed": true})
    );
    assert_eq!(
        mock.model_requests()[1]
            .function_output("call_plan1")
            .unwrap(),
        "Plan updated"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn background_children_do_not_survive_the_command() {
    // Unique sleep durations identify this test's processes.
    let marker_bg = "1000.4711";
    let marker_setsid = "1000.4712";
    let cmd = format!("sleep {marker_bg} & setsid sleep {marker_setsid} & echo started");
    let mock =
        MockModelServer::start(vec![sse::exec_command("call_bg", &cmd), sse::message("ok")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let run = exec_json(&home, "start background work").await;
    let left_bg = procs::wait_none_matching(marker_bg, Duration::from_secs(10));
    let left_setsid = procs::wait_none_matching(marker_setsid, Duration::from_secs(10));
    procs::kill_matching(marker_bg);
    procs::kill_matching(marker_setsid);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let item = &run.completed_items("command_execution")[0];
    assert_eq!(item["exit_code"], 0);
    assert_eq!(item["aggregated_output"], "started\n");
    assert!(left_bg.is_empty(), "background child survived: {left_bg:?}");
    assert!(
        left_setsid.is_empty(),
        "setsid child survived: {left_setsid:?}"
    );
    // "Promptly": the run did not wait for the sleeps (bounded by the test deadline).
    assert!(run.elapsed < Duration::from_secs(100));
}

#[tokio::test(flavor = "multi_thread")]
async fn command_timeout_kills_the_whole_group() {
    let marker = "1000.4713";
    let cmd = format!("sleep {marker} & setsid sleep {marker} & sleep {marker}");
    let mock =
        MockModelServer::start(vec![sse::exec_command("call_t", &cmd), sse::message("ok")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "exec_timeout_ms = 500");
    let run = exec_json(&home, "hang").await;
    let left = procs::wait_none_matching(marker, Duration::from_secs(10));
    procs::kill_matching(marker);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(left.is_empty(), "processes survived the timeout: {left:?}");
    let item = &run.completed_items("command_execution")[0];
    assert_eq!(item["exit_code"], 124);
    let out = mock.model_requests()[1].function_output("call_t").unwrap();
    assert!(
        out.contains("command timed out after 500 milliseconds"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_identical_calls_are_stopped() {
    let mut script = Vec::new();
    for i in 0..8 {
        script.push(MockResponse::sse(sse::function_call_events(
            &format!("r{i}"),
            &format!("call_{i}"),
            "exec_command",
            json!({"cmd": "echo same"}),
        )));
    }
    let mock = MockModelServer::start(script).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let run = exec_json(&home, "loop").await;
    assert_eq!(run.code, Some(1), "stderr: {}", run.stderr);
    let reqs = mock.model_requests();
    assert_eq!(reqs.len(), 6, "the guard stops the sixth identical call");
    let refused = reqs[3].function_output("call_2").unwrap();
    assert!(refused.contains("was not run again"), "{refused}");
    assert_eq!(run.completed_items("command_execution").len(), 2);
    let failed = run
        .events()
        .into_iter()
        .find(|e| e["type"] == "turn.failed")
        .unwrap();
    assert!(failed["error"]["message"]
        .as_str()
        .unwrap()
        .contains("identical arguments"));
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_have_no_controlling_terminal() {
    // A tool that prompts on /dev/tty must fail at once, not stop forever.
    let mock = MockModelServer::start(vec![
        sse::exec_command("call_tty", "cat /dev/tty; echo status=$?"),
        sse::message("ok"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "exec_timeout_ms = 60000");
    let run = exec_json(&home, "prompt").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let item = &run.completed_items("command_execution")[0];
    let out = item["aggregated_output"].as_str().unwrap();
    assert!(out.contains("status=1"), "{out}");
}
