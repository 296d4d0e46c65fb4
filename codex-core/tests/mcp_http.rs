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

// ---- OAuth login against a small authorization server ---------------------

mod oauth_login {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use codex_core::mcp::oauth::{
        load_token_with, logout, refresh, save_token, start_login, LoginOptions, McpOAuthStoreMode,
    };
    use codex_core::mcp::{McpServerConfig, McpTransportConfig};
    use sha2::{Digest, Sha256};
    use tokio_util::sync::CancellationToken;

    #[derive(Default)]
    struct AsState {
        /// The challenge of the authorize URL the "browser" followed.
        challenge: String,
        registered: Vec<Value>,
        token_forms: Vec<Vec<(String, String)>>,
        issued: u32,
    }

    struct AuthServer {
        addr: SocketAddr,
        state: Arc<Mutex<AsState>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for AuthServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl AuthServer {
        async fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let state = Arc::new(Mutex::new(AsState::default()));
            let st = state.clone();
            let task = tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let st = st.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| as_handle(st.clone(), addr, req));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
            AuthServer { addr, state, task }
        }

        fn mcp_url(&self) -> String {
            format!("http://{}/mcp", self.addr)
        }
    }

    fn form_pairs(b: &[u8]) -> Vec<(String, String)> {
        url::form_urlencoded::parse(b).into_owned().collect()
    }

    async fn as_handle(
        state: Arc<Mutex<AsState>>,
        addr: SocketAddr,
        req: Request<hyper::body::Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let base = format!("http://{addr}");
        let path = req.uri().path().to_string();
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = req.into_body().collect().await.unwrap().to_bytes();
        let json_reply = |v: Value| reply(200, "application/json", full(v.to_string()));
        let resp = match path.as_str() {
            "/mcp" => {
                let ok = auth.as_deref().is_some_and(|a| a.starts_with("Bearer at-"));
                if ok {
                    let body: Value = serde_json::from_slice(&bytes).unwrap();
                    json_reply(result(
                        &body["id"],
                        json!({"protocolVersion": "2025-06-18", "capabilities": {}}),
                    ))
                } else {
                    Response::builder()
                        .status(401)
                        .header(
                            "www-authenticate",
                            format!(
                                "Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\""
                            ),
                        )
                        .body(full(""))
                        .unwrap()
                }
            }
            "/.well-known/oauth-protected-resource/mcp" => json_reply(json!({
                "resource": format!("{base}/mcp"),
                "authorization_servers": [format!("{base}/as")],
                "scopes_supported": ["mcp.read", "mcp.write"],
            })),
            "/.well-known/oauth-authorization-server/as" => json_reply(json!({
                "issuer": format!("{base}/as"),
                "authorization_endpoint": format!("{base}/as/authorize"),
                "token_endpoint": format!("{base}/as/token"),
                "registration_endpoint": format!("{base}/as/register"),
                "code_challenge_methods_supported": ["S256"],
            })),
            "/as/register" => {
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                state.lock().unwrap().registered.push(v);
                reply(
                    201,
                    "application/json",
                    full(json!({"client_id": "dyn-client-1"}).to_string()),
                )
            }
            "/as/token" => {
                let form = form_pairs(&bytes);
                let get = |k: &str| {
                    form.iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let mut st = state.lock().unwrap();
                st.token_forms.push(form.clone());
                st.issued += 1;
                let n = st.issued;
                match get("grant_type").as_str() {
                    "authorization_code" => {
                        let verifier = get("code_verifier");
                        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
                        if get("code") != "the-code" || challenge != st.challenge {
                            reply(
                                400,
                                "application/json",
                                full(r#"{"error":"invalid_grant"}"#),
                            )
                        } else {
                            json_reply(
                                json!({"access_token": format!("at-{n}"), "token_type": "Bearer",
                                              "expires_in": 3600, "refresh_token": "rt-1",
                                              "scope": "mcp.read mcp.write"}),
                            )
                        }
                    }
                    "refresh_token" if get("refresh_token") == "rt-1" => json_reply(
                        json!({"access_token": format!("at-{n}"), "token_type": "Bearer", "expires_in": 3600}),
                    ),
                    _ => reply(
                        400,
                        "application/json",
                        full(r#"{"error":"invalid_grant"}"#),
                    ),
                }
            }
            _ => reply(404, "text/plain", full("not found")),
        };
        Ok(resp)
    }

    fn http_server(url: String) -> McpServerConfig {
        let mut cfg = McpServerConfig::stdio("unused", vec![]);
        cfg.transport = McpTransportConfig::StreamableHttp {
            url,
            bearer_token_env_var: None,
            http_headers: Default::default(),
            env_http_headers: Default::default(),
        };
        cfg
    }

    /// What a browser does with the authorize URL: the provider redirects
    /// to `redirect_uri` with a code and the state.
    async fn follow(auth_url: &str, state: &Arc<Mutex<AsState>>, code: &str) -> (u16, String) {
        let u = url::Url::parse(auth_url).unwrap();
        let q: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        let get = |k: &str| {
            q.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        state.lock().unwrap().challenge = get("code_challenge");
        let mut back = url::Url::parse(&get("redirect_uri")).unwrap();
        back.query_pairs_mut()
            .append_pair("code", code)
            .append_pair("state", &get("state"));
        let resp = reqwest::get(back).await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    #[tokio::test]
    async fn discovery_registration_pkce_and_the_token_works() {
        let server = AuthServer::start().await;
        let home = tempfile::tempdir().unwrap();
        let cfg = http_server(server.mcp_url());
        let pending = start_login("web", &cfg, &LoginOptions::default())
            .await
            .unwrap();
        let auth = url::Url::parse(&pending.authorization_url).unwrap();
        assert_eq!(auth.path(), "/as/authorize");
        let q: Vec<(String, String)> = auth.query_pairs().into_owned().collect();
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("client_id"), Some("dyn-client-1"));
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(get("scope"), Some("mcp.read mcp.write"));
        let redirect = get("redirect_uri").unwrap().to_string();
        assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");
        assert!(redirect.contains("/callback/"), "{redirect}");
        {
            let st = server.state.lock().unwrap();
            assert_eq!(st.registered.len(), 1);
            assert_eq!(st.registered[0]["client_name"], "Codex");
            assert_eq!(st.registered[0]["redirect_uris"], json!([redirect]));
        }
        let url = pending.authorization_url.clone();
        let st = server.state.clone();
        let browser = tokio::spawn(async move {
            // A stray request first: refused, the login goes on.
            let stray = reqwest::get(format!(
                "{}?code=x&state=wrong",
                url::Url::parse(&redirect).unwrap()
            ))
            .await
            .unwrap();
            assert_eq!(stray.status().as_u16(), 400);
            follow(&url, &st, "the-code").await
        });
        let token = tokio::time::timeout(WAIT, pending.finish(CancellationToken::new()))
            .await
            .unwrap()
            .unwrap();
        let (status, page) = browser.await.unwrap();
        assert_eq!(status, 200);
        assert!(page.contains("Authentication complete"), "{page}");
        assert_eq!(token.client_id, "dyn-client-1");
        assert_eq!(token.access_token(), "at-1");
        assert!(token.expires_at.is_some() && !token.needs_refresh());
        let form = server.state.lock().unwrap().token_forms[0].clone();
        assert!(form.contains(&("client_id".into(), "dyn-client-1".into())));
        assert!(form
            .iter()
            .any(|(k, v)| k == "redirect_uri" && v.contains("/callback/")));

        // Saved (file mode here: no keyring in tests), read back, used.
        save_token(home.path(), &token, McpOAuthStoreMode::File).unwrap();
        let stored = load_token_with(
            home.path(),
            "web",
            &server.mcp_url(),
            McpOAuthStoreMode::File,
        )
        .unwrap()
        .unwrap();
        assert_eq!(stored.access_token(), "at-1");
        let spec = HttpSpec::from_config(
            "web",
            &cfg.transport,
            Some(stored.access_token().to_string()),
        )
        .unwrap();
        let mut t = connect(&spec).unwrap();
        send(
            &t,
            json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}),
        )
        .await;
        assert_eq!(
            next(&mut t).await["result"]["protocolVersion"],
            "2025-06-18"
        );

        // Refresh keeps the refresh token the answer left out.
        let mut expired = stored.clone();
        expired.expires_at = Some(0);
        assert!(expired.needs_refresh());
        let fresh = refresh(&expired, &[]).await.unwrap();
        assert_eq!(fresh.access_token(), "at-2");
        assert_eq!(fresh.token_response.refresh_token.as_deref(), Some("rt-1"));
        assert!(!fresh.needs_refresh());

        // What a running thread gets: the store alone never hands out an
        // expired token; the broker's `fresh_token` refreshes and saves it.
        save_token(home.path(), &expired, McpOAuthStoreMode::File).unwrap();
        let store = codex_core::mcp::oauth::StoredTokens {
            codex_home: home.path().to_path_buf(),
            mode: McpOAuthStoreMode::File,
        };
        use codex_core::mcp::oauth::McpTokenSource as _;
        assert_eq!(store.token("web", &server.mcp_url()).await, None);
        let renewed =
            codex_core::mcp::oauth::fresh_token(home.path(), "web", &cfg, McpOAuthStoreMode::File)
                .await
                .unwrap();
        assert!(renewed.is_some_and(|t| t.starts_with("at-")));
        let saved = store.token("web", &server.mcp_url()).await;
        assert!(saved.is_some(), "the refreshed token was saved");

        assert!(logout(
            home.path(),
            "web",
            &server.mcp_url(),
            McpOAuthStoreMode::File
        )
        .unwrap());
        assert!(load_token_with(
            home.path(),
            "web",
            &server.mcp_url(),
            McpOAuthStoreMode::File
        )
        .unwrap()
        .is_none());
    }

    #[tokio::test]
    async fn a_configured_client_id_skips_registration_and_provider_errors_end_the_login() {
        let server = AuthServer::start().await;
        let mut cfg = http_server(server.mcp_url());
        cfg.oauth_client_id = Some("configured-client".into());
        cfg.scopes = vec!["only.this".into()];
        cfg.oauth_resource = Some("https://resource.example".into());
        let pending = start_login("web", &cfg, &LoginOptions::default())
            .await
            .unwrap();
        let auth = url::Url::parse(&pending.authorization_url).unwrap();
        let q: Vec<(String, String)> = auth.query_pairs().into_owned().collect();
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("client_id").as_deref(), Some("configured-client"));
        assert_eq!(get("scope").as_deref(), Some("only.this"));
        assert_eq!(get("resource").as_deref(), Some("https://resource.example"));
        assert!(server.state.lock().unwrap().registered.is_empty());
        let redirect = get("redirect_uri").unwrap();
        let state = get("state").unwrap();
        tokio::spawn(async move {
            let mut back = url::Url::parse(&redirect).unwrap();
            back.query_pairs_mut()
                .append_pair("error", "access_denied")
                .append_pair("error_description", "the user said no")
                .append_pair("state", &state);
            let _ = reqwest::get(back).await;
        });
        let err = tokio::time::timeout(WAIT, pending.finish(CancellationToken::new()))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            err.0.contains("access_denied") && err.0.contains("the user said no"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_stdio_server_or_one_without_oauth_is_refused() {
        let cfg = McpServerConfig::stdio("x", vec![]);
        let err = start_login("local", &cfg, &LoginOptions::default())
            .await
            .unwrap_err();
        assert!(
            err.0.contains("only supported for streamable HTTP"),
            "{err}"
        );
        let plain = Server::start(false).await;
        let cfg = http_server(plain.url("/mcp"));
        let err = start_login("plain", &cfg, &LoginOptions::default())
            .await
            .unwrap_err();
        assert!(err.0.contains("no OAuth metadata"), "{err}");
    }
}
