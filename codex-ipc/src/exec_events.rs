//! `codex exec --json` / `--experimental-json`: one JSON object per line,
//! upstream's event and item shapes (`thread.started`, `turn.started`,
//! `item.started/updated/completed`, `turn.completed {usage}`,
//! `turn.failed`, `error`), made from the app-server notifications of the
//! thread (`codex exec` is a client of the app-server protocol, as the
//! SDK's consumers expect of upstream).

use std::collections::HashMap;

use codex_core::protocol::TokenUsage;
use serde::{Deserialize, Serialize};

use crate::app_server::turn_view::{self, ChangeKind, Item, ItemStatus, StepStatus, TurnEvent};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ExecEvent {
    #[serde(rename = "thread.started")]
    ThreadStarted { thread_id: String },
    #[serde(rename = "turn.started")]
    TurnStarted {},
    #[serde(rename = "turn.completed")]
    TurnCompleted { usage: Usage },
    #[serde(rename = "turn.failed")]
    TurnFailed { error: ErrorInfo },
    #[serde(rename = "item.started")]
    ItemStarted { item: ExecItem },
    #[serde(rename = "item.updated")]
    ItemUpdated { item: ExecItem },
    #[serde(rename = "item.completed")]
    ItemCompleted { item: ExecItem },
    #[serde(rename = "error")]
    Error { message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_output_tokens: u64,
}

impl From<TokenUsage> for Usage {
    fn from(u: TokenUsage) -> Self {
        Self {
            input_tokens: u.input_tokens,
            cached_input_tokens: u.cached_input_tokens,
            cache_write_input_tokens: u.cache_write_input_tokens,
            output_tokens: u.output_tokens,
            reasoning_output_tokens: u.reasoning_output_tokens,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecItem {
    pub id: String,
    #[serde(flatten)]
    pub details: ItemDetails,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ItemDetails {
    AgentMessage {
        text: String,
    },
    Reasoning {
        text: String,
    },
    CommandExecution {
        command: String,
        aggregated_output: String,
        exit_code: Option<i32>,
        status: ExecCommandStatus,
    },
    FileChange {
        changes: Vec<FileChangeEntry>,
        status: ExecPatchStatus,
    },
    TodoList {
        items: Vec<TodoEntry>,
    },
    McpToolCall {
        server: String,
        tool: String,
        arguments: serde_json::Value,
        result: Option<McpResult>,
        error: Option<ErrorInfo>,
        status: ExecMcpStatus,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecCommandStatus {
    InProgress,
    Completed,
    Failed,
    Declined,
}

/// An MCP result as `codex exec --json` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpResult {
    pub content: Vec<serde_json::Value>,
    pub structured_content: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecMcpStatus {
    InProgress,
    Completed,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecPatchStatus {
    Completed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileChangeEntry {
    pub path: String,
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TodoEntry {
    pub text: String,
    pub completed: bool,
}

/// Maps a thread's turn events to exec events, numbering items `item_0`,
/// `item_1`, ...
#[derive(Debug, Default)]
pub struct ExecEventMapper {
    next_id: u64,
    ids: HashMap<String, String>,
    running_commands: Vec<(String, ExecItem)>,
    /// The turn's plan (its exec id and last state), once it has one.
    plan: Option<ExecItem>,
    /// The turn's usage so far (the sum of its responses).
    usage: TokenUsage,
    /// The error that will end the turn, announced before its end.
    final_error: Option<String>,
}

impl ExecEventMapper {
    pub fn thread_started(&mut self, thread_id: &str) -> ExecEvent {
        ExecEvent::ThreadStarted {
            thread_id: thread_id.to_string(),
        }
    }

    fn id_for(&mut self, server_id: &str) -> String {
        if let Some(id) = self.ids.get(server_id) {
            return id.clone();
        }
        let id = self.fresh_id();
        self.ids.insert(server_id.to_string(), id.clone());
        id
    }

    fn fresh_id(&mut self) -> String {
        let id = format!("item_{}", self.next_id);
        self.next_id += 1;
        id
    }

    pub fn map(&mut self, event: &TurnEvent) -> Vec<ExecEvent> {
        match event {
            TurnEvent::Warning(message) => {
                let id = self.fresh_id();
                vec![ExecEvent::ItemCompleted {
                    item: ExecItem {
                        id,
                        details: ItemDetails::Error {
                            message: message.clone(),
                        },
                    },
                }]
            }
            TurnEvent::TurnStarted { .. } => {
                self.usage = Default::default();
                self.plan = None;
                self.final_error = None;
                vec![ExecEvent::TurnStarted {}]
            }
            TurnEvent::ItemStarted(item @ Item::CommandExecution { id, .. }) => {
                let Some(ex) = self.item(item) else {
                    return vec![];
                };
                self.running_commands.push((id.clone(), ex.clone()));
                vec![ExecEvent::ItemStarted { item: ex }]
            }
            TurnEvent::ItemStarted(item @ Item::McpToolCall { .. }) => self
                .item(item)
                .map(|ex| vec![ExecEvent::ItemStarted { item: ex }])
                .unwrap_or_default(),
            TurnEvent::ItemStarted(_) => vec![],
            TurnEvent::ItemCompleted(item) => {
                if let Some(id) = item.id() {
                    self.running_commands.retain(|(r, _)| r != id);
                }
                self.item(item)
                    .map(|ex| vec![ExecEvent::ItemCompleted { item: ex }])
                    .unwrap_or_default()
            }
            TurnEvent::Plan(p) => {
                let items = p
                    .plan
                    .iter()
                    .map(|s| TodoEntry {
                        text: s.step.clone(),
                        completed: s.status == StepStatus::Completed,
                    })
                    .collect();
                match self.plan.as_mut() {
                    Some(ex) => {
                        ex.details = ItemDetails::TodoList { items };
                        vec![ExecEvent::ItemUpdated { item: ex.clone() }]
                    }
                    None => {
                        let ex = ExecItem {
                            id: self.fresh_id(),
                            details: ItemDetails::TodoList { items },
                        };
                        self.plan = Some(ex.clone());
                        vec![ExecEvent::ItemStarted { item: ex }]
                    }
                }
            }
            TurnEvent::TokenUsage(u) => {
                self.usage.add(u);
                vec![]
            }
            TurnEvent::Error {
                message,
                details,
                will_retry: true,
                ..
            } => vec![ExecEvent::Error {
                message: match details {
                    Some(d) => format!("{message} ({d})"),
                    None => message.clone(),
                },
            }],
            TurnEvent::Error { message, .. } => {
                self.final_error = Some(message.clone());
                vec![]
            }
            TurnEvent::TurnCompleted { status, error, .. } => {
                let mut out = self.end_items();
                let final_error = self.final_error.take();
                match status {
                    turn_view::TurnStatus::Completed => out.push(ExecEvent::TurnCompleted {
                        usage: self.usage.into(),
                    }),
                    turn_view::TurnStatus::Interrupted if final_error.is_none() => {
                        out.push(ExecEvent::TurnFailed {
                            error: ErrorInfo {
                                message: "turn interrupted".into(),
                            },
                        })
                    }
                    _ => {
                        let message = final_error
                            .or_else(|| error.clone())
                            .unwrap_or_else(|| "the turn failed".into());
                        out.push(ExecEvent::Error {
                            message: message.clone(),
                        });
                        out.push(ExecEvent::TurnFailed {
                            error: ErrorInfo { message },
                        });
                    }
                }
                out
            }
            TurnEvent::AgentMessageDelta { .. }
            | TurnEvent::ReasoningDelta
            | TurnEvent::CommandOutputDelta
            | TurnEvent::ThreadClosed
            | TurnEvent::McpServerFailed { .. } => vec![],
        }
    }

    /// At the turn's end: its plan completes, and commands still running
    /// are reported completed.
    fn end_items(&mut self) -> Vec<ExecEvent> {
        let mut out: Vec<ExecEvent> = self
            .plan
            .take()
            .map(|item| ExecEvent::ItemCompleted { item })
            .into_iter()
            .collect();
        out.extend(
            std::mem::take(&mut self.running_commands)
                .into_iter()
                .map(|(_, mut ex)| {
                    if let ItemDetails::CommandExecution { status, .. } = &mut ex.details {
                        *status = ExecCommandStatus::Completed;
                    }
                    ExecEvent::ItemCompleted { item: ex }
                }),
        );
        out
    }

    fn item(&mut self, item: &Item) -> Option<ExecItem> {
        let details = match item {
            Item::UserMessage { .. } | Item::Other => return None,
            Item::AgentMessage { text, .. } => ItemDetails::AgentMessage { text: text.clone() },
            Item::Reasoning { summary, .. } => {
                let text = summary
                    .iter()
                    .filter(|s| !s.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n");
                if text.is_empty() {
                    return None;
                }
                ItemDetails::Reasoning { text }
            }
            Item::CommandExecution {
                command,
                status,
                aggregated_output,
                exit_code,
                ..
            } => ItemDetails::CommandExecution {
                command: command.clone(),
                aggregated_output: aggregated_output.clone().unwrap_or_default(),
                exit_code: *exit_code,
                status: match status {
                    ItemStatus::InProgress => ExecCommandStatus::InProgress,
                    ItemStatus::Completed => ExecCommandStatus::Completed,
                    ItemStatus::Failed => ExecCommandStatus::Failed,
                    ItemStatus::Declined => ExecCommandStatus::Declined,
                },
            },
            Item::McpToolCall {
                server,
                tool,
                arguments,
                status,
                result,
                error,
                ..
            } => ItemDetails::McpToolCall {
                server: server.clone(),
                tool: tool.clone(),
                arguments: arguments.clone(),
                result: result
                    .as_ref()
                    .filter(|r| r.is_object())
                    .map(|r| McpResult {
                        content: r
                            .get("content")
                            .and_then(serde_json::Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                        structured_content: r.get("structuredContent").cloned(),
                    }),
                error: error.as_ref().filter(|e| e.is_object()).map(|e| ErrorInfo {
                    message: e
                        .get("message")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                }),
                status: match status {
                    ItemStatus::InProgress => ExecMcpStatus::InProgress,
                    ItemStatus::Completed => ExecMcpStatus::Completed,
                    _ => ExecMcpStatus::Failed,
                },
            },
            Item::FileChange {
                changes, status, ..
            } => {
                if *status == ItemStatus::InProgress {
                    return None;
                }
                ItemDetails::FileChange {
                    changes: changes
                        .iter()
                        .map(|c| FileChangeEntry {
                            path: c.path.clone(),
                            kind: match c.kind {
                                ChangeKind::Add => "add",
                                ChangeKind::Delete => "delete",
                                ChangeKind::Update { .. } => "update",
                            }
                            .into(),
                        })
                        .collect(),
                    status: if *status == ItemStatus::Completed {
                        ExecPatchStatus::Completed
                    } else {
                        ExecPatchStatus::Failed
                    },
                }
            }
        };
        let id = self.id_for(item.id()?);
        Some(ExecItem { id, details })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(method: &str, params: serde_json::Value) -> TurnEvent {
        turn_view::parse(method, &params).unwrap()
    }

    #[test]
    fn serializes_like_upstream() {
        let mut m = ExecEventMapper::default();
        let started = m.thread_started("t1");
        assert_eq!(
            serde_json::to_string(&started).unwrap(),
            r#"{"type":"thread.started","thread_id":"t1"}"#
        );
        m.map(&ev("turn/started", json!({"turn": {"id": "u"}})));
        let cmd = json!({"type": "commandExecution", "id": "call_1",
            "command": "/bin/bash -lc 'echo hello'", "commandActions": [{"type": "unknown", "command": "echo hello"}],
            "status": "inProgress", "aggregatedOutput": null, "exitCode": null});
        let out = m.map(&ev("item/started", json!({"item": cmd})));
        assert_eq!(
            serde_json::to_string(&out[0]).unwrap(),
            r#"{"type":"item.started","item":{"id":"item_0","type":"command_execution","command":"/bin/bash -lc 'echo hello'","aggregated_output":"","exit_code":null,"status":"in_progress"}}"#
        );
        let out = m.map(&ev(
            "item/completed",
            json!({"item": {"type": "agentMessage", "id": "msg", "text": "hi"}}),
        ));
        assert_eq!(
            serde_json::to_string(&out[0]).unwrap(),
            r#"{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"hi"}}"#
        );
        for _ in 0..2 {
            m.map(&ev(
                "thread/tokenUsage/updated",
                json!({"tokenUsage": {"last": {"inputTokens": 10, "outputTokens": 5}}}),
            ));
        }
        let out = m.map(&ev(
            "turn/completed",
            json!({"turn": {"id": "u", "status": "completed"}}),
        ));
        // The still-running command is flushed first; usage is the turn's sum.
        assert_eq!(out.len(), 2);
        assert_eq!(
            serde_json::to_string(&out[1]).unwrap(),
            r#"{"type":"turn.completed","usage":{"input_tokens":20,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":10,"reasoning_output_tokens":0}}"#
        );
    }

    #[test]
    fn plans_failures_and_interrupts() {
        let mut m = ExecEventMapper::default();
        m.map(&ev("turn/started", json!({"turn": {"id": "u"}})));
        let plan = |s: &str| json!({"explanation": null, "plan": [{"step": "a", "status": s}]});
        assert!(matches!(
            m.map(&ev("turn/plan/updated", plan("inProgress")))[0],
            ExecEvent::ItemStarted { .. }
        ));
        assert!(matches!(
            m.map(&ev("turn/plan/updated", plan("completed")))[0],
            ExecEvent::ItemUpdated { .. }
        ));
        assert!(m
            .map(&ev(
                "error",
                json!({"willRetry": false, "error": {"message": "boom"}})
            ))
            .is_empty());
        let out = m.map(&ev(
            "turn/completed",
            json!({"turn": {"id": "u", "status": "failed", "error": {"message": "boom"}}}),
        ));
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(
            matches!(&out[0], ExecEvent::ItemCompleted { item } if matches!(&item.details, ItemDetails::TodoList { items } if items[0].completed))
        );
        assert_eq!(
            out[1],
            ExecEvent::Error {
                message: "boom".into()
            }
        );
        m.map(&ev("turn/started", json!({"turn": {"id": "v"}})));
        let out = m.map(&ev(
            "turn/completed",
            json!({"turn": {"id": "v", "status": "interrupted"}}),
        ));
        assert_eq!(
            out,
            [ExecEvent::TurnFailed {
                error: ErrorInfo {
                    message: "turn interrupted".into()
                }
            }]
        );
    }
}
