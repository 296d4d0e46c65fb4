//! The thread is built from services: a replaced tool service and a wrapped
//! model service are the ones used; a tool that hangs meets its deadline;
//! turns beyond the bounded queue are refused at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use codex_core::client::{ModelError, ModelEvent, ModelRequest, ModelStream};
use codex_core::config::{Config, ConfigOverrides, LoadOptions};
use codex_core::protocol::{Event, ResponseItem};
use codex_core::tools::{ToolInvocation, ToolOutput, ToolService, ToolSet, ToolSpec};
use codex_core::{Thread, TurnRejected, TurnRequest, TurnStatus};
use codex_test_support::{sse, MockModelServer, MockResponse, TestHome};
use futures_util::future::BoxFuture;
use serde_json::json;
use tower::{BoxError, Layer, Service, ServiceExt};

fn config(home: &TestHome) -> Config {
    Config::load(LoadOptions {
        codex_home: Some(home.codex_home()),
        cli_overrides: vec![],
        overrides: ConfigOverrides {
            cwd: Some(home.workspace()),
            ..Default::default()
        },
    })
    .unwrap()
}

/// A layer that counts the requests going through it.
#[derive(Clone, Default)]
struct CountLayer(Arc<AtomicUsize>);

#[derive(Clone)]
struct Count<S> {
    inner: S,
    n: Arc<AtomicUsize>,
}

impl<S> Layer<S> for CountLayer {
    type Service = Count<S>;
    fn layer(&self, inner: S) -> Count<S> {
        Count {
            inner,
            n: self.0.clone(),
        }
    }
}

impl<S: Service<R>, R> Service<R> for Count<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }
    fn call(&mut self, req: R) -> S::Future {
        self.n.fetch_add(1, Ordering::SeqCst);
        self.inner.call(req)
    }
}

/// A tool service that answers `lookup_weather` itself and hands every
/// other call to the built-in tools.
#[derive(Clone)]
struct Weather {
    builtin: ToolService,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Service<ToolInvocation> for Weather {
    type Response = ToolOutput;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<ToolOutput, BoxError>>;
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, inv: ToolInvocation) -> Self::Future {
        if inv.call.name != "lookup_weather" {
            return Box::pin(self.builtin.clone().oneshot(inv));
        }
        self.asked.lock().unwrap().push(inv.call.arguments.clone());
        Box::pin(async { Ok(ToolOutput::ok("Sunny, 21 °C")) })
    }
}

fn weather_spec() -> ToolSpec {
    ToolSpec::function(
        "lookup_weather",
        "Current weather in a city.",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_tool_service_and_a_wrapped_model_service_are_the_ones_used() {
    let mock = MockModelServer::start(vec![
        MockResponse::sse(sse::function_call_events(
            "r1",
            "call_w",
            "lookup_weather",
            json!({"city": "Paris"}),
        )),
        MockResponse::sse(sse::function_call_events(
            "r2",
            "call_p",
            "update_plan",
            json!({"plan": [{"step": "report", "status": "in_progress"}]}),
        )),
        sse::message("It is sunny in Paris."),
    ])
    .await;
    let home = TestHome::new();
    home.write_config_inline_key(&mock.url(), "");

    let builtin = ToolSet::builtin();
    let mut specs = builtin.specs().to_vec();
    specs.push(weather_spec());
    let asked = Arc::new(Mutex::new(Vec::new()));
    let tools = ToolSet::new(
        specs,
        Weather {
            builtin: builtin.service(),
            asked: asked.clone(),
        },
    );
    let model_calls = CountLayer::default();
    let tool_calls = CountLayer::default();
    let (thread, _rx) = Thread::builder(config(&home))
        .tools(tools)
        .model_layer(model_calls.clone())
        .tool_layer(tool_calls.clone())
        .ephemeral(true)
        .start()
        .unwrap();
    let outcome = thread
        .run_turn(TurnRequest::text("weather in Paris?"))
        .await
        .unwrap();
    assert_eq!(outcome.status, TurnStatus::Completed);
    assert_eq!(
        outcome.last_agent_message.as_deref(),
        Some("It is sunny in Paris.")
    );

    // The custom service ran, with the model's arguments.
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&asked[0]).unwrap(),
        json!({"city": "Paris"})
    );
    let requests = mock.model_requests();
    assert_eq!(requests.len(), 3);
    // Its output reached the next model request; the call it delegated ran
    // in the built-in tools.
    assert_eq!(
        requests[1].function_output("call_w").as_deref(),
        Some("Sunny, 21 °C")
    );
    assert_eq!(
        requests[2].function_output("call_p").as_deref(),
        Some("Plan updated")
    );
    // Its definition was offered to the model, beside the built-in ones.
    for r in &requests {
        let names: Vec<&str> = r.body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert!(names.contains(&"lookup_weather"), "{names:?}");
        assert!(names.contains(&"exec_command"), "{names:?}");
    }
    // The model layer saw every request, the tool layer every call.
    assert_eq!(model_calls.0.load(Ordering::SeqCst), 3);
    assert_eq!(tool_calls.0.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_tool_that_never_answers_meets_its_deadline() {
    let mock = MockModelServer::start(vec![
        MockResponse::sse(sse::function_call_events("r1", "call_h", "hang", json!({}))),
        sse::message("gave up"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config_inline_key(&mock.url(), "");
    let hang = tower::service_fn(|_inv: ToolInvocation| async {
        std::future::pending::<()>().await;
        Ok::<_, std::convert::Infallible>(ToolOutput::ok("never"))
    });
    let (thread, _rx) = Thread::builder(config(&home))
        .tool(
            ToolSpec::function("hang", "Never answers.", json!({"type": "object"})),
            hang,
        )
        .tool_timeout(Duration::from_millis(200))
        .ephemeral(true)
        .start()
        .unwrap();
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        thread.run_turn(TurnRequest::text("go")),
    )
    .await
    .expect("the tool's deadline ends the wait")
    .unwrap();
    assert_eq!(outcome.status, TurnStatus::Completed);
    let out = mock.model_requests()[1].function_output("call_h").unwrap();
    assert_eq!(out, "tool `hang` did not answer within 0.2s");
}

/// An in-process model whose every answer waits for the gate.
fn gated_model(
    gate: Arc<tokio::sync::Semaphore>,
    seen: Arc<AtomicUsize>,
) -> impl Service<ModelRequest, Response = ModelStream, Error = ModelError, Future: Send> + Clone {
    tower::service_fn(move |req: ModelRequest| {
        let gate = gate.clone();
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            gate.acquire()
                .await
                .map_err(|e| ModelError::Stream(e.to_string()))?
                .forget();
            Ok(ModelStream::from_events(vec![
                Ok(ModelEvent::OutputItemDone(ResponseItem::assistant_text(
                    Some(format!("msg_{}", req.turn_id)),
                    "done",
                ))),
                Ok(ModelEvent::Completed {
                    response_id: "r".into(),
                    usage: None,
                }),
            ]))
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn turns_beyond_the_bounded_queue_are_refused_at_once() {
    let home = TestHome::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let seen = Arc::new(AtomicUsize::new(0));
    let (thread, mut rx) = Thread::builder(config(&home))
        .model_service(gated_model(gate.clone(), seen.clone()))
        .ephemeral(true)
        .start()
        .unwrap();

    // One turn running (its model call is waiting)...
    let running = tokio::spawn({
        let t = thread.clone();
        async move { t.run_turn(TurnRequest::text("first")).await }
    });
    tokio::time::timeout(Duration::from_secs(10), async {
        while seen.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();

    // ...then a crowd: one place in the queue, the rest refused.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..40 {
        let t = thread.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let r = t.run_turn(TurnRequest::text(format!("crowd {i}"))).await;
            let _ = done.send(r);
        });
    }
    let mut refused = 0;
    while refused < 39 {
        let r = tokio::time::timeout(Duration::from_secs(5), done_rx.recv())
            .await
            .expect("refusals come at once, with the running turn still waiting")
            .unwrap();
        assert_eq!(r, Err(TurnRejected::Overloaded { waiting: 1 }));
        refused += 1;
    }
    // The queue is full: readiness says so too.
    let mut svc = thread.turn_service();
    assert_eq!(
        svc.ready().await.err(),
        Some(TurnRejected::Overloaded { waiting: 1 })
    );
    assert!(done_rx.try_recv().is_err(), "the queued turn still waits");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "the queued turn has not started"
    );

    // The running turn completes, then the queued one.
    gate.add_permits(2);
    let first = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.status, TurnStatus::Completed);
    let queued = tokio::time::timeout(Duration::from_secs(10), done_rx.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(queued.status, TurnStatus::Completed);

    // Refused turns left no trace; places are free again.
    let mut started = 0;
    while let Ok(ev) = rx.try_recv() {
        if matches!(ev, Event::TurnStarted { .. }) {
            started += 1;
        }
    }
    assert_eq!(started, 2);
    assert_eq!(
        thread
            .history()
            .await
            .iter()
            .filter(|i| i.message_text().as_deref() == Some("done"))
            .count(),
        2
    );
    gate.add_permits(1);
    let again = thread.run_turn(TurnRequest::text("later")).await.unwrap();
    assert_eq!(again.status, TurnStatus::Completed);
}
