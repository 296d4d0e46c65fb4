//! `[context_shaping]` end to end: real codexd, a real codex-session worker
//! whose exec tool prints far more than `tool_output_token_limit`, the real
//! link to codex-memory, and the mock model server, whose recorded requests
//! show what the frontier model was sent. Without a lane model the pass
//! falls back to exactly the plain truncation; with one (a `local-llm`
//! build, SmolLM2 from `scripts/fetch-models`) the head and tail stay
//! verbatim around the local model's summary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use codex_test_support::{sse, MockModelServer, TestHome};
use common::app_server::{Client, SocketServer, WAIT};

/// 20,000 lines (~108 kB): ~27,000 tokens against a budget of 400.
const COMMAND: &str = "seq 1 20000";
const BUDGET: u64 = 400;

fn seq_output() -> String {
    (1..=20_000).map(|i| format!("{i}\n")).collect()
}

/// Shaping on, with `model` and extra `[context_shaping]` keys.
fn shaping_home(mock: &MockModelServer, model: &str, extra: &str) -> TestHome {
    let home = TestHome::new();
    home.write_config(
        &mock.url(),
        &format!(
            "tool_output_token_limit = {BUDGET}\n\n[context_shaping]\nenabled = true\n\
             model = {model:?}\n{extra}\n"
        ),
    );
    home
}

/// Runs one turn whose tool prints [`COMMAND`]'s output; returns the tool
/// output the model was sent next.
async fn turn_with_a_huge_output(c: &mut Client, mock: &MockModelServer) -> String {
    let t = c.start_thread(serde_json::json!({})).await;
    c.start_turn(&t, "Count to 20000.").await;
    let done = c.turn_completed(&t).await;
    assert_eq!(done["params"]["turn"]["status"], "completed", "{done}");
    let reqs = mock.model_requests();
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    let output = reqs[1]
        .function_output("call_seq")
        .expect("the tool output");
    let (_, body) = output
        .split_once("Total output lines: 20000\n\n")
        .unwrap_or_else(|| panic!("not cut: {}", &output[..output.len().min(400)]));
    body.to_string()
}

/// Waits until codexd reports codex-memory running (it is started by the
/// first memory request: here, the worker's Generate).
async fn memory_started(c: &mut Client) {
    let deadline = Instant::now() + WAIT;
    loop {
        let st = c.status().await;
        if st["memory"]["state"] == "running" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "codex-memory never started: {st}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Memories are off, so only the shaping request can have started
/// codex-memory; it has no generation model and answers NoModel, and the
/// model is sent exactly what plain truncation gives.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_lane_model_the_output_is_plainly_truncated() {
    let mock = MockModelServer::start(vec![
        sse::exec_command("call_seq", COMMAND),
        sse::message("done"),
    ])
    .await;
    // Long enough that the answer, not the deadline, decides.
    let home = shaping_home(&mock, "shape.gguf", "timeout_ms = 10000");
    // A file that is no model: whatever codex-memory makes of it, the pass
    // must fall back.
    std::fs::write(home.codex_home().join("shape.gguf"), b"not a model").unwrap();
    let server = SocketServer::start(&home).await;
    let mut c = server.client("shaper").await;
    let body = turn_with_a_huge_output(&mut c, &mock).await;
    assert_eq!(
        body,
        codex_core::util::truncate_middle(&seq_output(), BUDGET),
        "not the plain truncation"
    );
    assert!(!body.contains("condensed by the local model"), "{body}");
    memory_started(&mut c).await;
}

/// The real lane: SmolLM2 hosted by codex-memory condenses the middle.
/// Needs codex-memory to load `[context_shaping] model` (codexd filling
/// `MemoryInit.shape_model` from `config.context_shaping.model`).
#[cfg(feature = "local-llm")]
#[tokio::test(flavor = "multi_thread")]
async fn with_smollm2_the_middle_is_condensed_between_a_verbatim_head_and_tail() {
    use codex_local::testing::{real_model, SMOLLM2_FILE};
    let Some(model) = real_model(SMOLLM2_FILE) else {
        return;
    };
    let mock = MockModelServer::start(vec![
        sse::exec_command("call_seq", COMMAND),
        sse::message("done"),
    ])
    .await;
    // A small prompt and summary, and a deadline a cold 2-core machine
    // meets (loading the model included).
    let home = shaping_home(
        &mock,
        &model.display().to_string(),
        "max_input_tokens = 128\nmax_summary_tokens = 48\ntimeout_ms = 120000",
    );
    let server = SocketServer::start(&home).await;
    let mut c = server.client("shaper").await;
    let body = turn_with_a_huge_output(&mut c, &mock).await;
    let text = seq_output();
    let plain = codex_core::util::truncate_middle(&text, BUDGET);
    assert!(
        body.len() <= plain.len(),
        "{} > {}",
        body.len(),
        plain.len()
    );
    let (head, rest) = body
        .split_once("[… ")
        .unwrap_or_else(|| panic!("no marker: {body}"));
    assert!(
        rest.contains("lines) condensed by the local model; summary: …]\n"),
        "{body}"
    );
    let (summary, tail) = rest
        .split_once("\n[… end of summary; the output resumes verbatim …]\n")
        .unwrap_or_else(|| panic!("no end marker: {body}"));
    assert!(!summary.trim().is_empty(), "{body}");
    // A quarter of the budget each, on whole lines.
    assert!(text.starts_with(head) && head.len() >= 300, "{head}");
    assert!(text.ends_with(tail) && tail.len() >= 300, "{tail}");
}
