//! MCP servers under fault, through a real `codex app-server`: each
//! thread's servers run in its `codex-session` worker, and a server that
//! hangs, wedges, crashes, writes garbage or oversized messages, never
//! finishes `initialize`, or cannot start fails alone (its call, or its
//! server), while the thread carries on. Also the streamable HTTP transport
//! with a bearer token, and progress. The real mock MCP server binary and
//! the mock model (which scripts the model's `mcp__SERVER` calls).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use codex_test_support::mcp::mock_mcp_server_exe;
use codex_test_support::{
    procs, sse, MockHttpMcpOptions, MockHttpMcpServer, MockModelServer, MockResponse, TestHome,
};
use common::app_server::{app_server_command, Client, StdioServer};
use serde_json::{json, Value};

/// A model response that is one call of `tool` on MCP server `server`, as
/// the Responses API sends a namespaced function call.
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

/// `[mcp_servers.NAME]` running the stdio mock with `args`, calls approved
/// without asking, plus `extra` lines.
fn stdio_server(name: &str, args: &[&str], extra: &str) -> String {
    let exe = mock_mcp_server_exe().display().to_string();
    format!(
        "[mcp_servers.{name}]\ncommand = {exe:?}\nargs = {args:?}\n\
         default_tools_approval_mode = \"approve\"\n{extra}\n"
    )
}

async fn start(home: &TestHome) -> StdioServer {
    let mut s = StdioServer::start(home, &[]).await;
    s.client.initialize("mcp-tests").await;
    s
}

fn is_status_of(v: &Value, thread: &str, name: &str) -> bool {
    v["method"] == "mcpServer/startupStatus/updated"
        && v.get("id").is_none()
        && v["params"]["threadId"] == thread
        && v["params"]["name"] == name
}

/// The statuses `name` of `thread` went through, as seen so far.
fn statuses(c: &Client, thread: &str, name: &str) -> Vec<String> {
    c.seen
        .iter()
        .filter(|v| is_status_of(v, thread, name))
        .map(|v| v["params"]["status"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until `name` of `thread` has reported `status` `n` times (its
/// status notifications are consumed; everything else stays for later).
async fn wait_status_count(c: &mut Client, thread: &str, name: &str, status: &str, n: usize) {
    loop {
        let seen = statuses(c, thread, name);
        if seen.iter().filter(|s| *s == status).count() >= n {
            return;
        }
        let (t, m) = (thread.to_string(), name.to_string());
        c.wait_for(
            &format!("{name} {status} #{n} (so far {seen:?})"),
            move |v| is_status_of(v, &t, &m),
        )
        .await;
    }
}

/// The `mcpToolCall` item `call_id` as completed.
fn completed_call(c: &Client, call_id: &str) -> Value {
    c.seen_method("item/completed")
        .into_iter()
        .map(|n| n["params"]["item"].clone())
        .find(|i| i["type"] == "mcpToolCall" && i["id"] == call_id)
        .unwrap_or_else(|| panic!("no completed mcpToolCall {call_id}"))
}

/// What the model read for `call_id` (in any later request).
fn output_of(mock: &MockModelServer, call_id: &str) -> String {
    mock.model_requests()
        .iter()
        .find_map(|r| r.function_output(call_id))
        .unwrap_or_else(|| panic!("no request carries the output of {call_id}"))
}

/// The pid a `counter` call answered with (`"PID N"` after `Output:`).
fn counter_pid(output: &str) -> u32 {
    let line = output
        .lines()
        .last()
        .unwrap_or_else(|| panic!("empty counter output"));
    line.split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a counter answer: {output:?}"))
}

/// The namespaces a model request offered.
fn namespaces(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["type"] == "namespace")
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// Whether `pid` is gone (or a zombie) within `wait`.
fn wait_gone(pid: u32, wait: Duration) -> bool {
    let deadline = std::time::Instant::now() + wait;
    while procs::is_alive(pid) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

async fn turn_ok(c: &mut Client, thread: &str, prompt: &str) -> Value {
    c.start_turn(thread, prompt).await;
    let done = c.turn_completed(thread).await;
    assert_eq!(done["params"]["turn"]["status"], "completed", "{done}");
    done
}

/// 1. A call that never answers fails at `tool_timeout_sec`, alone: the
///    model reads the timeout, the server (it answers pings) keeps serving.
///    (2 s: the ping probe after the timeout gets as long, and a loaded
///    machine must not make a healthy server look wedged.)
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_call_times_out_alone_and_the_turn_completes() {
    let home = TestHome::new();
    let pids = home.root().join("hang.pids");
    let mock = MockModelServer::start(vec![
        mcp_call("call_h", "slow", "hang", json!({})),
        mcp_call("call_c", "slow", "counter", json!({})),
        sse::message("done"),
    ])
    .await;
    let pf = pids.display().to_string();
    home.write_config(
        &mock.url(),
        &stdio_server("slow", &["--pid-file", &pf], "tool_timeout_sec = 2"),
    );
    let mut s = start(&home).await;
    let c = &mut s.client;
    let t = c.start_thread(json!({})).await;
    wait_status_count(c, &t, "slow", "ready", 1).await;
    turn_ok(c, &t, "hang").await;

    let out = output_of(&mock, "call_h");
    assert!(
        out.contains("did not answer within 2s") && out.contains("`slow`"),
        "{out}"
    );
    let item = completed_call(c, "call_h");
    assert_eq!(item["status"], "failed", "{item}");
    assert!(
        item["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tool_timeout_sec"),
        "{item}"
    );
    // The same process served the next call.
    let first = std::fs::read_to_string(&pids).unwrap();
    let first: u32 = first.lines().next().unwrap().trim().parse().unwrap();
    assert_eq!(counter_pid(&output_of(&mock, "call_c")), first);
    assert_eq!(statuses(c, &t, "slow"), ["starting", "ready"]);
}

/// 2. A wedged server (alive, answering nothing, not even `ping`) is killed
///    after its call times out and restarted; the next call in the same turn
///    is served by the new process.
#[tokio::test(flavor = "multi_thread")]
async fn a_wedged_server_is_killed_and_restarted_and_the_next_call_succeeds() {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![
        mcp_call("call_c1", "w", "counter", json!({})),
        mcp_call("call_w", "w", "wedge", json!({})),
        mcp_call("call_c2", "w", "counter", json!({})),
        sse::message("done"),
    ])
    .await;
    home.write_config(
        &mock.url(),
        &stdio_server(
            "w",
            &["--tools", "counter,wedge"],
            "tool_timeout_sec = 1\nstartup_timeout_sec = 30",
        ),
    );
    let mut s = start(&home).await;
    let c = &mut s.client;
    let t = c.start_thread(json!({})).await;
    wait_status_count(c, &t, "w", "ready", 1).await;
    turn_ok(c, &t, "wedge it").await;

    let before = counter_pid(&output_of(&mock, "call_c1"));
    let wedged = output_of(&mock, "call_w");
    assert!(wedged.contains("did not answer within 1s"), "{wedged}");
    let after_out = output_of(&mock, "call_c2");
    let after = counter_pid(&after_out);
    assert_ne!(before, after, "a new process served the call: {after_out}");
    assert!(after_out.contains(&format!("{after} 1")), "{after_out}");
    assert_eq!(completed_call(c, "call_c2")["status"], "completed");
    assert!(
        wait_gone(before, Duration::from_secs(5)),
        "the wedged server {before} still runs"
    );
    wait_status_count(c, &t, "w", "ready", 2).await;
    assert_eq!(
        statuses(c, &t, "w"),
        ["starting", "ready", "starting", "ready"]
    );
    let restart = c
        .seen
        .iter()
        .filter(|v| is_status_of(v, &t, "w"))
        .nth(2)
        .unwrap()
        .clone();
    assert!(
        restart["params"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("stopped answering"),
        "{restart}"
    );
}

/// 3. A server that exits mid-call fails that call with the exit named; it
///    is restarted and a later call succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_mid_call_fails_the_call_and_the_server_is_restarted() {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![
        mcp_call("call_c1", "crashy", "counter", json!({})),
        mcp_call("call_x", "crashy", "crash", json!({})),
        mcp_call("call_c2", "crashy", "counter", json!({})),
        sse::message("done"),
    ])
    .await;
    home.write_config(&mock.url(), &stdio_server("crashy", &[], ""));
    let mut s = start(&home).await;
    let c = &mut s.client;
    let t = c.start_thread(json!({})).await;
    wait_status_count(c, &t, "crashy", "ready", 1).await;
    turn_ok(c, &t, "crash it").await;

    let crashed = output_of(&mock, "call_x");
    assert!(
        crashed.contains("exited") && crashed.contains("exit code 3"),
        "{crashed}"
    );
    let item = completed_call(c, "call_x");
    assert_eq!(item["status"], "failed", "{item}");
    let before = counter_pid(&output_of(&mock, "call_c1"));
    let after = counter_pid(&output_of(&mock, "call_c2"));
    assert_ne!(before, after);
    wait_status_count(c, &t, "crashy", "ready", 2).await;
    assert_eq!(
        statuses(c, &t, "crashy"),
        ["starting", "ready", "starting", "ready"]
    );
}

/// 4. Garbage on stdout is the server's problem only (logged, its calls
///    still answered); a 20 MiB message ends that server's connection and
///    fails the call, never the worker: a later turn completes, on a
///    restarted server.
#[tokio::test(flavor = "multi_thread")]
async fn garbage_and_an_oversized_message_fail_only_that_server() {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![
        mcp_call("call_g", "noisy", "garbage", json!({})),
        mcp_call("call_b", "noisy", "big", json!({"bytes": 20_971_520})),
        sse::message("survived"),
        mcp_call("call_c", "noisy", "counter", json!({})),
        sse::message("still here"),
    ])
    .await;
    home.write_config(
        &mock.url(),
        &stdio_server("noisy", &["--garbage-on-start"], "startup_timeout_sec = 30"),
    );
    let mut s = start(&home).await;
    let c = &mut s.client;
    let t = c.start_thread(json!({})).await;
    wait_status_count(c, &t, "noisy", "ready", 1).await;
    let w = {
        let st = c.status().await;
        st["threads"][0]["pid"].as_u64().unwrap() as u32
    };
    turn_ok(c, &t, "make noise").await;

    let g = output_of(&mock, "call_g");
    assert!(g.contains("after garbage"), "{g}");
    let b = output_of(&mock, "call_b");
    assert!(
        b.contains("larger than 16 MiB") && b.contains("`noisy`"),
        "{b}"
    );
    assert_eq!(completed_call(c, "call_b")["status"], "failed");
    // Same worker, a new turn, a restarted server.
    turn_ok(c, &t, "again").await;
    assert!(output_of(&mock, "call_c").contains("Output:"));
    assert!(procs::is_alive(w));
    assert_eq!(c.worker_pid(&t).await, w);
}

/// 5. A server stuck in `initialize` does not hold up the turn: the first
///    model request goes out without its tools, and tells the model it is
///    starting; a server that becomes ready later is offered later.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_still_starting_is_announced_and_a_late_one_offered_later() {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![sse::message("one"), sse::message("two")]).await;
    let config = format!(
        "{}{}",
        stdio_server("stuck", &["--hang-initialize"], "startup_timeout_sec = 120"),
        stdio_server(
            "late",
            &["--initialize-delay-ms", "2500"],
            "startup_timeout_sec = 60"
        ),
    );
    home.write_config(&mock.url(), &config);
    let mut s = start(&home).await;
    let c = &mut s.client;
    let t = c.start_thread(json!({})).await;
    turn_ok(c, &t, "first").await;
    let first = &mock.model_requests()[0];
    assert!(
        !namespaces(&first.body).contains(&"mcp__stuck".to_string()),
        "{:?}",
        namespaces(&first.body)
    );
    let text = first.body["input"].to_string();
    assert!(text.contains("<mcp_server_status>"), "{text}");
    assert!(text.contains("`stuck`: still starting"), "{text}");

    wait_status_count(c, &t, "late", "ready", 1).await;
    turn_ok(c, &t, "second").await;
    let second = &mock.model_requests()[1];
    let offered = namespaces(&second.body);
    assert!(offered.contains(&"mcp__late".to_string()), "{offered:?}");
    assert!(!offered.contains(&"mcp__stuck".to_string()), "{offered:?}");
    assert_eq!(statuses(c, &t, "stuck"), ["starting"]);
}

/// 6. A `required` server that cannot start fails `thread/start`, naming it.
#[tokio::test(flavor = "multi_thread")]
async fn a_required_server_that_cannot_start_fails_thread_start() {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![]).await;
    home.write_config(
        &mock.url(),
        &stdio_server("needed", &["--crash-on-start"], "required = true"),
    );
    let mut s = start(&home).await;
    let c = &mut s.client;
    let id = c.request("thread/start", json!({})).await;
    let r = c.response(id).await;
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(r.get("error").is_some(), "{r}");
    assert!(message.contains("`needed`"), "{r}");
    assert!(mock.model_requests().is_empty());
    // The daemon is fine: a thread without it starts.
    let ok = c
        .call(
            "thread/start",
            json!({"config": {"mcp_servers.needed.enabled": false}}),
        )
        .await;
    assert!(ok["thread"]["id"].is_string(), "{ok}");
}

/// 9. Streamable HTTP end to end with a bearer token from the environment;
///    an HTTP server that never lists its tools fails without affecting a
///    healthy stdio server.
#[tokio::test(flavor = "multi_thread")]
async fn an_http_server_with_a_bearer_token_works_and_a_hung_one_fails_alone() {
    let home = TestHome::new();
    let web = MockHttpMcpServer::start(MockHttpMcpOptions {
        bearer_token: Some("tok-mcp-1234".into()),
        ..MockHttpMcpOptions::default()
    })
    .await;
    let hung = MockHttpMcpServer::start(MockHttpMcpOptions {
        hang_tools_list: true,
        ..MockHttpMcpOptions::default()
    })
    .await;
    let mock = MockModelServer::start(vec![
        mcp_call("call_web", "web", "echo", json!({"text": "over http"})),
        mcp_call("call_local", "local", "echo", json!({"text": "over stdio"})),
        sse::message("done"),
    ])
    .await;
    let config = format!(
        "[mcp_servers.web]\nurl = {:?}\nbearer_token_env_var = \"MCP_TEST_TOKEN\"\n\
         default_tools_approval_mode = \"approve\"\n\n\
         [mcp_servers.hung]\nurl = {:?}\nstartup_timeout_sec = 2\n\n{}",
        web.url(),
        hung.url(),
        stdio_server("local", &[], ""),
    );
    home.write_config(&mock.url(), &config);
    let mut cmd = app_server_command(&home, &[]);
    cmd.env("MCP_TEST_TOKEN", "tok-mcp-1234")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut s = StdioServer::from_command(cmd);
    let c = &mut s.client;
    c.initialize("mcp-tests").await;
    let t = c.start_thread(json!({})).await;
    wait_status_count(c, &t, "web", "ready", 1).await;
    wait_status_count(c, &t, "local", "ready", 1).await;
    wait_status_count(c, &t, "hung", "failed", 1).await;
    turn_ok(c, &t, "call both").await;

    assert!(output_of(&mock, "call_web").contains("over http"));
    assert!(output_of(&mock, "call_local").contains("over stdio"));
    let authorized = web
        .requests()
        .iter()
        .filter(|r| r.rpc_method() == Some("tools/call"))
        .all(|r| r.header("authorization") == Some("Bearer tok-mcp-1234"));
    assert!(authorized, "{:?}", web.requests());
    let failed = c
        .seen
        .iter()
        .find(|v| is_status_of(v, &t, "hung") && v["params"]["status"] == "failed")
        .unwrap()
        .clone();
    assert!(
        failed["params"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("`hung`"),
        "{failed}"
    );
    let offered = namespaces(&mock.model_requests()[0].body);
    assert!(
        offered.contains(&"mcp__web".to_string()) && offered.contains(&"mcp__local".to_string()),
        "{offered:?}"
    );
    assert!(!offered.contains(&"mcp__hung".to_string()));
}

/// 10. A call's progress notifications reach the client.
#[tokio::test(flavor = "multi_thread")]
async fn progress_becomes_item_mcp_tool_call_progress() {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![
        mcp_call("call_p", "prog", "progress", json!({"steps": 3})),
        sse::message("done"),
    ])
    .await;
    home.write_config(&mock.url(), &stdio_server("prog", &[], ""));
    let mut s = start(&home).await;
    let c = &mut s.client;
    let t = c.start_thread(json!({})).await;
    wait_status_count(c, &t, "prog", "ready", 1).await;
    let turn = c.start_turn(&t, "progress").await;
    let first = c.thread_note("item/mcpToolCall/progress", &t).await;
    assert_eq!(first["params"]["itemId"], "call_p");
    assert_eq!(first["params"]["turnId"], turn.as_str());
    assert_eq!(first["params"]["message"], "step 1");
    let done = c.turn_completed(&t).await;
    assert_eq!(done["params"]["turn"]["status"], "completed");
    let messages: Vec<String> = c
        .seen_method("item/mcpToolCall/progress")
        .iter()
        .map(|n| n["params"]["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        messages
            .iter()
            .all(|m| ["step 1", "step 2", "step 3"].contains(&m.as_str())),
        "{messages:?}"
    );
    assert!(output_of(&mock, "call_p").ends_with("done"));
    assert_eq!(completed_call(c, "call_p")["status"], "completed");
}

/// A server that keeps crashing on its own (`--crash-after-ms`) is
/// restarted with backoff, at most `MAX_RESTARTS` times in a row, then left
/// `failed`; the model is told it is not available.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_keeps_crashing_ends_failed_and_the_model_is_told() {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![sse::message("noted")]).await;
    home.write_config(
        &mock.url(),
        &stdio_server("flaky", &["--crash-after-ms", "1000"], ""),
    );
    let mut s = start(&home).await;
    let c = &mut s.client;
    let t = c.start_thread(json!({})).await;
    wait_status_count(c, &t, "flaky", "failed", 1).await;
    let seen = statuses(c, &t, "flaky");
    let restarts = seen.iter().filter(|s| *s == "starting").count() - 1;
    assert!((1..=5).contains(&restarts), "{seen:?}");
    assert_eq!(seen.last().unwrap(), "failed");
    turn_ok(c, &t, "status?").await;
    let text = mock.model_requests()[0].body["input"].to_string();
    assert!(text.contains("`flaky`: not available"), "{text}");
    assert!(!namespaces(&mock.model_requests()[0].body).contains(&"mcp__flaky".to_string()));
}

/// Regression: interrupting a turn during an MCP call tells the server
/// which request is cancelled (`notifications/cancelled` with that
/// request's id, not `null`), and the thread carries on.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_call_is_cancelled_at_the_server_by_its_id() {
    let home = TestHome::new();
    let log = home.root().join("mcp.log");
    let mock = MockModelServer::start(vec![
        mcp_call("call_i", "slow", "hang", json!({})),
        sse::message("after"),
    ])
    .await;
    let lf = log.display().to_string();
    home.write_config(&mock.url(), &stdio_server("slow", &["--log", &lf], ""));
    let mut s = start(&home).await;
    let c = &mut s.client;
    let t = c.start_thread(json!({})).await;
    wait_status_count(c, &t, "slow", "ready", 1).await;
    let turn = c.start_turn(&t, "hang").await;
    c.wait_for("the call started", |v| {
        v["method"] == "item/started" && v["params"]["item"]["type"] == "mcpToolCall"
    })
    .await;
    c.call("turn/interrupt", json!({"threadId": t, "turnId": turn}))
        .await;
    let done = c.turn_completed(&t).await;
    assert_eq!(done["params"]["turn"]["status"], "interrupted", "{done}");
    // The server saw the call and then its cancellation, by the same id.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (call_id, cancelled) = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let msgs: Vec<Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("IN "))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let call = msgs
            .iter()
            .find(|m| m["method"] == "tools/call")
            .map(|m| m["id"].clone());
        let cancel = msgs
            .iter()
            .find(|m| m["method"] == "notifications/cancelled")
            .map(|m| m["params"]["requestId"].clone());
        if let (Some(a), Some(b)) = (call.clone(), cancel) {
            break (a, b);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no cancellation reached the server: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(call_id.is_number(), "{call_id}");
    assert_eq!(cancelled, call_id);
    // The thread carries on.
    turn_ok(c, &t, "again").await;
}
