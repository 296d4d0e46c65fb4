//! `codex app-server` (codexd) end to end: the real binary, real worker
//! processes, the in-repo mock model, over stdio and the unix socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use codex_test_support::{procs, sse, MockModelServer, MockResponse, TestHome};
use common::app_server::{SocketServer, StdioServer};
use serde_json::{json, Value};

use sse::slow_message;

fn thread_of(v: &Value) -> Option<&str> {
    v["params"]["threadId"]
        .as_str()
        .or_else(|| v["params"]["thread"]["id"].as_str())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_connections_run_turns_at_once_and_see_only_their_own_thread() {
    let gap = Duration::from_millis(150);
    let mock = MockModelServer::start(vec![
        slow_message("r1", &["one ", "two ", "three ", "four"], gap),
        slow_message("r2", &["uno ", "dos ", "tres ", "cuatro"], gap),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let server = SocketServer::start(&home).await;
    let mut a = server.client("client_a").await;
    let mut b = server.client("client_b").await;
    let ta = a.start_thread(json!({})).await;
    let tb = b.start_thread(json!({})).await;
    assert_ne!(ta, tb);
    a.start_turn(&ta, "first").await;
    b.start_turn(&tb, "second").await;
    let done_a = a.turn_completed(&ta).await;
    let done_b = b.turn_completed(&tb).await;
    assert_eq!(done_a["params"]["turn"]["status"], "completed");
    assert_eq!(done_b["params"]["turn"]["status"], "completed");
    // Each connection saw only its own thread.
    for (c, own) in [(&a, &ta), (&b, &tb)] {
        for m in &c.seen {
            if let Some(t) = thread_of(m) {
                assert_eq!(t, own.as_str(), "foreign notification {m}");
            }
        }
    }
    // The turns overlapped: B started before A finished.
    let b_started = b.seen_method("turn/started")[0]["emittedAtMs"]
        .as_i64()
        .unwrap();
    let a_done = done_a["emittedAtMs"].as_i64().unwrap();
    assert!(b_started < a_done, "turns did not run concurrently");
    // Deltas arrived as a stream, one per SSE delta.
    assert_eq!(a.seen_method("item/agentMessage/delta").len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_client_resumes_a_thread_and_a_disconnect_does_not_stop_the_turn() {
    let gap = Duration::from_millis(200);
    let mock = MockModelServer::start(vec![
        slow_message("r1", &["still ", "running ", "after ", "you ", "left"], gap),
        sse::message("second answer"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let server = SocketServer::start(&home).await;
    let mut a = server.client("client_a").await;
    let tid = a.start_thread(json!({})).await;
    a.start_turn(&tid, "long task").await;
    a.notification("turn/started").await;
    drop(a); // the client goes away mid-turn

    let mut b = server.client("client_b").await;
    let resumed = b.call("thread/resume", json!({"threadId": tid})).await;
    assert_eq!(resumed["thread"]["id"], tid.as_str());
    // The turn goes on and B, now subscribed, sees it finish.
    let done = b.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["status"], "completed");
    assert_eq!(
        done["params"]["turn"]["items"][0]["text"],
        "still running after you left"
    );
    // And B can run the next turn on it, with the history.
    b.start_turn(&tid, "and now?").await;
    let done = b.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["status"], "completed");
    let second = &mock.model_requests()[1];
    let texts: Vec<String> = second
        .input()
        .iter()
        .filter_map(|i| i["content"][0]["text"].as_str().map(str::to_string))
        .collect();
    assert!(texts.contains(&"long task".to_string()), "{texts:?}");
    assert!(
        texts.contains(&"still running after you left".to_string()),
        "{texts:?}"
    );
    let read = b
        .call(
            "thread/read",
            json!({"threadId": tid, "includeTurns": true}),
        )
        .await;
    assert_eq!(read["thread"]["turns"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_of_an_unloaded_thread_respawns_its_worker() {
    let mock = MockModelServer::start(vec![sse::message("first"), sse::message("second")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let tid = {
        let mut s = StdioServer::start(&home, &[]).await;
        s.client.initialize("one").await;
        let tid = s.client.start_thread(json!({})).await;
        s.client.start_turn(&tid, "hello").await;
        s.client.turn_completed(&tid).await;
        drop(s.client);
        let status = tokio::time::timeout(Duration::from_secs(30), s.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "app-server exits 0 on stdin EOF");
        tid
    };
    let mut s = StdioServer::start(&home, &[]).await;
    s.client.initialize("two").await;
    let r = s
        .client
        .call("thread/resume", json!({"threadId": tid}))
        .await;
    let turns = r["thread"]["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 1);
    assert_eq!(turns[0]["status"], "completed");
    assert_eq!(r["thread"]["preview"], "hello");
    s.client.start_turn(&tid, "again").await;
    let done = s.client.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["items"][0]["text"], "second");
}

#[tokio::test(flavor = "multi_thread")]
async fn approvals_accepted_and_declined() {
    let home = TestHome::new();
    let accepted = home.workspace().join("accepted.txt");
    let declined = home.workspace().join("declined.txt");
    let call = |id: &str, file: &std::path::Path| {
        MockResponse::sse(sse::function_call_events(
            &format!("r_{id}"),
            id,
            "exec_command",
            json!({"cmd": format!("touch {}", file.display()), "sandbox_permissions": "require_escalated", "justification": "May I?"}),
        ))
    };
    let mock = MockModelServer::start(vec![
        call("call_yes", &accepted),
        sse::message("did it"),
        call("call_no", &declined),
        sse::message("skipped it"),
    ])
    .await;
    home.write_config(&mock.url(), "");
    let mut s = StdioServer::start(&home, &["-c", "approval_policy=\"on-request\""]).await;
    let c = &mut s.client;
    c.initialize("approver").await;
    let tid = c.start_thread(json!({})).await;

    c.start_turn(&tid, "create accepted.txt").await;
    let req = c
        .wait_for("approval request", |v| {
            v["method"] == "item/commandExecution/requestApproval"
        })
        .await;
    assert_eq!(req["params"]["itemId"], "call_yes");
    assert_eq!(req["params"]["reason"], "May I?");
    let waiting = c.seen_method("thread/status/changed");
    assert!(waiting
        .iter()
        .any(|w| w["params"]["status"]["activeFlags"] == json!(["waitingOnApproval"])));
    let rid = req["id"].clone();
    c.send(json!({"id": rid, "result": {"decision": "accept"}}))
        .await;
    let resolved = c.notification("serverRequest/resolved").await;
    assert_eq!(resolved["params"]["requestId"], rid);
    let item = c
        .wait_for("command completed", |v| {
            v["method"] == "item/completed" && v["params"]["item"]["id"] == "call_yes"
        })
        .await;
    assert_eq!(item["params"]["item"]["status"], "completed");
    c.turn_completed(&tid).await;
    assert!(accepted.exists());

    c.start_turn(&tid, "create declined.txt").await;
    let req = c
        .wait_for("second approval", |v| {
            v["method"] == "item/commandExecution/requestApproval"
                && v["params"]["itemId"] == "call_no"
        })
        .await;
    c.send(json!({"id": req["id"], "result": {"decision": "decline"}}))
        .await;
    let item = c
        .wait_for("declined item", |v| {
            v["method"] == "item/completed" && v["params"]["item"]["id"] == "call_no"
        })
        .await;
    assert_eq!(item["params"]["item"]["status"], "declined");
    let done = c.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["status"], "completed");
    assert!(!declined.exists(), "a declined command must not run");
    let out = mock.model_requests()[3].function_output("call_no").unwrap();
    assert!(out.contains("rejected"), "{out}");
    // A late, duplicate answer is ignored harmlessly.
    c.send(json!({"id": req["id"], "result": {"decision": "accept"}}))
        .await;
    let r = c.call("thread/loaded/list", json!({})).await;
    assert_eq!(r["data"], json!([tid]));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_approval_is_declined_at_its_deadline() {
    let home = TestHome::new();
    let file = home.workspace().join("never.txt");
    let mock = MockModelServer::start(vec![
        MockResponse::sse(sse::function_call_events(
            "r1",
            "call_wait",
            "exec_command",
            json!({"cmd": format!("touch {}", file.display()), "sandbox_permissions": "require_escalated"}),
        )),
        sse::message("ok"),
    ])
    .await;
    home.write_config(&mock.url(), "approval_timeout_ms = 300");
    let mut s = StdioServer::start(&home, &["-c", "approval_policy=\"on-request\""]).await;
    let c = &mut s.client;
    c.initialize("silent").await;
    let tid = c.start_thread(json!({})).await;
    c.start_turn(&tid, "go").await;
    let req = c
        .wait_for("approval request", |v| {
            v["method"] == "item/commandExecution/requestApproval"
        })
        .await;
    // Never answered: the deadline declines it and the request is resolved.
    let resolved = c.notification("serverRequest/resolved").await;
    assert_eq!(resolved["params"]["requestId"], req["id"]);
    let done = c.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["status"], "completed");
    assert!(!file.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupt_mid_stream() {
    let mock =
        MockModelServer::start(vec![sse::stall_after_partial("This answer will never ")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    // Only an interrupt (or the turn deadline) can end this turn.
    home.set_stream_idle_timeout_ms(600_000);
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("interrupter").await;
    let tid = c.start_thread(json!({})).await;
    let turn = c.start_turn(&tid, "Write a very long essay.").await;
    c.notification("item/agentMessage/delta").await;
    let r = c
        .call("turn/interrupt", json!({"threadId": tid, "turnId": turn}))
        .await;
    assert_eq!(r, json!({}));
    let done = c.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["status"], "interrupted");
    assert_eq!(done["params"]["turn"]["items"], json!([]));
    let idle = c
        .seen_method("thread/status/changed")
        .last()
        .cloned()
        .unwrap();
    assert_eq!(idle["params"]["status"], json!({"type": "idle"}));
    let read = c
        .call(
            "thread/read",
            json!({"threadId": tid, "includeTurns": true}),
        )
        .await;
    let turns = read["thread"]["turns"].as_array().unwrap();
    assert_eq!(turns[0]["status"], "interrupted");
    let items: Vec<&str> = turns[0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(items, ["userMessage"], "the partial answer is not kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn thread_list_pages_newest_first() {
    let mock = MockModelServer::start(
        (0..5)
            .map(|i| sse::message(&format!("answer {i}")))
            .collect(),
    )
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("lister").await;
    let mut created = Vec::new();
    for i in 0..5 {
        let tid = c.start_thread(json!({})).await;
        c.start_turn(&tid, &format!("prompt {i}")).await;
        c.turn_completed(&tid).await;
        created.push(tid);
    }
    // A thread without a turn has no file and is not listed.
    c.start_thread(json!({})).await;
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    let mut pages = 0;
    loop {
        let r = c
            .call("thread/list", json!({"limit": 2, "cursor": cursor}))
            .await;
        let data = r["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        for t in data {
            seen.push(t["id"].as_str().unwrap().to_string());
            assert!(t["preview"].as_str().unwrap().starts_with("prompt "));
            assert_eq!(t["turns"], json!([]));
        }
        pages += 1;
        cursor = r["nextCursor"].clone();
        if cursor.is_null() {
            break;
        }
        assert!(pages < 10, "paging does not terminate");
    }
    assert_eq!(pages, 3);
    created.reverse();
    assert_eq!(seen, created, "newest first, each thread once");
    let id = c
        .request("thread/list", json!({"cursor": "no-such-cursor"}))
        .await;
    let r = c.response(id).await;
    assert_eq!(r["error"]["code"], -32600);
}

#[tokio::test(flavor = "multi_thread")]
async fn protocol_errors_get_upstreams_answers_and_the_connection_survives() {
    let home = TestHome::new();
    home.write_config("http://127.0.0.1:9/v1", "");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    // Before initialize.
    let id = c.request("thread/list", json!({})).await;
    let r = c.response(id).await;
    assert_eq!(
        r["error"],
        json!({"code": -32600, "message": "Not initialized"})
    );
    c.initialize("e_protocol").await;
    let id = c
        .request(
            "initialize",
            json!({"clientInfo": {"name": "x", "version": "1"}}),
        )
        .await;
    assert_eq!(
        c.response(id).await["error"]["message"],
        "Already initialized"
    );
    // Undecodable input without an id: no reply, the connection stays.
    c.send_raw("{this is not json").await;
    c.send_raw(r#"[{"id": 903, "method": "thread/list", "params": {}}]"#)
        .await;
    c.send_raw(r#"{"method": "no/suchNotification", "params": {}}"#)
        .await;
    // Undecodable requests with an id: an error reply each (upstream drops
    // them, and its client waits forever).
    c.send_raw(r#"{"id": 902}"#).await;
    let r = c.next_reply().await;
    assert_eq!(
        r,
        json!({"id": 902, "error": {"code": -32600, "message": "Invalid request: missing field `method`"}})
    );
    c.send_raw(&format!(
        "{{\"method\": \"thread/list\", \"params\": {{\"pad\": \"{}\"}}, \"id\": 906}}",
        "x".repeat(17 * 1024 * 1024)
    ))
    .await;
    let r = c.next_reply().await;
    assert_eq!(r["id"], 906, "the oversized request is answered: {r}");
    assert_eq!(r["error"]["code"], -32600);
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("over the 16777216-byte limit"), "{msg}");
    c.send_raw(&format!(
        r#"{{"id": "deep", "method": "thread/list", "params": {}{}}}"#,
        "[".repeat(1000),
        "]".repeat(1000)
    ))
    .await;
    let r = c.next_reply().await;
    assert_eq!(r["id"], "deep");
    assert_eq!(r["error"]["code"], -32700);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("recursion limit"),
        "{r}"
    );
    c.send_raw(r#"{"id": 907, "method": "thread/list", "params": {"#)
        .await;
    let r = c.next_reply().await;
    assert_eq!(
        (r["id"].clone(), r["error"]["code"].clone()),
        (json!(907), json!(-32700))
    );
    // A lone surrogate (JavaScript's JSON.stringify emits them) is U+FFFD.
    c.send_raw(r#"{"id": 908, "method": "thread/list", "params": {"searchTerm": "\ud800"}}"#)
        .await;
    let r = c.next_reply().await;
    assert_eq!(r["id"], 908);
    assert!(
        r.get("result").is_some(),
        "a lone surrogate is accepted: {r}"
    );
    c.send_raw(r#"{"id": 900, "method": "no/suchMethod", "params": {}}"#)
        .await;
    let r = c.next_reply().await;
    assert_eq!(r["id"], 900, "nothing answered the id-less lines: {r}");
    assert_eq!(r["error"]["code"], -32600);
    assert!(r["error"]["message"].as_str().unwrap().starts_with(
        "Invalid request: unknown variant `no/suchMethod`, expected one of `initialize`"
    ));
    c.send_raw(r#"{"id": 901, "method": "thread/read", "params": {"bogus": true}}"#)
        .await;
    let r = c.next_reply().await;
    assert_eq!(
        r["error"],
        json!({"code": -32600, "message": "Invalid request: missing field `threadId`"})
    );
    c.send_raw(r#"{"jsonrpc": "2.0", "id": 904, "method": "thread/loaded/list", "params": {}}"#)
        .await;
    let r = c.next_reply().await;
    assert_eq!(
        r,
        json!({"id": 904, "result": {"data": [], "nextCursor": null}})
    );
    c.send_raw(r#"{"id": 905, "method": "thread/read", "params": {"threadId": "00000000-0000-0000-0000-000000000000"}}"#).await;
    let r = c.next_reply().await;
    assert_eq!(
        r["error"]["message"],
        "thread not loaded: 00000000-0000-0000-0000-000000000000"
    );
    c.send_raw(r#"{"id": "str-id", "method": "thread/list", "params": {}}"#)
        .await;
    let r = c.next_reply().await;
    assert_eq!(r["id"], "str-id");
    assert_eq!(r["result"]["data"], json!([]));
    // Notifications carry emittedAtMs; nothing carries jsonrpc.
    let rc = c.seen_method("remoteControl/status/changed");
    assert!(rc[0]["emittedAtMs"].is_i64());
    drop(s.client);
    let status = tokio::time::timeout(Duration::from_secs(30), s.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn ps_shows_codexd_and_one_session_per_thread_with_commands_in_its_group() {
    let marker = "1000.4799";
    let mock = MockModelServer::start(vec![
        sse::exec_command("call_sleep", &format!("sleep {marker}")),
        sse::message("done"),
        sse::message("other"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "exec_timeout_ms = 60000");
    let server = SocketServer::start(&home).await;
    let daemon = server.pid();
    let mut c = server.client("ps").await;
    let t1 = c.start_thread(json!({})).await;
    let _t2 = c.start_thread(json!({})).await;
    c.start_turn(&t1, "sleep").await;
    c.wait_for("command started", |v| {
        v["method"] == "item/started" && v["params"]["item"]["type"] == "commandExecution"
    })
    .await;
    let sleeper = {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let p = procs::processes_matching(marker);
            if let Some(pid) = p.first() {
                break *pid;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the command never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let comm = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim()
            .to_string()
    };
    let stat = |pid: u32| codex_core::process::read_proc(pid).unwrap();
    assert_eq!(comm(daemon), "codexd");
    let sessions: Vec<u32> = codex_core::process::descendants(daemon)
        .into_iter()
        .filter(|p| p.comm == "codex-session" && p.ppid == daemon)
        .map(|p| p.pid)
        .collect();
    assert_eq!(sessions.len(), 2, "one codex-session per loaded thread");
    let s = stat(sleeper);
    assert!(
        sessions.contains(&s.pgid),
        "the command sits in its worker's process group"
    );
    let worker = stat(s.pgid);
    assert_eq!(worker.sid, worker.pid, "each worker leads its own session");
    c.call(
        "turn/interrupt",
        json!({"threadId": t1, "turnId": c.seen_method("turn/started")[0]["params"]["turn"]["id"]}),
    )
    .await;
    c.turn_completed(&t1).await;
    let left = procs::wait_none_matching(marker, Duration::from_secs(10));
    procs::kill_matching(marker);
    assert!(left.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn socket_refuses_other_users() {
    // Only root can act as another user.
    if !nix_is_root() {
        eprintln!("SKIPPED: needs root to connect as another uid");
        return;
    }
    let home = TestHome::new();
    home.write_config("http://127.0.0.1:9/v1", "");
    let server = SocketServer::start(&home).await;
    let dir = server.socket.parent().unwrap().to_path_buf();
    let mode = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&server.socket), 0o600);
    // Open the file permissions up so only the peer-uid check stands.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(&server.socket, std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut p = dir.clone();
        while let Some(parent) = p.parent() {
            if parent == std::path::Path::new("/tmp") || parent == std::path::Path::new("/") {
                break;
            }
            let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755));
            p = parent.to_path_buf();
        }
    }
    let script = r#"
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
data = b""
try:
    # codexd may close the refused connection before this is written.
    s.sendall(b'{"id":0,"method":"initialize","params":{"clientInfo":{"name":"intruder","version":"1"}}}\n')
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except Exception as e:
    print("error", e)
print("reply", data.decode() or "<none>")
"#;
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&server.socket)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run python as nobody");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("reply <none>"),
        "another user got an answer: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The owner still gets in.
    let mut c = server.client("owner").await;
    let r = c.call("thread/loaded/list", json!({})).await;
    assert_eq!(r["data"], json!([]));
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
