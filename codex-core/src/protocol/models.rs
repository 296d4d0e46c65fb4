//! The model-visible history: Responses API input/output items.
//!
//! These are the shapes that travel to the model and that rollout files store as
//! `response_item` lines. Unknown item types are preserved verbatim so a session
//! file written by another version round-trips.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One entry of the model-visible conversation history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseItem {
    Message {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        role: String,
        content: Vec<ContentItem>,
    },
    Reasoning {
        #[serde(default)]
        id: String,
        #[serde(default)]
        summary: Vec<ReasoningSummary>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<Vec<ReasoningContent>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<String>,
    },
    FunctionCall {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        name: String,
        /// The `namespace` tool the function belongs to, kept so the call
        /// goes back to the model as it came.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        arguments: String,
        call_id: String,
    },
    FunctionCallOutput {
        call_id: String,
        output: FunctionCallOutputPayload,
    },
    CustomToolCall {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        call_id: String,
        name: String,
        input: String,
    },
    CustomToolCallOutput {
        call_id: String,
        output: String,
    },
    /// Any item type this version does not model (web search calls, items from
    /// newer versions, ...). Kept in the rollout, never sent back to the model.
    #[serde(untagged)]
    Other(Value),
}

impl ResponseItem {
    pub fn user_text(text: impl Into<String>) -> Self {
        ResponseItem::Message {
            id: None,
            role: "user".into(),
            content: vec![ContentItem::InputText { text: text.into() }],
        }
    }

    pub fn developer_text(text: impl Into<String>) -> Self {
        ResponseItem::Message {
            id: None,
            role: "developer".into(),
            content: vec![ContentItem::InputText { text: text.into() }],
        }
    }

    pub fn assistant_text(id: Option<String>, text: impl Into<String>) -> Self {
        ResponseItem::Message {
            id,
            role: "assistant".into(),
            content: vec![ContentItem::OutputText { text: text.into() }],
        }
    }

    /// Whether this item may be sent back to the model.
    pub fn is_api_item(&self) -> bool {
        !matches!(self, ResponseItem::Other(_))
    }

    /// The concatenated text of a message item.
    pub fn message_text(&self) -> Option<String> {
        match self {
            ResponseItem::Message { content, .. } => Some(
                content
                    .iter()
                    .filter_map(|c| match c {
                        ContentItem::InputText { text } | ContentItem::OutputText { text } => {
                            Some(text.as_str())
                        }
                        ContentItem::InputImage { .. } => None,
                    })
                    .collect::<Vec<_>>()
                    .join(""),
            ),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentItem {
    InputText { text: String },
    InputImage { image_url: String },
    OutputText { text: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReasoningSummary {
    SummaryText { text: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReasoningContent {
    ReasoningText { text: String },
    Text { text: String },
}

/// The output of a function call as the model sees it. On the wire this is a
/// plain string; older rollouts may hold `{content, success}` objects.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionCallOutputPayload {
    pub content: String,
    pub success: Option<bool>,
}

impl FunctionCallOutputPayload {
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            success: None,
        }
    }
}

impl Serialize for FunctionCallOutputPayload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.content)
    }
}

impl<'de> Deserialize<'de> for FunctionCallOutputPayload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(match v {
            Value::String(s) => Self::text(s),
            Value::Object(ref m) => Self {
                content: match m.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => v.to_string(),
                },
                success: m.get("success").and_then(Value::as_bool),
            },
            // Content-item arrays: keep their text parts.
            Value::Array(parts) => Self::text(
                parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            other => Self::text(other.to_string()),
        })
    }
}

/// Token usage of one model response (or a sum of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_output_tokens: u64,
    pub total_tokens: u64,
}

impl TokenUsage {
    pub fn add(&mut self, other: &TokenUsage) {
        self.input_tokens += other.input_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.cache_write_input_tokens += other.cache_write_input_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_output_tokens += other.reasoning_output_tokens;
        self.total_tokens += other.total_tokens;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_items_round_trip() {
        let raw = r#"{"type":"web_search_call","id":"ws_1","status":"completed"}"#;
        let item: ResponseItem = serde_json::from_str(raw).unwrap();
        assert!(matches!(item, ResponseItem::Other(_)));
        assert!(!item.is_api_item());
        let back = serde_json::to_value(&item).unwrap();
        assert_eq!(back["type"], "web_search_call");
    }

    #[test]
    fn function_call_output_accepts_legacy_object() {
        let raw = r#"{"type":"function_call_output","call_id":"c1","output":{"content":"ok","success":true}}"#;
        let item: ResponseItem = serde_json::from_str(raw).unwrap();
        match item {
            ResponseItem::FunctionCallOutput { output, .. } => {
                assert_eq!(output.content, "ok");
                assert_eq!(output.success, Some(true));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn function_call_output_serializes_as_string() {
        let item = ResponseItem::FunctionCallOutput {
            call_id: "c".into(),
            output: FunctionCallOutputPayload::text("hi"),
        };
        let v = serde_json::to_value(&item).unwrap();
        assert_eq!(v["output"], "hi");
    }
}
