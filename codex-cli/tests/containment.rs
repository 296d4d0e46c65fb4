//! Containment: each promise of the supervisor under a real fault: `kill -9`
//! and `kill -STOP` of a worker, a tool that eats memory or CPU, a client
//! that floods or never reads, codexd itself killed. Real binaries, real
//! processes, the in-repo mock model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use codex_test_support::{procs, sse, MockModelServer, MockResponse, TestHome};
use common::app_server::{Client, SocketServer, WAIT};
use serde_json::{json, Value};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `thread/start` params pointing the thread at its own mock server.
fn on(mock: &MockModelServer) -> Value {
    json!({"config": {"model_providers.mock.base_url": mock.url()}})
}

async fn wait_for_pidfile(path: &Path) -> u32 {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Methods of the notifications about `thread` in `msgs` that tell the end
/// of a worker.
fn ending_sequence(msgs: &[Value], thread: &str) -> Vec<String> {
    msgs.iter()
        .filter(|m| m.get("id").is_none() && m["params"]["threadId"] == thread)
        .filter(|m| match m["method"].as_str().unwrap_or_default() {
            "error" | "serverRequest/resolved" | "thread/closed" => true,
            "turn/completed" => true,
            "thread/status/changed" => m["params"]["status"]["type"] == "notLoaded",
            _ => false,
        })
        .map(|m| m["method"].as_str().unwrap().to_string())
        .collect()
}

/// The error code of a JSON-RPC error reply.
fn error_code(reply: &Value) -> i64 {
    reply["error"]["code"].as_i64().unwrap_or(0)
}

/// Whether this machine has a cgroup2 hierarchy this test process could
/// create cgroups in (codexd must then use it). `CODEX_REQUIRE_CGROUPS=1`
/// (CI, as root) makes its absence a failure rather than a skip.
fn writable_cgroup2() -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mount = info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(std::path::PathBuf::from))?
    });
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_string()));
    let writable = match (mount, own) {
        (Some(m), Some(own)) => {
            let probe = m
                .join(own.trim_start_matches('/'))
                .join(format!("codex-test-probe-{}", std::process::id()));
            let ok = std::fs::create_dir(&probe).is_ok() && probe.join("cgroup.kill").exists();
            let _ = std::fs::remove_dir(&probe);
            ok
        }
        _ => false,
    };
    if !writable && std::env::var_os("CODEX_REQUIRE_CGROUPS").is_some_and(|v| v == "1") {
        panic!("CODEX_REQUIRE_CGROUPS=1 but no writable cgroup2 hierarchy with cgroup.kill");
    }
    writable
}

/// The containment mode codexd must report for a `[codexd] cgroups` value.
fn expected_mode(cgroups: bool) -> &'static str {
    if cgroups && writable_cgroup2() {
        "cgroup"
    } else {
        "processTreeSweep"
    }
}

async fn kill9_mid_turn(cgroups: bool) {
    let home = TestHome::new();
    let pidfile = home.root().join("escaped.pid");
    let marker = format!("sleep 313{}", u8::from(cgroups));
    let cmd = format!(
        "setsid {marker} >/dev/null 2>&1 </dev/null & echo $! > {}; sleep 300",
        pidfile.display()
    );
    let mock1 = MockModelServer::start(vec![
        sse::exec_command("call_long", &cmd),
        sse::message("back after the crash"),
    ])
    .await;
    let words = ["one ", "two ", "three ", "four ", "five ", "six ", "seven"];
    let mock2 = MockModelServer::start(vec![sse::slow_message(
        "r2",
        &words,
        Duration::from_millis(150),
    )])
    .await;
    home.write_config(&mock1.url(), &format!("[codexd]\ncgroups = {cgroups}\n"));
    let mut server = SocketServer::start(&home).await;
    let daemon_pid = server.pid();

    let mut a = server.client("a").await;
    let t1 = a.start_thread(json!({})).await;
    a.start_turn(&t1, "start the long job").await;
    let escaped = wait_for_pidfile(&pidfile).await;
    assert!(procs::is_alive(escaped), "the setsid'd sleep runs");
    let mode = a.status().await["containment"]["mode"].clone();
    assert_eq!(mode, expected_mode(cgroups));

    let mut b = server.client("b").await;
    let t2 = b.start_thread(on(&mock2)).await;
    b.start_turn(&t2, "stream to me").await;
    b.thread_note("item/agentMessage/delta", &t2).await;

    let w1 = a.worker_pid(&t1).await;
    let mark = a.seen.len();
    let killed_at = now_ms();
    procs::signal(w1, "-9");
    let closed = a.thread_note("thread/closed", &t1).await;
    let latency = closed["emittedAtMs"].as_i64().unwrap() - killed_at;
    eprintln!("thread/closed {latency} ms after the kill");
    assert!(latency < 1000, "thread/closed {latency} ms after the kill");
    assert!(
        !procs::is_alive(escaped),
        "the setsid'd grandchild was killed"
    );
    assert!(!procs::is_alive(w1));
    assert_eq!(
        ending_sequence(&a.seen[mark..], &t1),
        [
            "error",
            "turn/completed",
            "thread/status/changed",
            "thread/closed"
        ]
    );
    let err = a.seen_method("error").pop().unwrap();
    assert_eq!(err["params"]["willRetry"], false);
    assert!(
        err["params"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("killed by a signal"),
        "{err}"
    );
    let done = a.seen_method("turn/completed").pop().unwrap();
    assert_eq!(done["params"]["turn"]["status"], "interrupted");
    a.clear_backlog();

    // The other thread streamed on, unbroken.
    let done2 = b.turn_completed(&t2).await;
    assert_eq!(done2["params"]["turn"]["status"], "completed");
    let deltas: Vec<String> = b
        .seen_method("item/agentMessage/delta")
        .iter()
        .map(|d| d["params"]["delta"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(deltas, words);
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "codexd is alive"
    );
    assert_eq!(b.status().await["pid"], daemon_pid);
    assert!(procs::wait_none_matching(&marker, Duration::from_secs(5)).is_empty());

    // Resume: the killed turn reads interrupted, once, with its user message.
    let r = a.call("thread/resume", json!({"threadId": t1})).await;
    let turns = r["thread"]["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 1, "{turns:#?}");
    assert_eq!(turns[0]["status"], "interrupted");
    assert!(turns[0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["type"] == "userMessage"));
    a.start_turn(&t1, "carry on").await;
    let again = a.turn_completed(&t1).await;
    assert_eq!(again["params"]["turn"]["status"], "completed");
    assert_eq!(
        again["params"]["turn"]["items"][0]["text"],
        "back after the crash"
    );
    assert_eq!(a.turn_statuses(&t1).await, ["interrupted", "completed"]);
    server.kill9().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_of_a_worker_mid_turn_is_contained_with_cgroups_where_available() {
    kill9_mid_turn(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_of_a_worker_mid_turn_is_contained_by_the_process_tree_sweep() {
    kill9_mid_turn(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pending_approval_is_resolved_when_its_worker_dies() {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![MockResponse::sse(sse::function_call_events(
        "r1",
        "call_esc",
        "exec_command",
        json!({"cmd": "true", "sandbox_permissions": "require_escalated", "justification": "May I?"}),
    ))])
    .await;
    home.write_config(&mock.url(), "");
    let mut server =
        SocketServer::start_with(&home, &["-c", "approval_policy=\"on-request\""]).await;
    let mut a = server.client("a").await;
    let t1 = a.start_thread(json!({})).await;
    a.start_turn(&t1, "needs approval").await;
    let req = a
        .wait_for("approval request", |v| {
            v["method"] == "item/commandExecution/requestApproval"
        })
        .await;
    let w = a.worker_pid(&t1).await;
    let mark = a.seen.len();
    procs::signal(w, "-9");
    a.thread_note("thread/closed", &t1).await;
    let ending = ending_sequence(&a.seen[mark..], &t1);
    assert_eq!(ending[0], "serverRequest/resolved", "{ending:?}");
    let resolved = a.seen_method("serverRequest/resolved").pop().unwrap();
    assert_eq!(resolved["params"]["requestId"], req["id"]);
    // A late answer is ignored harmlessly: no reply, the connection works.
    let mark = a.seen.len();
    a.send(json!({"id": req["id"], "result": {"decision": "accept"}}))
        .await;
    let listed = a.call("thread/loaded/list", json!({})).await;
    assert_eq!(listed["data"], json!([]));
    let replies: Vec<&Value> = a.seen[mark..]
        .iter()
        .filter(|m| m.get("method").is_none())
        .collect();
    assert_eq!(replies.len(), 1, "only the list answered: {replies:?}");
    server.kill9().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_worker_is_killed_by_the_watchdog() {
    let home = TestHome::new();
    let mock1 = MockModelServer::start(vec![]).await;
    let mock2 = MockModelServer::start(vec![sse::slow_message(
        "r2",
        &["tick ", "tock ", "tick ", "tock"],
        Duration::from_millis(300),
    )])
    .await;
    home.write_config(&mock1.url(), "[codexd]\nwatchdog_timeout_ms = 1000\n");
    let mut server = SocketServer::start(&home).await;
    let mut a = server.client("a").await;
    let t1 = a.start_thread(json!({})).await;
    let t2 = a.start_thread(on(&mock2)).await;
    let w1 = a.worker_pid(&t1).await;
    a.start_turn(&t2, "keep going").await;

    let stopped_at = now_ms();
    procs::signal(w1, "-STOP");
    let err = a.thread_note("error", &t1).await;
    let after = err["emittedAtMs"].as_i64().unwrap() - stopped_at;
    assert!(
        (1000..2500).contains(&after),
        "watchdog fired {after} ms after the stop (deadline 1000 ms)"
    );
    let message = err["params"]["error"]["message"].as_str().unwrap();
    assert!(message.contains("watchdog"), "{message}");
    a.thread_note("thread/closed", &t1).await;
    assert!(!procs::is_alive(w1));
    let done = a.turn_completed(&t2).await;
    assert_eq!(done["params"]["turn"]["status"], "completed");
    assert_eq!(
        done["params"]["turn"]["items"][0]["text"],
        "tick tock tick tock"
    );
    server.kill9().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_over_its_memory_cap_dies_alone() {
    let home = TestHome::new();
    let hog = "import time; a = b'x' * (700 * 1024 * 1024); time.sleep(120)  # memhog";
    let mock1 = MockModelServer::start(vec![sse::exec_command(
        "call_hog",
        &format!("python3 -c \"{hog}\""),
    )])
    .await;
    let mock2 = MockModelServer::start(vec![sse::slow_message(
        "r2",
        &["still ", "here"],
        Duration::from_millis(400),
    )])
    .await;
    home.write_config(
        &mock1.url(),
        "[codexd]\ngovernor_interval_ms = 100\nmemory_soft_mb = 200\nmemory_hard_mb = 300\nmemory_cap_mb = 400\n",
    );
    let mut server = SocketServer::start(&home).await;
    let mut a = server.client("a").await;
    let t1 = a.start_thread(json!({})).await;
    let t2 = a.start_thread(on(&mock2)).await;
    a.start_turn(&t2, "slow and small").await;
    a.start_turn(&t1, "eat memory").await;
    let err = a.thread_note("error", &t1).await;
    let message = err["params"]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("memory") && message.contains("cap"),
        "{message}"
    );
    a.thread_note("thread/closed", &t1).await;
    assert!(procs::wait_none_matching("memhog", Duration::from_secs(5)).is_empty());
    let done = a.turn_completed(&t2).await;
    assert_eq!(done["params"]["turn"]["status"], "completed");
    let status = a.status().await;
    let loaded: Vec<&str> = status["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["threadId"].as_str().unwrap())
        .collect();
    assert_eq!(loaded, [t2.as_str()]);
    server.kill9().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cpu_bound_tool_moves_its_thread_to_soft_then_hard() {
    let home = TestHome::new();
    let mock1 = MockModelServer::start(vec![sse::exec_command(
        "call_spin",
        "timeout 120 sh -c 'while :; do :; done' # cpuhog",
    )])
    .await;
    let mock2 = MockModelServer::start(vec![sse::message("unaffected")]).await;
    home.write_config(
        &mock1.url(),
        "[codexd]\ngovernor_interval_ms = 100\ncpu_window_ms = 1000\ncpu_soft_percent = 40\ncpu_hard_percent = 70\n",
    );
    let mut server = SocketServer::start(&home).await;
    let mut a = server.client("a").await;
    let t1 = a.start_thread(json!({})).await;
    let t2 = a.start_thread(on(&mock2)).await;
    let turn1 = a.start_turn(&t1, "spin").await;
    let limit_warning = |level: &'static str| {
        let t1 = t1.clone();
        move |v: &Value| {
            v["method"] == "warning"
                && v["params"]["threadId"] == t1.as_str()
                && v["params"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(&format!("over its {level} resource limit")))
        }
    };
    let soft = a.wait_for("soft", limit_warning("soft")).await;
    let hard = a.wait_for("hard", limit_warning("hard")).await;
    assert!(soft["emittedAtMs"].as_i64() <= hard["emittedAtMs"].as_i64());
    assert!(
        hard["params"]["message"].as_str().unwrap().contains("CPU"),
        "{hard}"
    );
    let pressure = a.status().await["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["threadId"] == t1.as_str())
        .unwrap()["pressure"]
        .clone();
    assert_eq!(pressure, "hard");

    // New turns on the hot thread are shed; the other thread is untouched.
    let id = a
        .request(
            "turn/start",
            json!({"threadId": t1, "input": [{"type": "text", "text": "more"}]}),
        )
        .await;
    let reply = a.response(id).await;
    assert_eq!(error_code(&reply), -32001, "{reply}");
    assert_eq!(reply["error"]["message"], "Server overloaded; retry later.");
    a.start_turn(&t2, "hello").await;
    let done2 = a.turn_completed(&t2).await;
    assert_eq!(done2["params"]["turn"]["items"][0]["text"], "unaffected");

    // The running turn went on all along; interrupting it ends the spin.
    a.call("turn/interrupt", json!({"threadId": t1, "turnId": turn1}))
        .await;
    let done1 = a.turn_completed(&t1).await;
    assert_eq!(done1["params"]["turn"]["status"], "interrupted");
    assert!(procs::wait_none_matching("cpuhog", Duration::from_secs(5)).is_empty());
    server.kill9().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flooding_connection_sheds_only_its_own_excess() {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![sse::slow_message(
        "r1",
        &["through ", "the ", "flood"],
        Duration::from_millis(200),
    )])
    .await;
    // The flooder's first request holds its connection's (sequential)
    // processing for a while, so what follows must queue or be shed.
    mock.set_models_delay(Duration::from_secs(3));
    home.write_config(&mock.url(), "");
    let mut server = SocketServer::start(&home).await;
    let daemon = server.pid();
    let mut good = server.client("good").await;
    let t = good.start_thread(json!({})).await;
    let baseline = procs::rss_bytes(daemon);
    // codexd's memory, sampled all through the flood.
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(procs::rss_bytes(daemon));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        })
    };

    // The flood: 20,000 requests written without reading a byte back.
    const FLOOD: usize = 20_000;
    let stream = tokio::net::UnixStream::connect(&server.socket)
        .await
        .unwrap();
    let (flood_r, mut flood_w) = stream.into_split();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let hello = json!({"id": "init", "method": "initialize", "params": {"clientInfo": {"name": "flood", "version": "1"}}});
        let _ = flood_w.write_all(format!("{hello}\n").as_bytes()).await;
        let mut batch = String::new();
        for i in 0..FLOOD {
            batch.push_str(&json!({"id": i, "method": "model/list", "params": {}}).to_string());
            batch.push('\n');
            if i % 100 == 99 {
                if flood_w.write_all(batch.as_bytes()).await.is_err() {
                    return false; // disconnected by the server
                }
                batch.clear();
            }
        }
        true
    });
    good.start_turn(&t, "meanwhile").await;
    let done = good.turn_completed(&t).await;
    assert_eq!(
        done["params"]["turn"]["items"][0]["text"],
        "through the flood"
    );
    // The flood ends: written through, or cut off by the server.
    tokio::time::timeout(WAIT, writer)
        .await
        .expect("the flooder's writes never ended: codexd neither read nor dropped it")
        .unwrap();

    // What the flooder gets: its excess shed (-32001), then a disconnect
    // once thousands of replies sat unread.
    let mut flood = Client::new(
        Box::new(tokio::io::BufReader::new(flood_r)),
        Box::new(tokio::io::sink()),
    );
    flood
        .drain_to_eof(WAIT)
        .await
        .expect("codexd never closed the flooder's connection");
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    let (mut ok, mut shed) = (0, 0);
    for m in &flood.seen {
        match m {
            m if m.get("method").is_some() => {}
            m if m["result"].is_object() => ok += 1,
            m if error_code(m) == -32001 => shed += 1,
            m => panic!("unexpected {m}"),
        }
    }
    eprintln!(
        "flood: {ok} served, {shed} shed (seen before the disconnect); codexd RSS {} -> peak {} KiB",
        baseline / 1024,
        peak / 1024
    );
    // Only the queue (128) and the one request in progress can be served
    // before the slow first answer; the rest was shed at once, until the
    // unread answers filled the connection's egress queue (8192) and it was
    // dropped.
    assert!(ok <= 130, "{ok} served: the ingress queue is not bounded");
    let load = good.status().await["load"].clone();
    let overloaded = load["overloaded"].as_u64().unwrap();
    assert!(
        overloaded >= 8_192,
        "only {overloaded} requests shed ({shed} seen by the flooder)"
    );
    assert_eq!(load["slowClientsDisconnected"], 1, "{load}");
    // The unread replies are bounded too (8192 messages, then disconnect).
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth < 64 * 1024 * 1024,
        "codexd grew by {growth} bytes during the flood"
    );
    // codexd is unharmed and still serves; the flooder was dropped.
    let status = good.status().await;
    assert_eq!(status["pid"], daemon);
    assert_eq!(status["connections"], 1, "the flooder was disconnected");
    server.kill9().await;
}

/// `max_loaded_threads` workers at once: one more is refused with `-32001`,
/// the loaded ones keep working, and room frees up as one unloads.
#[tokio::test(flavor = "multi_thread")]
async fn loading_past_max_loaded_threads_is_shed_and_others_carry_on() {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![
        sse::message("one"),
        sse::message("two"),
        sse::message("three"),
    ])
    .await;
    home.write_config(&mock.url(), "[codexd]\nmax_loaded_threads = 2\n");
    let mut server = SocketServer::start(&home).await;
    let mut a = server.client("a").await;
    let t1 = a.start_thread(json!({})).await;
    let t2 = a.start_thread(json!({})).await;
    let id = a.request("thread/start", json!({})).await;
    let r = a.response(id).await;
    assert_eq!(error_code(&r), -32001, "{r}");
    assert_eq!(r["error"]["message"], "Server overloaded; retry later.");
    assert_eq!(a.status().await["threads"].as_array().unwrap().len(), 2);
    // The loaded threads are untouched.
    for t in [&t1, &t2] {
        a.start_turn(t, "hello").await;
        let done = a.turn_completed(t).await;
        assert_eq!(done["params"]["turn"]["status"], "completed");
    }
    // One unloads (archived): a new thread fits again.
    a.call("thread/archive", json!({"threadId": t2})).await;
    let deadline = Instant::now() + WAIT;
    while a.status().await["threads"].as_array().unwrap().len() > 1 {
        assert!(
            Instant::now() < deadline,
            "the archived thread never unloaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t3 = a.start_thread(json!({})).await;
    a.start_turn(&t3, "hello").await;
    let done = a.turn_completed(&t3).await;
    assert_eq!(done["params"]["turn"]["status"], "completed");
    server.kill9().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_that_never_reads_does_not_hold_up_another() {
    let home = TestHome::new();
    let text = "0123456789abcdef".repeat(4 * 20_000);
    let mock = MockModelServer::start(vec![MockResponse::sse(sse::message_events(
        "big", &text, 20_000,
    ))])
    .await;
    home.write_config(&mock.url(), "");
    let mut server = SocketServer::start(&home).await;
    let mut a = server.client("reader").await;
    let t = a.start_thread(json!({})).await;
    // A second subscriber that never reads after subscribing.
    let mut idle = server.client("sleeper").await;
    idle.call("thread/resume", json!({"threadId": t})).await;

    a.start_turn(&t, "a lot of text").await;
    let done = a.turn_completed(&t).await;
    assert_eq!(done["params"]["turn"]["status"], "completed");
    let got: usize = a
        .seen_method("item/agentMessage/delta")
        .iter()
        .map(|d| d["params"]["delta"].as_str().unwrap().len())
        .sum();
    assert_eq!(
        got,
        text.len(),
        "every delta reached the reading subscriber"
    );
    // The one that did not read was dropped, not the thread.
    // (Its last line may be torn: it was cut off mid-write.)
    let seen = idle
        .drain_to_eof(WAIT)
        .await
        .expect("the non-reading subscriber was never disconnected");
    assert!(
        seen < 20_000,
        "the non-reader was cut off ({seen} messages)"
    );
    mock.push(sse::message("still here"));
    a.start_turn(&t, "still alive?").await;
    let again = a.turn_completed(&t).await;
    assert_eq!(again["params"]["turn"]["items"][0]["text"], "still here");
    server.kill9().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn codexd_killed_mid_turn_and_restarted_loses_nothing() {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![
        sse::message("first answer"),
        sse::exec_command("call_wait", "sleep 20 # restart-victim"),
        sse::message("after the restart"),
    ])
    .await;
    home.write_config(&mock.url(), "");
    let mut server = SocketServer::start(&home).await;
    let mut a = server.client("a").await;
    let t = a.start_thread(json!({})).await;
    a.start_turn(&t, "first").await;
    a.turn_completed(&t).await;
    a.start_turn(&t, "second, to be cut short").await;
    a.wait_for("the command starts", |v| {
        v["method"] == "item/started" && v["params"]["item"]["type"] == "commandExecution"
    })
    .await;
    let worker = a.worker_pid(&t).await;
    server.kill9().await;
    drop(a);
    // The worker follows its supervisor, and takes its tool with it.
    let deadline = Instant::now() + WAIT;
    while procs::is_alive(worker) {
        assert!(Instant::now() < deadline, "worker outlived codexd");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(procs::wait_none_matching("restart-victim", Duration::from_secs(2)).is_empty());
    let file = home.rollouts().pop().unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    for line in text.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("torn line {line}: {e}"));
    }

    let server = SocketServer::start(&home).await;
    let mut c = server.client("after").await;
    let listed = c.call("thread/list", json!({})).await;
    assert_eq!(listed["data"][0]["id"], t.as_str());
    assert_eq!(listed["data"][0]["status"]["type"], "notLoaded");
    assert_eq!(c.turn_statuses(&t).await, ["completed", "interrupted"]);
    let r = c.call("thread/resume", json!({"threadId": t})).await;
    let turns = r["thread"]["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[1]["status"], "interrupted");
    c.start_turn(&t, "third").await;
    let done = c.turn_completed(&t).await;
    assert_eq!(
        done["params"]["turn"]["items"][0]["text"],
        "after the restart"
    );
    // The file grew; what was there is untouched.
    let after = std::fs::read_to_string(&file).unwrap();
    assert!(after.starts_with(&text));
    procs::kill_matching("restart-victim");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_thread_unloads_and_reloads_transparently() {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![sse::message("one"), sse::message("two")]).await;
    home.write_config(&mock.url(), "[codexd]\nidle_unload_ms = 300\n");
    let mut server = SocketServer::start(&home).await;
    let mut a = server.client("a").await;
    let t = a.start_thread(json!({})).await;
    let w = a.worker_pid(&t).await;
    // Workers run under the rlimits of the limits table.
    let limits = std::fs::read_to_string(format!("/proc/{w}/limits")).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .nth(4)
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(nofile <= 4096, "{limits}");
    // `codex daemon status` shows it.
    let out = tokio::process::Command::new(common::CODEX)
        .args(["daemon", "status", "--socket"])
        .arg(&server.socket)
        .output()
        .await
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains(&t) && shown.contains("normal"), "{shown}");

    a.start_turn(&t, "hello").await;
    a.turn_completed(&t).await;
    let r = a.call("thread/unsubscribe", json!({"threadId": t})).await;
    assert_eq!(r["status"], "unsubscribed");
    // Unused, it unloads.
    let deadline = Instant::now() + WAIT;
    loop {
        let s = a.status().await;
        if s["threads"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "never unloaded: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!procs::is_alive(w));
    let listed = a.call("thread/list", json!({})).await;
    assert_eq!(listed["data"][0]["id"], t.as_str());
    assert_eq!(listed["data"][0]["status"]["type"], "notLoaded");
    // The next request loads it again, with its history.
    a.start_turn(&t, "again").await;
    let done = a.turn_completed(&t).await;
    assert_eq!(done["params"]["turn"]["items"][0]["text"], "two");
    let second = &mock.model_requests()[1];
    assert!(second.body.to_string().contains("hello"));
    server.kill9().await;
}

/// `kill -9` of codexd with five threads each running a long tool that also
/// left the group (`setsid`) and ignored hangups (`nohup`): every worker
/// takes its whole tree down before it exits, so nothing is left running.
async fn codexd_kill9_leaves_no_tool_running(cgroups: bool) {
    let home = TestHome::new();
    let marker = format!("sleep 4142{}", u8::from(cgroups));
    let cmd = format!(
        "setsid {marker} </dev/null >/dev/null 2>&1 & nohup {marker} </dev/null >/dev/null 2>&1 & {marker}"
    );
    let mock = MockModelServer::start(vec![]).await;
    for i in 0..5 {
        mock.push(sse::exec_command(&format!("call_{i}"), &cmd));
    }
    home.write_config(&mock.url(), &format!("[codexd]\ncgroups = {cgroups}\n"));
    let mut server = SocketServer::start(&home).await;
    let mut a = server.client("a").await;
    assert_eq!(
        a.status().await["containment"]["mode"],
        expected_mode(cgroups)
    );
    let mut workers = Vec::new();
    for _ in 0..5 {
        let t = a.start_thread(json!({})).await;
        a.start_turn(&t, "run the long job").await;
        workers.push(a.worker_pid(&t).await);
    }
    // Three sleeps per thread (plus their shells).
    let deadline = Instant::now() + WAIT;
    while procs::processes_matching(&marker).len() < 15 {
        assert!(Instant::now() < deadline, "the tools never all started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let escapees: Vec<u32> = procs::processes_matching(&marker);
    let killed_at = Instant::now();
    server.kill9().await;
    drop(a);
    let left = procs::wait_none_matching(&marker, Duration::from_secs(2));
    procs::kill_matching(&marker);
    assert!(
        left.is_empty(),
        "tool processes alive 2 s after codexd died: {left:?} (of {escapees:?})"
    );
    // The workers record the interrupted turns and exit.
    let deadline = Instant::now() + WAIT;
    while workers.iter().any(|w| procs::is_alive(*w)) {
        assert!(Instant::now() < deadline, "a worker outlived codexd");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("workers gone {:?} after the kill", killed_at.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn codexd_kill9_leaves_no_tool_running_with_cgroups_where_available() {
    codexd_kill9_leaves_no_tool_running(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn codexd_kill9_leaves_no_tool_running_by_the_tree_walk() {
    codexd_kill9_leaves_no_tool_running(false).await;
}

/// A worker that does not read its queue (stopped here) sheds that thread's
/// requests with `-32001` once `thread_queue` are waiting; every other
/// thread carries on, and the thread recovers when its worker does.
#[tokio::test(flavor = "multi_thread")]
async fn a_flooded_thread_sheds_with_32001_and_others_carry_on() {
    let home = TestHome::new();
    let mock =
        MockModelServer::start(vec![sse::message("b is fine"), sse::message("a caught up")]).await;
    home.write_config(
        &mock.url(),
        "[codexd]\nthread_queue = 4\nwatchdog_timeout_ms = 600000\n",
    );
    let mut server = SocketServer::start(&home).await;
    let mut a = server.client("a").await;
    let ta = a.start_thread(json!({})).await;
    let tb = a.start_thread(json!({})).await;
    let wa = a.worker_pid(&ta).await;
    procs::signal(wa, "-STOP");
    // A turn whose input outgrows the link's socket buffer: its writer now
    // waits on the stopped worker, and what follows queues up.
    let big = "x".repeat(4 * 1024 * 1024);
    let start = a
        .request(
            "turn/start",
            json!({"threadId": ta, "input": [{"type": "text", "text": big}]}),
        )
        .await;
    let deadline = Instant::now() + WAIT;
    let mut answers = Vec::new();
    while answers.len() < 12 {
        assert!(Instant::now() < deadline, "never shed: {answers:?}");
        let id = a
            .request(
                "turn/interrupt",
                json!({"threadId": ta, "turnId": "no-such-turn"}),
            )
            .await;
        answers.push(error_code(&a.response(id).await));
    }
    let accepted = answers.iter().filter(|c| **c == 0).count();
    assert!(
        accepted <= 4,
        "at most thread_queue requests wait: {answers:?}"
    );
    assert_eq!(answers.last(), Some(&-32001), "{answers:?}");
    assert!(
        answers.iter().all(|c| *c == 0 || *c == -32001),
        "{answers:?}"
    );
    let status = a.status().await;
    let entry = status["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["threadId"] == ta.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["queued"], 4, "{entry}");
    // The other thread is untouched.
    a.start_turn(&tb, "hello").await;
    let done = a.turn_completed(&tb).await;
    assert_eq!(done["params"]["turn"]["items"][0]["text"], "b is fine");
    // The worker resumes: its turn runs and the thread takes requests again.
    procs::signal(wa, "-CONT");
    let r = a.response(start).await;
    assert!(r.get("result").is_some(), "{r}");
    let done = a.turn_completed(&ta).await;
    assert_eq!(done["params"]["turn"]["status"], "completed");
    let id = a
        .request(
            "turn/interrupt",
            json!({"threadId": ta, "turnId": "no-such-turn"}),
        )
        .await;
    assert_eq!(error_code(&a.response(id).await), 0);
    server.kill9().await;
}
