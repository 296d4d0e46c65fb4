//! Model stream faults: a stalled stream hits the idle timeout and is
//! retried; retries run out into a clear failure; HTTP 5xx is retried; 429
//! honours retry-after.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use codex_test_support::{sse, MockModelServer, MockResponse, SseStep, TestHome};
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn stalled_stream_times_out_and_retry_succeeds() {
    let mock = MockModelServer::start(vec![
        sse::stall_after_partial("This answer will never "),
        sse::message("Recovered after a stall."),
    ])
    .await;
    let home = TestHome::new();
    // stream_idle_timeout_ms = 2000 and stream_max_retries = 1 (TestHome defaults)
    home.write_config(&mock.url(), "");
    let run = exec_json(&home, "go").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let events = run.events();
    let err = events
        .iter()
        .find(|e| e["type"] == "error")
        .expect("reconnect notice");
    let msg = err["message"].as_str().unwrap();
    assert!(msg.starts_with("Reconnecting... 1/1"), "{msg}");
    assert!(msg.contains("idle timeout"), "{msg}");
    assert_eq!(
        run.completed_items("agent_message")[0]["text"],
        "Recovered after a stall."
    );
    assert_eq!(mock.model_requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn stalls_beyond_the_retry_budget_fail_the_turn() {
    let mock = MockModelServer::start(vec![
        sse::stall_after_partial("one "),
        sse::stall_after_partial("two "),
        sse::message("never reached"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let run = exec_json(&home, "go").await;
    assert_eq!(run.code, Some(1), "stderr: {}", run.stderr);
    let types = run.event_types();
    assert_eq!(types.last().unwrap(), "turn.failed");
    let failed = run
        .events()
        .into_iter()
        .find(|e| e["type"] == "turn.failed")
        .unwrap();
    let msg = failed["error"]["message"].as_str().unwrap();
    assert!(msg.contains("idle timeout waiting for SSE"), "{msg}");
    assert!(msg.contains("gave up after 1 retries"), "{msg}");
    assert_eq!(mock.model_requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_500_then_success_is_retried_quietly() {
    let mock = MockModelServer::start(vec![
        MockResponse::http_error(
            500,
            json!({"error": {"message": "mock internal error", "type": "server_error"}}),
        ),
        sse::message("Recovered after a 500."),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let run = exec_json(&home, "go").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(
        run.event_types(),
        [
            "thread.started",
            "item.completed",
            "turn.started",
            "item.completed",
            "turn.completed"
        ]
    );
    assert_eq!(
        run.completed_items("agent_message")[0]["text"],
        "Recovered after a 500."
    );
    assert_eq!(mock.model_requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_500s_fail_with_the_server_message() {
    let err = || MockResponse::http_error(503, json!({"error": {"message": "overloaded"}}));
    // request_max_retries = 2 → 3 attempts per sampling, twice (stream retry).
    let mock = MockModelServer::start((0..6).map(|_| err()).collect()).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let run = exec_json(&home, "go").await;
    assert_eq!(run.code, Some(1));
    let failed = run
        .events()
        .into_iter()
        .find(|e| e["type"] == "turn.failed")
        .unwrap();
    let msg = failed["error"]["message"].as_str().unwrap();
    assert!(msg.contains("503") && msg.contains("overloaded"), "{msg}");
    assert_eq!(mock.model_requests().len(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_honours_retry_after() {
    let mock = MockModelServer::start(vec![
        MockResponse::Http {
            status: 429,
            headers: vec![("retry-after".into(), "0".into()), ("content-type".into(), "application/json".into())],
            body: json!({"error": {"message": "Rate limit reached (mock)", "code": "rate_limit_exceeded"}}).to_string(),
        },
        sse::message("Recovered after a 429."),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let run = exec_json(&home, "go").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let err = run
        .events()
        .into_iter()
        .find(|e| e["type"] == "error")
        .expect("reconnect notice");
    assert!(err["message"].as_str().unwrap().contains("429"), "{err}");
    assert_eq!(
        run.completed_items("agent_message")[0]["text"],
        "Recovered after a 429."
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_closed_early_is_retried() {
    let mock = MockModelServer::start(vec![
        MockResponse::Sse {
            steps: vec![SseStep::Event(sse::created("r1")), SseStep::Disconnect],
        },
        sse::message("second try"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let run = exec_json(&home, "go").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(
        run.completed_items("agent_message")[0]["text"],
        "second try"
    );
}
