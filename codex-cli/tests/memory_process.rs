//! codex-memory end to end: real codexd, real codex-memory and codex-session
//! processes, real SQLite files, and the mock model server, whose recorded
//! requests show what a turn was told. Every wait has a generous deadline;
//! nothing asserts on timing beyond "the turn completed".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use codex_test_support::{procs, sse, MockModelServer, TestHome};
use common::app_server::{app_server_command, Client, SocketServer, WAIT};
use serde_json::{json, Value};

const NOTE: &str = "The deploy script lives in tools/deploy.sh";
const QUERY: &str = "where is the deploy script?";

/// Memories on, with a recall deadline of `recall_ms`.
fn memory_home(mock: &MockModelServer, recall_ms: u64) -> TestHome {
    let home = TestHome::new();
    home.write_config(
        &mock.url(),
        &format!("\n[features]\nmemories = true\n\n[memories]\nrecall_timeout_ms = {recall_ms}\n"),
    );
    home
}

/// codexd on a unix socket, with extra environment.
async fn daemon(home: &TestHome, env: &[(&str, &Path)]) -> SocketServer {
    let socket = home.root().join("run").join("codexd.sock");
    let listen = format!("unix://{}", socket.display());
    let mut cmd = app_server_command(home, &["--listen", listen.as_str()]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn codexd");
    let deadline = Instant::now() + WAIT;
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("codexd exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "socket never appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    SocketServer { child, socket }
}

async fn memory_call(c: &mut Client, request: Value) -> Value {
    c.call("codexd/memory", request).await
}

/// Waits until codex-memory runs (`codexd/status`); returns its status.
async fn memory_running(c: &mut Client, not_pid: u32) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let st = c.status().await;
        let m = &st["memory"];
        if m["state"] == "running" && m["pid"].as_u64().unwrap_or(0) as u32 != not_pid {
            return m.clone();
        }
        assert!(Instant::now() < deadline, "codex-memory not running: {st}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `search` until it finds `text` (the index may be busy first).
async fn until_found(c: &mut Client, query: &str, text: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let id = c
            .request(
                "codexd/memory",
                json!({"op": "search", "query": query, "limit": 5}),
            )
            .await;
        let r = c.response(id).await;
        if r["result"]["hits"]
            .as_array()
            .is_some_and(|h| h.iter().any(|m| m["text"] == text))
        {
            return;
        }
        assert!(Instant::now() < deadline, "never found {text:?}: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of every input message of the `n`th model request.
fn request_texts(mock: &MockModelServer, n: usize) -> Vec<String> {
    let reqs = mock.model_requests();
    let body = &reqs.get(n).unwrap_or_else(|| panic!("no request {n}")).body;
    body["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            item["content"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter_map(|p| p["text"].as_str())
                        .collect::<Vec<_>>()
                        .join("")
                })
                .unwrap_or_default()
        })
        .collect()
}

/// Asserts the `n`th request carried `note` recalled, just before `prompt`.
fn assert_recalled(mock: &MockModelServer, n: usize, note: &str, prompt: &str) {
    let texts = request_texts(mock, n);
    let at = texts
        .iter()
        .position(|t| t.starts_with("<relevant_memories>"))
        .unwrap_or_else(|| panic!("no recalled memories in request {n}: {texts:#?}"));
    assert!(texts[at].contains(note), "{}", texts[at]);
    assert_eq!(
        texts.get(at + 1).map(String::as_str),
        Some(prompt),
        "{texts:#?}"
    );
}

fn assert_not_recalled(mock: &MockModelServer, n: usize) {
    let texts = request_texts(mock, n);
    assert!(
        !texts.iter().any(|t| t.contains("<relevant_memories>")),
        "request {n} has memories: {texts:#?}"
    );
}

async fn turn(c: &mut Client, thread: &str, text: &str) {
    c.start_turn(thread, text).await;
    let done = c.turn_completed(thread).await;
    assert_eq!(done["params"]["turn"]["status"], "completed", "{done}");
}

fn replies(n: usize) -> Vec<codex_test_support::MockResponse> {
    (0..n).map(|i| sse::message(&format!("ok {i}"))).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn remembered_in_one_daemon_is_recalled_by_the_next() {
    let mock = MockModelServer::start(replies(2)).await;
    let home = memory_home(&mock, 5_000);
    let mut server = daemon(&home, &[]).await;
    let mut c = server.client("mem").await;
    memory_running(&mut c, 0).await;
    let r = memory_call(
        &mut c,
        json!({"op": "remember", "text": NOTE, "source_thread_id": null}),
    )
    .await;
    assert!(r["id"].as_i64().unwrap() > 0, "{r}");
    let notes = home.codex_home().join("memories/extensions/ad_hoc/notes");
    assert_eq!(std::fs::read_dir(&notes).unwrap().count(), 1);
    drop(c);
    server.kill9().await;

    let server = daemon(&home, &[]).await;
    let mut c = server.client("mem").await;
    let t = c.start_thread(json!({})).await;
    turn(&mut c, &t, QUERY).await;
    assert_recalled(&mock, 0, NOTE, QUERY);
    // Nothing relevant: the request is what it would be without memories.
    turn(&mut c, &t, "hello").await;
    assert_not_recalled(&mock, 1);
    let m = memory_running(&mut c, 0).await;
    assert_eq!(m["count"], 1, "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn codex_memory_killed_mid_recall_costs_the_turn_nothing() {
    let mock = MockModelServer::start(replies(2)).await;
    let home = memory_home(&mock, 10_000);
    let delay = home.root().join("recall-delay");
    std::fs::write(&delay, "60000").unwrap();
    let server = daemon(&home, &[("CODEX_MEMORY_TEST_RECALL_DELAY_FILE", &delay)]).await;
    let mut c = server.client("mem").await;
    let pid = memory_running(&mut c, 0).await["pid"].as_u64().unwrap() as u32;
    memory_call(&mut c, json!({"op": "remember", "text": NOTE})).await;
    let t = c.start_thread(json!({})).await;
    c.start_turn(&t, QUERY).await;
    // The recall is stuck in the store thread (60 s); kill the process.
    tokio::time::sleep(Duration::from_millis(500)).await;
    procs::signal(pid, "-9");
    let done = c.turn_completed(&t).await;
    assert_eq!(done["params"]["turn"]["status"], "completed", "{done}");
    assert_not_recalled(&mock, 0);
    // Restarted, with a new pid; the next recall works.
    std::fs::remove_file(&delay).unwrap();
    let m = memory_running(&mut c, pid).await;
    assert!(m["restarts"].as_u64().unwrap() >= 1, "{m}");
    turn(&mut c, &t, QUERY).await;
    assert_recalled(&mock, 1, NOTE, QUERY);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_codex_memory_cannot_hold_a_turn_past_the_deadline() {
    let mock = MockModelServer::start(replies(2)).await;
    let home = memory_home(&mock, 1_000);
    let server = daemon(&home, &[]).await;
    let mut c = server.client("mem").await;
    let pid = memory_running(&mut c, 0).await["pid"].as_u64().unwrap() as u32;
    memory_call(&mut c, json!({"op": "remember", "text": NOTE})).await;
    let t = c.start_thread(json!({})).await;
    procs::signal(pid, "-STOP");
    turn(&mut c, &t, QUERY).await;
    assert_not_recalled(&mock, 0);
    procs::signal(pid, "-CONT");
    until_found(&mut c, "deploy script", NOTE).await;
    turn(&mut c, &t, QUERY).await;
    assert_recalled(&mock, 1, NOTE, QUERY);
}

/// `python3` holding an exclusive lock on the database until killed.
fn hold_lock(db: &Path) -> std::process::Child {
    let script = r#"
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
c.execute("PRAGMA locking_mode=EXCLUSIVE")
c.execute("BEGIN EXCLUSIVE")
c.execute("INSERT INTO indexed_files (path, size, mtime_ns) VALUES ('lock-holder', 0, 0)")
print("locked", flush=True)
time.sleep(600)
"#;
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(db)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

/// `codex memory add TEXT` with no daemon (in-process).
fn add_offline(home: &TestHome, text: &str) {
    let out = std::process::Command::new(common::CODEX)
        .args(["memory", "add", text])
        .env("CODEX_HOME", home.codex_home())
        .env("HOME", home.home())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_locked_by_another_process_does_not_stop_startup() {
    let mock = MockModelServer::start(replies(2)).await;
    let home = memory_home(&mock, 1_500);
    add_offline(&home, NOTE);
    let db = home.codex_home().join("memory_index_1.sqlite");
    let mut holder = hold_lock(&db);
    let server = daemon(&home, &[]).await;
    let mut c = server.client("mem").await;
    memory_running(&mut c, 0).await;
    let t = c.start_thread(json!({})).await;
    turn(&mut c, &t, QUERY).await;
    assert_not_recalled(&mock, 0);
    holder.kill().unwrap();
    holder.wait().unwrap();
    until_found(&mut c, "deploy script", NOTE).await;
    turn(&mut c, &t, QUERY).await;
    assert_recalled(&mock, 1, NOTE, QUERY);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_database_is_rebuilt_from_the_memory_files() {
    let mock = MockModelServer::start(replies(1)).await;
    let home = memory_home(&mock, 5_000);
    for i in 0..40 {
        add_offline(&home, &format!("filler note {i} about widgets and gadgets"));
    }
    add_offline(&home, NOTE);
    let db: PathBuf = home.codex_home().join("memory_index_1.sqlite");
    assert!(
        !home.codex_home().join("memory_index_1.sqlite-wal").exists()
            || std::fs::metadata(home.codex_home().join("memory_index_1.sqlite-wal"))
                .unwrap()
                .len()
                == 0,
        "the CLI left the database checkpointed"
    );
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let _ = std::fs::remove_file(home.codex_home().join("memory_index_1.sqlite-wal"));
    let server = daemon(&home, &[]).await;
    let mut c = server.client("mem").await;
    let deadline = Instant::now() + WAIT;
    let m = loop {
        let m = memory_running(&mut c, 0).await;
        if m["count"] == 41 {
            break m;
        }
        assert!(Instant::now() < deadline, "never rebuilt: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let warnings = m["warnings"].to_string();
    assert!(warnings.contains("corrupt"), "{m}");
    let t = c.start_thread(json!({})).await;
    turn(&mut c, &t, QUERY).await;
    assert_recalled(&mock, 0, NOTE, QUERY);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_talks_to_the_daemon_or_works_alone() {
    let mock = MockModelServer::start(vec![]).await;
    let home = memory_home(&mock, 50);
    let codex = |args: &[&str], socket: &Path| {
        let out = std::process::Command::new(common::CODEX)
            .args(["memory"])
            .args(args)
            .arg("--socket")
            .arg(socket)
            .env("CODEX_HOME", home.codex_home())
            .env("HOME", home.home())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let nowhere = home.root().join("no-daemon.sock");
    let (code, out, _) = codex(&["add", NOTE], &nowhere);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("remembered as #"), "{out}");
    let (_, out, _) = codex(&["status"], &nowhere);
    assert!(
        out.contains("memories: 1") && out.contains("in-process"),
        "{out}"
    );

    let server = daemon(&home, &[]).await;
    let (_, out, _) = codex(&["status"], &server.socket);
    assert!(
        out.contains("memories: 1") && out.contains("codex-memory of codexd"),
        "{out}"
    );
    let (code, out, _) = codex(&["search", "deploy", "--json"], &server.socket);
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&out).unwrap();
    let id = v["memories"][0]["id"].as_i64().unwrap();
    assert_eq!(v["memories"][0]["text"], NOTE);
    let (code, _, err) = codex(&["forget", "999"], &server.socket);
    assert_eq!(code, Some(1));
    assert!(err.contains("no memory #999"), "{err}");
    let (code, out, _) = codex(&["forget", &id.to_string()], &server.socket);
    assert_eq!(code, Some(0), "{out}");
    codex(&["add", "another note"], &server.socket);
    let (code, out, _) = codex(&["reset"], &server.socket);
    assert_eq!(code, Some(0));
    assert!(out.contains("removed from memories/: extensions"), "{out}");
    let (_, out, _) = codex(&["list"], &server.socket);
    assert!(out.contains("no memories"), "{out}");
}
