//! The client→server methods we serve and their params (camelCase, as on
//! the wire). Unknown fields are ignored, except where a struct collects
//! them (`rest`, see [`super::unserved`]) to name them to the caller; a
//! missing required field is an `Invalid request: missing field ...` error,
//! upstream's wording.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::jsonrpc::RpcError;

/// Every request method this server answers.
pub const METHODS: &[&str] = &[
    "initialize",
    "thread/start",
    "thread/resume",
    "thread/read",
    "thread/list",
    "thread/loaded/list",
    "thread/archive",
    "thread/unarchive",
    "thread/name/set",
    "thread/unsubscribe",
    "thread/turns/list",
    "thread/items/list",
    "thread/fork",
    "turn/start",
    "turn/interrupt",
    "turn/steer",
    "thread/compact/start",
    "model/list",
    "config/read",
    "config/batchWrite",
    "config/value/write",
    "account/read",
    "account/login/start",
    "account/login/cancel",
    "account/logout",
    "codexd/status",
    "configRequirements/read",
    "hooks/list",
    "skills/list",
    "plugin/installed",
    "collaborationMode/list",
    "permissionProfile/list",
    "account/rateLimits/read",
    "account/bedrock/checkGovCloudRequirements",
    "thread/goal/get",
    "thread/backgroundTerminals/list",
    "thread/readState/update",
    "mcpServerStatus/list",
    "config/mcpServer/reload",
    "mcpServer/tool/call",
    "mcpServer/resource/read",
    "mcpServer/oauth/login",
];

/// `-32600 Invalid request: unknown variant ...` (upstream's answer to an
/// unknown method).
pub fn unknown_method(method: &str) -> RpcError {
    let expected = METHODS
        .iter()
        .map(|m| format!("`{m}`"))
        .collect::<Vec<_>>()
        .join(", ");
    RpcError::invalid_request(format!(
        "Invalid request: unknown variant `{method}`, expected one of {expected}"
    ))
}

/// Decodes params; absent params count as `{}`.
pub fn parse<T: DeserializeOwned>(params: &Value) -> Result<T, RpcError> {
    let v = if params.is_null() {
        Value::Object(Map::new())
    } else {
        params.clone()
    };
    serde_json::from_value(v)
        .map_err(|e| RpcError::invalid_request(format!("Invalid request: {e}")))
}

/// `initialize` params (also sent by [`super::client::Client`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    pub client_info: ClientInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub title: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    #[serde(default)]
    pub experimental_api: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_out_notification_methods: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadStartParams {
    pub model: Option<String>,
    pub model_provider: Option<String>,
    pub cwd: Option<String>,
    pub base_instructions: Option<String>,
    pub developer_instructions: Option<String>,
    pub approval_policy: Option<Value>,
    /// `read-only` | `workspace-write` | `danger-full-access`
    pub sandbox: Option<String>,
    /// Config overrides (dotted keys → values).
    pub config: Option<Map<String, Value>>,
    pub ephemeral: Option<bool>,
    /// `legacy` | `paginated`, recorded in the session file.
    pub history_mode: Option<HistoryModeParam>,
    /// A permission profile (`:read-only`, `:workspace`,
    /// `:danger-full-access`); not with `sandbox`.
    pub permissions: Option<String>,
    /// Recorded in the session file and reported as `threadSource`.
    pub thread_source: Option<String>,
    /// Tools the client defines and answers (`item/tool/call`).
    pub dynamic_tools: Option<Vec<super::dynamic_tools::DynamicToolSpecParam>>,
    /// Everything else the client sent (named back in a `warning`).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl ThreadStartParams {
    /// Unserved fields with these values choose nothing.
    pub fn defaults() -> Vec<(&'static str, Value)> {
        vec![
            ("approvalsReviewer", Value::from("user")),
            ("personality", Value::from("none")),
        ]
    }
}

/// `ThreadHistoryMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HistoryModeParam {
    Legacy,
    Paginated,
}

impl HistoryModeParam {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::Paginated => "paginated",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadResumeParams {
    pub thread_id: String,
    #[serde(default)]
    pub exclude_turns: Option<bool>,
    pub model: Option<String>,
    pub model_provider: Option<String>,
    pub cwd: Option<String>,
    pub base_instructions: Option<String>,
    pub developer_instructions: Option<String>,
    pub approval_policy: Option<Value>,
    pub sandbox: Option<String>,
    pub config: Option<Map<String, Value>>,
    /// A first `thread/turns/list` page to include in the result.
    pub initial_turns_page: Option<super::history::InitialTurnsPageParams>,
    /// As `thread/start`'s.
    pub permissions: Option<String>,
    /// Resume from this file / this history: refused (not served here).
    pub path: Option<String>,
    pub history: Option<Value>,
    /// Everything else the client sent (named back in a `warning`).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadReadParams {
    pub thread_id: String,
    #[serde(default)]
    pub include_turns: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadListParams {
    pub cursor: Option<String>,
    pub limit: Option<u64>,
    pub sort_direction: Option<String>,
    pub archived: Option<bool>,
    pub cwd: Option<Value>,
    pub model_providers: Option<Vec<String>>,
    pub source_kinds: Option<Vec<String>>,
    pub search_term: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageParams {
    pub cursor: Option<String>,
    pub limit: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadIdParams {
    pub thread_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadSetNameParams {
    pub thread_id: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnStartParams {
    pub thread_id: String,
    pub input: Vec<Value>,
    pub model: Option<String>,
    pub effort: Option<Value>,
    pub summary: Option<Value>,
    pub cwd: Option<String>,
    pub approval_policy: Option<Value>,
    pub sandbox_policy: Option<Value>,
    pub output_schema: Option<Value>,
    /// The client's id for the message, echoed as the item's `clientId`.
    #[serde(default)]
    pub client_user_message_id: Option<String>,
    /// `user`, ...: attribution only upstream.
    #[serde(default)]
    pub turn_trigger: Option<String>,
    /// `{mode, settings: {model, reasoning_effort, developer_instructions}}`.
    #[serde(default)]
    pub collaboration_mode: Option<Value>,
    #[serde(default)]
    pub runtime_workspace_roots: Option<Vec<String>>,
    /// Every other field, so a value we do not serve can be named.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnInterruptParams {
    pub thread_id: String,
    pub turn_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelListParams {
    pub cursor: Option<String>,
    pub limit: Option<u64>,
    pub include_hidden: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigReadParams {
    pub cwd: Option<String>,
    #[serde(default)]
    pub include_layers: bool,
}

/// `account/login/start`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum LoginAccountParams {
    #[serde(rename_all = "camelCase")]
    ApiKey {
        api_key: String,
    },
    Chatgpt {},
    ChatgptDeviceCode {},
    /// A login type this server does not offer.
    #[serde(other)]
    Other,
}

/// `account/login/cancel`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelLoginAccountParams {
    pub login_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_use_upstream_wording() {
        let e = parse::<ThreadReadParams>(&json!({"bogus": true})).unwrap_err();
        assert_eq!(e.code, -32600);
        assert_eq!(e.message, "Invalid request: missing field `threadId`");
        let e = unknown_method("no/suchMethod");
        assert!(e.message.starts_with(
            "Invalid request: unknown variant `no/suchMethod`, expected one of `initialize`, "
        ));
        let p: ThreadStartParams = parse(&Value::Null).unwrap();
        assert!(p.model.is_none());
    }
}
