//! The OpenAI Responses API over SSE.

use serde_json::{json, Value};

use super::error::parse_try_again_in;
use super::sse::SseHandler;
use super::{ModelError, ModelEvent, ModelRequest};
use crate::protocol::{ResponseItem, TokenUsage};

pub(super) fn build_body(req: &ModelRequest) -> Result<Value, ModelError> {
    let input: Vec<&ResponseItem> = req.input.iter().filter(|i| i.is_api_item()).collect();
    let mut body = json!({
        "model": req.model,
        "input": input,
        "tools": req.tools,
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "store": false,
        "stream": true,
        "prompt_cache_key": req.thread_id,
    });
    if let Some(r) = &req.reasoning {
        let mut reasoning = serde_json::Map::new();
        if let Some(effort) = r.effort {
            reasoning.insert(
                "effort".into(),
                serde_json::to_value(effort).unwrap_or_default(),
            );
        }
        if r.summary != crate::config::ReasoningSummary::None {
            reasoning.insert(
                "summary".into(),
                serde_json::to_value(r.summary).unwrap_or_default(),
            );
        }
        body["reasoning"] = Value::Object(reasoning);
        body["include"] = json!(["reasoning.encrypted_content"]);
    }
    let mut text = serde_json::Map::new();
    if let Some(v) = req.verbosity {
        text.insert(
            "verbosity".into(),
            serde_json::to_value(v).unwrap_or_default(),
        );
    }
    if let Some(schema) = &req.output_schema {
        text.insert(
            "format".into(),
            json!({
                "type": "json_schema",
                "name": "codex_output_schema",
                "schema": schema,
                "strict": true,
            }),
        );
    }
    if !text.is_empty() {
        body["text"] = Value::Object(text);
    }
    Ok(body)
}

/// Turns Responses API SSE events into model events.
#[derive(Default)]
pub(super) struct ResponsesHandler;

impl SseHandler for ResponsesHandler {
    fn on_event(&mut self, data: &str) -> (Vec<Result<ModelEvent, ModelError>>, bool) {
        match handle_event(data) {
            Handled::Event(e) => (vec![Ok(e)], false),
            Handled::Done(e) => (vec![Ok(e)], true),
            Handled::Failed(err) => (vec![Err(err)], true),
            Handled::Skip => (vec![], false),
        }
    }

    fn on_eof(&mut self) -> Vec<Result<ModelEvent, ModelError>> {
        vec![Err(ModelError::Stream(
            "stream closed before response.completed".into(),
        ))]
    }
}

enum Handled {
    Event(ModelEvent),
    Done(ModelEvent),
    Failed(ModelError),
    Skip,
}

fn handle_event(data: &str) -> Handled {
    let Ok(v) = serde_json::from_str::<Value>(data) else {
        tracing::debug!("skipping non-JSON SSE data: {data:.200}");
        return Handled::Skip;
    };
    let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
    let item_id = || v.get("item_id").and_then(Value::as_str).map(str::to_string);
    let delta = || {
        v.get("delta")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match kind {
        "response.created" => Handled::Event(ModelEvent::Created {
            response_id: v
                .pointer("/response/id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        }),
        "response.output_item.added" | "response.output_item.done" => {
            let Some(item) = v.get("item") else {
                return Handled::Skip;
            };
            match serde_json::from_value::<ResponseItem>(item.clone()) {
                Ok(item) if kind.ends_with("added") => {
                    Handled::Event(ModelEvent::OutputItemAdded(item))
                }
                Ok(item) => Handled::Event(ModelEvent::OutputItemDone(item)),
                Err(e) => {
                    tracing::debug!("skipping unparsable output item: {e}");
                    Handled::Skip
                }
            }
        }
        "response.output_text.delta" => Handled::Event(ModelEvent::OutputTextDelta {
            item_id: item_id(),
            delta: delta(),
        }),
        "response.reasoning_summary_text.delta" => {
            Handled::Event(ModelEvent::ReasoningSummaryDelta {
                item_id: item_id(),
                delta: delta(),
            })
        }
        "response.reasoning_text.delta" => Handled::Event(ModelEvent::ReasoningContentDelta {
            item_id: item_id(),
            delta: delta(),
        }),
        "response.completed" => {
            let response = v.get("response").cloned().unwrap_or_default();
            Handled::Done(ModelEvent::Completed {
                response_id: response
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                usage: response.get("usage").map(parse_usage),
            })
        }
        "response.failed" | "error" => {
            let err = v
                .pointer("/response/error")
                .or_else(|| v.get("error"))
                .cloned()
                .unwrap_or_else(|| v.clone());
            let code = err.get("code").and_then(Value::as_str).map(str::to_string);
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("response.failed event received")
                .to_string();
            Handled::Failed(match code.as_deref() {
                Some("context_length_exceeded") => ModelError::ContextWindowExceeded,
                Some("insufficient_quota") => ModelError::QuotaExceeded,
                _ => ModelError::ResponseFailed {
                    retry_after: parse_try_again_in(&message),
                    code,
                    message,
                },
            })
        }
        "response.incomplete" => Handled::Failed(ModelError::Incomplete(
            v.pointer("/response/incomplete_details/reason")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string(),
        )),
        _ => Handled::Skip,
    }
}

pub(super) fn parse_usage(u: &Value) -> TokenUsage {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let input = n("/input_tokens");
    let output = n("/output_tokens");
    TokenUsage {
        input_tokens: input,
        cached_input_tokens: n("/input_tokens_details/cached_tokens"),
        cache_write_input_tokens: n("/input_tokens_details/cache_write_tokens"),
        output_tokens: output,
        reasoning_output_tokens: n("/output_tokens_details/reasoning_tokens"),
        total_tokens: u
            .get("total_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(input + output),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_events() {
        match handle_event(r#"{"type":"response.output_text.delta","item_id":"m1","delta":"hi"}"#) {
            Handled::Event(ModelEvent::OutputTextDelta { item_id, delta }) => {
                assert_eq!(item_id.as_deref(), Some("m1"));
                assert_eq!(delta, "hi");
            }
            _ => panic!("expected delta"),
        }
        match handle_event(
            r#"{"type":"response.completed","response":{"id":"r","usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":2},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":1},"total_tokens":15}}}"#,
        ) {
            Handled::Done(ModelEvent::Completed { usage: Some(u), .. }) => {
                assert_eq!(u.input_tokens, 10);
                assert_eq!(u.cached_input_tokens, 2);
                assert_eq!(u.reasoning_output_tokens, 1);
                assert_eq!(u.total_tokens, 15);
            }
            _ => panic!("expected completed"),
        }
        match handle_event(
            r#"{"type":"response.failed","response":{"error":{"code":"rate_limit_exceeded","message":"Please try again in 1.5s"}}}"#,
        ) {
            Handled::Failed(ModelError::ResponseFailed { retry_after, .. }) => {
                assert_eq!(retry_after, Some(std::time::Duration::from_millis(1500)));
            }
            _ => panic!("expected failure"),
        }
        assert!(matches!(handle_event("not json"), Handled::Skip));
    }
}
