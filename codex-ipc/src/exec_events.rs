//! `codex exec --json` / `--experimental-json`: one JSON object per line,
//! upstream's event and item shapes (`thread.started`, `turn.started`,
//! `item.started/updated/completed`, `turn.completed {usage}`,
//! `turn.failed`, `error`).

use std::collections::HashMap;

use codex_core::protocol::{
    CommandStatus, Event, FileChangeKind, PatchStatus, StepStatus, ThreadItem, TokenUsage,
};
use serde::{Deserialize, Serialize};

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

/// Maps core events to exec events, numbering items `item_0`, `item_1`, ...
#[derive(Debug, Default)]
pub struct ExecEventMapper {
    next_id: u64,
    ids: HashMap<String, String>,
    running_commands: Vec<(String, ExecItem)>,
}

impl ExecEventMapper {
    pub fn thread_started(&mut self, thread_id: &str) -> ExecEvent {
        ExecEvent::ThreadStarted {
            thread_id: thread_id.to_string(),
        }
    }

    fn id_for(&mut self, core_id: &str) -> String {
        if let Some(id) = self.ids.get(core_id) {
            return id.clone();
        }
        let id = self.fresh_id();
        self.ids.insert(core_id.to_string(), id.clone());
        id
    }

    fn fresh_id(&mut self) -> String {
        let id = format!("item_{}", self.next_id);
        self.next_id += 1;
        id
    }

    pub fn map(&mut self, event: &Event) -> Vec<ExecEvent> {
        match event {
            Event::Warning { message } => {
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
            Event::TurnStarted { .. } => vec![ExecEvent::TurnStarted {}],
            Event::ItemStarted { item, .. } => match item {
                ThreadItem::CommandExecution(_) | ThreadItem::TodoList(_) => {
                    let Some(ex) = self.item(item) else {
                        return vec![];
                    };
                    if matches!(item, ThreadItem::CommandExecution(_)) {
                        self.running_commands
                            .push((item.id().to_string(), ex.clone()));
                    }
                    vec![ExecEvent::ItemStarted { item: ex }]
                }
                _ => vec![],
            },
            Event::ItemUpdated { item, .. } => match item {
                ThreadItem::TodoList(_) => self
                    .item(item)
                    .map(|ex| vec![ExecEvent::ItemUpdated { item: ex }])
                    .unwrap_or_default(),
                _ => vec![],
            },
            Event::ItemCompleted { item, .. } => {
                if matches!(item, ThreadItem::UserMessage(_)) {
                    return vec![];
                }
                self.running_commands.retain(|(id, _)| id != item.id());
                self.item(item)
                    .map(|ex| vec![ExecEvent::ItemCompleted { item: ex }])
                    .unwrap_or_default()
            }
            Event::StreamRetry {
                message, details, ..
            } => vec![ExecEvent::Error {
                message: format!("{message} ({details})"),
            }],
            Event::TurnCompleted { usage, .. } => {
                let mut out = self.flush_running();
                out.push(ExecEvent::TurnCompleted {
                    usage: (*usage).into(),
                });
                out
            }
            Event::TurnFailed { error, .. } => {
                let mut out = self.flush_running();
                out.push(ExecEvent::Error {
                    message: error.message.clone(),
                });
                out.push(ExecEvent::TurnFailed {
                    error: ErrorInfo {
                        message: error.message.clone(),
                    },
                });
                out
            }
            Event::TurnAborted { reason, .. } => {
                let mut out = self.flush_running();
                let message = match reason {
                    codex_core::protocol::AbortReason::Interrupted => "turn interrupted",
                    codex_core::protocol::AbortReason::Deadline => "turn deadline exceeded",
                };
                out.push(ExecEvent::TurnFailed {
                    error: ErrorInfo {
                        message: message.into(),
                    },
                });
                out
            }
            Event::AgentMessageDelta { .. }
            | Event::ReasoningSummaryDelta { .. }
            | Event::CommandOutputDelta { .. }
            | Event::TokenUsage { .. } => vec![],
        }
    }

    /// Commands still running when the turn ends are reported completed.
    fn flush_running(&mut self) -> Vec<ExecEvent> {
        std::mem::take(&mut self.running_commands)
            .into_iter()
            .map(|(_, mut ex)| {
                if let ItemDetails::CommandExecution { status, .. } = &mut ex.details {
                    *status = ExecCommandStatus::Completed;
                }
                ExecEvent::ItemCompleted { item: ex }
            })
            .collect()
    }

    fn item(&mut self, item: &ThreadItem) -> Option<ExecItem> {
        let details = match item {
            ThreadItem::UserMessage(_) => return None,
            ThreadItem::AgentMessage(m) => ItemDetails::AgentMessage {
                text: m.text.clone(),
            },
            ThreadItem::Reasoning(r) => {
                let text = r
                    .summary
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
            ThreadItem::CommandExecution(c) => ItemDetails::CommandExecution {
                command: c.display_command(),
                aggregated_output: c.aggregated_output.clone(),
                exit_code: c.exit_code,
                status: match c.status {
                    CommandStatus::InProgress => ExecCommandStatus::InProgress,
                    CommandStatus::Completed => ExecCommandStatus::Completed,
                    CommandStatus::Failed => ExecCommandStatus::Failed,
                    CommandStatus::Declined => ExecCommandStatus::Declined,
                },
            },
            ThreadItem::FileChange(f) => {
                if f.status == PatchStatus::InProgress {
                    return None;
                }
                ItemDetails::FileChange {
                    changes: f
                        .changes
                        .iter()
                        .map(|c| FileChangeEntry {
                            path: c.path.display().to_string(),
                            kind: match c.kind {
                                FileChangeKind::Add => "add",
                                FileChangeKind::Delete => "delete",
                                FileChangeKind::Update { .. } => "update",
                            }
                            .into(),
                        })
                        .collect(),
                    status: if f.status == PatchStatus::Completed {
                        ExecPatchStatus::Completed
                    } else {
                        ExecPatchStatus::Failed
                    },
                }
            }
            ThreadItem::TodoList(t) => ItemDetails::TodoList {
                items: t
                    .steps
                    .iter()
                    .map(|s| TodoEntry {
                        text: s.step.clone(),
                        completed: s.status == StepStatus::Completed,
                    })
                    .collect(),
            },
            ThreadItem::Error(e) => ItemDetails::Error {
                message: e.message.clone(),
            },
        };
        Some(ExecItem {
            id: self.id_for(item.id()),
            details,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codex_core::protocol::{AgentMessageItem, CommandExecutionItem};

    #[test]
    fn serializes_like_upstream() {
        let mut m = ExecEventMapper::default();
        let started = m.thread_started("t1");
        assert_eq!(
            serde_json::to_string(&started).unwrap(),
            r#"{"type":"thread.started","thread_id":"t1"}"#
        );
        let cmd = CommandExecutionItem {
            id: "call_1".into(),
            argv: vec!["/bin/bash".into(), "-lc".into(), "echo hello".into()],
            script: "echo hello".into(),
            cwd: "/w".into(),
            status: CommandStatus::InProgress,
            exit_code: None,
            aggregated_output: String::new(),
            duration_ms: None,
            process_id: None,
        };
        let ev = m.map(&Event::ItemStarted {
            turn_id: "u".into(),
            item: ThreadItem::CommandExecution(cmd),
        });
        assert_eq!(
            serde_json::to_string(&ev[0]).unwrap(),
            r#"{"type":"item.started","item":{"id":"item_0","type":"command_execution","command":"/bin/bash -lc 'echo hello'","aggregated_output":"","exit_code":null,"status":"in_progress"}}"#
        );
        let ev = m.map(&Event::ItemCompleted {
            turn_id: "u".into(),
            item: ThreadItem::AgentMessage(AgentMessageItem {
                id: "msg".into(),
                text: "hi".into(),
            }),
        });
        assert_eq!(
            serde_json::to_string(&ev[0]).unwrap(),
            r#"{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"hi"}}"#
        );
        let ev = m.map(&Event::TurnCompleted {
            turn_id: "u".into(),
            usage: TokenUsage {
                input_tokens: 20,
                output_tokens: 10,
                total_tokens: 30,
                ..Default::default()
            },
            last_agent_message: None,
        });
        // The still-running command is flushed first.
        assert_eq!(ev.len(), 2);
        assert_eq!(
            serde_json::to_string(&ev[1]).unwrap(),
            r#"{"type":"turn.completed","usage":{"input_tokens":20,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":10,"reasoning_output_tokens":0}}"#
        );
    }
}
