//! MCP figures, ours and (with `CODEX_UPSTREAM`) upstream's side by side:
//!
//! - the latency one `tools/call` gains by going through our client
//!   (`codex_core::mcp::client::McpClient` over `stdio::spawn`, on a
//!   current-thread runtime as in a `codex-session` worker) over the same
//!   round trips written raw on the mock server's stdin/stdout: the mock
//!   server's own time and the pipes are in both, so the difference is the
//!   client's;
//! - the same call through a whole turn of `codex app-server` (the model
//!   calls `mcp__mock` `echo`, approved by config) against a plain turn and
//!   against a turn calling the built-in `update_plan` (also two model
//!   requests, so that difference is the MCP dispatch alone);
//! - time from `turn/start` to the model request of a fresh thread with 5
//!   servers of which one never answers `initialize`: the startup grace
//!   (1 s), not the server's 30 s timeout, should bound it.
//!
//! `cargo bench -p codex-benches --bench mcp`, after `cargo build --release
//! -p codex-cli -p codex-test-support --bins` (our `codex` and
//! `mock-mcp-server`). Under `cargo test` it runs a small smoke version.
//! `MCP_BENCH_SAMPLES=1` prints the turn samples (the figures are p50s of
//! noisy ones); `MCP_BENCH_FIFTH="--initialize-delay-ms 500"` makes the
//! fifth server slow instead of hung.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codex_benches::{ms, our_binary, percentile, print_table, upstream_binary, Rpc};
use codex_core::mcp::client::{McpClient, ServerRequests, PROTOCOL_VERSION};
use codex_core::mcp::stdio::{self, StdioSpec};
use codex_test_support::mock_server::{MockResponse, SseStep};
use codex_test_support::{sse, MockModelServer, TestHome};
use serde_json::{json, Value};

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

struct Counts {
    calls: usize,
    warmup: usize,
    turns: usize,
    startups: usize,
}

/// The bench answers no server request.
struct NoRequests;

impl ServerRequests for NoRequests {
    fn elicit(&self, _: Value) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send>> {
        Box::pin(async { Err("the bench answers no elicitation".to_string()) })
    }
    fn tools_changed(&self) {}
    fn roots(&self) -> Vec<String> {
        Vec::new()
    }
}

fn initialize_params() -> Value {
    json!({
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0.1.0"},
    })
}

/// `tools/call echo` params shaped as `mcp::call` sends them.
fn echo_params(i: usize, token: u64) -> Value {
    json!({
        "name": "echo",
        "arguments": {"text": format!("hello {i}")},
        "_meta": {"callId": format!("call_{i}"), "threadId": "bench", "sessionId": "bench",
                  "progressToken": token},
    })
}

fn check_echo(i: usize, result: &Value) {
    let want = format!("echo: hello {i}");
    assert_eq!(result["content"][0]["text"], want.as_str(), "{result}");
}

/// Round trips through `McpClient`.
async fn client_round_trips(exe: &Path, c: &Counts) -> Vec<Duration> {
    let spec = StdioSpec {
        server: "mock".into(),
        command: exe.display().to_string(),
        args: Vec::new(),
        env: BTreeMap::new(),
        env_vars: Vec::new(),
        cwd: std::env::temp_dir(),
    };
    let transport = stdio::spawn(&spec).expect("spawn mock-mcp-server");
    let client = McpClient::new("mock", transport, Arc::new(NoRequests));
    client.initialize(CALL_TIMEOUT).await.expect("initialize");
    let mut times = Vec::with_capacity(c.calls);
    for i in 0..c.warmup + c.calls {
        let t = Instant::now();
        let (token, _progress) = client.progress_token();
        let r = client
            .request("tools/call", echo_params(i, token), CALL_TIMEOUT)
            .await
            .expect("tools/call");
        client.drop_progress(token);
        let elapsed = t.elapsed();
        check_echo(i, &r);
        if i >= c.warmup {
            times.push(elapsed);
        }
    }
    client.shutdown().await;
    times.sort();
    times
}

/// The reply with `id` from a line reader, other lines skipped.
fn reply_of(line: &str, id: i64) -> Option<Value> {
    let v: Value = serde_json::from_str(line).ok()?;
    (v.get("method").is_none() && v["id"] == id).then(|| v["result"].clone())
}

fn request_line(id: i64, method: &str, params: Value) -> String {
    let mut s = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
    s.push('\n');
    s
}

fn mock_command(exe: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(exe);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

/// The same round trips on blocking std pipes: the floor.
fn raw_blocking_round_trips(exe: &Path, c: &Counts) -> Vec<Duration> {
    let mut child = mock_command(exe).spawn().expect("spawn mock-mcp-server");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let mut round_trip = |id: i64, method: &str, params: Value| -> Value {
        stdin
            .write_all(request_line(id, method, params).as_bytes())
            .unwrap();
        stdin.flush().unwrap();
        loop {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "mock closed");
            if let Some(r) = reply_of(&line, id) {
                return r;
            }
        }
    };
    round_trip(0, "initialize", initialize_params());
    let mut times = Vec::with_capacity(c.calls);
    for i in 0..c.warmup + c.calls {
        let t = Instant::now();
        let r = round_trip(i as i64 + 1, "tools/call", echo_params(i, 1));
        let elapsed = t.elapsed();
        check_echo(i, &r);
        if i >= c.warmup {
            times.push(elapsed);
        }
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    times.sort();
    times
}

struct ClientFigures {
    raw_blocking: Vec<Duration>,
    client: Vec<Duration>,
}

/// Each variant twice, interleaved, so drift of the machine hits both.
fn measure_client(exe: &Path, c: &Counts) -> ClientFigures {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut f = ClientFigures {
        raw_blocking: Vec::new(),
        client: Vec::new(),
    };
    for _ in 0..2 {
        f.raw_blocking.extend(raw_blocking_round_trips(exe, c));
        f.client.extend(rt.block_on(client_round_trips(exe, c)));
    }
    f.raw_blocking.sort();
    f.client.sort();
    f
}

/// Model requests: when each arrived, how many healthy servers it offered.
type Arrivals = Mutex<Vec<(Instant, usize)>>;

/// What the mock model is asked, from the last marker in the input.
#[derive(Clone, Copy, PartialEq)]
enum Ask {
    Plain,
    Mcp,
    Plan,
}

/// How the model names the MCP tool in its call: upstream and we accept
/// the flat `mcp__mock__echo`; the namespaced form is tried if not.
#[derive(Default)]
struct CallForm {
    namespaced: AtomicBool,
    next_call: AtomicU64,
}

fn function_call(call_id: &str, name: &str, namespace: Option<&str>, args: Value) -> MockResponse {
    let mut item = json!({"type": "function_call", "id": format!("fc_{call_id}"),
        "call_id": call_id, "name": name, "arguments": args.to_string()});
    if let Some(ns) = namespace {
        item["namespace"] = json!(ns);
    }
    MockResponse::Sse {
        steps: vec![
            SseStep::Event(sse::created("resp_call")),
            SseStep::Event(
                json!({"type": "response.output_item.done", "output_index": 0,
                "item": item}),
            ),
            SseStep::Event(sse::completed("resp_call", 10, 5)),
        ],
    }
}

/// Answers every model request by its input: a tool call for a fresh
/// `BENCH_MCP` / `BENCH_PLAN` prompt, an answer otherwise. Records when
/// each request arrived and how many of the healthy servers (`ok0`..`ok3`)
/// it offered.
fn install_router(mock: &MockModelServer, form: Arc<CallForm>, arrivals: Arc<Arrivals>) {
    mock.set_router(move |body| {
        let tools = body["tools"].to_string();
        let offered = (0..4)
            .filter(|i| tools.contains(&format!("mcp__ok{i}")))
            .count();
        arrivals.lock().unwrap().push((Instant::now(), offered));
        let input = body["input"].as_array().cloned().unwrap_or_default();
        let last_is_output = input
            .last()
            .is_some_and(|i| i["type"] == "function_call_output");
        let ask = input
            .iter()
            .rev()
            .find_map(|i| {
                let s = i.to_string();
                if s.contains("BENCH_MCP") {
                    Some(Ask::Mcp)
                } else if s.contains("BENCH_PLAN") {
                    Some(Ask::Plan)
                } else if s.contains("BENCH_PLAIN") {
                    Some(Ask::Plain)
                } else {
                    None
                }
            })
            .unwrap_or(Ask::Plain);
        if last_is_output || ask == Ask::Plain {
            return Some(sse::message("Done."));
        }
        let n = form.next_call.fetch_add(1, Ordering::Relaxed);
        let call_id = format!("call_bench_{n}");
        Some(match ask {
            Ask::Mcp if form.namespaced.load(Ordering::Relaxed) => function_call(
                &call_id,
                "echo",
                Some("mcp__mock"),
                json!({"text": "hello"}),
            ),
            Ask::Mcp => function_call(&call_id, "mcp__mock__echo", None, json!({"text": "hello"})),
            _ => function_call(
                &call_id,
                "update_plan",
                None,
                json!({"plan": [{"step": "bench", "status": "in_progress"}]}),
            ),
        })
    });
}

fn mcp_server_toml(name: &str, exe: &Path, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "[mcp_servers.{name}]\ncommand = {:?}\nargs = [{}]\nstartup_timeout_sec = 30\n\
         default_tools_approval_mode = \"approve\"\n\n",
        exe.display().to_string(),
        args.join(", ")
    )
}

/// One turn from `turn/start` to `turn/completed`.
async fn timed_turn(rpc: &mut Rpc, thread: &str, text: &str) -> Duration {
    let t = Instant::now();
    rpc.start_turn(thread, text).await;
    rpc.turn_completed(thread).await;
    t.elapsed()
}

/// The output the model got for the latest MCP call, if any.
fn last_mcp_output(mock: &MockModelServer) -> Option<String> {
    mock.model_requests().iter().rev().find_map(|r| {
        r.input().iter().rev().find_map(|i| {
            let call = i["call_id"].as_str()?;
            (i["type"] == "function_call_output" && call.starts_with("call_bench_")).then(|| {
                i["output"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| i["output"].to_string())
            })
        })
    })
}

struct TurnFigures {
    plain: Duration,
    plan: Duration,
    mcp: Duration,
    /// Why the MCP call did not run, if it did not.
    failure: Option<String>,
}

async fn measure_turns(cmd: &[String], exe: &Path, c: &Counts) -> TurnFigures {
    let mock = MockModelServer::start(vec![]).await;
    let form = Arc::new(CallForm::default());
    install_router(&mock, form.clone(), Arc::new(Mutex::new(Vec::new())));
    let home = TestHome::new();
    home.write_config(&mock.url(), &mcp_server_toml("mock", exe, &[]));
    let mut rpc = Rpc::spawn(cmd, &home);
    rpc.initialize().await;
    let thread = rpc.start_thread().await;
    // Warm-up (the first turn also waits for the server to be ready), and
    // the probe of which call form this runtime runs.
    let mut failure = None;
    for namespaced in [false, true] {
        form.namespaced.store(namespaced, Ordering::Relaxed);
        timed_turn(&mut rpc, &thread, "BENCH_MCP").await;
        let out = last_mcp_output(&mock).unwrap_or_default();
        // The text, or the structured content both runtimes prefer.
        if out.contains("echo: hello") || out.contains(r#""echoed":"hello""#) {
            failure = None;
            break;
        }
        failure = Some(out);
    }
    timed_turn(&mut rpc, &thread, "BENCH_PLAN").await;
    timed_turn(&mut rpc, &thread, "BENCH_PLAIN").await;
    let (mut plain, mut plan, mut mcp) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..c.turns {
        plain.push(timed_turn(&mut rpc, &thread, "BENCH_PLAIN").await);
        plan.push(timed_turn(&mut rpc, &thread, "BENCH_PLAN").await);
        mcp.push(timed_turn(&mut rpc, &thread, "BENCH_MCP").await);
    }
    for v in [&mut plain, &mut plan, &mut mcp] {
        v.sort();
    }
    if std::env::var_os("MCP_BENCH_SAMPLES").is_some() {
        eprintln!("plain {plain:?}\nplan {plan:?}\nmcp {mcp:?}");
    }
    TurnFigures {
        plain: percentile(&plain, 0.5),
        plan: percentile(&plan, 0.5),
        mcp: percentile(&mcp, 0.5),
        failure,
    }
}

struct StartupFigures {
    /// `thread/start` sent → its reply.
    thread_start: Duration,
    /// `turn/start` sent → the model request received.
    first_request: Duration,
    /// The fewest healthy servers a first request offered (of 4).
    offered: usize,
    /// In how many runs the fifth server was offered.
    fifth_offered: usize,
}

/// A fresh process's first thread with four healthy servers and one that
/// never answers `initialize`, started and at once given a turn.
async fn measure_startup(cmd: &[String], exe: &Path, c: &Counts) -> StartupFigures {
    let mock = MockModelServer::start(vec![]).await;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    install_router(&mock, Arc::new(CallForm::default()), arrivals.clone());
    let home = TestHome::new();
    let mut servers = String::new();
    for i in 0..4 {
        servers.push_str(&mcp_server_toml(&format!("ok{i}"), exe, &[]));
    }
    // `MCP_BENCH_FIFTH="--initialize-delay-ms 500"` swaps the hanging
    // server for a slow one (does a runtime wait for it at all?).
    let fifth = std::env::var("MCP_BENCH_FIFTH").unwrap_or_else(|_| "--hang-initialize".into());
    let fifth: Vec<&str> = fifth.split_whitespace().collect();
    servers.push_str(&mcp_server_toml("hang", exe, &fifth));
    home.write_config(&mock.url(), &servers);
    let (mut starts, mut firsts) = (Vec::new(), Vec::new());
    let mut offered = usize::MAX;
    let mut fifth_offered = 0;
    for _ in 0..c.startups {
        // A fresh process each time: a runtime may keep servers per process.
        let mut rpc = Rpc::spawn(cmd, &home);
        rpc.initialize().await;
        let t = Instant::now();
        let thread = rpc.start_thread().await;
        starts.push(t.elapsed());
        arrivals.lock().unwrap().clear();
        let t = Instant::now();
        rpc.start_turn(&thread, "BENCH_PLAIN").await;
        rpc.turn_completed(&thread).await;
        let (first, n) = arrivals
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(|(a, _)| *a >= t)
            .min_by_key(|(a, _)| *a)
            .expect("no model request in the turn");
        firsts.push(first - t);
        offered = offered.min(n);
        let first_tools = mock
            .model_requests()
            .iter()
            .rev()
            .find(|r| r.body.to_string().contains("BENCH_PLAIN"))
            .map(|r| r.body["tools"].to_string())
            .unwrap_or_default();
        fifth_offered += usize::from(first_tools.contains("mcp__hang"));
    }
    starts.sort();
    firsts.sort();
    StartupFigures {
        thread_start: percentile(&starts, 0.5),
        first_request: percentile(&firsts, 0.5),
        offered,
        fifth_offered,
    }
}

fn mock_mcp_server_exe() -> Option<PathBuf> {
    codex_benches::mock_mcp_server()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let c = if bench {
        Counts {
            calls: 500,
            warmup: 50,
            turns: 30,
            startups: 10,
        }
    } else {
        Counts {
            calls: 5,
            warmup: 1,
            turns: 1,
            startups: 1,
        }
    };
    let Some(exe) = mock_mcp_server_exe() else {
        println!(
            "mcp bench: build the mock server first (cargo build --release -p codex-test-support \
             --bins) or set CODEX_MOCK_MCP_SERVER"
        );
        return;
    };
    let cf = measure_client(&exe, &c);
    let p = |v: &[Duration], q: f64| percentile(v, q);
    let diff = |a: Duration, b: Duration| {
        if a >= b {
            ms(a - b)
        } else {
            format!("-{}", ms(b - a))
        }
    };
    let n = cf.client.len();
    let mut rows = vec![
        vec![
            format!("MCP `tools/call` echo, raw blocking pipes, p50 / p99 (N={n})"),
            format!(
                "{} / {}",
                ms(p(&cf.raw_blocking, 0.5)),
                ms(p(&cf.raw_blocking, 0.99))
            ),
            "—".into(),
        ],
        vec![
            "MCP `tools/call` echo through `McpClient`, p50 / p99".into(),
            format!("{} / {}", ms(p(&cf.client, 0.5)), ms(p(&cf.client, 0.99))),
            "—".into(),
        ],
        vec![
            "MCP client added latency over raw blocking, p50 / p99".into(),
            format!(
                "{} / {}",
                diff(p(&cf.client, 0.5), p(&cf.raw_blocking, 0.5)),
                diff(p(&cf.client, 0.99), p(&cf.raw_blocking, 0.99))
            ),
            "—".into(),
        ],
    ];

    let Some(ours) = our_binary() else {
        print_table(&["figure".into(), "ours".into(), "upstream".into()], &rows);
        println!("mcp bench: build codex first (cargo build --release -p codex-cli) or set CODEX_BIN for the turn figures");
        return;
    };
    let mut targets = vec![vec![ours.display().to_string(), "app-server".into()]];
    if let Some(up) = upstream_binary() {
        targets.push(vec![up.display().to_string(), "app-server".into()]);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut turns = Vec::new();
    let mut startups = Vec::new();
    for cmd in &targets {
        turns.push(rt.block_on(measure_turns(cmd, &exe, &c)));
        startups.push(rt.block_on(measure_startup(cmd, &exe, &c)));
    }
    let cell = |i: usize, f: &dyn Fn(usize) -> String| {
        if i < targets.len() {
            f(i)
        } else {
            "—".to_string()
        }
    };
    let row = |label: String, f: &dyn Fn(usize) -> String| vec![label, cell(0, f), cell(1, f)];
    let t = c.turns;
    rows.push(row(format!("plain turn, p50 ({t})"), &|i| {
        ms(turns[i].plain)
    }));
    rows.push(row(
        format!("turn with one `update_plan` call, p50 ({t})"),
        &|i| ms(turns[i].plan),
    ));
    rows.push(row(
        format!("turn with one MCP `echo` call, p50 ({t})"),
        &|i| match &turns[i].failure {
            Some(_) => "call failed".into(),
            None => ms(turns[i].mcp),
        },
    ));
    rows.push(row(
        "MCP call in a turn − plain turn (p50s)".into(),
        &|i| diff(turns[i].mcp, turns[i].plain),
    ));
    rows.push(row(
        "MCP call in a turn − `update_plan` turn (p50s)".into(),
        &|i| diff(turns[i].mcp, turns[i].plan),
    ));
    let k = c.startups;
    rows.push(row(
        format!("5 MCP servers, 1 hangs in `initialize`: first `thread/start` reply (p50 of {k})"),
        &|i| ms(startups[i].thread_start),
    ));
    rows.push(row(
        format!("… then `turn/start` → first model request (p50 of {k})"),
        &|i| ms(startups[i].first_request),
    ));
    rows.push(row(
        "… healthy servers offered in that request (min)".into(),
        &|i| format!("{} of 4", startups[i].offered),
    ));
    print_table(&["figure".into(), "ours".into(), "upstream".into()], &rows);
    if let Ok(fifth) = std::env::var("MCP_BENCH_FIFTH") {
        for (i, f) in startups.iter().enumerate() {
            println!(
                "note: {}: the fifth server ({fifth}) was offered in {} of {k} first requests",
                targets[i][0], f.fifth_offered
            );
        }
    }
    for (i, f) in turns.iter().enumerate() {
        if let Some(out) = &f.failure {
            println!("note: {}: the MCP call did not run: {out}", targets[i][0]);
        }
    }
}
