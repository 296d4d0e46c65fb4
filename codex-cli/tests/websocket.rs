//! The WebSocket transport: `codex app-server --listen ws://127.0.0.1:PORT`
//! refuses clients without the capability token (and web pages), and
//! serves the protocol, one message per text frame, to those with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use codex_test_support::{sse, MockModelServer, TestHome};
use common::app_server::WAIT;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{http, Message};

const TOKEN: &str = "s3cret-capability";

struct WsServer {
    child: tokio::process::Child,
    port: u16,
}

impl WsServer {
    async fn start(home: &TestHome, token_file: &std::path::Path) -> Self {
        let token_file = token_file.to_str().unwrap();
        let (child, port) = common::app_server::start_ws_server(
            home,
            &[
                "--ws-auth",
                "capability-token",
                "--ws-token-file",
                token_file,
            ],
        )
        .await;
        Self { child, port }
    }

    async fn connect(
        &self,
        headers: &[(&str, &str)],
    ) -> Result<
        tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
        tokio_tungstenite::tungstenite::Error,
    > {
        let mut req = format!("ws://127.0.0.1:{}/", self.port)
            .into_client_request()
            .unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        tokio_tungstenite::client_async(req, tcp)
            .await
            .map(|(ws, _)| ws)
    }
}

fn status_of(e: tokio_tungstenite::tungstenite::Error) -> u16 {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("deadline")
            .expect("stream ended")
            .unwrap();
        if let Message::Text(t) = frame {
            let v: Value = serde_json::from_str(&t).unwrap();
            if pred(&v) {
                return v;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_needs_the_token_and_then_serves_the_protocol() {
    let mock = MockModelServer::start(vec![sse::message("over the socket")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let token_file = home.root().join("ws-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut server = WsServer::start(&home, &token_file).await;

    assert_eq!(status_of(server.connect(&[]).await.unwrap_err()), 401);
    let wrong = server
        .connect(&[("authorization", "Bearer not-the-token")])
        .await
        .unwrap_err();
    assert_eq!(status_of(wrong), 401);
    let bearer = format!("Bearer {TOKEN}");
    let from_web = server
        .connect(&[
            ("authorization", bearer.as_str()),
            ("origin", "https://example.com"),
        ])
        .await
        .unwrap_err();
    assert_eq!(status_of(from_web), 403);

    let mut ws = server
        .connect(&[("authorization", bearer.as_str())])
        .await
        .unwrap();
    let send = |v: Value| Message::text(v.to_string());
    ws.send(send(json!({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "ws", "version": "1"}}})))
        .await
        .unwrap();
    let init = next_json(&mut ws, |v| v["id"] == 1).await;
    assert_eq!(init["result"]["platformOs"], "linux");
    // A pretty-printed message is still one message.
    let pretty =
        serde_json::to_string_pretty(&json!({"id": 2, "method": "thread/start", "params": {}}))
            .unwrap();
    ws.send(Message::text(pretty)).await.unwrap();
    let started = next_json(&mut ws, |v| v["id"] == 2).await;
    let tid = started["result"]["thread"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ws.send(send(json!({"id": 3, "method": "turn/start", "params": {"threadId": tid, "input": [{"type": "text", "text": "hi"}]}})))
        .await
        .unwrap();
    let done = next_json(&mut ws, |v| v["method"] == "turn/completed").await;
    assert_eq!(
        done["params"]["turn"]["items"][0]["text"],
        "over the socket"
    );
    // Bad JSON is dropped; the connection lives on.
    ws.send(Message::text("{not json")).await.unwrap();
    ws.send(send(
        json!({"id": 4, "method": "thread/loaded/list", "params": {}}),
    ))
    .await
    .unwrap();
    let listed = next_json(&mut ws, |v| v["id"] == 4).await;
    assert_eq!(listed["result"]["data"], json!([tid]));
    server.child.start_kill().unwrap();
}

#[tokio::test]
async fn websocket_listen_refuses_unsafe_settings() {
    let home = TestHome::new();
    for (args, needle) in [
        (
            vec!["--listen", "ws://127.0.0.1:1"],
            "requires authentication",
        ),
        (
            vec![
                "--listen",
                "ws://0.0.0.0:1",
                "--ws-auth",
                "capability-token",
                "--ws-token-sha256",
                &"0".repeat(64),
            ],
            "non-loopback",
        ),
    ] {
        let out = tokio::process::Command::new(common::CODEX)
            .arg("app-server")
            .args(&args)
            .env("CODEX_HOME", home.codex_home())
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{err}");
    }
}
