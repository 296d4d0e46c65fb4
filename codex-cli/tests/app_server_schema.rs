//! Every reply, notification and server request family `codex app-server`
//! produces, validated against upstream's JSON Schema; `config/read` of a
//! broken `config.toml`; `codex daemon status` through codex-ipc's client.
//! Real processes (codexd, workers, the broker) against mock servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use codex_ipc::app_server::codexd_status::StatusReport;
use codex_test_support::{sse, MockModelServer, MockOAuthServer, MockResponse, TestHome};
use common::app_server::{app_server_command, Client, SocketServer, StdioServer};
use common::schema::{unsolicited, validate};
use serde_json::{json, Value};

/// Replies collected for validation, keyed by the request method.
#[derive(Default)]
struct Replies(Vec<(Option<String>, Value)>);

impl Replies {
    /// Calls `method` and records its result.
    async fn call(&mut self, c: &mut Client, method: &str, params: Value) -> Value {
        let r = c.call(method, params).await;
        self.record(method, &r);
        r
    }

    fn record(&mut self, method: &str, result: &Value) {
        self.0
            .push((Some(method.into()), json!({"id": 0, "result": result})));
    }

    /// These replies plus every notification and server request `c` saw.
    fn with_unsolicited(mut self, c: &Client) -> Vec<(Option<String>, Value)> {
        self.0.extend(unsolicited(&c.seen));
        self.0
    }
}

fn methods_seen(c: &Client) -> BTreeSet<String> {
    c.seen
        .iter()
        .filter_map(|m| m["method"].as_str().map(str::to_string))
        .collect()
}

fn assert_all_seen(c: &Client, expected: &[&str]) {
    let seen = methods_seen(c);
    let missing: Vec<&&str> = expected.iter().filter(|m| !seen.contains(**m)).collect();
    assert!(
        missing.is_empty(),
        "never sent: {missing:?}; sent: {seen:?}"
    );
}

/// A reasoning summary, an `update_plan` call and a command, in one response.
fn plan_reasoning_and_command() -> MockResponse {
    let plan = json!({"explanation": "two steps", "plan": [
        {"step": "look", "status": "completed"},
        {"step": "run", "status": "in_progress"},
    ]});
    MockResponse::sse(vec![
        sse::created("r_plan"),
        json!({"type": "response.output_item.added", "output_index": 0,
            "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
        json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1",
            "output_index": 0, "summary_index": 0, "delta": "Thinking it over"}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": {
            "type": "reasoning", "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "Thinking it over"}]}}),
        sse::function_call_done("call_plan", "update_plan", &plan),
        sse::function_call_done(
            "call_echo",
            "exec_command",
            &json!({"cmd": "printf one; sleep 0.2; printf two"}),
        ),
        sse::completed("r_plan", 12, 6),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn thread_turn_model_and_config_families_match_the_schema() {
    let home = TestHome::new();
    let approved = home.workspace().join("approved.txt");
    let mock = MockModelServer::start(vec![
        // Turn 1: reasoning, a plan, a command, then the answer.
        plan_reasoning_and_command(),
        MockResponse::sse(sse::message_events("r_answer", "All done here", 3)),
        // Turn 2: an approval.
        MockResponse::sse(sse::function_call_events(
            "r_touch",
            "call_touch",
            "exec_command",
            json!({"cmd": format!("touch {}", approved.display()),
                "sandbox_permissions": "require_escalated", "justification": "May I?"}),
        )),
        sse::message("touched"),
        // Turn 3: a rate limit, retried (`error` with willRetry).
        MockResponse::Http {
            status: 429,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("retry-after".into(), "0".into()),
            ],
            body: json!({"error": {"message": "Rate limit reached (mock)",
                "type": "rate_limit_exceeded", "code": "rate_limit_exceeded"}})
            .to_string(),
        },
        sse::message("after the retry"),
        // Turn 4: refused by the model server (a failed turn).
        MockResponse::http_error(
            400,
            json!({"error": {"message": "bad request (mock)", "type": "invalid_request_error"}}),
        ),
        // Turn 5: interrupted mid-stream.
        sse::slow_message(
            "r_slow",
            &["one ", "two ", "three"],
            Duration::from_millis(300),
        ),
    ])
    .await;
    home.write_config(&mock.url(), "");
    let mut s = StdioServer::start(&home, &["-c", "approval_policy=\"on-request\""]).await;
    let c = &mut s.client;
    let mut replies = Replies::default();

    let init = c
        .call(
            "initialize",
            json!({"clientInfo": {"name": "schema", "title": "t", "version": "0.1.0"}}),
        )
        .await;
    replies.record("initialize", &init);
    c.notify("initialized").await;
    let started = replies
        .call(c, "thread/start", json!({"cwd": home.workspace()}))
        .await;
    let tid = started["thread"]["id"].as_str().unwrap().to_string();

    let turn = replies
        .call(
            c,
            "turn/start",
            json!({"threadId": tid, "input": [{"type": "text", "text": "plan and run"}]}),
        )
        .await;
    assert_eq!(turn["turn"]["status"], "inProgress");
    let done = c.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["status"], "completed");

    c.start_turn(&tid, "touch it").await;
    let req = c
        .wait_for("approval request", |v| {
            v["method"] == "item/commandExecution/requestApproval"
        })
        .await;
    c.send(json!({"id": req["id"], "result": {"decision": "accept"}}))
        .await;
    c.notification("serverRequest/resolved").await;
    c.turn_completed(&tid).await;
    assert!(approved.exists());

    c.start_turn(&tid, "rate limited").await;
    let done = c.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["status"], "completed");
    assert!(c
        .seen_method("error")
        .iter()
        .any(|e| e["params"]["willRetry"] == true));

    c.start_turn(&tid, "refused").await;
    let done = c.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["status"], "failed", "{done}");

    let turn_id = c.start_turn(&tid, "slow").await;
    c.notification("item/agentMessage/delta").await;
    replies
        .call(
            c,
            "turn/interrupt",
            json!({"threadId": tid, "turnId": turn_id}),
        )
        .await;
    let done = c.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["status"], "interrupted");

    // Reads, listings and settings of the thread.
    let read = replies
        .call(
            c,
            "thread/read",
            json!({"threadId": tid, "includeTurns": true}),
        )
        .await;
    assert_eq!(read["thread"]["turns"].as_array().unwrap().len(), 5);
    replies.call(c, "thread/list", json!({})).await;
    replies.call(c, "thread/loaded/list", json!({})).await;
    replies
        .call(
            c,
            "thread/name/set",
            json!({"threadId": tid, "name": "Named"}),
        )
        .await;
    replies
        .call(c, "model/list", json!({"includeHidden": true}))
        .await;
    replies
        .call(c, "config/read", json!({"includeLayers": true}))
        .await;
    replies.call(c, "config/read", json!({})).await;
    replies
        .call(c, "thread/unsubscribe", json!({"threadId": tid}))
        .await;
    let resumed = replies
        .call(c, "thread/resume", json!({"threadId": tid}))
        .await;
    assert_eq!(resumed["thread"]["id"], tid.as_str());
    c.notification("thread/tokenUsage/updated").await;

    // codexd's own method: typed on both ends.
    let status = c.call("codexd/status", json!({})).await;
    let report: StatusReport = serde_json::from_value(status.clone()).unwrap();
    assert_eq!(serde_json::to_value(&report).unwrap(), status);
    let worker = report.threads[0].pid;

    // A worker that dies: `error`, `notLoaded`, `thread/closed`.
    let killed = std::process::Command::new("kill")
        .args(["-9", &worker.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    c.thread_note("thread/closed", &tid).await;
    assert!(c
        .seen_method("error")
        .iter()
        .any(|e| e["params"]["error"]["additionalDetails"] == "worker_exited"));

    let un = replies
        .call(c, "thread/unsubscribe", json!({"threadId": tid}))
        .await;
    assert_eq!(un["status"], "notLoaded");
    replies
        .call(c, "thread/archive", json!({"threadId": tid}))
        .await;
    c.notification("thread/archived").await;
    replies
        .call(c, "thread/unarchive", json!({"threadId": tid}))
        .await;
    c.notification("thread/unarchived").await;

    assert_all_seen(
        c,
        &[
            "remoteControl/status/changed",
            "thread/started",
            "thread/status/changed",
            "turn/started",
            "item/started",
            "item/completed",
            "item/agentMessage/delta",
            "item/reasoning/summaryTextDelta",
            "turn/plan/updated",
            "thread/tokenUsage/updated",
            "item/commandExecution/requestApproval",
            "serverRequest/resolved",
            "error",
            "turn/completed",
            "thread/name/updated",
            "thread/closed",
            "thread/archived",
            "thread/unarchived",
        ],
    );
    let items: BTreeSet<String> = c
        .seen_method("item/completed")
        .iter()
        .filter_map(|n| n["params"]["item"]["type"].as_str().map(str::to_string))
        .collect();
    for t in [
        "userMessage",
        "agentMessage",
        "reasoning",
        "commandExecution",
    ] {
        assert!(items.contains(t), "no {t} item completed: {items:?}");
    }
    validate(&replies.with_unsolicited(c));
}

#[tokio::test(flavor = "multi_thread")]
async fn account_family_matches_the_schema() {
    let oauth = MockOAuthServer::start().await;
    let home = TestHome::new();
    let mut cmd = app_server_command(&home, &[]);
    cmd.env("CODEX_APP_SERVER_LOGIN_ISSUER", oauth.issuer())
        .env("CODEX_LOGIN_CALLBACK_PORT", "0")
        .env_remove("OPENAI_API_KEY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut s = StdioServer::from_command(cmd);
    let c = &mut s.client;
    let mut replies = Replies::default();
    c.initialize("accounts").await;

    let none = replies.call(c, "account/read", json!({})).await;
    assert_eq!(none["account"], Value::Null);
    let key = replies
        .call(
            c,
            "account/login/start",
            json!({"type": "apiKey", "apiKey": "sk-test"}),
        )
        .await;
    assert_eq!(key, json!({"type": "apiKey"}));
    c.notification("account/login/completed").await;
    c.notification("account/updated").await;
    let with_key = replies.call(c, "account/read", json!({})).await;
    assert_eq!(with_key["account"], json!({"type": "apiKey"}));
    let cancel = replies
        .call(
            c,
            "account/login/cancel",
            json!({"loginId": "0198a8b2-0000-7000-8000-000000000000"}),
        )
        .await;
    assert_eq!(cancel["status"], "notFound");
    replies.call(c, "account/logout", json!(null)).await;
    c.notification("account/updated").await;

    let device = replies
        .call(
            c,
            "account/login/start",
            json!({"type": "chatgptDeviceCode"}),
        )
        .await;
    assert_eq!(device["type"], "chatgptDeviceCode");
    let done = c
        .wait_for("device login completed", |v| {
            v["method"] == "account/login/completed" && v["params"]["loginId"] == device["loginId"]
        })
        .await;
    assert_eq!(done["params"]["success"], true, "{done}");
    let chatgpt = replies.call(c, "account/read", json!({})).await;
    assert_eq!(chatgpt["account"]["type"], "chatgpt");

    assert_all_seen(c, &["account/login/completed", "account/updated"]);
    validate(&replies.with_unsolicited(c));
}

#[tokio::test(flavor = "multi_thread")]
async fn config_read_names_a_broken_config_file_and_the_connection_survives() {
    let mock = MockModelServer::start(vec![]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let path = home.codex_home().join("config.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    let mut server = SocketServer::start(&home).await;
    let mut c = server.client("config").await;
    let mut replies = Replies::default();
    let cfg = replies.call(&mut c, "config/read", json!({})).await;
    assert_eq!(cfg["config"]["model"], "mock-model");

    // A syntax error on line 3.
    std::fs::write(&path, "model = \"mock-model\"\n\n[model_providers.mock\n").unwrap();
    let id = c.request("config/read", json!({})).await;
    let r = c.response(id).await;
    let err = &r["error"];
    assert_eq!(err["code"], -32600, "{r}");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("{}:3:", path.display())),
        "{message}"
    );
    assert!(message.contains("invalid TOML"), "{message}");
    // The connection keeps working.
    let loaded = replies.call(&mut c, "thread/loaded/list", json!({})).await;
    assert_eq!(loaded["data"], json!([]));

    // A config.toml that cannot be read at all.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let id = c
        .request("config/read", json!({"includeLayers": true}))
        .await;
    let r = c.response(id).await;
    assert_eq!(r["error"]["code"], -32600, "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("cannot read {}: ", path.display())),
        "{message}"
    );
    assert!(message.contains("directory"), "{message}");

    // Fixed, it reads again on the same connection.
    std::fs::remove_dir(&path).unwrap();
    std::fs::write(&path, good).unwrap();
    let cfg = replies
        .call(&mut c, "config/read", json!({"includeLayers": true}))
        .await;
    assert_eq!(cfg["layers"][0]["config"]["model"], "mock-model");
    validate(&replies.0);
    server.kill9().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn daemon_status_asks_through_the_typed_client() {
    let mock = MockModelServer::start(vec![]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut server = SocketServer::start(&home).await;
    let mut c = server.client("status").await;
    let tid = c.start_thread(json!({})).await;

    let out = tokio::process::Command::new(common::CODEX)
        .args(["daemon", "status", "--json", "--socket"])
        .arg(&server.socket)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: StatusReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.threads.len(), 1);
    assert_eq!(report.threads[0].thread_id, tid);
    assert_eq!(report.pid, server.pid());
    // The daemon saw a second client come and go.
    let status = c.status().await;
    assert_eq!(status["threads"][0]["threadId"], tid.as_str());

    let missing = home.root().join("no-such.sock");
    let out = tokio::process::Command::new(common::CODEX)
        .args(["daemon", "status", "--socket"])
        .arg(&missing)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&missing.display().to_string()) && stderr.contains("is it running"),
        "{stderr}"
    );
    server.kill9().await;
}
