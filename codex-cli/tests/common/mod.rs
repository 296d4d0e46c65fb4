//! Helpers shared by the CLI integration tests: run the real `codex` binary
//! against the in-repo mock model server, with deadlines.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use codex_test_support::TestHome;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

pub const CODEX: &str = env!("CARGO_BIN_EXE_codex");
/// Generous: tests wait on events, never on timing.
pub const DEADLINE: Duration = Duration::from_secs(120);

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// stdout parsed as JSONL.
    pub fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect()
    }

    pub fn event_types(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Items of `item.completed` events with the given item type.
    pub fn completed_items(&self, item_type: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["type"] == "item.completed" && e["item"]["type"] == item_type)
            .map(|e| e["item"].clone())
            .collect()
    }
}

pub fn command(home: &TestHome, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(CODEX);
    cmd.args(args)
        .current_dir(home.workspace())
        .env("CODEX_HOME", home.codex_home())
        .env("HOME", home.home())
        .env("MOCK_API_KEY", "sk-mock-test")
        .env_remove("OPENAI_API_KEY")
        .env_remove("CODEX_API_KEY")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

pub async fn run(home: &TestHome, args: &[&str]) -> Run {
    run_cmd(command(home, args), None).await
}

pub async fn run_with_stdin(home: &TestHome, args: &[&str], stdin: &str) -> Run {
    let mut cmd = command(home, args);
    cmd.stdin(Stdio::piped());
    run_cmd(cmd, Some(stdin.to_string())).await
}

pub async fn run_cmd(mut cmd: tokio::process::Command, stdin: Option<String>) -> Run {
    let started = std::time::Instant::now();
    let mut child = cmd.spawn().expect("spawn codex");
    if let Some(input) = stdin {
        let mut si = child.stdin.take().unwrap();
        si.write_all(input.as_bytes()).await.unwrap();
        drop(si);
    }
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("codex did not finish within the deadline")
        .expect("wait codex");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// `exec --json --skip-git-repo-check PROMPT`
pub async fn exec_json(home: &TestHome, prompt: &str) -> Run {
    run(home, &["exec", "--json", "--skip-git-repo-check", prompt]).await
}

/// Every parsed line of a rollout file.
pub fn rollout_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub mod app_server;
pub mod schema;
