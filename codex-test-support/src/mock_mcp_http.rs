//! An in-process streamable HTTP MCP server (MCP 2025-06-18) on 127.0.0.1:
//! `POST /mcp` carries one JSON-RPC message, answered as JSON or (option
//! `sse`) as an event stream; `initialize` opens a session that later
//! requests must name in `Mcp-Session-Id`. Every request is recorded.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::mcp::catalog;

/// How the server behaves.
#[derive(Debug, Clone, Default)]
pub struct MockHttpMcpOptions {
    /// Requests without `Authorization: Bearer <it>` get `401`.
    pub bearer_token: Option<String>,
    /// `tools/list` is never answered.
    pub hang_tools_list: bool,
    /// Answer requests with `text/event-stream` instead of JSON.
    pub sse: bool,
}

/// A request the mock received (including refused ones).
#[derive(Debug, Clone)]
pub struct RecordedMcpRequest {
    /// The HTTP method (`POST`, `GET`, `DELETE`).
    pub method: String,
    /// Header names are lowercase.
    pub headers: HashMap<String, String>,
    /// The JSON body, `Null` when empty or not JSON.
    pub body: Value,
}

impl RecordedMcpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The JSON-RPC method of the body, if any.
    pub fn rpc_method(&self) -> Option<&str> {
        self.body.get("method").and_then(Value::as_str)
    }
}

struct State {
    opts: MockHttpMcpOptions,
    sessions: HashSet<String>,
    sessions_opened: u64,
    calls: u64,
    requests: Vec<RecordedMcpRequest>,
}

pub struct MockHttpMcpServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockHttpMcpServer {
    fn drop(&mut self) {
        // The connections live in the accept task's JoinSet: they end too.
        self.task.abort();
    }
}

impl MockHttpMcpServer {
    pub async fn start(options: MockHttpMcpOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock mcp");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State {
            opts: options,
            sessions: HashSet::new(),
            sessions_opened: 0,
            calls: 0,
            requests: Vec::new(),
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                // Reap finished connections so the set stays small.
                while conns.try_join_next().is_some() {}
                let _ = stream.set_nodelay(true);
                let st = st.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// The endpoint for a `url = ...` config (`http://127.0.0.1:PORT/mcp`).
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn requests(&self) -> Vec<RecordedMcpRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Sessions opened by `initialize` and not yet ended by `DELETE`.
    pub fn live_sessions(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .sessions
            .iter()
            .cloned()
            .collect()
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn plain(status: StatusCode, headers: &[(&str, &str)], body: String) -> Response<Body> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body)).boxed()).unwrap()
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let body_bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body_bytes).unwrap_or(Value::Null);
    let opts = {
        let mut st = state.lock().unwrap();
        st.requests.push(RecordedMcpRequest {
            method: method.clone(),
            headers: headers.clone(),
            body: body.clone(),
        });
        st.opts.clone()
    };
    if let Some(token) = &opts.bearer_token {
        if headers.get("authorization") != Some(&format!("Bearer {token}")) {
            return Ok(plain(
                StatusCode::UNAUTHORIZED,
                &[("www-authenticate", "Bearer")],
                String::new(),
            ));
        }
    }
    if path != "/mcp" {
        return Ok(plain(StatusCode::NOT_FOUND, &[], String::new()));
    }
    let session = headers.get("mcp-session-id").cloned();
    let known = |s: &Option<String>| {
        s.as_ref()
            .is_some_and(|s| state.lock().unwrap().sessions.contains(s))
    };
    match method.as_str() {
        "POST" => {}
        "DELETE" if session.is_none() => {
            return Ok(plain(StatusCode::BAD_REQUEST, &[], String::new()))
        }
        "DELETE" if !known(&session) => {
            return Ok(plain(StatusCode::NOT_FOUND, &[], String::new()))
        }
        "DELETE" => {
            if let Some(s) = &session {
                state.lock().unwrap().sessions.remove(s);
            }
            return Ok(plain(StatusCode::OK, &[], String::new()));
        }
        _ => {
            return Ok(plain(
                StatusCode::METHOD_NOT_ALLOWED,
                &[("allow", "POST, DELETE")],
                String::new(),
            ))
        }
    }
    let rpc_method = body.get("method").and_then(Value::as_str).unwrap_or("");
    let id = body.get("id").cloned();
    let mut new_session = None;
    if rpc_method == "initialize" && id.is_some() {
        let mut st = state.lock().unwrap();
        st.sessions_opened += 1;
        let s = format!("mock-session-{}", st.sessions_opened);
        st.sessions.insert(s.clone());
        new_session = Some(s);
    } else if session.is_none() {
        return Ok(plain(
            StatusCode::BAD_REQUEST,
            &[],
            "missing Mcp-Session-Id".into(),
        ));
    } else if !known(&session) {
        // The spec's answer to an ended session: the client re-initializes.
        return Ok(plain(
            StatusCode::NOT_FOUND,
            &[],
            "unknown Mcp-Session-Id".into(),
        ));
    }
    let Some(id) = id.filter(|_| !rpc_method.is_empty()) else {
        // A notification or a response.
        return Ok(plain(StatusCode::ACCEPTED, &[], String::new()));
    };
    let params = body.get("params").cloned().unwrap_or(Value::Null);
    let Some((notes, outcome)) = serve(&state, &opts, rpc_method, &params).await else {
        return std::future::pending().await;
    };
    let reply = match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
    };
    let mut b = Response::builder().status(StatusCode::OK);
    if let Some(s) = &new_session {
        b = b.header("mcp-session-id", s);
    }
    if !opts.sse {
        return Ok(b
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(reply.to_string())).boxed())
            .unwrap());
    }
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let last = notes.len();
        for (i, msg) in notes.into_iter().chain([reply]).enumerate() {
            if i > 0 && i <= last {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let event = format!("event: message\ndata: {msg}\n\n");
            if tx.send(Bytes::from(event)).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Ok(b.header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap())
}

/// The notifications to send first (SSE only) and the outcome; `None`
/// never answers.
async fn serve(
    state: &Arc<Mutex<State>>,
    opts: &MockHttpMcpOptions,
    method: &str,
    params: &Value,
) -> Option<(Vec<Value>, Result<Value, Value>)> {
    let outcome = match method {
        "initialize" => Ok(catalog::initialize_result(params, "mock-http")),
        "ping" => Ok(json!({})),
        "tools/list" if opts.hang_tools_list => return None,
        "tools/list" => {
            let tools = catalog::HTTP_TOOLS
                .iter()
                .map(|n| catalog::tool(n))
                .collect();
            Ok(catalog::page("tools", tools, params, 0))
        }
        "tools/call" => return call_tool(state, params).await,
        "resources/list" => Ok(catalog::page("resources", catalog::resources(), params, 0)),
        "resources/templates/list" => Ok(catalog::page(
            "resourceTemplates",
            catalog::resource_templates(),
            params,
            0,
        )),
        "resources/read" => {
            catalog::read_resource(params.get("uri").and_then(Value::as_str).unwrap_or(""))
        }
        _ => Err(json!({"code": -32601, "message": "Method not found"})),
    };
    Some((Vec::new(), outcome))
}

async fn call_tool(
    state: &Arc<Mutex<State>>,
    params: &Value,
) -> Option<(Vec<Value>, Result<Value, Value>)> {
    let name = params.get("name").and_then(Value::as_str).unwrap_or("");
    let args = params.get("arguments").cloned().unwrap_or(json!({}));
    let n = {
        let mut st = state.lock().unwrap();
        st.calls += 1;
        st.calls
    };
    let int_arg = |k: &str| args.get(k).and_then(Value::as_u64).unwrap_or(0);
    let result = match name {
        "echo" | "read_only_echo" => catalog::echo_result(&args),
        "slow" => {
            let ms = int_arg("ms");
            tokio::time::sleep(Duration::from_millis(ms)).await;
            catalog::text_result(&format!("slept {ms}"))
        }
        "hang" => return None,
        "counter" => catalog::text_result(&format!("{} {n}", std::process::id())),
        "progress" => {
            let steps = int_arg("steps");
            let notes = match params.pointer("/_meta/progressToken") {
                Some(token) => (1..=steps)
                    .map(|i| {
                        json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {
                            "progressToken": token, "progress": i, "total": steps,
                            "message": format!("step {i}"),
                        }})
                    })
                    .collect(),
                None => Vec::new(),
            };
            return Some((notes, Ok(catalog::text_result("done"))));
        }
        _ => {
            return Some((
                Vec::new(),
                Err(json!({"code": -32602, "message": format!("Unknown tool: {name}")})),
            ))
        }
    };
    Some((Vec::new(), Ok(result)))
}
