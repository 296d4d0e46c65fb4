//! Approval policies in the turn loop (codex-core as a library), with a
//! real process under the real Linux sandbox (this package's `codex` binary
//! as the helper): the command writes outside its writable roots and
//! Landlock stops it.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use codex_core::approval::{ApprovalHandler, ApprovalRequest, ReviewDecision};
use codex_core::config::{AskForApproval, Config, ConfigOverrides, LoadOptions, SandboxMode};
use codex_core::exec::linux::LinuxSandbox;
use codex_core::protocol::UserInput;
use codex_core::{Thread, ThreadOptions, TurnRequest, TurnStatus};
use codex_test_support::{sse, MockModelServer, TestHome};
use futures_util::future::BoxFuture;

struct Recorder {
    decision: ReviewDecision,
    seen: Mutex<Vec<ApprovalRequest>>,
}

impl ApprovalHandler for Recorder {
    fn decide(&self, request: ApprovalRequest) -> BoxFuture<'static, ReviewDecision> {
        self.seen.lock().unwrap().push(request);
        let d = self.decision;
        Box::pin(async move { d })
    }
}

async fn run(
    policy: AskForApproval,
    decision: ReviewDecision,
) -> (Arc<Recorder>, String, std::path::PathBuf) {
    let home = TestHome::new();
    // Outside the workspace, the only writable root.
    let outside = home.root().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let file = outside.join("made.txt");
    let mock = MockModelServer::start(vec![
        sse::exec_command("call_1", &format!("touch {} && echo made", file.display())),
        sse::message("done"),
    ])
    .await;
    home.write_config_inline_key(
        &mock.url(),
        "[sandbox_workspace_write]\nexclude_slash_tmp = true\nexclude_tmpdir_env_var = true\n",
    );
    let config = Config::load(LoadOptions {
        codex_home: Some(home.codex_home()),
        cli_overrides: vec![],
        overrides: ConfigOverrides {
            cwd: Some(home.workspace()),
            approval_policy: Some(policy),
            sandbox_mode: Some(SandboxMode::WorkspaceWrite),
            ..Default::default()
        },
    })
    .unwrap();
    let recorder = Arc::new(Recorder {
        decision,
        seen: Mutex::new(Vec::new()),
    });
    let mut opts = ThreadOptions::new("test", "cli");
    opts.sandbox = Arc::new(LinuxSandbox::new(env!("CARGO_BIN_EXE_codex").into()));
    opts.approvals = recorder.clone();
    let (thread, _rx) = Thread::start(config, opts).unwrap();
    let outcome = thread
        .run_turn(TurnRequest {
            input: vec![UserInput::Text {
                text: "make it".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(outcome.status, TurnStatus::Completed);
    let output = mock.model_requests()[1].function_output("call_1").unwrap();
    // Keep the home alive until the file was checked.
    let exists = file.exists();
    drop(home);
    (
        recorder,
        output,
        std::path::PathBuf::from(if exists { "exists" } else { "missing" }),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn on_failure_asks_and_reruns_outside_the_sandbox() {
    let (rec, output, file) = run(AskForApproval::OnFailure, ReviewDecision::Approved).await;
    let seen = rec.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    match &seen[0] {
        ApprovalRequest::Command {
            reason, call_id, ..
        } => {
            assert_eq!(call_id, "call_1");
            assert!(
                reason.as_deref().unwrap().contains("failed in the"),
                "{reason:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(output.contains("Process exited with code 0"), "{output}");
    assert_eq!(file, std::path::PathBuf::from("exists"));
}

#[tokio::test(flavor = "multi_thread")]
async fn on_failure_declined_keeps_the_failure() {
    let (rec, output, file) = run(AskForApproval::OnFailure, ReviewDecision::Denied).await;
    assert_eq!(rec.seen.lock().unwrap().len(), 1);
    assert!(output.contains("Process exited with code 1"), "{output}");
    assert!(
        output.contains("Permission denied"),
        "a real Landlock denial: {output}"
    );
    assert_eq!(file, std::path::PathBuf::from("missing"));
}

#[tokio::test(flavor = "multi_thread")]
async fn never_does_not_ask() {
    let (rec, output, _) = run(AskForApproval::Never, ReviewDecision::Approved).await;
    assert!(rec.seen.lock().unwrap().is_empty());
    assert!(output.contains("Process exited with code 1"), "{output}");
}
