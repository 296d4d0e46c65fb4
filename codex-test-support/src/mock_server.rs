//! A scripted mock of the model server: real HTTP/1.1 on 127.0.0.1, SSE
//! bodies streamed step by step. Each `POST .../responses` or
//! `POST .../chat/completions` consumes the next scripted response; every
//! request is recorded.

use std::collections::VecDeque;
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
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One step of an SSE body.
#[derive(Debug, Clone)]
pub enum SseStep {
    /// `event: <type>\ndata: <json>\n\n`
    Event(Value),
    /// `data: <text>\n\n` (e.g. `[DONE]`)
    Data(String),
    /// Raw bytes, exactly as given.
    Raw(String),
    Delay(Duration),
    /// Send nothing more but keep the connection open until the client goes
    /// away or the duration passes.
    Stall(Duration),
    /// Close the connection abruptly.
    Disconnect,
}

#[derive(Debug, Clone)]
pub enum MockResponse {
    Sse {
        steps: Vec<SseStep>,
    },
    Http {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
}

impl MockResponse {
    pub fn sse(events: Vec<Value>) -> Self {
        MockResponse::Sse {
            steps: events.into_iter().map(SseStep::Event).collect(),
        }
    }

    pub fn http_error(status: u16, body: Value) -> Self {
        MockResponse::Http {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `input` items (Responses) or `messages` (chat).
    pub fn input(&self) -> Vec<Value> {
        self.body
            .get("input")
            .or_else(|| self.body.get("messages"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// The output of function call `call_id` in this request's input.
    pub fn function_output(&self, call_id: &str) -> Option<String> {
        self.input().into_iter().find_map(|i| {
            let matches = i.get("call_id").and_then(Value::as_str) == Some(call_id)
                && i.get("type").and_then(Value::as_str) == Some("function_call_output");
            let chat = i.get("tool_call_id").and_then(Value::as_str) == Some(call_id);
            (matches || chat).then(|| {
                i.get("output")
                    .or_else(|| i.get("content"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
        })
    }
}

/// Picks a response for a model request by its body, before the script is
/// consulted (e.g. a client's side requests such as title generation, which
/// arrive at no fixed position).
pub type Router = Arc<dyn Fn(&Value) -> Option<MockResponse> + Send + Sync>;

#[derive(Default)]
struct State {
    script: VecDeque<MockResponse>,
    router: Option<Router>,
    requests: Vec<RecordedRequest>,
    /// `GET .../models` answers wait this long.
    models_delay: Duration,
}

pub struct MockModelServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockModelServer {
    /// Starts a server with the given script.
    pub async fn start(script: Vec<MockResponse>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            router: None,
            requests: Vec::new(),
            models_delay: Duration::ZERO,
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                // SSE is many small writes: without NODELAY, Nagle plus the
                // client's delayed ACK add ~40 ms stalls.
                let _ = stream.set_nodelay(true);
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// Base URL for a provider config (`http://127.0.0.1:PORT/v1`).
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn push(&self, resp: MockResponse) {
        self.state.lock().unwrap().script.push_back(resp);
    }

    /// Answers the model requests `router` picks (by body) with its
    /// response instead of the next scripted one.
    pub fn set_router(
        &self,
        router: impl Fn(&Value) -> Option<MockResponse> + Send + Sync + 'static,
    ) {
        self.state.lock().unwrap().router = Some(Arc::new(router));
    }

    /// Makes `GET .../models` slow (to overlap concurrent askers).
    pub fn set_models_delay(&self, d: Duration) {
        self.state.lock().unwrap().models_delay = d;
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Model requests only (`POST` to responses/chat endpoints).
    pub fn model_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect()
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers = req
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
    let body = serde_json::from_slice(&body_bytes).unwrap_or(Value::Null);
    let is_model =
        method == "POST" && (path.ends_with("/responses") || path.ends_with("/chat/completions"));
    let next = {
        let mut st = state.lock().unwrap();
        let routed = match (&st.router, is_model) {
            (Some(router), true) => router(&body),
            _ => None,
        };
        st.requests.push(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            headers,
            body,
        });
        if let Some(routed) = routed {
            Some(routed)
        } else if is_model {
            Some(
                st.script
                    .pop_front()
                    .unwrap_or_else(|| crate::sse::message("mock: no scripted response left")),
            )
        } else {
            None
        }
    };
    let Some(next) = next else {
        if path.ends_with("/models") {
            let delay = state.lock().unwrap().models_delay;
            tokio::time::sleep(delay).await;
        }
        let status = if path.ends_with("/models") {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        let body = if status == StatusCode::OK {
            r#"{"object":"list","data":[{"id":"mock-model","object":"model"},{"id":"mock-model-mini","object":"model"}]}"#
        } else {
            r#"{"error":{"message":"not found"}}"#
        };
        return Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)).boxed())
            .unwrap());
    };
    match next {
        MockResponse::Http {
            status,
            headers,
            body,
        } => {
            let mut b = Response::builder().status(status);
            for (k, v) in headers {
                b = b.header(k, v);
            }
            Ok(b.body(Full::new(Bytes::from(body)).boxed()).unwrap())
        }
        MockResponse::Sse { steps } => {
            let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
            tokio::spawn(async move {
                for step in steps {
                    let chunk = match step {
                        SseStep::Event(v) => {
                            let kind = v.get("type").and_then(Value::as_str).unwrap_or("message");
                            format!("event: {kind}\ndata: {v}\n\n")
                        }
                        SseStep::Data(d) => format!("data: {d}\n\n"),
                        SseStep::Raw(r) => r,
                        SseStep::Delay(d) => {
                            tokio::time::sleep(d).await;
                            continue;
                        }
                        SseStep::Stall(max) => {
                            let _ = tokio::time::timeout(max, tx.closed()).await;
                            return;
                        }
                        SseStep::Disconnect => return,
                    };
                    if tx.send(Ok(Frame::data(Bytes::from(chunk)))).await.is_err() {
                        return;
                    }
                }
            });
            let stream = futures_stream(rx);
            Ok(Response::builder()
                .status(200)
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .unwrap())
        }
    }
}

/// Adapts a receiver into a `Stream` without extra crates.
fn futures_stream<T>(rx: mpsc::Receiver<T>) -> ReceiverStream<T> {
    ReceiverStream(rx)
}

struct ReceiverStream<T>(mpsc::Receiver<T>);

impl<T> futures_core_stream::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

mod futures_core_stream {
    pub use futures_util::Stream;
}
