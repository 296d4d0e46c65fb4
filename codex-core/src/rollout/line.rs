//! The line format of rollout files.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{AskForApproval, SandboxPolicy};
use crate::protocol::ResponseItem;

/// One line: `{"timestamp": ..., "type": ..., "payload": ...}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutLine {
    pub timestamp: String,
    #[serde(flatten)]
    pub item: RolloutItem,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordinal: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum RolloutItem {
    SessionMeta(SessionMeta),
    ResponseItem(ResponseItem),
    TurnContext(TurnContextItem),
    EventMsg(Value),
    Compacted(Value),
}

/// First line of every rollout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionMeta {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forked_from_id: Option<String>,
    pub timestamp: String,
    pub cwd: std::path::PathBuf,
    #[serde(default)]
    pub originator: String,
    #[serde(default)]
    pub cli_version: String,
    #[serde(default)]
    pub source: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_instructions: Option<BaseInstructions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<Value>,
    /// `legacy` | `paginated` (app-server `historyMode`), when chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_mode: Option<String>,
    /// The client's `threadSource` (`user`, `thread_title`, ...), as upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_source: Option<String>,
    /// The client's `dynamicTools`, as upstream records them (offered again
    /// on resume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_tools: Option<Vec<crate::tools::dynamic::DynamicTool>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaseInstructions {
    pub text: String,
}

/// Settings a turn ran with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TurnContextItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
    pub cwd: std::path::PathBuf,
    pub approval_policy: AskForApproval,
    pub sandbox_policy: SandboxPolicy,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<Value>,
    #[serde(default)]
    pub summary: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_instructions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub developer_instructions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_output_json_schema: Option<Value>,
}

/// `2025-01-02T03:04:05.678Z`
pub fn timestamp_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
