//! No MCP server outlives its thread: the server's whole tree (also
//! grandchildren that left with `setsid`) is gone within 2 s after the
//! thread is unloaded, its app-server ends, its worker is `kill -9`'d, or
//! codexd itself is; and many threads with several servers started and
//! unloaded again and again leave no process and no zombie behind. Real
//! codexd, workers, the mock MCP server binary (`--pid-file` tells the pids)
//! and the mock model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use codex_test_support::mcp::mock_mcp_server_exe;
use codex_test_support::{procs, sse, MockModelServer, MockResponse, TestHome};
use common::app_server::{Client, SocketServer, StdioServer, WAIT};
use serde_json::{json, Value};

/// How long a server's tree may outlive what ended it.
const GONE_WITHIN: Duration = Duration::from_secs(2);

fn mcp_call(call_id: &str, server: &str, tool: &str, args: Value) -> MockResponse {
    let resp = format!("resp_{call_id}");
    MockResponse::sse(vec![
        sse::created(&resp),
        json!({"type": "response.output_item.done", "output_index": 0, "item": {
            "type": "function_call", "id": format!("fc_{call_id}"), "call_id": call_id,
            "namespace": format!("mcp__{server}"), "name": tool,
            "arguments": args.to_string()}}),
        sse::completed(&resp, 10, 5),
    ])
}

fn stdio_server(name: &str, args: &[&str]) -> String {
    let exe = mock_mcp_server_exe().display().to_string();
    format!(
        "[mcp_servers.{name}]\ncommand = {exe:?}\nargs = {args:?}\n\
         default_tools_approval_mode = \"approve\"\nstartup_timeout_sec = 60\n\n"
    )
}

fn is_status_of(v: &Value, thread: &str, name: &str) -> bool {
    v["method"] == "mcpServer/startupStatus/updated"
        && v.get("id").is_none()
        && v["params"]["threadId"] == thread
        && v["params"]["name"] == name
}

/// Waits until `name` of `thread` has reported `ready` (its status
/// notifications are consumed).
async fn wait_ready(c: &mut Client, thread: &str, name: &str) {
    loop {
        let ready = c
            .seen
            .iter()
            .any(|v| is_status_of(v, thread, name) && v["params"]["status"] == "ready");
        if ready {
            return;
        }
        let (t, m) = (thread.to_string(), name.to_string());
        c.wait_for(&format!("{name} of {thread} ready"), move |v| {
            is_status_of(v, &t, &m)
        })
        .await;
    }
}

fn read_pids(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// `(state, ppid)` of `pid`, if it exists.
fn stat(pid: u32) -> Option<(String, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = s.rfind(')')?;
    let mut rest = s[close + 1..].split_whitespace();
    let state = rest.next()?.to_string();
    let ppid = rest.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Zombies among `pids` whose parent is alive (and so failed to reap them).
fn unreaped(pids: &[u32]) -> Vec<(u32, u32)> {
    pids.iter()
        .filter_map(|p| match stat(*p) {
            Some((state, ppid)) if state == "Z" && procs::is_alive(ppid) => Some((*p, ppid)),
            _ => None,
        })
        .collect()
}

/// Every zombie whose parent is `parent`.
fn zombie_children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| stat(*p).is_some_and(|(s, pp)| s == "Z" && pp == parent))
        .collect()
}

/// Asserts that none of `pids` is alive within [`GONE_WITHIN`] of `since`,
/// and (given a moment to reap) none is a zombie of a live parent.
fn assert_all_gone(pids: &[u32], since: Instant, what: &str) {
    let deadline = since + GONE_WITHIN;
    loop {
        let alive: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| procs::is_alive(*p))
            .collect();
        if alive.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            for p in &alive {
                procs::signal(*p, "-9");
            }
            panic!("{what}: {alive:?} (of {pids:?}) alive 2 s later");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("{what}: the tree was gone {:?} later", since.elapsed());
    let deadline = Instant::now() + WAIT;
    loop {
        let z = unreaped(pids);
        if z.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: zombies (pid, parent) never reaped: {z:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One thread with a server that started a `setsid` grandchild on start and
/// another through its `spawn` tool: the thread id and the three pids.
async fn thread_with_a_tree(
    c: &mut Client,
    mock: &MockModelServer,
    pidfile: &Path,
) -> (String, Vec<u32>) {
    let t = c.start_thread(json!({})).await;
    wait_ready(c, &t, "tree").await;
    c.start_turn(&t, "spawn").await;
    let done = c.turn_completed(&t).await;
    assert_eq!(done["params"]["turn"]["status"], "completed", "{done}");
    // The server and its on-start grandchild, then the one `spawn` started
    // (its pid is the call's output).
    let mut pids = read_pids(pidfile);
    let spawned = mock
        .model_requests()
        .iter()
        .find_map(|r| r.function_output("call_s"))
        .expect("the spawn call's output");
    pids.push(
        spawned
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("spawn answered {spawned:?}")),
    );
    assert_eq!(
        pids.len(),
        3,
        "server, on-start and spawned grandchild: {pids:?}"
    );
    for p in &pids {
        assert!(procs::is_alive(*p), "{p} runs");
    }
    (t, pids)
}

struct Setup {
    home: TestHome,
    mock: MockModelServer,
    pidfile: std::path::PathBuf,
}

async fn setup(codexd: &str) -> Setup {
    let home = TestHome::new();
    let pidfile = home.root().join("tree.pids");
    let mock = MockModelServer::start(vec![
        mcp_call("call_s", "tree", "spawn", json!({})),
        sse::message("spawned"),
    ])
    .await;
    let pf = pidfile.display().to_string();
    let config = format!(
        "[codexd]\n{codexd}\n\n{}",
        stdio_server("tree", &["--spawn-on-start", "--pid-file", &pf])
    );
    home.write_config(&mock.url(), &config);
    Setup {
        home,
        mock,
        pidfile,
    }
}

/// 7a. Unloaded (idle, no subscriber): the server's tree goes with it.
#[tokio::test(flavor = "multi_thread")]
async fn an_unloaded_thread_leaves_no_server_process() {
    let s = setup("idle_unload_ms = 100").await;
    let mut server = SocketServer::start(&s.home).await;
    let mut c = server.client("a").await;
    let (t, pids) = thread_with_a_tree(&mut c, &s.mock, &s.pidfile).await;
    let w = c.worker_pid(&t).await;
    let r = c.call("thread/unsubscribe", json!({"threadId": t})).await;
    assert_eq!(r["status"], "unsubscribed");
    let deadline = Instant::now() + WAIT;
    loop {
        let st = c.status().await;
        if st["threads"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "never unloaded: {st}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_all_gone(&pids, Instant::now(), "after the unload");
    assert!(!procs::is_alive(w) || zombie_children_of(w).is_empty());
    assert!(zombie_children_of(server.pid()).is_empty());
    server.kill9().await;
}

/// 7a'. The stdio app-server's client goes away (EOF): codexd ends, and
/// with it every thread's servers.
#[tokio::test(flavor = "multi_thread")]
async fn ending_the_stdio_app_server_leaves_no_server_process() {
    let s = setup("").await;
    let mut app = StdioServer::start(&s.home, &[]).await;
    app.client.initialize("mcp-containment").await;
    let (_t, pids) = thread_with_a_tree(&mut app.client, &s.mock, &s.pidfile).await;
    let StdioServer { mut child, client } = app;
    drop(client);
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("codexd did not exit at EOF")
        .unwrap();
    assert!(status.success(), "{status}");
    assert_all_gone(&pids, Instant::now(), "after codexd's EOF exit");
}

/// 7b. The worker is `kill -9`'d: codexd's containment takes the server's
///     tree, `setsid` grandchildren included.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_leaves_no_server_process() {
    let s = setup("").await;
    let mut server = SocketServer::start(&s.home).await;
    let mut c = server.client("a").await;
    let (t, pids) = thread_with_a_tree(&mut c, &s.mock, &s.pidfile).await;
    let w = c.worker_pid(&t).await;
    procs::signal(w, "-9");
    let killed = Instant::now();
    assert_all_gone(&pids, killed, "after kill -9 of the worker");
    c.thread_note("thread/closed", &t).await;
    assert!(zombie_children_of(server.pid()).is_empty());
    assert!(server.child.try_wait().unwrap().is_none(), "codexd lives");
    server.kill9().await;
}

/// 7c. codexd itself is `kill -9`'d: each worker's guardian takes its tree
///     down, servers included.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_codexd_leaves_no_server_process() {
    let s = setup("").await;
    let mut server = SocketServer::start(&s.home).await;
    let mut c = server.client("a").await;
    let (t, pids) = thread_with_a_tree(&mut c, &s.mock, &s.pidfile).await;
    let w = c.worker_pid(&t).await;
    server.kill9().await;
    let killed = Instant::now();
    drop(c);
    assert_all_gone(&pids, killed, "after kill -9 of codexd");
    let deadline = Instant::now() + WAIT;
    while procs::is_alive(w) {
        assert!(Instant::now() < deadline, "the worker outlived codexd");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// 8. Threads × servers started and unloaded over and over leave nothing.
#[tokio::test(flavor = "multi_thread")]
async fn many_threads_with_servers_loaded_and_unloaded_leave_nothing() {
    const THREADS: usize = 10;
    const ROUNDS: usize = 20;
    const SERVERS: [&str; 3] = ["s1", "s2", "s3"];
    let home = TestHome::new();
    let marker = format!("mcp-churn-{}", std::process::id());
    let pidfile = home.root().join("churn.pids");
    let pf = pidfile.display().to_string();
    let mock = MockModelServer::start(vec![]).await;
    let mut config = "[codexd]\nidle_unload_ms = 100\n\n".to_string();
    for name in SERVERS {
        config.push_str(&stdio_server(
            name,
            &["--name", &marker, "--pid-file", &pf, "--tools", "echo"],
        ));
    }
    home.write_config(&mock.url(), &config);
    let mut server = SocketServer::start(&home).await;
    let mut c = server.client("churn").await;
    let started = Instant::now();
    for round in 0..ROUNDS {
        let mut ids = Vec::new();
        for _ in 0..THREADS {
            ids.push(c.request("thread/start", json!({})).await);
        }
        let mut threads = Vec::new();
        for id in ids {
            let r = c.response(id).await;
            assert!(r.get("error").is_none(), "round {round}: {r}");
            threads.push(r["result"]["thread"]["id"].as_str().unwrap().to_string());
        }
        for t in &threads {
            for name in SERVERS {
                wait_ready(&mut c, t, name).await;
            }
        }
        for t in &threads {
            c.call("thread/unsubscribe", json!({"threadId": t})).await;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let st = c.status().await;
            if st["threads"].as_array().unwrap().is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: never unloaded: {st}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = procs::wait_none_matching(&marker, GONE_WITHIN);
        if !left.is_empty() {
            procs::kill_matching(&marker);
            panic!("round {round}: servers alive after their threads unloaded: {left:?}");
        }
    }
    eprintln!(
        "{ROUNDS} rounds of {THREADS} threads x {} servers in {:?}",
        SERVERS.len(),
        started.elapsed()
    );
    let pids = read_pids(&pidfile);
    assert_eq!(
        pids.len(),
        ROUNDS * THREADS * SERVERS.len(),
        "every server started"
    );
    assert_all_gone(&pids, Instant::now(), "after the churn");
    assert!(zombie_children_of(server.pid()).is_empty());
    server.kill9().await;
}
