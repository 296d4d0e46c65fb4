//! Chat Completions streaming, for local OpenAI-compatible servers (Ollama,
//! LM Studio, llama.cpp server, vLLM). Converts our history to chat messages
//! and the streamed chunks back into the same [`ModelEvent`]s the Responses
//! API produces, so the turn loop does not care which wire is in use.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::sse::SseHandler;
use super::{ModelError, ModelEvent, ModelRequest};
use crate::protocol::{ContentItem, ResponseItem, TokenUsage};

pub(super) fn build_body(req: &ModelRequest) -> Result<Value, ModelError> {
    let mut messages: Vec<Value> = Vec::new();
    for item in &req.input {
        match item {
            ResponseItem::Message { role, content, .. } => {
                let role = match role.as_str() {
                    "developer" | "system" => "system",
                    "assistant" => "assistant",
                    _ => "user",
                };
                let has_image = content
                    .iter()
                    .any(|c| matches!(c, ContentItem::InputImage { .. }));
                let content_value = if has_image {
                    Value::Array(
                        content
                            .iter()
                            .map(|c| match c {
                                ContentItem::InputText { text }
                                | ContentItem::OutputText { text } => {
                                    json!({"type": "text", "text": text})
                                }
                                ContentItem::InputImage { image_url } => {
                                    json!({"type": "image_url", "image_url": {"url": image_url}})
                                }
                            })
                            .collect(),
                    )
                } else {
                    Value::String(item.message_text().unwrap_or_default())
                };
                messages.push(json!({"role": role, "content": content_value}));
            }
            ResponseItem::FunctionCall {
                name,
                arguments,
                call_id,
                namespace,
                ..
            } => {
                // Chat Completions has no namespaces: the flat canonical
                // name (`mcp__server__tool`), as the tools are offered.
                let name = match namespace {
                    Some(ns) => format!("{ns}__{name}"),
                    None => name.clone(),
                };
                let call = json!({
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                });
                // Consecutive calls belong to one assistant message.
                if let Some(last) = messages.last_mut() {
                    if last["role"] == "assistant" && last["tool_calls"].is_array() {
                        if let Some(calls) = last["tool_calls"].as_array_mut() {
                            calls.push(call);
                            continue;
                        }
                    }
                }
                messages.push(
                    json!({"role": "assistant", "content": Value::Null, "tool_calls": [call]}),
                );
            }
            ResponseItem::FunctionCallOutput { call_id, output } => {
                messages.push(
                    json!({"role": "tool", "tool_call_id": call_id, "content": output.content}),
                );
            }
            ResponseItem::CustomToolCallOutput { call_id, output } => {
                messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
            }
            ResponseItem::CustomToolCall { .. }
            | ResponseItem::Reasoning { .. }
            | ResponseItem::Other(_) => {}
        }
    }
    let function = |name: Value, t: &Value| {
        json!({
            "type": "function",
            "function": {
                "name": name,
                "description": t.get("description"),
                "parameters": t.get("parameters"),
            }
        })
    };
    let mut tools: Vec<Value> = Vec::new();
    for t in &req.tools {
        match t.get("type").and_then(Value::as_str) {
            Some("function") => tools.push(function(t.get("name").cloned().unwrap_or_default(), t)),
            // A namespace's functions under their flat names.
            Some("namespace") => {
                let ns = t.get("name").and_then(Value::as_str).unwrap_or_default();
                for f in t
                    .get("tools")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
                    tools.push(function(Value::String(format!("{ns}__{name}")), f));
                }
            }
            _ => {}
        }
    }
    let mut body = json!({
        "model": req.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
        body["tool_choice"] = json!("auto");
    }
    if let Some(schema) = &req.output_schema {
        body["response_format"] = json!({
            "type": "json_schema",
            "json_schema": {"name": "codex_output_schema", "schema": schema, "strict": true},
        });
    }
    Ok(body)
}

#[derive(Default)]
struct PendingCall {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Default)]
struct ChatState {
    response_id: String,
    message_id: Option<String>,
    text: String,
    reasoning: String,
    calls: BTreeMap<u64, PendingCall>,
    usage: Option<TokenUsage>,
}

/// Turns Chat Completions chunks into model events.
#[derive(Default)]
pub(super) struct ChatHandler {
    st: ChatState,
    created: bool,
}

impl SseHandler for ChatHandler {
    fn on_event(&mut self, data: &str) -> (Vec<Result<ModelEvent, ModelError>>, bool) {
        if data.trim() == "[DONE]" {
            return (finish(&mut self.st).into_iter().map(Ok).collect(), true);
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return (vec![], false);
        };
        if let Some(err) = v.get("error") {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| err.to_string());
            return (
                vec![Err(ModelError::ResponseFailed {
                    code: None,
                    retry_after: super::parse_try_again_in(&message),
                    message,
                })],
                true,
            );
        }
        let mut out = Vec::new();
        if !self.created {
            self.created = true;
            self.st.response_id = v
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("chatcmpl")
                .to_string();
            out.push(Ok(ModelEvent::Created {
                response_id: self.st.response_id.clone(),
            }));
        }
        out.extend(apply_chunk(&mut self.st, &v));
        let stop = out.iter().any(Result::is_err);
        (out, stop)
    }

    fn on_eof(&mut self) -> Vec<Result<ModelEvent, ModelError>> {
        if !self.created {
            return vec![Err(ModelError::Stream(
                "stream closed before any chunk arrived".into(),
            ))];
        }
        finish(&mut self.st).into_iter().map(Ok).collect()
    }
}

fn apply_chunk(st: &mut ChatState, v: &Value) -> Vec<Result<ModelEvent, ModelError>> {
    let mut out = Vec::new();
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
        st.usage = Some(TokenUsage {
            input_tokens: n("/prompt_tokens"),
            cached_input_tokens: n("/prompt_tokens_details/cached_tokens"),
            cache_write_input_tokens: 0,
            output_tokens: n("/completion_tokens"),
            reasoning_output_tokens: n("/completion_tokens_details/reasoning_tokens"),
            total_tokens: n("/total_tokens"),
        });
    }
    let Some(choices) = v.get("choices").and_then(Value::as_array) else {
        return out;
    };
    for choice in choices {
        let delta = choice.get("delta").or_else(|| choice.get("message"));
        if let Some(delta) = delta {
            let reasoning = delta
                .get("reasoning_content")
                .or_else(|| delta.get("reasoning"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !reasoning.is_empty() {
                st.reasoning.push_str(reasoning);
                out.push(Ok(ModelEvent::ReasoningContentDelta {
                    item_id: Some(format!("rs_{}", st.response_id)),
                    delta: reasoning.to_string(),
                }));
            }
            let text = match delta.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect(),
                _ => String::new(),
            };
            if !text.is_empty() {
                let id = st
                    .message_id
                    .get_or_insert_with(|| format!("msg_{}", st.response_id))
                    .clone();
                if st.text.is_empty() {
                    out.push(Ok(ModelEvent::OutputItemAdded(ResponseItem::Message {
                        id: Some(id.clone()),
                        role: "assistant".into(),
                        content: vec![],
                    })));
                }
                st.text.push_str(&text);
                out.push(Ok(ModelEvent::OutputTextDelta {
                    item_id: Some(id),
                    delta: text,
                }));
            }
            for (pos, call) in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let index = call
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(pos as u64);
                let pending = st.calls.entry(index).or_default();
                if let Some(id) = call.get("id").and_then(Value::as_str) {
                    if !id.is_empty() {
                        pending.id = id.to_string();
                    }
                }
                if let Some(f) = call.get("function") {
                    if let Some(name) = f.get("name").and_then(Value::as_str) {
                        pending.name.push_str(name);
                    }
                    match f.get("arguments") {
                        Some(Value::String(a)) => pending.arguments.push_str(a),
                        Some(obj @ Value::Object(_)) => pending.arguments = obj.to_string(),
                        _ => {}
                    }
                }
            }
        }
        let reason = choice.get("finish_reason").and_then(Value::as_str);
        if reason == Some("length") && st.calls.is_empty() && st.text.is_empty() {
            out.push(Err(ModelError::ContextWindowExceeded));
        }
    }
    out
}

fn finish(st: &mut ChatState) -> Vec<ModelEvent> {
    let mut out = Vec::new();
    if !st.reasoning.is_empty() {
        out.push(ModelEvent::OutputItemDone(ResponseItem::Reasoning {
            id: format!("rs_{}", st.response_id),
            summary: vec![],
            content: Some(vec![crate::protocol::ReasoningContent::ReasoningText {
                text: std::mem::take(&mut st.reasoning),
            }]),
            encrypted_content: None,
        }));
    }
    if !st.text.is_empty() {
        out.push(ModelEvent::OutputItemDone(ResponseItem::assistant_text(
            st.message_id.clone(),
            std::mem::take(&mut st.text),
        )));
    }
    for (index, call) in std::mem::take(&mut st.calls) {
        let call_id = if call.id.is_empty() {
            format!("call_{}_{index}", st.response_id)
        } else {
            call.id
        };
        out.push(ModelEvent::OutputItemDone(ResponseItem::FunctionCall {
            id: None,
            name: call.name,
            namespace: None,
            arguments: if call.arguments.is_empty() {
                "{}".into()
            } else {
                call.arguments
            },
            call_id,
        }));
    }
    out.push(ModelEvent::Completed {
        response_id: st.response_id.clone(),
        usage: st.usage,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_tool_calls_by_index() {
        let mut st = ChatState {
            response_id: "c1".into(),
            ..Default::default()
        };
        let chunks = [
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_a","function":{"name":"exec_command","arguments":"{\"cmd\":"}}]}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"ls\"}"}}]}}]}),
            json!({"choices":[{"delta":{},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}),
        ];
        for c in &chunks {
            apply_chunk(&mut st, c);
        }
        let out = finish(&mut st);
        assert_eq!(
            out[0],
            ModelEvent::OutputItemDone(ResponseItem::FunctionCall {
                id: None,
                name: "exec_command".into(),
                namespace: None,
                arguments: "{\"cmd\":\"ls\"}".into(),
                call_id: "call_a".into(),
            })
        );
        match &out[1] {
            ModelEvent::Completed { usage: Some(u), .. } => assert_eq!(u.total_tokens, 7),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn converts_history() {
        let req = ModelRequest {
            model: "m".into(),
            input: vec![
                ResponseItem::developer_text("base"),
                ResponseItem::user_text("hi"),
                ResponseItem::FunctionCall {
                    id: None,
                    name: "exec_command".into(),
                    namespace: None,
                    arguments: "{}".into(),
                    call_id: "c".into(),
                },
                ResponseItem::FunctionCallOutput {
                    call_id: "c".into(),
                    output: crate::protocol::FunctionCallOutputPayload::text("out"),
                },
            ],
            instructions: "base".into(),
            tools: vec![
                json!({"type":"function","name":"exec_command","description":"d","parameters":{}}),
            ],
            reasoning: None,
            verbosity: None,
            output_schema: None,
            thread_id: "t".into(),
            turn_id: "u".into(),
        };
        let body = build_body(&req).unwrap();
        let msgs = body["messages"].as_array().unwrap();
        assert_eq!(msgs[0]["role"], "system");
        assert_eq!(msgs[2]["tool_calls"][0]["id"], "c");
        assert_eq!(msgs[3]["role"], "tool");
        assert_eq!(body["tools"][0]["function"]["name"], "exec_command");
    }

    #[test]
    fn output_schema_becomes_response_format() {
        let schema = json!({"type": "object", "properties": {"title": {"type": "string"}}});
        let req = ModelRequest {
            model: "m".into(),
            input: vec![ResponseItem::user_text("hi")],
            instructions: "base".into(),
            tools: vec![],
            reasoning: None,
            verbosity: None,
            output_schema: Some(schema.clone()),
            thread_id: "t".into(),
            turn_id: "u".into(),
        };
        let body = build_body(&req).unwrap();
        assert_eq!(
            body["response_format"],
            json!({"type": "json_schema", "json_schema":
                {"name": "codex_output_schema", "schema": schema, "strict": true}})
        );
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn namespaces_are_offered_and_called_by_their_flat_names() {
        let req = ModelRequest {
            model: "m".into(),
            input: vec![
                ResponseItem::user_text("hi"),
                ResponseItem::FunctionCall {
                    id: None,
                    name: "echo_text".into(),
                    namespace: Some("mcp__echo".into()),
                    arguments: "{}".into(),
                    call_id: "c".into(),
                },
            ],
            instructions: "base".into(),
            tools: vec![json!({"type": "namespace", "name": "mcp__echo", "tools": [
                {"type": "function", "name": "echo_text", "description": "d", "parameters": {}}
            ]})],
            reasoning: None,
            verbosity: None,
            output_schema: None,
            thread_id: "t".into(),
            turn_id: "u".into(),
        };
        let body = build_body(&req).unwrap();
        assert_eq!(body["tools"][0]["function"]["name"], "mcp__echo__echo_text");
        let msgs = body["messages"].as_array().unwrap();
        let call = msgs.iter().find(|m| m["tool_calls"].is_array()).unwrap();
        assert_eq!(
            call["tool_calls"][0]["function"]["name"],
            "mcp__echo__echo_text"
        );
    }
}
