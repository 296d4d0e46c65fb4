//! The memories pipeline in the live system: real codexd, its internal
//! pipeline worker (a `codex-session` process), codex-memory, real SQLite
//! and files, and the mock model server answering phase 1 (extraction) and
//! phase 2 (the consolidation agent, whose shell command writes the memory
//! files). Every wait has a generous deadline; nothing asserts on timing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use codex_test_support::mock_server::SseStep;
use codex_test_support::{procs, sse, MockModelServer, MockResponse, TestHome};
use common::app_server::{Client, SocketServer, StdioServer, WAIT};
use serde_json::{json, Value};

/// Longer than [`WAIT`]: a pass is two model exchanges and a command.
const PASS_WAIT: Duration = Duration::from_secs(120);
const THREAD: &str = "0199a213-81c0-7800-8aa1-000000000001";
/// A thread whose memory mode is `disabled`: never extracted.
const DISABLED: &str = "0199a213-81c0-7800-8aa1-000000000002";
const FACT: &str = "The zebra deploy key rotates every Friday.";

/// An interactive thread's rollout, last written 7 hours ago (idle past
/// upstream's 6 h, younger than its 10 days).
fn seed_idle_rollout(home: &TestHome, id: &str) -> PathBuf {
    let dir = home.codex_home().join("sessions/2026/11/20");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("rollout-2026-11-20T10-00-00-{id}.jsonl"));
    let item = |payload: Value| json!({"timestamp": "2026-11-20T10:00:01.000Z", "type": "response_item", "payload": payload});
    let lines = [
        json!({"timestamp": "2026-11-20T10:00:00.000Z", "type": "session_meta", "payload": {
            "id": id, "timestamp": "2026-11-20T10:00:00.000Z", "cwd": "/work/project",
            "originator": "codex_vscode", "cli_version": "0.169.0", "source": "vscode"}}),
        item(
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "rotate the zebra deploy key"}]}),
        ),
        item(
            json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Rotated; it rotates every Friday."}]}),
        ),
    ];
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, body).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(7 * 3600))
        .unwrap();
    path
}

fn is_extraction(body: &Value) -> bool {
    body["text"]["format"]["type"] == "json_schema"
}

/// (Phase 1's prompt names the agent too.)
fn is_consolidation(body: &Value) -> bool {
    !is_extraction(body) && body["input"].to_string().contains("Memory Writing Agent")
}

fn has_tool_output(body: &Value) -> bool {
    body["input"]
        .as_array()
        .is_some_and(|items| items.iter().any(|i| i["type"] == "function_call_output"))
}

/// Phase 1 gets a stage-one answer; the consolidation agent writes the two
/// files with one command, then finishes. Anything else: the script.
fn pipeline_router(body: &Value) -> Option<MockResponse> {
    if is_extraction(body) {
        let answer = json!({
            "rollout_summary": "Rotated the zebra deploy key.",
            "rollout_slug": "zebra-key",
            "raw_memory": FACT,
        });
        return Some(sse::message(&answer.to_string()));
    }
    if is_consolidation(body) {
        if has_tool_output(body) {
            return Some(sse::message("Consolidated."));
        }
        let cmd = format!(
            "printf 'v1\\nDeploy keys.\\n' > memory_summary.md && printf '# Memory\\n\\n{FACT}\\n' > MEMORY.md"
        );
        return Some(sse::exec_command("call_consolidate", &cmd));
    }
    None
}

/// Phase 1 never answers (the connection stays open).
fn hanging_router(body: &Value) -> Option<MockResponse> {
    is_extraction(body).then(|| MockResponse::Sse {
        steps: vec![
            SseStep::Event(sse::created("resp_hang")),
            SseStep::Stall(Duration::from_secs(600)),
        ],
    })
}

fn memory_home(mock: &MockModelServer, extra: &str) -> TestHome {
    let home = TestHome::new();
    home.write_config(
        &mock.url(),
        &format!("\n[features]\nmemories = true\n\n[memories]\n{extra}\n"),
    );
    home
}

async fn experimental_client(server: &SocketServer) -> Client {
    let mut c = Client::connect_unix(&server.socket).await;
    c.call(
        "initialize",
        json!({"clientInfo": {"name": "pipeline-test", "version": "0.1.0"},
               "capabilities": {"experimentalApi": true}}),
    )
    .await;
    c.notify("initialized").await;
    c
}

fn pipeline_of(status: &Value) -> Value {
    status["memory"]["pipeline"].clone()
}

/// Waits until `passes` passes have ended; returns the pipeline status.
async fn passes_done(c: &mut Client, passes: u64) -> Value {
    let deadline = Instant::now() + PASS_WAIT;
    loop {
        let p = pipeline_of(&c.status().await);
        if p["passes"].as_u64().unwrap_or(0) >= passes {
            return p;
        }
        assert!(Instant::now() < deadline, "no pass ended: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the mock has seen a request `pred` picks.
async fn request_seen(mock: &MockModelServer, what: &str, pred: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + PASS_WAIT;
    while !mock.model_requests().iter().any(|r| pred(&r.body)) {
        assert!(Instant::now() < deadline, "the mock never got {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The running pipeline worker's pid.
async fn pipeline_pid(c: &mut Client) -> u32 {
    let deadline = Instant::now() + WAIT;
    loop {
        let p = pipeline_of(&c.status().await);
        if let Some(pid) = p["pid"].as_u64() {
            return pid as u32;
        }
        assert!(Instant::now() < deadline, "no pipeline worker: {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn turn(c: &mut Client, thread: &str, text: &str) {
    c.start_turn(thread, text).await;
    let done = c.turn_completed(thread).await;
    assert_eq!(done["params"]["turn"]["status"], "completed", "{done}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_rollout_is_extracted_consolidated_and_then_recalled() {
    let mock = MockModelServer::start(Vec::new()).await;
    mock.set_router(pipeline_router);
    let home = memory_home(&mock, "consolidation_model = \"mock-consolidator\"");
    seed_idle_rollout(&home, THREAD);
    seed_idle_rollout(&home, DISABLED);
    let modes = home.codex_home().join("memory_modes");
    std::fs::create_dir_all(&modes).unwrap();
    std::fs::write(modes.join(DISABLED), "disabled").unwrap();
    let server = SocketServer::start(&home).await;
    let mut c = experimental_client(&server).await;

    // The pass that follows the daemon's start.
    let p = passes_done(&mut c, 1).await;
    let last = &p["last"];
    assert_eq!(p["enabled"], true, "{p}");
    assert_eq!(last["scanned"], 2, "{p}");
    assert_eq!(last["eligible"], 1, "the disabled thread is left out: {p}");
    assert_eq!(last["claimed"], 1, "{p}");
    assert_eq!(last["extracted"], 1, "{p}");
    assert_eq!(last["phase2"], "succeeded", "{p}");
    assert_eq!(last["selected"], 1, "{p}");
    assert!(last["error"].is_null(), "{p}");
    assert!(p["pid"].is_null(), "the worker is gone: {p}");

    // Phase 1: upstream's prompt with the rollout, the strict schema.
    let reqs = mock.model_requests();
    let extraction = reqs.iter().find(|r| is_extraction(&r.body)).unwrap();
    assert_eq!(extraction.body["model"], "mock-model");
    assert_eq!(extraction.body["reasoning"]["effort"], "low");
    assert!(extraction.body["input"]
        .to_string()
        .contains("rotate the zebra deploy key"));
    // Phase 2: the agent in the memory folder, as upstream's subagent.
    let agent: Vec<_> = reqs.iter().filter(|r| is_consolidation(&r.body)).collect();
    assert_eq!(agent.len(), 2, "the command, then the final answer");
    assert_eq!(
        agent[0].header("x-openai-subagent"),
        Some("memory_consolidation")
    );
    assert_eq!(agent[0].body["model"], "mock-consolidator");
    assert_eq!(agent[0].body["reasoning"]["effort"], "medium");
    let output = agent[1].function_output("call_consolidate").unwrap();
    assert!(!output.contains("denied"), "{output}");

    // The files and the database.
    let memories = home.codex_home().join("memories");
    let memory_md = std::fs::read_to_string(memories.join("MEMORY.md")).unwrap();
    assert!(memory_md.contains(FACT), "{memory_md}");
    assert!(std::fs::read_to_string(memories.join("raw_memories.md"))
        .unwrap()
        .contains(FACT));
    let db = codex_core::memory::pipeline::Stage1Db::open_in(&home.codex_home()).unwrap();
    let row = db.stage1_output(THREAD).unwrap().expect("a stage-1 output");
    assert_eq!(row.raw_memory, FACT);
    assert!(row.selected_for_phase2);
    assert!(db.stage1_output(DISABLED).unwrap().is_none());
    drop(db);

    let r = c.call("memory/status", json!({})).await;
    assert_eq!(r["v2ConsolidatedThreads"], 1, "{r}");

    // codex-memory picks the new MEMORY.md up (it rescans changed files).
    let deadline = Instant::now() + WAIT;
    loop {
        let r = c
            .call(
                "codexd/memory",
                json!({"op": "search", "query": "zebra deploy key", "limit": 5}),
            )
            .await;
        let found = r["hits"].as_array().is_some_and(|h| {
            h.iter()
                .any(|m| m["text"].as_str().is_some_and(|t| t.contains("Friday")))
        });
        if found {
            break;
        }
        assert!(Instant::now() < deadline, "never recalled: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn threads_are_never_delayed_by_a_stuck_pipeline() {
    let mock = MockModelServer::start(vec![sse::message("hello back")]).await;
    mock.set_router(hanging_router);
    let home = memory_home(&mock, "");
    home.set_stream_idle_timeout_ms(600_000);
    seed_idle_rollout(&home, THREAD);
    let mut server = SocketServer::start(&home).await;
    let mut c = experimental_client(&server).await;
    request_seen(&mock, "the extraction request", is_extraction).await;
    let pid = pipeline_pid(&mut c).await;

    // Answered, and the turn completes, while the pass is stuck.
    let t = c.start_thread(json!({})).await;
    turn(&mut c, &t, "hello").await;
    let p = pipeline_of(&c.status().await);
    assert_eq!(p["pid"].as_u64(), Some(pid as u64), "still stuck: {p}");
    assert_eq!(p["passes"], 0, "{p}");
    assert_eq!(p["pending"], true, "thread/start asked for another: {p}");
    // The thread list shows the thread, not the pipeline's work.
    let list = c.call("thread/list", json!({})).await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["id"].as_str())
        .filter(|id| *id != THREAD)
        .collect();
    assert_eq!(ids, [t.as_str()], "{list}");

    // The worker dies with the daemon (its guardian sees the link close).
    drop(c);
    server.kill9().await;
    let deadline = Instant::now() + WAIT;
    while procs::is_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "pipeline worker {pid} outlived codexd"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_pipeline_worker_fails_its_pass_and_nothing_else() {
    let mock = MockModelServer::start(vec![sse::message("still here")]).await;
    mock.set_router(hanging_router);
    let home = memory_home(&mock, "");
    home.set_stream_idle_timeout_ms(600_000);
    seed_idle_rollout(&home, THREAD);
    let server = SocketServer::start(&home).await;
    let mut c = experimental_client(&server).await;
    request_seen(&mock, "the extraction request", is_extraction).await;
    let pid = pipeline_pid(&mut c).await;
    let cgroup = PathBuf::from(format!("/proc/{pid}/cgroup"));
    let cgroup = std::fs::read_to_string(cgroup).unwrap_or_default();

    procs::signal(pid, "-9");
    let p = passes_done(&mut c, 1).await;
    let last = &p["last"];
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("before reporting")),
        "{p}"
    );
    assert_eq!(last["phase2"], "notRun", "{p}");
    assert!(p["pid"].is_null(), "{p}");
    // Reaped, and nothing of its tree is left.
    assert!(!procs::is_alive(pid));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "not even a zombie"
    );
    if let Some(dir) = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .filter(|d| d.contains("codexd"))
    {
        let procs_file = PathBuf::from("/sys/fs/cgroup")
            .join(dir.trim_start_matches('/'))
            .join("cgroup.procs");
        let left = std::fs::read_to_string(&procs_file).unwrap_or_default();
        assert!(left.trim().is_empty(), "left in its cgroup: {left}");
    }

    // The daemon carries on: a thread's turn completes.
    let t = c.start_thread(json!({})).await;
    turn(&mut c, &t, "are you there?").await;
    let st = c.status().await;
    assert_eq!(st["memory"]["state"], "running", "{st}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_the_daemon_stops_the_pass_and_gives_its_lease_back() {
    let mock = MockModelServer::start(Vec::new()).await;
    mock.set_router(hanging_router);
    let home = memory_home(&mock, "");
    home.set_stream_idle_timeout_ms(600_000);
    seed_idle_rollout(&home, THREAD);
    let StdioServer { mut child, client } = StdioServer::start(&home, &[]).await;
    let mut c = client;
    c.call(
        "initialize",
        json!({"clientInfo": {"name": "pipeline-test", "version": "0.1.0"}}),
    )
    .await;
    c.notify("initialized").await;
    request_seen(&mock, "the extraction request", is_extraction).await;
    let pid = pipeline_pid(&mut c).await;

    // EOF on stdin: codexd shuts down, and the worker with it.
    drop(c);
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("codexd exits")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        !procs::is_alive(pid),
        "pipeline worker {pid} outlived codexd"
    );
    // Cancelled, not killed: the stage-1 job is claimable again at once.
    let db = codex_core::memory::pipeline::Stage1Db::open_in(&home.codex_home()).unwrap();
    let job = db
        .job(
            codex_core::memory::pipeline::stage1::JOB_KIND_STAGE1,
            THREAD,
        )
        .unwrap()
        .expect("the job the pass claimed");
    assert_eq!(job.status, "pending", "{job:?}");
    assert!(job.ownership_token.is_none(), "{job:?}");
}

/// `[memories] extract_model` naming a GGUF: phase 1 runs on codex-memory's
/// lane (SmolLM2, grammar-constrained), relayed by the pipeline worker; no
/// extraction request reaches the remote model. The answer's quality is
/// not asserted, only that the job ends (extracted or nothing durable) and
/// phase 2 goes on with the remote agent.
#[cfg(feature = "local-llm")]
#[tokio::test(flavor = "multi_thread")]
async fn a_local_extract_model_extracts_on_codex_memorys_lane() {
    use codex_local::testing::{real_model, SMOLLM2_FILE};
    let Some(model) = real_model(SMOLLM2_FILE) else {
        return;
    };
    let mock = MockModelServer::start(Vec::new()).await;
    mock.set_router(pipeline_router);
    let home = memory_home(
        &mock,
        &format!("extract_model = {:?}", model.display().to_string()),
    );
    seed_idle_rollout(&home, THREAD);
    let server = SocketServer::start(&home).await;
    let mut c = experimental_client(&server).await;

    // One SmolLM2 extraction takes tens of seconds on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(600);
    let p = loop {
        let p = pipeline_of(&c.status().await);
        if p["passes"].as_u64().unwrap_or(0) >= 1 {
            break p;
        }
        assert!(Instant::now() < deadline, "no pass ended: {p}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let last = &p["last"];
    assert_eq!(last["claimed"], 1, "{p}");
    assert_eq!(last["failed"], 0, "the local extraction failed: {p}");
    assert_eq!(
        last["extracted"].as_u64().unwrap() + last["noOutput"].as_u64().unwrap_or(0),
        1,
        "{p}"
    );
    assert!(
        !mock.model_requests().iter().any(|r| is_extraction(&r.body)),
        "phase 1 went to the remote model"
    );
}
