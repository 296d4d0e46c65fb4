//! `thread/start`'s `dynamicTools` through `codex app-server`: the tools a
//! client defines are offered to the (mock) model, a call becomes an
//! `item/tool/call` request to the client, and its answer the call's output
//! in the next model request; deferred tools are not offered; an unanswered
//! call fails at its deadline; the tools survive a resume in a new daemon
//! and a fork.
//! Also the params audit of `thread/start`: unserved fields named in one
//! `warning` (none for the TUI's), `permissions` profiles. Real codexd,
//! workers and the mock model; messages validated against upstream's
//! experimental schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use codex_test_support::{sse, MockModelServer, MockResponse, TestHome};
use common::app_server::{Client, StdioServer};
use common::schema::{unsolicited, validate_experimental};
use serde_json::{json, Value};

async fn init_experimental(c: &mut Client) {
    c.call(
        "initialize",
        json!({"clientInfo": {"name": "dyn-client", "version": "0.1.0"},
               "capabilities": {"experimentalApi": true}}),
    )
    .await;
    c.notify("initialized").await;
}

fn tools_param() -> Value {
    json!([
        {"type": "function", "name": "lookup_weather", "description": "Current weather in a city.",
         "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"type": "function", "name": "hidden_tool", "description": "Only through tool search.",
         "inputSchema": {"type": "object"}, "deferLoading": true},
        {"type": "namespace", "name": "tasks", "description": "Manage tasks.", "tools": [
            {"type": "function", "name": "list_tasks", "description": "List tasks.",
             "inputSchema": {"type": "object"}},
            {"type": "function", "name": "archive_task", "description": "Archive a task.",
             "inputSchema": {"type": "object"}, "deferLoading": true}
        ]}
    ])
}

fn call_weather(call_id: &str) -> MockResponse {
    MockResponse::sse(sse::function_call_events(
        "resp_dyn",
        call_id,
        "lookup_weather",
        json!({"city": "Paris"}),
    ))
}

/// The names in a model request's `tools` (a namespace as `ns/[names]`).
fn offered(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| match t["type"].as_str() {
            Some("namespace") => format!(
                "{}/{:?}",
                t["name"].as_str().unwrap(),
                t["tools"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["name"].as_str().unwrap())
                    .collect::<Vec<_>>()
            ),
            _ => t["name"].as_str().unwrap().to_string(),
        })
        .collect()
}

async fn tool_call_request(c: &mut Client) -> Value {
    c.wait_for("item/tool/call", |v| {
        v["method"] == "item/tool/call" && v.get("id").is_some()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dynamic_tool_is_answered_by_the_client_and_offered_again_after_resume_and_fork() {
    let mock = MockModelServer::start(vec![
        call_weather("call_1"),
        sse::message("It is sunny."),
        sse::message("Still here."),
        sse::message("Forked."),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut checked: Vec<(Option<String>, Value)> = Vec::new();
    let thread_id = {
        let mut s = StdioServer::start(&home, &[]).await;
        let c = &mut s.client;
        init_experimental(c).await;
        let started = c
            .call("thread/start", json!({"dynamicTools": tools_param()}))
            .await;
        checked.push((
            Some("thread/start".into()),
            json!({"id": 0, "result": started}),
        ));
        let thread_id = started["thread"]["id"].as_str().unwrap().to_string();
        let turn_id = c.start_turn(&thread_id, "weather?").await;

        let req = tool_call_request(c).await;
        let p = &req["params"];
        assert_eq!(p["threadId"], thread_id.as_str());
        assert_eq!(p["turnId"], turn_id.as_str());
        assert_eq!(p["callId"], "call_1");
        assert_eq!(p["tool"], "lookup_weather");
        assert_eq!(p["namespace"], Value::Null);
        assert_eq!(p["arguments"], json!({"city": "Paris"}));
        c.send(json!({"id": req["id"], "result": {
            "contentItems": [{"type": "inputText", "text": "sunny, 21°C"}], "success": true}}))
            .await;
        let done = c.turn_completed(&thread_id).await;
        assert_eq!(done["params"]["turn"]["status"], "completed", "{done}");

        // The item, as upstream: started before the request, completed with
        // the client's answer; the request resolved.
        let started_item = c
            .seen_method("item/started")
            .into_iter()
            .find(|n| n["params"]["item"]["type"] == "dynamicToolCall")
            .expect("item/started of the dynamic tool call");
        assert_eq!(started_item["params"]["item"]["status"], "inProgress");
        assert_eq!(started_item["params"]["item"]["id"], "call_1");
        let pos = |pred: &dyn Fn(&Value) -> bool| c.seen.iter().position(pred).unwrap();
        assert!(
            pos(&|m| m["method"] == "item/started"
                && m["params"]["item"]["type"] == "dynamicToolCall")
                < pos(&|m| m["method"] == "item/tool/call")
        );
        let completed = c
            .seen_method("item/completed")
            .into_iter()
            .find(|n| n["params"]["item"]["type"] == "dynamicToolCall")
            .expect("item/completed of the dynamic tool call");
        let item = &completed["params"]["item"];
        assert_eq!(item["status"], "completed");
        assert_eq!(item["success"], true);
        assert_eq!(item["tool"], "lookup_weather");
        assert_eq!(item["contentItems"][0]["text"], "sunny, 21°C");
        assert!(c
            .seen_method("serverRequest/resolved")
            .iter()
            .any(|n| n["params"]["requestId"] == req["id"]));
        checked.extend(unsolicited(&c.seen));
        thread_id
    };

    let requests = mock.model_requests();
    assert_eq!(
        requests[1].function_output("call_1").as_deref(),
        Some("sunny, 21°C")
    );
    // Deferred tools (alone, or in a namespace) are not offered.
    let tools = offered(&requests[0].body);
    assert!(tools.contains(&"lookup_weather".to_string()), "{tools:?}");
    assert!(
        tools.contains(&r#"tasks/["list_tasks"]"#.to_string()),
        "{tools:?}"
    );
    assert!(!tools
        .iter()
        .any(|t| t.contains("hidden_tool") || t.contains("archive_task")));
    assert!(tools.contains(&"exec_command".to_string()));

    // Recorded as upstream records them, deferred ones included.
    let rollout = std::fs::read_to_string(&home.rollouts()[0]).unwrap();
    let meta: Value = serde_json::from_str(rollout.lines().next().unwrap()).unwrap();
    let recorded = meta["payload"]["dynamic_tools"].as_array().unwrap();
    assert_eq!(recorded.len(), 4, "{recorded:?}");
    assert_eq!(recorded[1]["name"], "hidden_tool");
    assert_eq!(recorded[1]["deferLoading"], true);
    assert_eq!(recorded[2]["namespace"], "tasks");

    // A new daemon resumes the thread: the tools are offered again.
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    init_experimental(c).await;
    c.call(
        "thread/resume",
        json!({"threadId": thread_id, "excludeTurns": true}),
    )
    .await;
    c.start_turn(&thread_id, "again").await;
    c.turn_completed(&thread_id).await;
    let again = offered(&mock.model_requests()[2].body);
    assert!(again.contains(&"lookup_weather".to_string()), "{again:?}");
    assert!(!again.iter().any(|t| t.contains("hidden_tool")));
    // The recorded item is part of the thread's history.
    let items = c
        .call("thread/items/list", json!({"threadId": thread_id}))
        .await;
    checked.push((
        Some("thread/items/list".into()),
        json!({"id": 0, "result": items}),
    ));
    let item = items["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| &row["item"])
        .find(|i| i["type"] == "dynamicToolCall")
        .unwrap_or_else(|| panic!("no dynamicToolCall in {items}"));
    assert_eq!(item["status"], "completed");
    assert_eq!(item["contentItems"][0]["text"], "sunny, 21°C");
    // A fork carries them too.
    let fork = c
        .call(
            "thread/fork",
            json!({"threadId": thread_id, "excludeTurns": true}),
        )
        .await;
    let fork_id = fork["thread"]["id"].as_str().unwrap().to_string();
    c.start_turn(&fork_id, "forked").await;
    c.turn_completed(&fork_id).await;
    let forked = offered(&mock.model_requests()[3].body);
    assert!(forked.contains(&"lookup_weather".to_string()), "{forked:?}");
    checked.extend(unsolicited(&c.seen));
    validate_experimental(&checked);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_call_fails_at_its_deadline() {
    let mock = MockModelServer::start(vec![call_weather("call_late"), sse::message("ok")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "tool_timeout_ms = 1000");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    init_experimental(c).await;
    let thread_id = c.start_thread(json!({"dynamicTools": tools_param()})).await;
    c.start_turn(&thread_id, "weather?").await;
    let req = tool_call_request(c).await;
    // Never answered: the deadline ends the call, the request is resolved.
    let done = c.turn_completed(&thread_id).await;
    assert_eq!(done["params"]["turn"]["status"], "completed", "{done}");
    let output = mock.model_requests()[1]
        .function_output("call_late")
        .unwrap();
    assert!(
        output.contains("dynamic tool `lookup_weather` was not answered within 1s"),
        "{output}"
    );
    assert!(c
        .seen_method("serverRequest/resolved")
        .iter()
        .any(|n| n["params"]["requestId"] == req["id"]));
    let completed = c
        .seen_method("item/completed")
        .into_iter()
        .find(|n| n["params"]["item"]["type"] == "dynamicToolCall")
        .unwrap();
    assert_eq!(completed["params"]["item"]["status"], "failed");
    assert_eq!(completed["params"]["item"]["success"], false);
    // A late answer is ignored harmlessly.
    c.send(json!({"id": req["id"], "result": {"contentItems": [], "success": true}}))
        .await;
    c.call("thread/read", json!({"threadId": thread_id})).await;
    validate_experimental(&unsolicited(&c.seen));
}

/// The TUI's recorded `thread/start` params (everything it sends, most of
/// it null).
fn tui_thread_start() -> Value {
    json!({"model": null, "modelProvider": null, "cwd": null, "runtimeWorkspaceRoots": null,
        "approvalPolicy": null, "approvalsReviewer": null, "sandbox": "read-only",
        "permissions": null, "config": {}, "serviceName": null, "baseInstructions": null,
        "developerInstructions": null, "personality": null, "multiAgentMode": null,
        "ephemeral": false, "historyMode": "paginated", "sessionStartSource": null,
        "threadSource": "user", "projectId": null, "daybreakEnabled": null,
        "environments": null, "dynamicTools": [{"type": "namespace", "name": "codex_tui",
            "description": "Manage Codex tasks.", "tools": [{"type": "function",
            "name": "list_threads", "description": "List tasks.",
            "inputSchema": {"type": "object"}, "deferLoading": true}]}],
        "selectedCapabilityRoots": null, "mockExperimentalField": null})
}

/// Reads through the reply to one more request: every notification sent
/// before it has then arrived.
async fn settle(c: &mut Client, thread_id: &str) {
    c.call("thread/read", json!({"threadId": thread_id})).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn thread_start_names_what_it_does_not_serve() {
    let mock = MockModelServer::start(vec![sse::message("hi")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    init_experimental(c).await;
    let mut checked: Vec<(Option<String>, Value)> = Vec::new();

    // The TUI's params: all served or null, so no warning.
    let tui = c.call("thread/start", tui_thread_start()).await;
    let tui_id = tui["thread"]["id"].as_str().unwrap().to_string();
    assert_eq!(tui["thread"]["threadSource"], "user");
    assert_eq!(tui["sandbox"]["type"], "readOnly", "{tui}");
    checked.push((Some("thread/start".into()), json!({"id": 0, "result": tui})));
    settle(c, &tui_id).await;
    assert!(
        c.seen_method("warning").is_empty(),
        "{:?}",
        c.seen_method("warning")
    );
    // The deferred TUI tools are not offered; the thread runs a turn.
    c.start_turn(&tui_id, "hello").await;
    c.turn_completed(&tui_id).await;
    let tools = offered(&mock.model_requests()[0].body);
    assert!(
        !tools.iter().any(|t| t.contains("list_threads")),
        "{tools:?}"
    );
    // Nor for the TUI's `thread/resume` (all null but `excludeTurns`).
    let resumed = c
        .call(
            "thread/resume",
            json!({"threadId": tui_id, "history": null, "path": null, "model": null,
                "modelProvider": null, "cwd": null, "runtimeWorkspaceRoots": null,
                "approvalPolicy": null, "approvalsReviewer": null, "sandbox": null,
                "permissions": null, "config": null, "baseInstructions": null,
                "developerInstructions": null, "personality": null, "excludeTurns": true,
                "initialTurnsPage": null}),
        )
        .await;
    checked.push((
        Some("thread/resume".into()),
        json!({"id": 0, "result": resumed}),
    ));
    settle(c, &tui_id).await;
    let about_params = |c: &Client| {
        c.seen_method("warning")
            .into_iter()
            .filter(|w| {
                w["params"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("thread/")
            })
            .collect::<Vec<_>>()
    };
    assert!(about_params(c).is_empty(), "{:?}", about_params(c));
    // A running thread keeps its settings, and says so.
    c.call(
        "thread/resume",
        json!({"threadId": tui_id, "model": "other-model", "excludeTurns": true}),
    )
    .await;
    settle(c, &tui_id).await;
    let kept = about_params(c);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        kept[0]["params"]["message"],
        "thread/resume: the thread is already running and keeps its settings; not applied: `model`"
    );

    // Unserved choices are named, once; defaults and nulls are not.
    let other = c
        .call(
            "thread/start",
            json!({"serviceName": "svc", "projectId": "p1", "sessionStartSource": "clear",
                   "personality": "none", "approvalsReviewer": "user", "environments": [],
                   "noSuchField": 1, "daybreakEnabled": null}),
        )
        .await;
    let other_id = other["thread"]["id"].as_str().unwrap().to_string();
    settle(c, &other_id).await;
    let warnings: Vec<Value> = about_params(c)
        .into_iter()
        .filter(|w| w["params"]["threadId"] == other_id.as_str())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(
        warnings[0]["params"]["message"],
        "thread/start: this server does not support `noSuchField`, `projectId`, `serviceName`, `sessionStartSource`; ignored"
    );

    // Permission profiles are sandbox modes; not together with `sandbox`.
    let ro = c
        .call("thread/start", json!({"permissions": ":read-only"}))
        .await;
    assert_eq!(ro["sandbox"]["type"], "readOnly", "{ro}");
    assert_eq!(ro["activePermissionProfile"]["id"], ":read-only");
    let ws = c
        .call("thread/start", json!({"permissions": ":workspace"}))
        .await;
    assert_eq!(ws["sandbox"]["type"], "workspaceWrite", "{ws}");
    checked.push((Some("thread/start".into()), json!({"id": 0, "result": ro})));
    for (params, message) in [
        (
            json!({"permissions": ":read-only", "sandbox": "read-only"}),
            "`permissions` cannot be combined with `sandbox`",
        ),
        (
            json!({"permissions": "custom"}),
            "Invalid request: unknown permissions profile `custom`; this server has `:read-only`, `:workspace`, `:danger-full-access`",
        ),
    ] {
        let id = c.request("thread/start", params).await;
        let r = c.response(id).await;
        assert_eq!(r["error"]["code"], -32600, "{r}");
        assert_eq!(r["error"]["message"], message);
    }

    // `thread/resume` from another file or from history is refused by name.
    let id = c
        .request(
            "thread/resume",
            json!({"threadId": tui_id, "path": "/elsewhere/rollout.jsonl"}),
        )
        .await;
    let r = c.response(id).await;
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("`path`"));

    checked.extend(unsolicited(&c.seen));
    validate_experimental(&checked);
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamic_tools_need_the_experimental_capability() {
    let mock = MockModelServer::start(vec![]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("plain").await;
    let id = c
        .request("thread/start", json!({"dynamicTools": tools_param()}))
        .await;
    let r = c.response(id).await;
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert_eq!(
        r["error"]["message"],
        "thread/start.dynamicTools requires experimentalApi capability"
    );
}

/// A model response that calls `name` in namespace `ns`.
fn call_in_namespace(call_id: &str, ns: &str, name: &str) -> MockResponse {
    MockResponse::sse(vec![
        sse::created("resp_ns"),
        json!({"type": "response.output_item.done", "output_index": 0, "item": {
            "type": "function_call", "id": format!("fc_{call_id}"), "call_id": call_id,
            "name": name, "namespace": ns, "arguments": "{}"}}),
        sse::completed("resp_ns", 10, 5),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupt_cancels_a_namespaced_call() {
    let mock = MockModelServer::start(vec![
        call_in_namespace("call_ns", "tasks", "list_tasks"),
        sse::message("after"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    init_experimental(c).await;
    let thread_id = c.start_thread(json!({"dynamicTools": tools_param()})).await;
    let turn_id = c.start_turn(&thread_id, "list them").await;
    let req = tool_call_request(c).await;
    assert_eq!(req["params"]["tool"], "list_tasks");
    assert_eq!(req["params"]["namespace"], "tasks");
    c.call(
        "turn/interrupt",
        json!({"threadId": thread_id, "turnId": turn_id}),
    )
    .await;
    let done = c.turn_completed(&thread_id).await;
    assert_eq!(done["params"]["turn"]["status"], "interrupted", "{done}");
    let rid = req["id"].clone();
    c.wait_for("serverRequest/resolved", move |v| {
        v["method"] == "serverRequest/resolved" && v["params"]["requestId"] == rid
    })
    .await;
    // The call goes back to the model as it came, with an output.
    c.start_turn(&thread_id, "next").await;
    c.turn_completed(&thread_id).await;
    let next = &mock.model_requests()[1];
    let call = next
        .input()
        .into_iter()
        .find(|i| i["type"] == "function_call" && i["call_id"] == "call_ns")
        .unwrap();
    assert_eq!(call["namespace"], "tasks");
    assert!(next.function_output("call_ns").is_some());
    validate_experimental(&unsolicited(&c.seen));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_client_the_model_reads_why() {
    let mock = MockModelServer::start(vec![
        call_weather("call_a"),
        call_weather("call_b"),
        sse::message("done"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    init_experimental(c).await;
    let thread_id = c.start_thread(json!({"dynamicTools": tools_param()})).await;
    c.start_turn(&thread_id, "weather?").await;
    tool_call_request(c).await;
    // The only client leaves while it is asked: that call fails, and the
    // next one finds nobody to ask.
    c.call("thread/unsubscribe", json!({"threadId": thread_id}))
        .await;
    let deadline = std::time::Instant::now() + common::app_server::WAIT;
    while mock.model_requests().len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the turn did not go on"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let requests = mock.model_requests();
    assert_eq!(
        requests[1].function_output("call_a").as_deref(),
        Some("the client asked to run this dynamic tool disconnected")
    );
    assert_eq!(
        requests[2].function_output("call_b").as_deref(),
        Some("no client is connected to answer dynamic tool `lookup_weather`")
    );
}
