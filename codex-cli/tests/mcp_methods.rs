//! The MCP methods of the app-server protocol against a real `codex
//! app-server` and the real mock MCP server: `mcpServerStatus/list` (in a
//! thread and outside one), `mcpServer/tool/call`, `mcpServer/resource/read`,
//! `config/mcpServer/reload` (a removed server stops, an added one starts),
//! `mcpServer/oauth/login` refused for a stdio server, `codexd/status`
//! listing each thread's servers; every message schema-validated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use codex_test_support::mcp::mock_mcp_server_exe;
use codex_test_support::{MockModelServer, TestHome};
use common::app_server::StdioServer;
use common::schema;
use serde_json::{json, Value};

/// The whole response (result or error) to one request.
async fn rpc(c: &mut common::app_server::Client, method: &str, params: Value) -> Value {
    let id = c.request(method, params).await;
    c.response(id).await
}

fn server(name: &str, args: &[&str]) -> String {
    let exe = mock_mcp_server_exe().display().to_string();
    format!(
        "[mcp_servers.{name}]\ncommand = {exe:?}\nargs = {args:?}\n\
         default_tools_approval_mode = \"approve\"\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_methods_answer_as_upstream() {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![]).await;
    home.write_config(&mock.url(), &server("alpha", &["--name", "alpha-server"]));
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("mcp-methods").await;
    let mut answers: Vec<(Option<String>, Value)> = Vec::new();

    // Outside a thread: what is configured, nothing running.
    let r = rpc(c, "mcpServerStatus/list", json!({})).await;
    answers.push((Some("mcpServerStatus/list".into()), r.clone()));
    let data = &r["result"]["data"];
    assert_eq!(data[0]["name"], "alpha");
    assert_eq!(data[0]["authStatus"], "unsupported");
    assert!(data[0]["runtimeStatus"].is_null(), "{r}");

    let t = c.start_thread(json!({})).await;
    c.wait_for("alpha ready", |v| {
        v["method"] == "mcpServer/startupStatus/updated" && v["params"]["status"] == "ready"
    })
    .await;
    let r = rpc(c, "mcpServerStatus/list", json!({"threadId": t})).await;
    answers.push((Some("mcpServerStatus/list".into()), r.clone()));
    let alpha = &r["result"]["data"][0];
    assert_eq!(alpha["runtimeStatus"], "connected", "{r}");
    assert_eq!(alpha["serverInfo"]["name"], "alpha-server");
    assert!(alpha["tools"]["echo"]["inputSchema"].is_object(), "{r}");
    // `detail` (default `full`): resources and templates too.
    assert_eq!(alpha["resources"][0]["uri"], "mock://a", "{r}");
    assert_eq!(
        alpha["resourceTemplates"][0]["uriTemplate"], "mock://item/{id}",
        "{r}"
    );
    let r = rpc(
        c,
        "mcpServerStatus/list",
        json!({"threadId": t, "detail": "toolsAndAuthOnly"}),
    )
    .await;
    answers.push((Some("mcpServerStatus/list".into()), r.clone()));
    let alpha = &r["result"]["data"][0];
    assert!(alpha["tools"]["echo"].is_object(), "{r}");
    assert_eq!(alpha["resources"], json!([]), "{r}");

    let r = rpc(
        c,
        "mcpServer/tool/call",
        json!({"threadId": t, "server": "alpha", "tool": "echo", "arguments": {"text": "hi"}}),
    )
    .await;
    answers.push((Some("mcpServer/tool/call".into()), r.clone()));
    assert_eq!(r["result"]["structuredContent"]["echoed"], "hi", "{r}");
    assert_eq!(r["result"]["content"][0]["text"], "echo: hi");

    let r = rpc(
        c,
        "mcpServer/resource/read",
        json!({"threadId": t, "server": "alpha", "uri": "mock://a", "originCallId": "call_9"}),
    )
    .await;
    answers.push((Some("mcpServer/resource/read".into()), r.clone()));
    assert_eq!(
        r["result"]["contents"][0]["text"], "contents of mock://a",
        "{r}"
    );
    assert_eq!(r["result"]["originCallId"], "call_9", "{r}");

    // Errors name what is wrong; the connection lives on.
    let r = rpc(
        c,
        "mcpServer/tool/call",
        json!({"threadId": t, "server": "nope", "tool": "echo"}),
    )
    .await;
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown MCP server `nope`"),
        "{r}"
    );
    let r = rpc(c, "mcpServer/oauth/login", json!({"name": "alpha"})).await;
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only supported for streamable HTTP"),
        "{r}"
    );

    let st = rpc(c, "codexd/status", json!({})).await;
    let servers = &st["result"]["threads"][0]["mcpServers"];
    assert_eq!(servers[0]["name"], "alpha", "{st}");
    assert_eq!(servers[0]["state"], "ready", "{st}");

    // Reload: alpha removed, beta added.
    home.write_config(&mock.url(), &server("beta", &["--name", "beta-server"]));
    let r = rpc(c, "config/mcpServer/reload", Value::Null).await;
    assert_eq!(r["result"], json!({}), "{r}");
    c.wait_for("beta ready", |v| {
        v["method"] == "mcpServer/startupStatus/updated"
            && v["params"]["name"] == "beta"
            && v["params"]["status"] == "ready"
    })
    .await;
    let r = rpc(c, "mcpServerStatus/list", json!({"threadId": t})).await;
    let names: Vec<&str> = r["result"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["beta"], "{r}");

    for (m, a) in &answers {
        assert!(a.get("error").is_none(), "{m:?}: {a}");
    }
    let mut all = answers;
    all.extend(schema::unsolicited(&c.seen));
    schema::validate(&all);
}

/// Regression: a thread's own notifications (here its MCP servers'
/// startup status, which a fast server sends at once) reach the connection
/// that starts the thread only after the `thread/start` answer and
/// `thread/started`.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_threads_notifications_follow_its_start_answer() {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![]).await;
    home.write_config(&mock.url(), &server("fast", &[]));
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("mcp-order").await;
    // The race is narrow: several threads make it likely to show.
    for _ in 0..20 {
        let id = c.request("thread/start", json!({})).await;
        let answer = c.response(id).await;
        let t = answer["result"]["thread"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let tid = t.clone();
        c.wait_for("ready", move |v| {
            v["method"] == "mcpServer/startupStatus/updated"
                && v["params"]["threadId"] == tid.as_str()
                && v["params"]["status"] == "ready"
        })
        .await;
        let pos = |pred: &dyn Fn(&Value) -> bool| c.seen.iter().position(pred).unwrap();
        let answered = pos(&|v| v.get("method").is_none() && v["id"] == id);
        let started =
            pos(&|v| v["method"] == "thread/started" && v["params"]["thread"]["id"] == t.as_str());
        let first_status = pos(&|v| {
            v["method"] == "mcpServer/startupStatus/updated"
                && v["params"]["threadId"] == t.as_str()
        });
        assert!(
            answered < started && started < first_status,
            "answer {answered}, thread/started {started}, first status {first_status}"
        );
    }
}
