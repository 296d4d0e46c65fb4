//! The one client API (`codex_daemon::runtime`) against each way a
//! supervisor can run: embedded in this process, a codexd on a unix socket,
//! a codexd on a WebSocket; and `codex app-server proxy`, its thinnest user.
//! Each drives a real thread: a turn whose command needs approval, approved
//! by the client, then the answer and `turn/completed`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use codex_daemon::runtime::{EmbeddedOptions, Endpoint, Runtime, RuntimeOptions};
use codex_ipc::app_server::connection::ServerMessage;
use codex_ipc::jsonrpc::Incoming;
use codex_test_support::{procs, sse, MockModelServer, MockResponse, TestHome};
use common::app_server::{Client, SocketServer, WAIT};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// A command the model asks to run outside the sandbox: it needs approval.
fn escalated(call_id: &str, cmd: &str) -> MockResponse {
    MockResponse::sse(sse::function_call_events(
        &format!("r_{call_id}"),
        call_id,
        "exec_command",
        json!({"cmd": cmd, "sandbox_permissions": "require_escalated", "justification": "test"}),
    ))
}

async fn next(events: &mut mpsc::Receiver<ServerMessage>, what: &str) -> ServerMessage {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
        .unwrap_or_else(|| panic!("the connection closed before {what}"))
}

/// Starts a thread and a turn, approves its command and waits for the turn
/// to complete. `marker` is the file the command creates.
async fn approved_turn(rt: &Runtime, events: &mut mpsc::Receiver<ServerMessage>, marker: &Path) {
    assert_eq!(
        rt.server_info["userAgent"].as_str().map(|u| !u.is_empty()),
        Some(true),
        "{}",
        rt.server_info
    );
    let started = rt
        .request("thread/start", json!({"approvalPolicy": "on-request"}))
        .await
        .unwrap();
    let tid = started["thread"]["id"].as_str().unwrap().to_string();
    rt.request(
        "turn/start",
        json!({"threadId": tid, "input": [{"type": "text", "text": "make the file"}]}),
    )
    .await
    .unwrap();
    let mut approved = false;
    let mut answer = None;
    loop {
        let m = next(events, "turn/completed").await;
        match &m.message {
            Incoming::Request { id, method, .. }
                if method == "item/commandExecution/requestApproval" =>
            {
                assert!(!marker.exists(), "nothing ran before the approval");
                rt.respond(id, json!({"decision": "accept"})).unwrap();
                approved = true;
            }
            Incoming::Notification { method, params }
                if method == "item/completed" && params["item"]["type"] == "agentMessage" =>
            {
                answer = params["item"]["text"].as_str().map(str::to_string);
            }
            Incoming::Notification { method, params } if method == "turn/completed" => {
                assert_eq!(params["turn"]["status"], "completed", "{params}");
                break;
            }
            _ => {}
        }
    }
    assert!(approved, "the approval request arrived");
    assert!(marker.exists(), "the approved command ran");
    assert_eq!(answer.as_deref(), Some("made it"));
}

fn script(marker: &Path) -> Vec<MockResponse> {
    vec![
        escalated("call_touch", &format!("touch {}", marker.display())),
        sse::message("made it"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn an_embedded_supervisor_runs_an_approved_turn_and_closes_cleanly() {
    let home = TestHome::new();
    let marker = home.root().join("embedded.txt");
    let mock = MockModelServer::start(script(&marker)).await;
    home.write_config_inline_key(&mock.url(), "");
    let mut embedded = EmbeddedOptions::new(home.codex_home());
    embedded.worker_exe = Some(common::CODEX.into());
    embedded.cwd = Some(home.workspace());
    let (rt, mut events) = Runtime::open(RuntimeOptions::new(Endpoint::Embedded(embedded)))
        .await
        .unwrap();
    approved_turn(&rt, &mut events, &marker).await;
    let status = rt.request("codexd/status", json!({})).await.unwrap();
    let worker = status["threads"][0]["pid"].as_u64().unwrap() as u32;
    let broker = status["broker"]["pid"].as_u64().unwrap() as u32;
    rt.close(Duration::from_secs(10)).await;
    // Closing shut the supervisor down: its worker and broker are gone.
    let deadline = std::time::Instant::now() + WAIT;
    while procs::is_alive(worker) || procs::is_alive(broker) {
        assert!(
            std::time::Instant::now() < deadline,
            "a worker outlived close"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(
        rt.request("thread/list", json!({})).await,
        Err(codex_daemon::runtime::RuntimeError::Connection(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runtime_drives_a_codexd_over_its_unix_socket() {
    let home = TestHome::new();
    let marker = home.root().join("unix.txt");
    let mock = MockModelServer::start(script(&marker)).await;
    home.write_config(&mock.url(), "");
    let mut server = SocketServer::start(&home).await;
    let (rt, mut events) =
        Runtime::open(RuntimeOptions::new(Endpoint::Unix(server.socket.clone())))
            .await
            .unwrap();
    approved_turn(&rt, &mut events, &marker).await;
    rt.close(Duration::from_secs(5)).await;
    // The daemon lives on for its other clients.
    let mut c = server.client("after").await;
    let loaded = c.call("thread/loaded/list", json!({})).await;
    assert_eq!(loaded["data"].as_array().unwrap().len(), 1);
    server.kill9().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runtime_drives_a_codexd_over_websocket_with_its_token() {
    let home = TestHome::new();
    let marker = home.root().join("ws.txt");
    let mock = MockModelServer::start(script(&marker)).await;
    home.write_config(&mock.url(), "");
    let token_file = home.root().join("token");
    std::fs::write(&token_file, "runtime-token-1").unwrap();
    let (mut child, port) = common::app_server::start_ws_server(
        &home,
        &[
            "--ws-auth",
            "capability-token",
            "--ws-token-file",
            token_file.to_str().unwrap(),
        ],
    )
    .await;
    let url = format!("ws://127.0.0.1:{port}");
    // Without the token: refused at the handshake.
    let refused = Runtime::open(RuntimeOptions::new(Endpoint::WebSocket {
        url: url.clone(),
        token: None,
    }))
    .await;
    assert!(refused.is_err());
    let (rt, mut events) = Runtime::open(RuntimeOptions::new(Endpoint::WebSocket {
        url,
        token: Some("runtime-token-1".into()),
    }))
    .await
    .unwrap();
    approved_turn(&rt, &mut events, &marker).await;
    rt.close(Duration::from_secs(5)).await;
    let _ = child.start_kill();
    let _ = child.wait().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn app_server_proxy_bridges_stdio_to_the_daemon() {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![sse::message("through the proxy")]).await;
    home.write_config(&mock.url(), "");
    let mut server = SocketServer::start(&home).await;
    let mut proxy = tokio::process::Command::new(common::CODEX)
        .args(["app-server", "proxy", "--sock"])
        .arg(&server.socket)
        .env("CODEX_HOME", home.codex_home())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = proxy.stdout.take().unwrap();
    let stdin = proxy.stdin.take().unwrap();
    let mut c = Client::new(Box::new(tokio::io::BufReader::new(stdout)), Box::new(stdin));
    // The client's own handshake and errors pass through untouched.
    c.initialize("via-proxy").await;
    c.send_raw(r#"{"id": 77}"#).await;
    let r = c.next_reply().await;
    assert_eq!(r["id"], 77);
    assert_eq!(r["error"]["code"], -32600);
    let tid = c.start_thread(json!({})).await;
    c.start_turn(&tid, "hello").await;
    let done = c.turn_completed(&tid).await;
    assert_eq!(
        done["params"]["turn"]["items"][0]["text"],
        "through the proxy"
    );
    // The proxied client is one connection of the daemon, beside ours.
    let mut direct = server.client("direct").await;
    let status: Value = direct.status().await;
    assert_eq!(status["connections"], 2);
    // EOF on stdin ends the proxy (and its connection).
    drop(c);
    let code = tokio::time::timeout(WAIT, proxy.wait())
        .await
        .expect("the proxy exits at EOF")
        .unwrap();
    assert_eq!(code.code(), Some(0));
    server.kill9().await;
}

/// A client that speaks WebSocket itself through the proxy (as upstream's
/// clients do through upstream's byte-copying proxy) gets the bytes through.
#[tokio::test(flavor = "multi_thread")]
async fn app_server_proxy_passes_a_websocket_client_through_as_bytes() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let home = TestHome::new();
    let mock = MockModelServer::start(vec![]).await;
    home.write_config(&mock.url(), "");
    let mut server = SocketServer::start(&home).await;
    let mut proxy = tokio::process::Command::new(common::CODEX)
        .args(["app-server", "proxy", "--sock"])
        .arg(&server.socket)
        .env("CODEX_HOME", home.codex_home())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdio = tokio::io::join(proxy.stdout.take().unwrap(), proxy.stdin.take().unwrap());
    let (mut ws, answer) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async("ws://localhost/", stdio),
    )
    .await
    .expect("the upgrade through the proxy")
    .unwrap();
    assert_eq!(answer.status(), 101);
    let init = json!({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "ws-through-proxy", "version": "1"}}});
    ws.send(Message::text(init.to_string())).await.unwrap();
    let reply = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("an answer")
        .unwrap()
        .unwrap();
    let reply: Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(reply["id"], 1);
    assert!(reply["result"]["userAgent"].is_string(), "{reply}");
    // Closing the WebSocket ends the connection, and the proxy with it.
    ws.close(None).await.unwrap();
    drop(ws);
    let code = tokio::time::timeout(WAIT, proxy.wait())
        .await
        .expect("the proxy exits when the daemon closes")
        .unwrap();
    assert_eq!(code.code(), Some(0));
    server.kill9().await;
}
