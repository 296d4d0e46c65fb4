//! The session file under a real full filesystem: a turn whose record cannot
//! be written is not reported as completed, nothing already written is
//! damaged, and once the disk has room again the record is whole.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use codex_test_support::{sse, MockModelServer, TestHome};
use common::app_server::StdioServer;
use serde_json::{json, Value};

/// A small tmpfs mounted over `dir` for the test's lifetime.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// `None` when this process may not mount (not root): the test is
    /// skipped, unless CI demands it (`CODEX_REQUIRE_MOUNT=1`).
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var_os("CODEX_REQUIRE_MOUNT").is_none_or(|v| v != "1"),
                "CODEX_REQUIRE_MOUNT=1 but a tmpfs cannot be mounted"
            );
            eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
            return None;
        }
        Some(SmallDisk(dir.to_path_buf()))
    }

    /// Fills the filesystem up with a file named `filler`.
    fn fill(&self) {
        let filler = self.0.join("filler");
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=4096"])
            .arg(format!("of={}", filler.display()))
            .stderr(std::process::Stdio::null())
            .status();
        assert!(filler.exists());
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_that_cannot_be_recorded_fails_and_damages_nothing() {
    let home = TestHome::new();
    // Larger than whatever room the file's last page has left.
    let big = "lorem ipsum ".repeat(4000);
    let mock = MockModelServer::start(vec![
        sse::message("first, recorded"),
        sse::message(&big),
        sse::message("third, after the disk has room again"),
    ])
    .await;
    home.write_config(&mock.url(), "");
    let Some(disk) = SmallDisk::mount(&home.codex_home().join("sessions"), "256k") else {
        return;
    };
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("durability").await;
    let tid = c.start_thread(json!({})).await;
    c.start_turn(&tid, "one").await;
    let done = c.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["status"], "completed");
    let file = home.rollouts().pop().unwrap();
    let before = std::fs::read_to_string(&file).unwrap();

    disk.fill();
    c.start_turn(&tid, "two").await;
    let done = c.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["status"], "failed", "{done}");
    let err = c.seen_method("error").pop().expect("an error notification");
    let msg = err["params"]["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("session file") && msg.contains("could not be written"),
        "{msg}"
    );
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    // What was written is intact: no torn line, nothing changed.
    let during = std::fs::read_to_string(&file).unwrap();
    assert!(during.starts_with(&before));
    lines(&file);

    // Room again: the next turn writes what was pending, in order.
    disk.free();
    c.start_turn(&tid, "three").await;
    let done = c.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["status"], "completed", "{done}");
    let after = std::fs::read_to_string(&file).unwrap();
    assert!(after.starts_with(&before));
    let recorded = lines(&file);
    let ordinals: Vec<u64> = recorded
        .iter()
        .filter_map(|l| l["ordinal"].as_u64())
        .collect();
    assert_eq!(
        ordinals,
        (0..ordinals.len() as u64).collect::<Vec<_>>(),
        "every line, once, in order"
    );
    // The failed turn's user message was kept (from the backlog), and the
    // next turn is recorded after it.
    let users: Vec<&str> = recorded
        .iter()
        .filter(|l| l["type"] == "event_msg" && l["payload"]["type"] == "user_message")
        .map(|l| l["payload"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["one", "two", "three"]);
    let ends: Vec<&str> = recorded
        .iter()
        .filter(|l| l["type"] == "event_msg")
        .filter_map(|l| l["payload"]["type"].as_str())
        .filter(|t| *t == "task_complete" || *t == "error")
        .collect();
    assert_eq!(
        ends,
        ["task_complete", "error", "task_complete", "task_complete"]
    );
    drop(s);
}
