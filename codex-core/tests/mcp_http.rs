//! The streamable HTTP MCP transport against a small streamable HTTP server
//! written here (real HTTP/1.1 on 127.0.0.1): initialize with a session id,
//! tools/list, tools/call answered as JSON and as SSE, a hung call that does
//! not hold up another, 401, an oversized answer, the GET stream, DELETE.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use codex_core::mcp::http::{connect, HttpSpec, AUTH_REQUIRED_CODE};
use codex_core::mcp::transport::{Transport, TransportEvent};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(30);
const SESSION: &str = "sess-42";

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    session: Option<String>,
    version: Option<String>,
    authorization: Option<String>,
    body: Value,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
}

struct Server {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// With `get_stream`, `GET` answers an SSE stream carrying one
    /// `notifications/tools/list_changed`; without, `405`.
    async fn start(get_stream: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), get_stream, req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Server { addr, state, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).boxed()
}

fn reply(status: u16, content_type: &str, body: Body) -> Response<Body> {
    let mut b = Response::builder().status(status);
    if !content_type.is_empty() {
        b = b.header("content-type", content_type);
    }
    b.body(body).unwrap()
}

/// An SSE body of the given events, each sent after `gap`; then, with
/// `linger`, the stream stays open.
fn sse(events: Vec<String>, gap: Duration, linger: bool) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(8);
    tokio::spawn(async move {
        for e in events {
            tokio::time::sleep(gap).await;
            if tx.send(Ok(Frame::data(Bytes::from(e)))).await.is_err() {
                return;
            }
        }
        if linger {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
    StreamBody::new(tokio_stream(rx)).boxed()
}

fn tokio_stream<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn text_result(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": false})
}

async fn handle(
    state: Arc<Mutex<State>>,
    get_stream: bool,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let session = header("mcp-session-id");
    let version = header("mcp-protocol-version");
    let authorization = header("authorization");
    let accept = header("accept").unwrap_or_default();
    let content_type = header("content-type").unwrap_or_default();
    let bytes = req.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    state.lock().unwrap().seen.push(Seen {
        method: method.clone(),
        path: path.clone(),
        session: session.clone(),
        version,
        authorization,
        body: body.clone(),
    });
    if path == "/auth/mcp" {
        let r = Response::builder()
            .status(401)
            .header(
                "www-authenticate",
                "Bearer resource_metadata=\"http://x/.well-known/oauth-protected-resource\"",
            )
            .body(full("no"))
            .unwrap();
        return Ok(r);
    }
    if path == "/broken/mcp" {
        return Ok(reply(500, "text/plain", full("database on fire\nand more")));
    }
    match method.as_str() {
        "GET" if get_stream => {
            let note = json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"});
            return Ok(reply(
                200,
                "text/event-stream",
                sse(
                    vec![format!("data: {note}\n\n")],
                    Duration::from_millis(10),
                    true,
                ),
            ));
        }
        "GET" => return Ok(reply(405, "", full(""))),
        "DELETE" => return Ok(reply(200, "", full(""))),
        _ => {}
    }
    assert!(accept.contains("application/json") && accept.contains("text/event-stream"));
    assert!(content_type.starts_with("application/json"));
    let id = body.get("id").cloned().unwrap_or(Value::Null);
    let Some(m) = body.get("method").and_then(Value::as_str) else {
        // A response to a server request.
        return Ok(reply(202, "", full("")));
    };
    if m != "initialize" && session.as_deref() != Some(SESSION) {
        return Ok(reply(400, "text/plain", full("missing session")));
    }
    let json_reply = |v: Value| reply(200, "application/json", full(v.to_string()));
    let resp = match m {
        "initialize" => {
            let mut r = json_reply(result(
                &id,
                json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                       "serverInfo": {"name": "test", "version": "1"}}),
            ));
            r.headers_mut()
                .insert("mcp-session-id", SESSION.parse().unwrap());
            r
        }
        _ if id.is_null() => reply(202, "", full("")),
        "tools/list" => json_reply(result(
            &id,
            json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}),
        )),
        "tools/call" => {
            let tool = body["params"]["name"].as_str().unwrap_or("");
            let text = body["params"]["arguments"]["text"]
                .as_str()
                .unwrap_or("")
                .to_string();
            match tool {
                "echo_json" => json_reply(result(&id, text_result(&text))),
                "echo_batch" => reply(
                    200,
                    "application/json",
                    full(
                        json!([
                            {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}},
                            result(&id, text_result(&text))
                        ])
                        .to_string(),
                    ),
                ),
                "echo_sse" => {
                    let progress = json!({"jsonrpc":"2.0","method":"notifications/progress",
                                          "params":{"progressToken":1,"progress":0.5}});
                    let ask = json!({"jsonrpc":"2.0","id":"srv-1","method":"roots/list"});
                    let done = result(&id, text_result(&text));
                    reply(
                        200,
                        "text/event-stream",
                        sse(
                            vec![
                                "id: 0\ndata:\n\n".to_string(),
                                format!("event: message\ndata: {progress}\n\n"),
                                format!("data: {ask}\n\n"),
                                format!("data: {done}\n\n"),
                            ],
                            Duration::from_millis(20),
                            true,
                        ),
                    )
                }
                "hang" => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    json_reply(result(&id, text_result("late")))
                }
                "big" => {
                    let big = "x".repeat(17 * 1024 * 1024);
                    json_reply(result(&id, text_result(&big)))
                }
                "none" => reply(200, "text/event-stream", sse(vec![], Duration::ZERO, false)),
                _ => json_reply(json!({"jsonrpc":"2.0","id":id,"error":{"code":-32602,"message":"no such tool"}})),
            }
        }
        _ => json_reply(
            json!({"jsonrpc":"2.0","id":id,"error":{"code":-32601,"message":"no such method"}}),
        ),
    };
    Ok(resp)
}

fn spec(url: String) -> HttpSpec {
    HttpSpec {
        server: "web".into(),
        url,
        headers: vec![
            ("Authorization".into(), "Bearer t0k".into()),
            ("X-Extra".into(), "1".into()),
        ],
        request_timeout: Duration::from_secs(60),
    }
}

async fn send(t: &Transport, v: Value) {
    t.outgoing.send(v).await.unwrap();
}

/// The next message (problems are failures here).
async fn next(t: &mut Transport) -> Value {
    match tokio::time::timeout(WAIT, t.incoming.recv()).await {
        Ok(Some(TransportEvent::Message(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn initialize(t: &mut Transport) {
    send(
        t,
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},
            "clientInfo":{"name":"codex-mcp-client","version":"0"}}}),
    )
    .await;
    let r = next(t).await;
    assert_eq!(r["id"], 0);
    assert_eq!(r["result"]["protocolVersion"], "2025-06-18");
    send(
        t,
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
}

fn call(id: i64, tool: &str, text: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
           "params":{"name":tool,"arguments":{"text":text}}})
}

#[tokio::test]
async fn session_json_sse_and_delete() {
    let server = Server::start(false).await;
    let mut t = connect(&spec(server.url("/mcp"))).unwrap();
    initialize(&mut t).await;

    send(&t, json!({"jsonrpc":"2.0","id":1,"method":"tools/list"})).await;
    let r = next(&mut t).await;
    assert_eq!(r["id"], 1);
    assert_eq!(r["result"]["tools"][0]["name"], "echo");

    send(&t, call(2, "echo_json", "plain")).await;
    let r = next(&mut t).await;
    assert_eq!(r["id"], 2);
    assert_eq!(r["result"]["content"][0]["text"], "plain");

    send(&t, call(3, "echo_batch", "batched")).await;
    assert_eq!(next(&mut t).await["method"], "notifications/message");
    assert_eq!(
        next(&mut t).await["result"]["content"][0]["text"],
        "batched"
    );

    // SSE: the notification and the server's request come before the answer.
    send(&t, call(4, "echo_sse", "streamed")).await;
    assert_eq!(next(&mut t).await["method"], "notifications/progress");
    let ask = next(&mut t).await;
    assert_eq!(ask["method"], "roots/list");
    // Our answer to the server's request is accepted with 202.
    send(
        &t,
        json!({"jsonrpc":"2.0","id":ask["id"],"result":{"roots":[]}}),
    )
    .await;
    let r = next(&mut t).await;
    assert_eq!(r["id"], 4);
    assert_eq!(r["result"]["content"][0]["text"], "streamed");

    // A stream that ends without an answer fails that request.
    send(&t, call(5, "none", "")).await;
    let r = next(&mut t).await;
    assert_eq!(r["id"], 5);
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("without responding"));

    t.guard.shutdown().await;
    // Closed is last.
    let mut closed = false;
    while let Ok(Some(ev)) = tokio::time::timeout(WAIT, t.incoming.recv()).await {
        assert!(!closed, "an event after Closed: {ev:?}");
        closed = matches!(ev, TransportEvent::Closed(_));
    }
    assert!(closed);

    let seen = server.seen();
    let posts: Vec<&Seen> = seen.iter().filter(|s| s.method == "POST").collect();
    assert_eq!(posts[0].body["method"], "initialize");
    assert_eq!(posts[0].session, None);
    assert_eq!(posts[0].version, None);
    for p in &posts[1..] {
        assert_eq!(p.session.as_deref(), Some(SESSION), "{p:?}");
        assert_eq!(p.version.as_deref(), Some("2025-06-18"), "{p:?}");
    }
    assert!(posts
        .iter()
        .all(|p| p.authorization.as_deref() == Some("Bearer t0k")));
    assert_eq!(posts[1].body["method"], "notifications/initialized");
    // The GET stream was tried (405: done without) and DELETE ended the session.
    assert!(seen.iter().any(|s| s.method == "GET" && s.path == "/mcp"));
    let delete = seen.iter().find(|s| s.method == "DELETE").expect("DELETE");
    assert_eq!(delete.session.as_deref(), Some(SESSION));
}

#[tokio::test]
async fn a_hung_call_does_not_block_the_next() {
    let server = Server::start(false).await;
    let mut t = connect(&spec(server.url("/mcp"))).unwrap();
    initialize(&mut t).await;
    send(&t, call(10, "hang", "")).await;
    send(&t, call(11, "echo_json", "still here")).await;
    let r = next(&mut t).await;
    assert_eq!(r["id"], 11);
    assert_eq!(r["result"]["content"][0]["text"], "still here");
    // Shutting down does not wait for the hung call.
    tokio::time::timeout(WAIT, t.guard.shutdown())
        .await
        .unwrap();
}

#[tokio::test]
async fn unauthorized_fails_the_request_naming_login() {
    let server = Server::start(false).await;
    let mut t = connect(&spec(server.url("/auth/mcp"))).unwrap();
    send(
        &t,
        json!({"jsonrpc":"2.0","id":"init","method":"initialize","params":{}}),
    )
    .await;
    let r = next(&mut t).await;
    assert_eq!(r["id"], "init");
    assert_eq!(r["error"]["code"], AUTH_REQUIRED_CODE);
    assert_eq!(
        r["error"]["message"],
        "HTTP 401: authentication required (run `codex mcp login web`)"
    );
    assert_eq!(r["error"]["data"]["httpStatus"], 401);
    assert!(r["error"]["data"]["wwwAuthenticate"]
        .as_str()
        .unwrap()
        .contains("resource_metadata"));
    // A notification refused is a problem, not a message.
    send(
        &t,
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    match tokio::time::timeout(WAIT, t.incoming.recv()).await {
        Ok(Some(TransportEvent::Problem(p))) => assert!(p.contains("401"), "{p}"),
        other => panic!("expected a problem, got {other:?}"),
    }
}

#[tokio::test]
async fn server_errors_and_unreachable_servers_fail_the_request() {
    let server = Server::start(false).await;
    let mut t = connect(&spec(server.url("/broken/mcp"))).unwrap();
    send(
        &t,
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}),
    )
    .await;
    let r = next(&mut t).await;
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("HTTP 500: database on fire"), "{msg}");
    assert!(!msg.contains('\n'));

    // Nothing listens on a port we just freed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut t = connect(&spec(format!("http://127.0.0.1:{port}/mcp"))).unwrap();
    send(
        &t,
        json!({"jsonrpc":"2.0","id":7,"method":"initialize","params":{}}),
    )
    .await;
    let r = next(&mut t).await;
    assert_eq!(r["id"], 7);
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("cannot reach MCP server `web`"), "{msg}");
}

#[tokio::test]
async fn an_oversized_answer_fails_that_request_only() {
    let server = Server::start(false).await;
    let mut t = connect(&spec(server.url("/mcp"))).unwrap();
    initialize(&mut t).await;
    send(&t, call(1, "big", "")).await;
    let r = next(&mut t).await;
    assert_eq!(r["id"], 1);
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("larger than 16 MiB"));
    send(&t, call(2, "echo_json", "after")).await;
    assert_eq!(next(&mut t).await["result"]["content"][0]["text"], "after");
}

#[tokio::test]
async fn the_get_stream_delivers_server_messages() {
    let server = Server::start(true).await;
    let mut t = connect(&spec(server.url("/mcp"))).unwrap();
    initialize(&mut t).await;
    let m = next(&mut t).await;
    assert_eq!(m["method"], "notifications/tools/list_changed");
    let get = server
        .seen()
        .into_iter()
        .find(|s| s.method == "GET")
        .unwrap();
    assert_eq!(get.session.as_deref(), Some(SESSION));
    t.guard.shutdown().await;
}

#[test]
fn invalid_urls_and_headers_are_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert!(connect(&spec("not a url".into())).is_err());
        assert!(connect(&spec("ftp://x/".into())).is_err());
        let mut s = spec("http://127.0.0.1:1/".into());
        s.headers.push(("bad header".into(), "v".into()));
        assert!(connect(&s).unwrap_err().0.contains("bad header"));
    });
}
