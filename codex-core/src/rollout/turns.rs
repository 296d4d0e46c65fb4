//! Turns as recorded in a rollout: rebuilt from `event_msg` lines
//! (`task_started`, `item_completed`, `task_complete`, `turn_aborted`,
//! `error`, and the classic `user_message` / `agent_message`), for files we
//! wrote and files upstream wrote.

use serde_json::Value;

use super::line::RolloutItem;
use crate::protocol::{
    AgentMessageItem, CommandExecutionItem, CommandStatus, ContextCompactionItem, FileChangeItem,
    FileChangeKind, FileUpdateChange, PatchStatus, ReasoningItem, ThreadItem, UserInput,
    UserMessageItem,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordedTurnStatus {
    /// No end recorded (the writer died, or the turn is running now).
    InProgress,
    Completed,
    Failed,
    Interrupted,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordedItem {
    pub item: ThreadItem,
    /// Rollout ordinal of the line that recorded it.
    pub ordinal: u64,
    pub started_at_ms: Option<i64>,
    pub completed_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordedTurn {
    pub id: String,
    /// Rollout ordinal of the line that started it.
    pub ordinal: u64,
    pub status: RecordedTurnStatus,
    pub items: Vec<RecordedItem>,
    pub error: Option<String>,
    /// Unix seconds.
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub duration_ms: Option<i64>,
}

/// Rebuilds the turns of a rollout, oldest first (items numbered by their
/// index).
pub fn recorded_turns(items: &[RolloutItem]) -> Vec<RecordedTurn> {
    let ordinals: Vec<u64> = (0..items.len() as u64).collect();
    recorded_turns_at(items, &ordinals)
}

/// [`recorded_turns`] with each item's rollout ordinal
/// ([`super::LoadedRollout::ordinals`]).
pub fn recorded_turns_at(items: &[RolloutItem], ordinals: &[u64]) -> Vec<RecordedTurn> {
    let mut turns: Vec<RecordedTurn> = Vec::new();
    // Whether the current turn has `item_completed` lines (newer writers);
    // if not, the classic user/agent message events stand in.
    let mut has_item_events = false;
    let mut classic: Vec<RecordedItem> = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let RolloutItem::EventMsg(ev) = item else {
            continue;
        };
        let ordinal = ordinals.get(n).copied().unwrap_or(n as u64);
        let kind = ev.get("type").and_then(Value::as_str).unwrap_or_default();
        let turn_id = ev
            .get("turn_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        match kind {
            "task_started" | "turn_started" => {
                finish_classic(&mut turns, &mut classic, has_item_events);
                has_item_events = false;
                turns.push(RecordedTurn {
                    id: turn_id.unwrap_or_else(|| format!("turn-{}", turns.len() + 1)),
                    ordinal,
                    status: RecordedTurnStatus::InProgress,
                    items: Vec::new(),
                    error: None,
                    started_at: ev.get("started_at").and_then(Value::as_i64),
                    completed_at: None,
                    duration_ms: None,
                });
            }
            "item_completed" => {
                if let Some(parsed) = ev.get("item").and_then(parse_turn_item) {
                    has_item_events = true;
                    let turn = current(&mut turns, ordinal);
                    turn.items.push(RecordedItem {
                        item: parsed,
                        ordinal,
                        started_at_ms: ev.get("started_at_ms").and_then(Value::as_i64),
                        completed_at_ms: ev.get("completed_at_ms").and_then(Value::as_i64),
                    });
                }
            }
            "user_message" => {
                let text = ev
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                classic.push(RecordedItem {
                    item: ThreadItem::UserMessage(UserMessageItem {
                        id: format!("user-{}", classic.len()),
                        content: vec![UserInput::Text {
                            text: text.to_string(),
                        }],
                        client_id: None,
                    }),
                    ordinal,
                    started_at_ms: None,
                    completed_at_ms: None,
                });
                current(&mut turns, ordinal);
            }
            "agent_message" => {
                let text = ev
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let (text, memory_citation) = crate::memory::strip_citations(text);
                classic.push(RecordedItem {
                    item: ThreadItem::AgentMessage(AgentMessageItem {
                        id: format!("agent-{}", classic.len()),
                        text,
                        memory_citation,
                    }),
                    ordinal,
                    started_at_ms: None,
                    completed_at_ms: None,
                });
            }
            "error" => {
                let turn = current(&mut turns, ordinal);
                turn.error = ev
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            "task_complete" | "turn_complete" | "turn_aborted" => {
                finish_classic(&mut turns, &mut classic, has_item_events);
                let turn = current(&mut turns, ordinal);
                turn.status = if kind == "turn_aborted" {
                    RecordedTurnStatus::Interrupted
                } else if turn.error.is_some() {
                    RecordedTurnStatus::Failed
                } else {
                    RecordedTurnStatus::Completed
                };
                turn.completed_at = ev.get("completed_at").and_then(Value::as_i64);
                turn.duration_ms = ev.get("duration_ms").and_then(Value::as_i64);
            }
            _ => {}
        }
    }
    finish_classic(&mut turns, &mut classic, has_item_events);
    turns
}

/// The turn being recorded; a turn starting at `ordinal` when none has
/// started (files without `task_started`).
fn current(turns: &mut Vec<RecordedTurn>, ordinal: u64) -> &mut RecordedTurn {
    if turns.is_empty() {
        turns.push(RecordedTurn {
            id: "turn-1".into(),
            ordinal,
            status: RecordedTurnStatus::InProgress,
            items: Vec::new(),
            error: None,
            started_at: None,
            completed_at: None,
            duration_ms: None,
        });
    }
    let last = turns.len() - 1;
    &mut turns[last]
}

fn finish_classic(
    turns: &mut Vec<RecordedTurn>,
    classic: &mut Vec<RecordedItem>,
    has_item_events: bool,
) {
    if classic.is_empty() {
        return;
    }
    let items = std::mem::take(classic);
    if !has_item_events {
        let ordinal = items.first().map(|i| i.ordinal).unwrap_or(0);
        current(turns, ordinal).items.extend(items);
    }
}

/// The first user text of a thread (its preview).
pub fn preview(turns: &[RecordedTurn]) -> Option<String> {
    turns
        .iter()
        .flat_map(|t| &t.items)
        .find_map(|i| match &i.item {
            ThreadItem::UserMessage(m) => m.content.iter().find_map(|c| match c {
                UserInput::Text { text } => Some(text.clone()),
                _ => None,
            }),
            _ => None,
        })
}

fn text_parts(v: Option<&Value>) -> String {
    v.and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Parses an `item_completed` item (upstream's `TurnItem` shapes).
pub fn parse_turn_item(v: &Value) -> Option<ThreadItem> {
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Some(match v.get("type").and_then(Value::as_str)? {
        "UserMessage" => ThreadItem::UserMessage(UserMessageItem {
            id,
            content: v
                .get("content")
                .and_then(Value::as_array)
                .map(|parts| {
                    parts
                        .iter()
                        .filter_map(|p| match p.get("type").and_then(Value::as_str) {
                            Some("text") => Some(UserInput::Text {
                                text: p
                                    .get("text")
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                                    .into(),
                            }),
                            Some("image") => Some(UserInput::Image {
                                url: p
                                    .get("url")
                                    .or_else(|| p.get("image_url"))
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                                    .into(),
                            }),
                            Some("localImage" | "local_image") => Some(UserInput::LocalImage {
                                path: p
                                    .get("path")
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                                    .into(),
                            }),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            client_id: None,
        }),
        "AgentMessage" => {
            // Writers record the stripped text and the parsed citation; a raw
            // text (older writers) is stripped here, so every reader agrees.
            let (text, parsed) = crate::memory::strip_citations(&text_parts(v.get("content")));
            let recorded = v
                .get("memory_citation")
                .filter(|c| !c.is_null())
                .and_then(|c| serde_json::from_value(c.clone()).ok());
            ThreadItem::AgentMessage(AgentMessageItem {
                id,
                text,
                memory_citation: recorded.or(parsed),
            })
        }
        "ContextCompaction" => ThreadItem::ContextCompaction(ContextCompactionItem { id }),
        "Reasoning" => ThreadItem::Reasoning(ReasoningItem {
            id,
            summary: strings(v.get("summary_text")),
            content: strings(v.get("raw_content")),
        }),
        "CommandExecution" => {
            let argv = strings(v.get("command"));
            let script = v
                .pointer("/parsed_cmd/0/cmd")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| argv.last().cloned())
                .unwrap_or_default();
            let cwd = v.get("cwd").and_then(Value::as_str).unwrap_or_default();
            ThreadItem::CommandExecution(CommandExecutionItem {
                id,
                argv,
                script,
                cwd: cwd.strip_prefix("file://").unwrap_or(cwd).into(),
                status: match v.get("status").and_then(Value::as_str) {
                    Some("completed") => CommandStatus::Completed,
                    Some("declined") => CommandStatus::Declined,
                    Some("in_progress") => CommandStatus::InProgress,
                    _ => CommandStatus::Failed,
                },
                exit_code: v.get("exit_code").and_then(Value::as_i64).map(|c| c as i32),
                aggregated_output: v
                    .get("aggregated_output")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                duration_ms: v.get("duration").and_then(|d| {
                    let secs = d.get("secs")?.as_u64()?;
                    let nanos = d.get("nanos").and_then(Value::as_u64).unwrap_or(0);
                    Some(secs * 1000 + nanos / 1_000_000)
                }),
                process_id: None,
            })
        }
        "FileChange" => ThreadItem::FileChange(FileChangeItem {
            id,
            changes: v
                .get("changes")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .map(|c| FileUpdateChange {
                            path: c
                                .get("path")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .into(),
                            kind: match c.pointer("/kind/type").and_then(Value::as_str) {
                                Some("add") => FileChangeKind::Add,
                                Some("delete") => FileChangeKind::Delete,
                                _ => FileChangeKind::Update {
                                    move_path: c
                                        .pointer("/kind/move_path")
                                        .and_then(Value::as_str)
                                        .map(Into::into),
                                },
                            },
                            diff: c
                                .get("diff")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .into(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            status: match v.get("status").and_then(Value::as_str) {
                Some("completed") => PatchStatus::Completed,
                Some("declined") => PatchStatus::Declined,
                _ => PatchStatus::Failed,
            },
        }),
        // Written by us in the item's own serde shape.
        "DynamicToolCall" => ThreadItem::DynamicToolCall(serde_json::from_value(v.clone()).ok()?),
        // Upstream's shape (`McpToolCall` with `duration`, camelCase result).
        "McpToolCall" => ThreadItem::McpToolCall(crate::protocol::McpToolCallItem {
            id,
            server: str_field(v, "server"),
            tool: str_field(v, "tool"),
            arguments: v.get("arguments").cloned().unwrap_or(Value::Null),
            status: match v.get("status").and_then(Value::as_str) {
                Some("completed") => crate::protocol::McpToolCallStatus::Completed,
                Some("in_progress") | Some("inProgress") => {
                    crate::protocol::McpToolCallStatus::InProgress
                }
                _ => crate::protocol::McpToolCallStatus::Failed,
            },
            result: v.get("result").filter(|r| r.is_object()).map(|r| {
                crate::protocol::McpToolResult {
                    content: r
                        .get("content")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                    structured_content: r.get("structuredContent").cloned(),
                    is_error: r.get("isError").and_then(Value::as_bool),
                    meta: r.get("_meta").cloned(),
                }
            }),
            error: v
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_string),
            duration_ms: v.get("duration").and_then(|d| {
                let secs = d.get("secs")?.as_i64()?;
                let nanos = d.get("nanos").and_then(Value::as_i64).unwrap_or(0);
                Some(secs * 1000 + nanos / 1_000_000)
            }),
            read_only_hint: None,
        }),
        _ => return None,
    })
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(v: Value) -> RolloutItem {
        RolloutItem::EventMsg(v)
    }

    #[test]
    fn rebuilds_turns_and_statuses() {
        let items = vec![
            ev(json!({"type": "task_started", "turn_id": "t1", "started_at": 10})),
            ev(
                json!({"type": "item_completed", "item": {"type": "UserMessage", "id": "u1", "content": [{"type": "text", "text": "hi", "text_elements": []}]}}),
            ),
            ev(json!({"type": "user_message", "message": "hi"})),
            ev(
                json!({"type": "item_completed", "item": {"type": "CommandExecution", "id": "call_1", "command": ["/bin/bash", "-lc", "echo x"], "cwd": "file:///w", "aggregated_output": "x\n", "exit_code": 0, "status": "completed", "parsed_cmd": [{"type": "unknown", "cmd": "echo x"}]}}),
            ),
            ev(
                json!({"type": "item_completed", "item": {"type": "AgentMessage", "id": "m1", "content": [{"type": "Text", "text": "done"}]}}),
            ),
            ev(json!({"type": "task_complete", "turn_id": "t1", "completed_at": 12})),
            ev(json!({"type": "task_started", "turn_id": "t2"})),
            ev(json!({"type": "user_message", "message": "again"})),
            ev(json!({"type": "turn_aborted", "turn_id": "t2", "reason": "interrupted"})),
            ev(json!({"type": "task_started", "turn_id": "t3"})),
            ev(json!({"type": "error", "message": "boom"})),
            ev(json!({"type": "task_complete", "turn_id": "t3"})),
            ev(json!({"type": "task_started", "turn_id": "t4"})),
        ];
        let turns = recorded_turns(&items);
        assert_eq!(turns.len(), 4);
        // Positions: the turn's start line, each item's own line.
        let ordinals: Vec<u64> = (0..items.len() as u64).map(|n| n * 2 + 1).collect();
        let at = recorded_turns_at(&items, &ordinals);
        assert_eq!(
            at.iter().map(|t| t.ordinal).collect::<Vec<_>>(),
            [1, 13, 19, 25]
        );
        assert_eq!(
            at[0].items.iter().map(|i| i.ordinal).collect::<Vec<_>>(),
            [3, 7, 9]
        );
        assert_eq!(at[1].items[0].ordinal, 15, "a classic item: its own line");
        assert_eq!(turns[0].status, RecordedTurnStatus::Completed);
        assert_eq!(
            turns[0].items.len(),
            3,
            "classic events do not duplicate items"
        );
        match &turns[0].items[1].item {
            ThreadItem::CommandExecution(c) => {
                assert_eq!(c.script, "echo x");
                assert_eq!(c.cwd, std::path::PathBuf::from("/w"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(turns[1].status, RecordedTurnStatus::Interrupted);
        assert_eq!(turns[1].items.len(), 1, "classic user message stands in");
        assert_eq!(turns[2].status, RecordedTurnStatus::Failed);
        assert_eq!(turns[2].error.as_deref(), Some("boom"));
        assert_eq!(turns[3].status, RecordedTurnStatus::InProgress);
        assert_eq!(preview(&turns).as_deref(), Some("hi"));
    }
}
