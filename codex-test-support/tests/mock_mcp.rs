//! Drives the mock MCP servers the way a client would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use codex_test_support::{procs, MockHttpMcpOptions, MockHttpMcpServer};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

const DEADLINE: Duration = Duration::from_secs(20);

struct StdioMock {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl StdioMock {
    fn start(args: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mock-mcp-server"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    async fn send(&mut self, msg: Value) {
        let line = format!("{msg}\n");
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn request(&mut self, id: i64, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
    }

    /// The next line, raw; `None` at EOF.
    async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = tokio::time::timeout(DEADLINE, self.stdout.read_line(&mut line))
            .await
            .expect("mock answered in time")
            .unwrap();
        (n > 0).then(|| line.trim_end().to_string())
    }

    /// The next JSON-RPC message, skipping lines that are not JSON-RPC.
    async fn message(&mut self) -> Value {
        loop {
            let line = self.line().await.expect("a message before EOF");
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v.get("jsonrpc") == Some(&json!("2.0")) {
                    return v;
                }
            }
        }
    }

    /// The response to `id`, collecting what arrived before it.
    async fn response(&mut self, id: i64) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let m = self.message().await;
            if m.get("id") == Some(&json!(id)) && m.get("method").is_none() {
                return (m, before);
            }
            before.push(m);
        }
    }

    async fn call(&mut self, id: i64, tool: &str, args: Value) -> Value {
        self.request(id, "tools/call", json!({"name": tool, "arguments": args}))
            .await;
        self.response(id).await.0
    }

    async fn initialize(&mut self) -> Value {
        self.request(
            0,
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}),
        )
        .await;
        let (init, _) = self.response(0).await;
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        init
    }

    async fn exit_code(&mut self) -> Option<i32> {
        tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("mock exited in time")
            .unwrap()
            .code()
    }
}

fn text(resp: &Value) -> String {
    resp["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Field 6 of /proc/PID/stat: the session id.
fn session_of(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let close = stat.rfind(')').unwrap();
    stat[close + 2..]
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn initialize_paging_echo_and_resources() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut s = StdioMock::start(&[
        "--name",
        "alpha",
        "--page-size",
        "5",
        "--log",
        log.to_str().unwrap(),
    ]);
    let init = s.initialize().await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(init["result"]["serverInfo"]["name"], "alpha");
    assert_eq!(init["result"]["capabilities"]["tools"]["listChanged"], true);

    let mut names = Vec::new();
    let mut cursor = Value::Null;
    for id in 1.. {
        let params = if cursor.is_null() {
            json!({})
        } else {
            json!({"cursor": cursor})
        };
        s.request(id, "tools/list", params).await;
        let (page, _) = s.response(id).await;
        let tools = page["result"]["tools"].as_array().unwrap();
        assert!(tools.len() <= 5);
        for t in tools {
            assert_eq!(t["inputSchema"]["type"], "object");
            names.push(t["name"].as_str().unwrap().to_string());
        }
        cursor = page["result"]["nextCursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(names, codex_test_support::mcp::catalog::ALL_TOOLS);

    let echo = s.call(10, "echo", json!({"text": "hi"})).await;
    assert_eq!(text(&echo), "echo: hi");
    assert_eq!(echo["result"]["structuredContent"]["echoed"], "hi");
    assert_eq!(echo["result"]["isError"], false);

    s.request(11, "resources/list", json!({})).await;
    let (res, _) = s.response(11).await;
    assert_eq!(res["result"]["resources"][1]["uri"], "mock://b");
    s.request(12, "resources/read", json!({"uri": "mock://a"}))
        .await;
    let (read, _) = s.response(12).await;
    assert_eq!(
        read["result"]["contents"][0]["text"],
        "contents of mock://a"
    );
    s.request(13, "resources/read", json!({"uri": "mock://nope"}))
        .await;
    assert_eq!(s.response(13).await.0["error"]["code"], -32002);
    s.request(14, "no/such", json!({})).await;
    assert_eq!(s.response(14).await.0["error"]["code"], -32601);
    s.request(15, "ping", json!({})).await;
    assert_eq!(s.response(15).await.0["result"], json!({}));

    drop(s.stdin);
    assert_eq!(
        tokio::time::timeout(DEADLINE, s.child.wait())
            .await
            .unwrap()
            .unwrap()
            .code(),
        Some(0)
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged
        .lines()
        .any(|l| l.starts_with("IN ") && l.contains("notifications/initialized")));
}

#[tokio::test]
async fn progress_slow_and_garbage() {
    let mut s = StdioMock::start(&["--garbage-on-start"]);
    s.initialize().await;
    s.request(
        1,
        "tools/call",
        json!({"name": "progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "tok"}}),
    )
    .await;
    let (done, before) = s.response(1).await;
    assert_eq!(text(&done), "done");
    let progress: Vec<_> = before
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3);
    assert_eq!(progress[2]["params"]["progressToken"], "tok");
    assert_eq!(progress[2]["params"]["message"], "step 3");

    // A slow call does not hold up a later one.
    s.request(
        2,
        "tools/call",
        json!({"name": "slow", "arguments": {"ms": 3000}}),
    )
    .await;
    let (echo, _) = {
        s.request(
            3,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "x"}}),
        )
        .await;
        s.response(3).await
    };
    assert_eq!(text(&echo), "echo: x");
    assert_eq!(text(&s.response(2).await.0), "slept 3000");

    s.request(4, "tools/call", json!({"name": "garbage", "arguments": {}}))
        .await;
    let mut junk = Vec::new();
    loop {
        let line = s.line().await.unwrap();
        if line.contains("after garbage") {
            break;
        }
        junk.push(line);
    }
    assert!(junk
        .iter()
        .any(|l| serde_json::from_str::<Value>(l).is_err()));
    assert!(junk
        .iter()
        .any(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v.get("jsonrpc").is_none())));
}

#[tokio::test]
async fn elicit_round_trip_and_cancel() {
    let mut s = StdioMock::start(&[]);
    s.initialize().await;
    s.request(
        1,
        "tools/call",
        json!({"name": "elicit", "arguments": {"message": "name?"}}),
    )
    .await;
    let ask = s.message().await;
    assert_eq!(ask["method"], "elicitation/create");
    assert_eq!(ask["params"]["message"], "name?");
    let answer = json!({"action": "accept", "content": {"answer": "bob"}});
    s.send(json!({"jsonrpc": "2.0", "id": ask["id"], "result": answer}))
        .await;
    let (resp, _) = s.response(1).await;
    assert_eq!(serde_json::from_str::<Value>(&text(&resp)).unwrap(), answer);

    // A cancelled call is not answered; the next one is.
    s.request(
        2,
        "tools/call",
        json!({"name": "slow", "arguments": {"ms": 300}}),
    )
    .await;
    s.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.request(3, "ping", json!({})).await;
    let first = s.message().await;
    assert_eq!(first["id"], 3);
}

#[tokio::test]
async fn crash_and_crash_on_start() {
    let mut s = StdioMock::start(&[]);
    s.initialize().await;
    s.request(1, "tools/call", json!({"name": "crash", "arguments": {}}))
        .await;
    assert_eq!(s.line().await, None);
    assert_eq!(s.exit_code().await, Some(3));

    let mut s = StdioMock::start(&["--crash-on-start"]);
    assert_eq!(s.exit_code().await, Some(1));
    let mut err = String::new();
    let mut stderr = s.child.stderr.take().unwrap();
    tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err)
        .await
        .unwrap();
    assert!(err.contains("mock: crashing on start"), "{err}");
}

#[tokio::test]
async fn spawn_escapes_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let mut s = StdioMock::start(&["--spawn-on-start", "--pid-file", pids.to_str().unwrap()]);
    s.initialize().await;
    let resp = s.call(1, "spawn", json!({})).await;
    let grandchild: u32 = text(&resp).parse().unwrap();
    let server = s.child.id().unwrap();
    let listed: Vec<u32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0], server);
    let mut escaped = listed[1..].to_vec();
    escaped.push(grandchild);
    let _reap = KillOnDrop(escaped.clone());
    for pid in escaped {
        assert!(procs::is_alive(pid));
        assert_ne!(session_of(pid), session_of(server));
    }
}

/// Kills the escaped grandchildren even when an assertion fails.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            procs::signal(*pid, "-9");
        }
    }
}

#[tokio::test]
async fn big_is_one_long_line() {
    let mut s = StdioMock::start(&[]);
    s.initialize().await;
    let bytes = 20 * 1024 * 1024 + 10;
    s.request(
        1,
        "tools/call",
        json!({"name": "big", "arguments": {"bytes": bytes}}),
    )
    .await;
    let line = s.line().await.unwrap();
    assert!(line.len() > 20 * 1024 * 1024);
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(text(&v).len(), bytes);
}

#[tokio::test]
async fn counter_and_add_tool() {
    let mut s = StdioMock::start(&["--tools", "counter,add_tool"]);
    s.initialize().await;
    let pid = s.child.id().unwrap();
    assert_eq!(
        text(&s.call(1, "counter", json!({})).await),
        format!("{pid} 1")
    );
    assert!(s.call(2, "echo", json!({"text": "x"})).await["error"].is_object());
    s.request(
        3,
        "tools/call",
        json!({"name": "add_tool", "arguments": {}}),
    )
    .await;
    let (added, before) = s.response(3).await;
    assert_eq!(text(&added), "added");
    assert!(before
        .iter()
        .any(|m| m["method"] == "notifications/tools/list_changed"));
    s.request(4, "tools/list", json!({})).await;
    let names: Vec<_> = s.response(4).await.0["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["counter", "add_tool", "added_tool"]);
    assert_eq!(
        text(&s.call(5, "counter", json!({})).await),
        format!("{pid} 4")
    );
}

#[tokio::test]
async fn hang_initialize_and_ignore_eof() {
    let mut s = StdioMock::start(&["--hang-initialize", "--ignore-eof"]);
    s.request(0, "initialize", json!({"protocolVersion": "2025-06-18"}))
        .await;
    s.request(1, "ping", json!({})).await;
    assert_eq!(s.response(1).await.0["result"], json!({}));
    drop(s.stdin);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "--ignore-eof keeps it running"
    );
    s.child.kill().await.unwrap();
}

// ---- streamable HTTP ----

async fn post(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut req = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    tokio::time::timeout(DEADLINE, req.send())
        .await
        .unwrap()
        .unwrap()
}

/// The `data:` payloads of an SSE body.
fn sse_messages(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

async fn http_initialize(http: &reqwest::Client, url: &str) -> String {
    let resp = post(
        http,
        url,
        None,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn http_json_sessions_and_tools() {
    let server = MockHttpMcpServer::start(MockHttpMcpOptions::default()).await;
    let url = server.url();
    assert!(url.ends_with("/mcp"));
    let http = reqwest::Client::new();

    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    assert_eq!(post(&http, &url, None, call.clone()).await.status(), 400);

    let session = http_initialize(&http, &url).await;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let resp = post(&http, &url, Some(&session), note).await;
    assert_eq!(resp.status(), 202);
    assert!(resp.text().await.unwrap().is_empty());

    let resp = post(&http, &url, Some(&session), call).await;
    assert_eq!(resp.headers()["content-type"], "application/json");
    let list: Value = resp.json().await.unwrap();
    let names: Vec<_> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"echo") && names.contains(&"counter"));

    let echo: Value = post(
        &http,
        &url,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hey"}}}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(text(&echo), "echo: hey");

    let read: Value = post(
        &http,
        &url,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": "mock://b"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        read["result"]["contents"][0]["text"],
        "contents of mock://b"
    );

    let get = http.get(&url).send().await.unwrap();
    assert_eq!(get.status(), 405);
    let del = http
        .delete(&url)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    assert!(server.live_sessions().is_empty());

    let recorded = server.requests();
    let posted = recorded
        .iter()
        .find(|r| r.rpc_method() == Some("tools/call"))
        .unwrap();
    assert_eq!(posted.method, "POST");
    assert_eq!(posted.header("Mcp-Session-Id"), Some(session.as_str()));
}

#[tokio::test]
async fn http_bearer_and_sse() {
    let server = MockHttpMcpServer::start(MockHttpMcpOptions {
        bearer_token: Some("sekrit".into()),
        sse: true,
        ..Default::default()
    })
    .await;
    let url = server.url();
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}});
    let resp = post(&http, &url, None, init.clone()).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");

    let authed = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                "Bearer sekrit".parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let resp = post(&authed, &url, None, init).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let session = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let msgs = sse_messages(&resp.text().await.unwrap());
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["result"]["protocolVersion"], "2025-06-18");

    let resp = post(
        &authed,
        &url,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "progress", "arguments": {"steps": 2}, "_meta": {"progressToken": 9}}}),
    )
    .await;
    let msgs = sse_messages(&resp.text().await.unwrap());
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0]["method"], "notifications/progress");
    assert_eq!(msgs[0]["params"]["progressToken"], 9);
    assert_eq!(msgs[2]["id"], 1);
    assert_eq!(text(&msgs[2]), "done");
}

#[tokio::test]
async fn http_hang_tools_list() {
    let server = MockHttpMcpServer::start(MockHttpMcpOptions {
        hang_tools_list: true,
        ..Default::default()
    })
    .await;
    let url = server.url();
    let http = reqwest::Client::new();
    let session = http_initialize(&http, &url).await;
    let req = http
        .post(&url)
        .header("mcp-session-id", &session)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send();
    assert!(tokio::time::timeout(Duration::from_millis(500), req)
        .await
        .is_err());
}

#[test]
fn locator_finds_the_built_binary() {
    let found = codex_test_support::mcp::mock_mcp_server_exe();
    assert_eq!(
        found.canonicalize().unwrap(),
        std::path::Path::new(env!("CARGO_BIN_EXE_mock-mcp-server"))
            .canonicalize()
            .unwrap()
    );
}
