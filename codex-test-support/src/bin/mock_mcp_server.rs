//! A stdio MCP server for tests: newline-delimited JSON-RPC 2.0 on
//! stdin/stdout, each request served concurrently, misbehaviour chosen by
//! flags (so a `config.toml` `args = [...]` can pick it).
//!
//! Tools beyond the shared catalog, served only when `--tools` names them:
//! `wedge` (the process stays alive but stops reading stdin and answers
//! nothing more, not even `ping`). `--crash-after-ms N` exits (code 4) N ms
//! after start, whatever it is doing.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_test_support::mcp::catalog;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, Notify};

/// How long `elicit` waits for the client's answer before giving up.
const ELICIT_DEADLINE: Duration = Duration::from_secs(600);

#[derive(Default)]
struct Opts {
    name: String,
    log: Option<String>,
    pid_file: Option<String>,
    initialize_delay_ms: u64,
    hang_initialize: bool,
    crash_on_start: bool,
    garbage_on_start: bool,
    spawn_on_start: bool,
    page_size: usize,
    hang_tools_list: bool,
    tools: Option<Vec<String>>,
    ignore_eof: bool,
    crash_after_ms: Option<u64>,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        name: "mock".into(),
        ..Opts::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--name" => o.name = value()?,
            "--log" => o.log = Some(value()?),
            "--pid-file" => o.pid_file = Some(value()?),
            "--initialize-delay-ms" => {
                o.initialize_delay_ms = value()?.parse().map_err(|e| format!("{a}: {e}"))?
            }
            "--crash-after-ms" => {
                o.crash_after_ms = Some(value()?.parse().map_err(|e| format!("{a}: {e}"))?)
            }
            "--page-size" => o.page_size = value()?.parse().map_err(|e| format!("{a}: {e}"))?,
            "--tools" => o.tools = Some(value()?.split(',').map(str::to_string).collect()),
            "--hang-initialize" => o.hang_initialize = true,
            "--crash-on-start" => o.crash_on_start = true,
            "--garbage-on-start" => o.garbage_on_start = true,
            "--spawn-on-start" => o.spawn_on_start = true,
            "--hang-tools-list" => o.hang_tools_list = true,
            "--ignore-eof" => o.ignore_eof = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(o)
}

/// State shared by the request tasks.
struct Server {
    opts: Opts,
    /// Lines to stdout; one writer keeps them whole and ordered. `None`
    /// tells it to stop once what was queued before is written.
    out: mpsc::Sender<Option<String>>,
    tools: Mutex<Vec<String>>,
    calls: Mutex<u64>,
    cancelled: Mutex<HashSet<String>>,
    /// Our `elicitation/create` requests awaiting the client's response.
    pending: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    next_elicit: Mutex<u64>,
    /// Set by `wedge`: nothing is read or written any more.
    wedged: AtomicBool,
    wedge: Notify,
}

impl Server {
    async fn send(&self, msg: Value) {
        self.send_raw(&msg.to_string()).await;
    }

    async fn send_raw(&self, line: &str) {
        if self.wedged.load(Ordering::SeqCst) {
            return;
        }
        let _ = self.out.send(Some(line.to_string())).await;
    }

    fn log(&self, line: &str) {
        if let Some(path) = &self.opts.log {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{line}");
            }
        }
    }

    fn is_cancelled(&self, id: &Value) -> bool {
        self.cancelled
            .lock()
            .is_ok_and(|c| c.contains(&id.to_string()))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mock: {e}");
            std::process::exit(2);
        }
    };
    if let Some(path) = &opts.pid_file {
        append_line(path, &std::process::id().to_string());
    }
    if opts.crash_on_start {
        eprintln!("mock: crashing on start");
        std::process::exit(1);
    }
    if let Some(ms) = opts.crash_after_ms {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            eprintln!("mock: crashing after {ms} ms");
            std::process::exit(4);
        });
    }
    let (tx, mut rx) = mpsc::channel::<Option<String>>(256);
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(Some(line)) = rx.recv().await {
            let ok = stdout.write_all(line.as_bytes()).await.is_ok()
                && stdout.write_all(b"\n").await.is_ok()
                && stdout.flush().await.is_ok();
            if !ok {
                break;
            }
        }
    });
    let tools = match &opts.tools {
        Some(t) => t.clone(),
        None => catalog::ALL_TOOLS.iter().map(|s| s.to_string()).collect(),
    };
    let srv = Arc::new(Server {
        opts,
        out: tx,
        tools: Mutex::new(tools),
        calls: Mutex::new(0),
        cancelled: Mutex::new(HashSet::new()),
        pending: Mutex::new(HashMap::new()),
        next_elicit: Mutex::new(0),
        wedged: AtomicBool::new(false),
        wedge: Notify::new(),
    });
    if srv.opts.garbage_on_start {
        for line in [
            "npm WARN something",
            "npm WARN deprecated mock@0.0.1",
            "> mock starting...",
        ] {
            srv.send_raw(line).await;
        }
    }
    if srv.opts.spawn_on_start {
        match spawn_escaped().await {
            Ok(pid) => {
                if let Some(path) = &srv.opts.pid_file {
                    append_line(path, &pid.to_string());
                }
            }
            Err(e) => eprintln!("mock: spawn on start: {e}"),
        }
    }
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    loop {
        line.clear();
        let read = tokio::select! {
            r = stdin.read_line(&mut line) => r,
            _ = srv.wedge.notified() => {
                eprintln!("mock: wedged; reading and answering nothing");
                loop {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            }
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = line.trim_end();
        srv.log(&format!("IN {text}"));
        match serde_json::from_str::<Value>(text) {
            Ok(msg) => dispatch(&srv, msg),
            Err(_) => eprintln!("mock: ignoring non-JSON line"),
        }
    }
    if srv.opts.ignore_eof {
        eprintln!("mock: stdin closed, ignoring EOF");
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
    // Requests that answer at once (e.g. `ping` just before EOF) get to
    // queue their reply; slow or hung ones are abandoned.
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    let _ = srv.out.send(None).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    std::process::exit(0);
}

/// One `write` per line, so that servers sharing a pid file (O_APPEND)
/// never interleave within a line.
fn append_line(path: &str, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

fn dispatch(srv: &Arc<Server>, msg: Value) {
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_string);
    let id = msg.get("id").cloned();
    match (method, id) {
        (Some(method), Some(id)) => {
            let srv = srv.clone();
            tokio::spawn(async move {
                let params = msg.get("params").cloned().unwrap_or(Value::Null);
                if let Some(outcome) = handle_request(&srv, &method, &params).await {
                    if srv.is_cancelled(&id) {
                        return;
                    }
                    let reply = match outcome {
                        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
                        Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
                    };
                    srv.send(reply).await;
                }
            });
        }
        (Some(method), None) => {
            if method == "notifications/cancelled" {
                let rid = msg
                    .pointer("/params/requestId")
                    .cloned()
                    .unwrap_or(Value::Null);
                eprintln!("mock: cancelled request {rid}");
                srv.log(&format!("CANCELLED {rid}"));
                if let Ok(mut c) = srv.cancelled.lock() {
                    c.insert(rid.to_string());
                }
            }
        }
        (None, Some(id)) => {
            let waiter = srv
                .pending
                .lock()
                .ok()
                .and_then(|mut p| p.remove(&id.to_string()));
            if let Some(waiter) = waiter {
                let answer = msg
                    .get("result")
                    .or_else(|| msg.get("error"))
                    .cloned()
                    .unwrap_or(Value::Null);
                let _ = waiter.send(answer);
            }
        }
        (None, None) => eprintln!("mock: ignoring a message with neither method nor id"),
    }
}

/// `None` never answers; otherwise the result or the JSON-RPC error.
async fn handle_request(
    srv: &Arc<Server>,
    method: &str,
    params: &Value,
) -> Option<Result<Value, Value>> {
    let page_size = srv.opts.page_size;
    let out = match method {
        "initialize" => {
            if srv.opts.hang_initialize {
                return None;
            }
            if srv.opts.initialize_delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(srv.opts.initialize_delay_ms)).await;
            }
            Ok(catalog::initialize_result(params, &srv.opts.name))
        }
        "ping" => Ok(json!({})),
        "tools/list" => {
            if srv.opts.hang_tools_list {
                return None;
            }
            let tools = srv
                .tools
                .lock()
                .map(|t| t.iter().map(|n| tool_def(n)).collect())
                .unwrap_or_default();
            Ok(catalog::page("tools", tools, params, page_size))
        }
        "tools/call" => return call_tool(srv, params).await,
        "resources/list" => Ok(catalog::page(
            "resources",
            catalog::resources(),
            params,
            page_size,
        )),
        "resources/templates/list" => Ok(catalog::page(
            "resourceTemplates",
            catalog::resource_templates(),
            params,
            page_size,
        )),
        "resources/read" => {
            catalog::read_resource(params.get("uri").and_then(Value::as_str).unwrap_or(""))
        }
        _ => Err(json!({"code": -32601, "message": "Method not found"})),
    };
    Some(out)
}

async fn call_tool(srv: &Arc<Server>, params: &Value) -> Option<Result<Value, Value>> {
    let name = params.get("name").and_then(Value::as_str).unwrap_or("");
    let args = params.get("arguments").cloned().unwrap_or(json!({}));
    let n = srv
        .calls
        .lock()
        .map(|mut c| {
            *c += 1;
            *c
        })
        .unwrap_or(0);
    let listed = srv.tools.lock().is_ok_and(|t| t.iter().any(|x| x == name));
    if !listed {
        return Some(Err(
            json!({"code": -32602, "message": format!("Unknown tool: {name}")}),
        ));
    }
    let int_arg = |k: &str| args.get(k).and_then(Value::as_u64).unwrap_or(0);
    let result = match name {
        "echo" | "read_only_echo" | "added_tool" => catalog::echo_result(&args),
        "slow" => {
            let ms = int_arg("ms");
            tokio::time::sleep(Duration::from_millis(ms)).await;
            catalog::text_result(&format!("slept {ms}"))
        }
        "hang" => return None,
        "wedge" => {
            srv.wedged.store(true, Ordering::SeqCst);
            // A stored permit: the read loop sees it even if it is not
            // waiting right now.
            srv.wedge.notify_one();
            return None;
        }
        "crash" => {
            eprintln!("mock: crashing on request");
            std::process::exit(3);
        }
        "big" => catalog::text_result(&"x".repeat(int_arg("bytes") as usize)),
        "garbage" => {
            srv.send_raw("this is not JSON").await;
            srv.send_raw(r#"{"foo":1}"#).await;
            srv.send_raw("[1,2]").await;
            catalog::text_result("after garbage")
        }
        "progress" => {
            let steps = int_arg("steps");
            let token = params.pointer("/_meta/progressToken").cloned();
            for i in 1..=steps {
                if let Some(token) = &token {
                    srv.send(json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {
                        "progressToken": token, "progress": i, "total": steps, "message": format!("step {i}"),
                    }}))
                    .await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            catalog::text_result("done")
        }
        "elicit" => elicit(srv, &args).await,
        "spawn" => match spawn_escaped().await {
            Ok(pid) => catalog::text_result(&pid.to_string()),
            Err(e) => json!({"content": [{"type": "text", "text": e}], "isError": true}),
        },
        "counter" => catalog::text_result(&format!("{} {n}", std::process::id())),
        "add_tool" => {
            if let Ok(mut t) = srv.tools.lock() {
                if !t.iter().any(|x| x == "added_tool") {
                    t.push("added_tool".into());
                }
            }
            srv.send(json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}))
                .await;
            catalog::text_result("added")
        }
        _ => {
            return Some(Err(
                json!({"code": -32602, "message": format!("Unknown tool: {name}")}),
            ));
        }
    };
    Some(Ok(result))
}

/// A tool's definition: the shared catalog's, and this binary's own extras.
fn tool_def(name: &str) -> Value {
    match name {
        "wedge" => json!({
            "name": "wedge",
            "description": "Stop reading and answering anything (the process stays alive).",
            "inputSchema": {"type": "object", "properties": {}},
        }),
        _ => catalog::tool(name),
    }
}

/// Sends `elicitation/create` and answers with the client's response.
async fn elicit(srv: &Arc<Server>, args: &Value) -> Value {
    let rid = srv
        .next_elicit
        .lock()
        .map(|mut n| {
            *n += 1;
            format!("elicit-{n}")
        })
        .unwrap_or_else(|_| "elicit-0".into());
    let (tx, rx) = oneshot::channel();
    if let Ok(mut p) = srv.pending.lock() {
        p.insert(json!(rid).to_string(), tx);
    }
    let message = args.get("message").cloned().unwrap_or(json!(""));
    srv.send(
        json!({"jsonrpc": "2.0", "id": rid, "method": "elicitation/create", "params": {
            "message": message,
            "requestedSchema": {"type": "object", "properties": {"answer": {"type": "string"}}},
        }}),
    )
    .await;
    match tokio::time::timeout(ELICIT_DEADLINE, rx).await {
        Ok(Ok(answer)) => catalog::text_result(&answer.to_string()),
        _ => {
            json!({"content": [{"type": "text", "text": "no elicitation response"}], "isError": true})
        }
    }
}

/// Starts `sleep 1000` in a new session as a grandchild (via `sh`, which
/// exits at once), so it escapes the server's process group. Returns its pid.
async fn spawn_escaped() -> Result<u32, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new("sh")
            .args([
                "-c",
                "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!",
            ])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| "sh did not exit".to_string())?
    .map_err(|e| format!("sh: {e}"))?;
    let pid: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("grandchild pid: {e}"))?;
    // `$!` is known before the child has run setsid(1)'s exec: answer once
    // it is `sleep`, so callers see it in its own session.
    for _ in 0..200 {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.starts_with(b"sleep\0") {
            return Ok(pid);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("grandchild {pid} did not become `sleep`"))
}
