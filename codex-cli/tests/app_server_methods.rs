//! The thread-management, model and config methods of `codex app-server`,
//! and schema validation (against upstream's JSON Schema) of every message
//! they produce.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use codex_test_support::{sse, MockModelServer, MockResponse, TestHome};
use common::app_server::StdioServer;
use common::schema::validate;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn archive_unarchive_name_models_config_and_their_schemas() {
    let mock = MockModelServer::start(vec![sse::message("hi"), sse::message("there")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "model_reasoning_effort = \"high\"");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    let mut answers: Vec<(Option<String>, Value)> = Vec::new();
    let mut call = |c_method: &str, r: &Value| {
        answers.push((Some(c_method.to_string()), json!({"id": 0, "result": r})))
    };

    c.initialize("methods").await;
    let started = c
        .call("thread/start", json!({"cwd": home.workspace()}))
        .await;
    call("thread/start", &started);
    let tid = started["thread"]["id"].as_str().unwrap().to_string();
    c.start_turn(&tid, "remember me").await;
    c.turn_completed(&tid).await;

    let named = c
        .call(
            "thread/name/set",
            json!({"threadId": tid, "name": "My thread"}),
        )
        .await;
    call("thread/name/set", &named);
    let upd = c.notification("thread/name/updated").await;
    assert_eq!(upd["params"]["threadName"], "My thread");
    let listed = c.call("thread/list", json!({})).await;
    call("thread/list", &listed);
    assert_eq!(listed["data"][0]["name"], "My thread");
    assert_eq!(listed["data"][0]["preview"], "remember me");
    assert_eq!(listed["data"][0]["status"], json!({"type": "idle"}));

    let loaded = c.call("thread/loaded/list", json!({})).await;
    call("thread/loaded/list", &loaded);
    assert_eq!(loaded["data"], json!([tid]));

    let archived = c.call("thread/archive", json!({"threadId": tid})).await;
    call("thread/archive", &archived);
    c.notification("thread/archived").await;
    let closed = c.notification("thread/closed").await;
    assert_eq!(closed["params"]["threadId"], tid.as_str());
    assert_eq!(
        c.call("thread/loaded/list", json!({})).await["data"],
        json!([])
    );
    assert_eq!(c.call("thread/list", json!({})).await["data"], json!([]));
    let arch = c.call("thread/list", json!({"archived": true})).await;
    assert_eq!(arch["data"][0]["id"], tid.as_str());
    assert!(arch["data"][0]["path"]
        .as_str()
        .unwrap()
        .contains("archived_sessions"));
    let id = c.request("thread/resume", json!({"threadId": tid})).await;
    assert!(c.response(id).await["error"]["message"]
        .as_str()
        .unwrap()
        .contains("archived"));

    let un = c.call("thread/unarchive", json!({"threadId": tid})).await;
    call("thread/unarchive", &un);
    c.notification("thread/unarchived").await;
    assert_eq!(un["thread"]["status"], json!({"type": "notLoaded"}));
    assert!(un["thread"]["path"]
        .as_str()
        .unwrap()
        .contains("/sessions/"));
    let read = c
        .call(
            "thread/read",
            json!({"threadId": tid, "includeTurns": true}),
        )
        .await;
    call("thread/read", &read);
    assert_eq!(read["thread"]["status"], json!({"type": "notLoaded"}));
    assert_eq!(read["thread"]["turns"][0]["items"][1]["text"], "hi");

    let resumed = c.call("thread/resume", json!({"threadId": tid})).await;
    call("thread/resume", &resumed);
    assert_eq!(resumed["reasoningEffort"], "high");
    let unsub = c.call("thread/unsubscribe", json!({"threadId": tid})).await;
    call("thread/unsubscribe", &unsub);
    assert_eq!(unsub["status"], "unsubscribed");

    let models = c.call("model/list", json!({})).await;
    call("model/list", &models);
    let data = models["data"].as_array().unwrap();
    assert!(!data.is_empty());
    assert_eq!(data.iter().filter(|m| m["isDefault"] == true).count(), 1);
    let page = c.call("model/list", json!({"limit": 1})).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert!(page["nextCursor"].is_string());

    let cfg = c.call("config/read", json!({"includeLayers": true})).await;
    call("config/read", &cfg);
    assert_eq!(cfg["config"]["model"], "mock-model");
    assert_eq!(cfg["origins"]["model"]["name"]["type"], "user");

    // Every notification the session produced must validate too.
    let mut all = answers;
    for m in c.seen.iter().filter(|m| m.get("method").is_some()) {
        all.push((None, m.clone()));
    }
    validate(&all);
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_approval_through_the_app_server() {
    let home = TestHome::new();
    let outside = home.root().join("outside.txt");
    let patch = format!(
        "*** Begin Patch\n*** Add File: {}\n+approved\n*** End Patch",
        outside.display()
    );
    let mock = MockModelServer::start(vec![
        MockResponse::sse(sse::function_call_events(
            "r1",
            "call_patch",
            "apply_patch",
            json!({"input": patch}),
        )),
        sse::message("patched"),
    ])
    .await;
    home.write_config(
        &mock.url(),
        "[sandbox_workspace_write]\nexclude_slash_tmp = true\nexclude_tmpdir_env_var = true",
    );
    let mut s = StdioServer::start(&home, &["-c", "approval_policy=\"on-request\""]).await;
    let c = &mut s.client;
    c.initialize("patcher").await;
    let tid = c.start_thread(json!({})).await;
    c.start_turn(&tid, "write outside").await;
    let started = c
        .wait_for("file change started", |v| {
            v["method"] == "item/started" && v["params"]["item"]["type"] == "fileChange"
        })
        .await;
    assert_eq!(
        started["params"]["item"]["changes"][0]["kind"]["type"],
        "add"
    );
    let req = c
        .wait_for("patch approval", |v| {
            v["method"] == "item/fileChange/requestApproval"
        })
        .await;
    assert_eq!(req["params"]["itemId"], "call_patch");
    c.send(json!({"id": req["id"], "result": {"decision": "accept"}}))
        .await;
    let done = c
        .wait_for("file change completed", |v| {
            v["method"] == "item/completed" && v["params"]["item"]["type"] == "fileChange"
        })
        .await;
    assert_eq!(done["params"]["item"]["status"], "completed");
    c.turn_completed(&tid).await;
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "approved\n");
    let all: Vec<(Option<String>, Value)> = c.seen.iter().map(|m| (None, m.clone())).collect();
    let all: Vec<(Option<String>, Value)> = all
        .into_iter()
        .filter(|(_, m)| m.get("method").is_some())
        .collect();
    validate(&all);
}
