//! The client's side of a turn: the app-server notifications of one thread
//! read back into typed events, for clients that render turns (`codex
//! exec`'s human and JSONL output). What the server sends is the contract;
//! fields this client does not need are ignored, and notifications it does
//! not know are skipped (`None`).

use codex_core::protocol::TokenUsage;
use serde::Deserialize;
use serde_json::Value;

use super::objects::TokenUsageBreakdown;

/// A status of a command or patch item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ItemStatus {
    InProgress,
    Completed,
    Failed,
    Declined,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ChangeKind {
    Add,
    Delete,
    Update {
        #[serde(default)]
        move_path: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FileChange {
    pub path: String,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandAction {
    #[serde(default)]
    pub command: Option<String>,
}

/// A `ThreadItem` as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Item {
    #[serde(rename_all = "camelCase")]
    UserMessage { id: String },
    #[serde(rename_all = "camelCase")]
    AgentMessage { id: String, text: String },
    #[serde(rename_all = "camelCase")]
    Reasoning {
        id: String,
        #[serde(default)]
        summary: Vec<String>,
    },
    #[serde(rename_all = "camelCase")]
    CommandExecution {
        id: String,
        /// The command line as run (`/bin/bash -lc '...'`).
        command: String,
        #[serde(default)]
        command_actions: Vec<CommandAction>,
        status: ItemStatus,
        #[serde(default)]
        aggregated_output: Option<String>,
        #[serde(default)]
        exit_code: Option<i32>,
        #[serde(default)]
        duration_ms: Option<u64>,
    },
    #[serde(rename_all = "camelCase")]
    FileChange {
        id: String,
        changes: Vec<FileChange>,
        status: ItemStatus,
    },
    #[serde(rename_all = "camelCase")]
    McpToolCall {
        id: String,
        server: String,
        tool: String,
        #[serde(default)]
        arguments: serde_json::Value,
        status: ItemStatus,
        #[serde(default)]
        result: Option<serde_json::Value>,
        #[serde(default)]
        error: Option<serde_json::Value>,
    },
    /// A kind this client does not render.
    #[serde(other)]
    Other,
}

impl Item {
    pub fn id(&self) -> Option<&str> {
        match self {
            Item::UserMessage { id }
            | Item::AgentMessage { id, .. }
            | Item::Reasoning { id, .. }
            | Item::CommandExecution { id, .. }
            | Item::FileChange { id, .. }
            | Item::McpToolCall { id, .. } => Some(id),
            Item::Other => None,
        }
    }
}

impl Item {
    /// What the user typed for a command (its script), else its command line.
    pub fn command_script(&self) -> Option<&str> {
        match self {
            Item::CommandExecution {
                command,
                command_actions,
                ..
            } => Some(
                command_actions
                    .first()
                    .and_then(|a| a.command.as_deref())
                    .unwrap_or(command),
            ),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepStatus {
    Pending,
    InProgress,
    Completed,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PlanStep {
    pub step: String,
    pub status: StepStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Plan {
    #[serde(default)]
    pub explanation: Option<String>,
    pub plan: Vec<PlanStep>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TurnStatus {
    Completed,
    Interrupted,
    Failed,
    InProgress,
}

/// What happened in a turn, from one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEvent {
    /// `warning` (a config or model warning, before or during the turn).
    Warning(String),
    TurnStarted {
        turn_id: String,
    },
    ItemStarted(Item),
    ItemCompleted(Item),
    AgentMessageDelta {
        item_id: String,
        delta: String,
    },
    ReasoningDelta,
    CommandOutputDelta,
    Plan(Plan),
    /// The usage of the last response.
    TokenUsage(TokenUsage),
    /// `error`: retried (`will_retry`) or ending the turn.
    Error {
        message: String,
        details: Option<String>,
        will_retry: bool,
        /// `codexErrorInfo`/`additionalDetails` say the worker died.
        worker_exited: bool,
    },
    TurnCompleted {
        turn_id: String,
        status: TurnStatus,
        error: Option<String>,
    },
    /// `thread/closed`: the thread's worker is gone.
    ThreadClosed,
    /// `mcpServer/startupStatus/updated` `failed`: an MCP server of the
    /// thread could not start (or stopped for good).
    McpServerFailed {
        name: String,
        error: Option<String>,
    },
}

fn field<T: for<'de> Deserialize<'de>>(params: &Value, key: &str) -> Option<T> {
    serde_json::from_value(params.get(key)?.clone()).ok()
}

fn string(params: &Value, pointer: &str) -> Option<String> {
    params.pointer(pointer)?.as_str().map(str::to_string)
}

/// The event a notification stands for, if it is one a turn renders.
pub fn parse(method: &str, params: &Value) -> Option<TurnEvent> {
    Some(match method {
        "warning" => TurnEvent::Warning(string(params, "/message")?),
        "mcpServer/startupStatus/updated" if string(params, "/status")? == "failed" => {
            TurnEvent::McpServerFailed {
                name: string(params, "/name")?,
                error: string(params, "/error"),
            }
        }
        "turn/started" => TurnEvent::TurnStarted {
            turn_id: string(params, "/turn/id")?,
        },
        "item/started" => TurnEvent::ItemStarted(field(params, "item")?),
        "item/completed" => TurnEvent::ItemCompleted(field(params, "item")?),
        "item/agentMessage/delta" => TurnEvent::AgentMessageDelta {
            item_id: string(params, "/itemId")?,
            delta: string(params, "/delta")?,
        },
        "item/reasoning/summaryTextDelta" | "item/reasoning/textDelta" => TurnEvent::ReasoningDelta,
        "item/commandExecution/outputDelta" => TurnEvent::CommandOutputDelta,
        "turn/plan/updated" => TurnEvent::Plan(serde_json::from_value(params.clone()).ok()?),
        "thread/tokenUsage/updated" => TurnEvent::TokenUsage(
            field::<TokenUsageBreakdown>(params.get("tokenUsage")?, "last")?.into(),
        ),
        "error" => {
            let details = string(params, "/error/additionalDetails");
            TurnEvent::Error {
                message: string(params, "/error/message")?,
                will_retry: params
                    .get("willRetry")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                worker_exited: matches!(
                    details.as_deref(),
                    Some("worker_exited" | "codexd_killed")
                ),
                details,
            }
        }
        "turn/completed" => TurnEvent::TurnCompleted {
            turn_id: string(params, "/turn/id")?,
            status: field(params.get("turn")?, "status")?,
            error: string(params, "/turn/error/message"),
        },
        "thread/closed" => TurnEvent::ThreadClosed,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_the_server_sends() {
        let cmd = parse(
            "item/completed",
            &json!({"threadId": "t", "turnId": "u", "item": {
                "type": "commandExecution", "id": "call_1", "command": "/bin/bash -lc 'echo hi'",
                "cwd": "/w", "commandActions": [{"type": "unknown", "command": "echo hi"}],
                "status": "completed", "source": "agent", "aggregatedOutput": "hi\n", "exitCode": 0,
                "durationMs": 12, "processId": null}}),
        )
        .unwrap();
        let TurnEvent::ItemCompleted(item) = &cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(item.command_script(), Some("echo hi"));
        assert_eq!(
            parse(
                "item/started",
                &json!({"item": {"type": "webSearch", "id": "x"}})
            ),
            Some(TurnEvent::ItemStarted(Item::Other))
        );
        assert_eq!(
            parse(
                "thread/tokenUsage/updated",
                &json!({"tokenUsage": {"last": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}, "total": {}}})
            ),
            Some(TurnEvent::TokenUsage(TokenUsage {
                input_tokens: 10,
                output_tokens: 5,
                total_tokens: 15,
                ..Default::default()
            }))
        );
        assert_eq!(
            parse(
                "turn/completed",
                &json!({"turn": {"id": "u", "status": "failed", "error": {"message": "boom"}}})
            ),
            Some(TurnEvent::TurnCompleted {
                turn_id: "u".into(),
                status: TurnStatus::Failed,
                error: Some("boom".into())
            })
        );
        assert_eq!(parse("account/updated", &json!({})), None);
    }
}
