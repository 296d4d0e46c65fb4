//! Constructors for Responses API SSE events and whole scripted responses.

use serde_json::{json, Value};

use crate::mock_server::{MockResponse, SseStep};

pub fn created(resp_id: &str) -> Value {
    json!({"type": "response.created", "response": {"id": resp_id}})
}

pub fn message_added(item_id: &str) -> Value {
    json!({"type": "response.output_item.added", "output_index": 0, "item": {
        "type": "message", "role": "assistant", "id": item_id, "status": "in_progress", "content": []}})
}

pub fn text_delta(item_id: &str, delta: &str) -> Value {
    json!({"type": "response.output_text.delta", "output_index": 0, "item_id": item_id,
           "content_index": 0, "delta": delta})
}

pub fn message_done(item_id: &str, text: &str) -> Value {
    json!({"type": "response.output_item.done", "output_index": 0, "item": {
        "type": "message", "role": "assistant", "id": item_id, "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}]}})
}

pub fn function_call_done(call_id: &str, name: &str, arguments: &Value) -> Value {
    json!({"type": "response.output_item.done", "output_index": 0, "item": {
        "type": "function_call", "id": format!("fc_{call_id}"), "call_id": call_id,
        "name": name, "arguments": arguments.to_string()}})
}

pub fn completed(resp_id: &str, input_tokens: u64, output_tokens: u64) -> Value {
    json!({"type": "response.completed", "response": {"id": resp_id, "usage": {
        "input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens}}})
}

pub fn failed(code: &str, message: &str) -> Value {
    json!({"type": "response.failed", "response": {"error": {"code": code, "message": message}}})
}

/// Splits `text` into `n` roughly equal pieces.
pub fn split(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = n.max(1);
    let size = chars.len().div_ceil(n).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// A complete streamed assistant answer.
pub fn message_events(resp_id: &str, text: &str, deltas: usize) -> Vec<Value> {
    let item = format!("msg_{resp_id}");
    let mut v = vec![created(resp_id), message_added(&item)];
    for piece in split(text, deltas) {
        v.push(text_delta(&item, &piece));
    }
    v.push(message_done(&item, text));
    v.push(completed(resp_id, 10, 5));
    v
}

/// A response that is one function call.
pub fn function_call_events(
    resp_id: &str,
    call_id: &str,
    name: &str,
    arguments: Value,
) -> Vec<Value> {
    vec![
        created(resp_id),
        function_call_done(call_id, name, &arguments),
        completed(resp_id, 10, 5),
    ]
}

/// An answer streamed one word at a time, `gap` apart (a turn that takes a
/// while).
pub fn slow_message(resp_id: &str, words: &[&str], gap: std::time::Duration) -> MockResponse {
    let item = format!("msg_{resp_id}");
    let mut steps = vec![
        SseStep::Event(created(resp_id)),
        SseStep::Event(message_added(&item)),
    ];
    for w in words {
        steps.push(SseStep::Delay(gap));
        steps.push(SseStep::Event(text_delta(&item, w)));
    }
    steps.push(SseStep::Event(message_done(&item, &words.concat())));
    steps.push(SseStep::Event(completed(resp_id, 10, 5)));
    MockResponse::Sse { steps }
}

pub fn message(text: &str) -> MockResponse {
    MockResponse::sse(message_events("resp_msg", text, 3))
}

pub fn exec_command(call_id: &str, cmd: &str) -> MockResponse {
    MockResponse::sse(function_call_events(
        "resp_call",
        call_id,
        "exec_command",
        json!({"cmd": cmd}),
    ))
}

pub fn apply_patch(call_id: &str, patch: &str) -> MockResponse {
    MockResponse::sse(function_call_events(
        "resp_patch",
        call_id,
        "apply_patch",
        json!({"input": patch}),
    ))
}

/// Streams part of an answer, then goes silent (keeps the connection open).
pub fn stall_after_partial(text: &str) -> MockResponse {
    let item = "msg_stall";
    MockResponse::Sse {
        steps: vec![
            SseStep::Event(created("resp_stall")),
            SseStep::Event(message_added(item)),
            SseStep::Event(text_delta(item, text)),
            SseStep::Stall(std::time::Duration::from_secs(120)),
        ],
    }
}

/// Chat Completions chunks answering with `text`.
pub fn chat_message(text: &str) -> MockResponse {
    let mut steps = vec![];
    for piece in split(text, 3) {
        steps.push(SseStep::Event(json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece}, "finish_reason": null}]})));
    }
    steps.push(SseStep::Event(json!({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})));
    steps.push(SseStep::Event(json!({"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}})));
    steps.push(SseStep::Data("[DONE]".into()));
    MockResponse::Sse { steps }
}

/// Chat Completions chunks making one tool call.
pub fn chat_tool_call(call_id: &str, name: &str, arguments: Value) -> MockResponse {
    let args = arguments.to_string();
    let (a, b) = args.split_at(args.len() / 2);
    MockResponse::Sse {
        steps: vec![
            SseStep::Event(
                json!({"id": "chatcmpl-2", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": a}}]}}]}),
            ),
            SseStep::Event(
                json!({"id": "chatcmpl-2", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": b}}]}}]}),
            ),
            SseStep::Event(
                json!({"id": "chatcmpl-2", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            ),
            SseStep::Data("[DONE]".into()),
        ],
    }
}
