//! The `ThreadItem` wire shapes: what a user message, an answer, a
//! reasoning summary, a command run or a file change looks like in
//! `item/*` notifications and in a `Turn`'s items.

use std::path::Path;

use codex_core::memory::MemoryCitation;
use codex_core::protocol::{
    CommandStatus, DynamicToolCallStatus, FileChangeKind, McpToolCallStatus, PatchStatus,
    ThreadItem, UserInput,
};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// An item with its lifecycle times (Unix ms).
#[derive(Debug, Clone)]
pub struct ItemView {
    pub item: ThreadItem,
    pub started_at_ms: Option<i64>,
    pub completed_at_ms: Option<i64>,
}

/// `UserInput`. `text_elements` is snake_case on the wire, as upstream
/// sends it.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum UserInputWire<'a> {
    Text {
        text: &'a str,
        text_elements: [Value; 0],
    },
    Image {
        url: &'a str,
    },
    LocalImage {
        path: &'a Path,
    },
}

impl<'a> From<&'a UserInput> for UserInputWire<'a> {
    fn from(i: &'a UserInput) -> Self {
        match i {
            UserInput::Text { text } => UserInputWire::Text {
                text,
                text_elements: [],
            },
            UserInput::Image { url } => UserInputWire::Image { url },
            UserInput::LocalImage { path } => UserInputWire::LocalImage { path },
        }
    }
}

/// Parses one `UserInput` of `turn/start`.
pub fn user_input_from_json(v: &Value) -> Result<UserInput, String> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    match v.get("type").and_then(Value::as_str) {
        Some("text") => Ok(UserInput::Text {
            text: s("text").ok_or("missing field `text`")?,
        }),
        Some("image") => Ok(UserInput::Image {
            url: s("url").ok_or("image input needs `url`")?,
        }),
        Some("localImage") => Ok(UserInput::LocalImage {
            path: s("path").ok_or("missing field `path`")?.into(),
        }),
        Some(other) => Err(format!("unsupported input type `{other}`")),
        None => Err("missing field `type`".into()),
    }
}

/// `CommandAction`: we do not parse commands, so every one is `unknown`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum CommandAction {
    Unknown { command: String },
}

/// `CommandExecutionStatus` / `PatchApplyStatus`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum ItemStatusWire {
    InProgress,
    Completed,
    Failed,
    Declined,
}

/// `ThreadItem` (the variants we produce).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum ThreadItemWire<'a> {
    #[serde(rename_all = "camelCase")]
    UserMessage {
        id: &'a str,
        content: Vec<UserInputWire<'a>>,
        client_id: Option<String>,
        started_at_ms: Option<i64>,
        completed_at_ms: Option<i64>,
    },
    #[serde(rename_all = "camelCase")]
    AgentMessage {
        id: &'a str,
        text: &'a str,
        phase: Option<String>,
        delivery: Option<Value>,
        memory_citation: Option<MemoryCitationWire<'a>>,
        moderation: Option<Value>,
        questions: Option<Value>,
        started_at_ms: Option<i64>,
        completed_at_ms: Option<i64>,
    },
    #[serde(rename_all = "camelCase")]
    Reasoning {
        id: &'a str,
        summary: &'a [String],
        content: &'a [String],
        started_at_ms: Option<i64>,
        completed_at_ms: Option<i64>,
    },
    #[serde(rename_all = "camelCase")]
    CommandExecution {
        id: &'a str,
        command: String,
        cwd: &'a Path,
        command_actions: [CommandAction; 1],
        status: ItemStatusWire,
        source: CommandSourceWire,
        /// `null` until the command has finished.
        aggregated_output: Option<&'a str>,
        exit_code: Option<i32>,
        duration_ms: Option<u64>,
        process_id: Option<String>,
        plugin_id: Option<String>,
        script_path: Option<String>,
        started_at_ms: Option<i64>,
        completed_at_ms: Option<i64>,
    },
    #[serde(rename_all = "camelCase")]
    ContextCompaction {
        id: &'a str,
        started_at_ms: Option<i64>,
        completed_at_ms: Option<i64>,
    },
    #[serde(rename_all = "camelCase")]
    FileChange {
        id: &'a str,
        changes: Vec<FileUpdateChangeWire<'a>>,
        status: ItemStatusWire,
        started_at_ms: Option<i64>,
        completed_at_ms: Option<i64>,
    },
    /// `DynamicToolCallThreadItem` (no timestamps upstream).
    #[serde(rename_all = "camelCase")]
    DynamicToolCall {
        id: &'a str,
        tool: &'a str,
        namespace: Option<&'a str>,
        arguments: &'a Value,
        status: ItemStatusWire,
        content_items: Option<&'a [Value]>,
        success: Option<bool>,
        duration_ms: Option<i64>,
    },
    /// `McpToolCallThreadItem`.
    #[serde(rename_all = "camelCase")]
    McpToolCall {
        id: &'a str,
        server: &'a str,
        tool: &'a str,
        arguments: &'a Value,
        status: ItemStatusWire,
        result: Option<McpToolCallResultWire<'a>>,
        error: Option<McpToolCallErrorWire<'a>>,
        duration_ms: Option<i64>,
        read_only_hint: Option<bool>,
        started_at_ms: Option<i64>,
        completed_at_ms: Option<i64>,
    },
}

/// `MemoryCitation` (experimental schema): the `<oai-mem-citation>` block
/// codex-core stripped from the message; its rollout ids are `threadIds`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MemoryCitationWire<'a> {
    entries: Vec<MemoryCitationEntryWire<'a>>,
    thread_ids: &'a [String],
}

/// `MemoryCitationEntry`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MemoryCitationEntryWire<'a> {
    path: &'a str,
    line_start: u32,
    line_end: u32,
    note: &'a str,
}

impl<'a> From<&'a MemoryCitation> for MemoryCitationWire<'a> {
    fn from(c: &'a MemoryCitation) -> Self {
        MemoryCitationWire {
            entries: c
                .entries
                .iter()
                .map(|e| MemoryCitationEntryWire {
                    path: &e.path,
                    line_start: e.line_start,
                    line_end: e.line_end,
                    note: &e.note,
                })
                .collect(),
            thread_ids: &c.rollout_ids,
        }
    }
}

/// `McpToolCallResult`.
#[derive(Serialize)]
struct McpToolCallResultWire<'a> {
    content: &'a [Value],
    #[serde(rename = "structuredContent")]
    structured_content: Option<&'a Value>,
    #[serde(rename = "_meta")]
    meta: Option<&'a Value>,
}

/// `McpToolCallError`.
#[derive(Serialize)]
struct McpToolCallErrorWire<'a> {
    message: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum CommandSourceWire {
    Agent,
}

/// `FileUpdateChange`.
#[derive(Serialize)]
struct FileUpdateChangeWire<'a> {
    path: &'a Path,
    kind: PatchChangeKindWire<'a>,
    diff: &'a str,
}

/// `PatchChangeKind` (`move_path` is snake_case upstream too).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum PatchChangeKindWire<'a> {
    Add,
    Delete,
    Update { move_path: Option<&'a Path> },
}

impl ItemView {
    /// Whether the item is a v2 `ThreadItem` (plans travel as
    /// `turn/plan/updated`, warnings as `warning`).
    pub fn is_v2_item(&self) -> bool {
        !matches!(self.item, ThreadItem::TodoList(_) | ThreadItem::Error(_))
    }

    fn wire(&self) -> Option<ThreadItemWire<'_>> {
        let started_at_ms = self.started_at_ms;
        let completed_at_ms = self.completed_at_ms;
        Some(match &self.item {
            ThreadItem::UserMessage(m) => ThreadItemWire::UserMessage {
                id: &m.id,
                content: m.content.iter().map(UserInputWire::from).collect(),
                client_id: m.client_id.clone(),
                started_at_ms,
                completed_at_ms,
            },
            ThreadItem::AgentMessage(m) => ThreadItemWire::AgentMessage {
                id: &m.id,
                text: &m.text,
                phase: None,
                delivery: None,
                memory_citation: m.memory_citation.as_ref().map(MemoryCitationWire::from),
                moderation: None,
                questions: None,
                started_at_ms,
                completed_at_ms,
            },
            ThreadItem::Reasoning(r) => ThreadItemWire::Reasoning {
                id: &r.id,
                summary: &r.summary,
                content: &r.content,
                started_at_ms,
                completed_at_ms,
            },
            ThreadItem::CommandExecution(c) => ThreadItemWire::CommandExecution {
                id: &c.id,
                command: c.display_command(),
                cwd: &c.cwd,
                command_actions: [CommandAction::Unknown {
                    command: c.script.clone(),
                }],
                status: match c.status {
                    CommandStatus::InProgress => ItemStatusWire::InProgress,
                    CommandStatus::Completed => ItemStatusWire::Completed,
                    CommandStatus::Failed => ItemStatusWire::Failed,
                    CommandStatus::Declined => ItemStatusWire::Declined,
                },
                source: CommandSourceWire::Agent,
                aggregated_output: (c.status != CommandStatus::InProgress)
                    .then_some(c.aggregated_output.as_str()),
                exit_code: c.exit_code,
                duration_ms: c.duration_ms,
                process_id: c.process_id.map(|p| p.to_string()),
                plugin_id: None,
                script_path: None,
                started_at_ms,
                completed_at_ms,
            },
            ThreadItem::FileChange(f) => ThreadItemWire::FileChange {
                id: &f.id,
                changes: f
                    .changes
                    .iter()
                    .map(|c| FileUpdateChangeWire {
                        path: &c.path,
                        kind: match &c.kind {
                            FileChangeKind::Add => PatchChangeKindWire::Add,
                            FileChangeKind::Delete => PatchChangeKindWire::Delete,
                            FileChangeKind::Update { move_path } => PatchChangeKindWire::Update {
                                move_path: move_path.as_deref(),
                            },
                        },
                        diff: &c.diff,
                    })
                    .collect(),
                status: match f.status {
                    PatchStatus::InProgress => ItemStatusWire::InProgress,
                    PatchStatus::Completed => ItemStatusWire::Completed,
                    PatchStatus::Failed => ItemStatusWire::Failed,
                    PatchStatus::Declined => ItemStatusWire::Declined,
                },
                started_at_ms,
                completed_at_ms,
            },
            ThreadItem::ContextCompaction(c) => ThreadItemWire::ContextCompaction {
                id: &c.id,
                started_at_ms,
                completed_at_ms,
            },
            ThreadItem::DynamicToolCall(d) => ThreadItemWire::DynamicToolCall {
                id: &d.id,
                tool: &d.tool,
                namespace: d.namespace.as_deref(),
                arguments: &d.arguments,
                status: match d.status {
                    DynamicToolCallStatus::InProgress => ItemStatusWire::InProgress,
                    DynamicToolCallStatus::Completed => ItemStatusWire::Completed,
                    DynamicToolCallStatus::Failed => ItemStatusWire::Failed,
                },
                content_items: d.content_items.as_deref(),
                success: d.success,
                duration_ms: d.duration_ms,
            },
            ThreadItem::McpToolCall(m) => ThreadItemWire::McpToolCall {
                id: &m.id,
                server: &m.server,
                tool: &m.tool,
                arguments: &m.arguments,
                status: match m.status {
                    McpToolCallStatus::InProgress => ItemStatusWire::InProgress,
                    McpToolCallStatus::Completed => ItemStatusWire::Completed,
                    McpToolCallStatus::Failed => ItemStatusWire::Failed,
                },
                result: m.result.as_ref().map(|r| McpToolCallResultWire {
                    content: &r.content,
                    structured_content: r.structured_content.as_ref(),
                    meta: r.meta.as_ref(),
                }),
                error: m
                    .error
                    .as_deref()
                    .map(|message| McpToolCallErrorWire { message }),
                duration_ms: m.duration_ms,
                read_only_hint: m.read_only_hint,
                started_at_ms,
                completed_at_ms,
            },
            ThreadItem::TodoList(_) | ThreadItem::Error(_) => return None,
        })
    }
}

/// Serializes as a v2 `ThreadItem`; an item that is none (see
/// [`ItemView::is_v2_item`]) is an error, so callers filter first.
impl Serialize for ItemView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.wire() {
            Some(w) => w.serialize(s),
            None => Err(serde::ser::Error::custom(format!(
                "item {} is not a v2 ThreadItem",
                self.item.id()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codex_core::protocol::{
        AgentMessageItem, CommandExecutionItem, FileChangeItem, FileUpdateChange, ReasoningItem,
        UserMessageItem,
    };
    use serde_json::json;

    fn v<T: Serialize>(t: &T) -> Value {
        serde_json::to_value(t).unwrap()
    }

    fn view(item: ThreadItem) -> ItemView {
        ItemView {
            item,
            started_at_ms: Some(1),
            completed_at_ms: Some(2),
        }
    }

    #[test]
    fn items_match_upstream_shapes() {
        let user = view(ThreadItem::UserMessage(UserMessageItem {
            id: "u".into(),
            content: vec![
                UserInput::Text { text: "hi".into() },
                UserInput::Image {
                    url: "data:x".into(),
                },
                UserInput::LocalImage {
                    path: "/i.png".into(),
                },
            ],
            client_id: None,
        }));
        assert_eq!(
            v(&user),
            json!({"type": "userMessage", "id": "u", "clientId": null, "startedAtMs": 1,
            "completedAtMs": 2, "content": [
                {"type": "text", "text": "hi", "text_elements": []},
                {"type": "image", "url": "data:x"},
                {"type": "localImage", "path": "/i.png"},
            ]})
        );
        let agent = view(ThreadItem::AgentMessage(AgentMessageItem {
            id: "msg".into(),
            text: "answer".into(),
            memory_citation: None,
        }));
        assert_eq!(
            v(&agent),
            json!({"type": "agentMessage", "id": "msg", "text": "answer", "phase": null,
                "delivery": null, "memoryCitation": null, "moderation": null,
                "questions": null, "startedAtMs": 1, "completedAtMs": 2})
        );
        let (text, memory_citation) = codex_core::memory::strip_citations(
            "hi\n<oai-mem-citation><citation_entries>\nMEMORY.md:1-2|note=[demo]\n</citation_entries><rollout_ids>\nr1\n</rollout_ids></oai-mem-citation>",
        );
        let cited = view(ThreadItem::AgentMessage(AgentMessageItem {
            id: "msg".into(),
            text,
            memory_citation,
        }));
        assert_eq!(v(&cited)["text"], "hi\n");
        assert_eq!(
            v(&cited)["memoryCitation"],
            json!({"entries": [{"path": "MEMORY.md", "lineStart": 1, "lineEnd": 2,
                "note": "demo"}], "threadIds": ["r1"]})
        );
        let reasoning = view(ThreadItem::Reasoning(ReasoningItem {
            id: "r".into(),
            summary: vec!["s".into()],
            content: vec![],
        }));
        assert_eq!(
            v(&reasoning),
            json!({"type": "reasoning", "id": "r", "summary": ["s"], "content": [],
                "startedAtMs": 1, "completedAtMs": 2})
        );
        let mut cmd = CommandExecutionItem {
            id: "call_1".into(),
            argv: vec!["/bin/bash".into(), "-lc".into(), "echo hello".into()],
            script: "echo hello".into(),
            cwd: "/w".into(),
            status: CommandStatus::InProgress,
            exit_code: None,
            aggregated_output: "partial".into(),
            duration_ms: None,
            process_id: Some(42),
        };
        let running = v(&view(ThreadItem::CommandExecution(cmd.clone())));
        assert_eq!(
            running,
            json!({"type": "commandExecution", "id": "call_1",
                "command": "/bin/bash -lc 'echo hello'", "cwd": "/w",
                "commandActions": [{"type": "unknown", "command": "echo hello"}],
                "status": "inProgress", "source": "agent", "aggregatedOutput": null,
                "exitCode": null, "durationMs": null, "processId": "42", "pluginId": null,
                "scriptPath": null, "startedAtMs": 1, "completedAtMs": 2})
        );
        cmd.status = CommandStatus::Completed;
        cmd.exit_code = Some(0);
        cmd.aggregated_output = "hello\n".into();
        let done = v(&view(ThreadItem::CommandExecution(cmd)));
        assert_eq!(done["aggregatedOutput"], "hello\n");
        assert_eq!(done["status"], "completed");
        assert_eq!(done["exitCode"], 0);
        let patch = view(ThreadItem::FileChange(FileChangeItem {
            id: "call_p".into(),
            changes: vec![
                FileUpdateChange {
                    path: "/a".into(),
                    kind: FileChangeKind::Add,
                    diff: "+x".into(),
                },
                FileUpdateChange {
                    path: "/b".into(),
                    kind: FileChangeKind::Update {
                        move_path: Some("/c".into()),
                    },
                    diff: "@@".into(),
                },
            ],
            status: PatchStatus::Declined,
        }));
        assert_eq!(
            v(&patch),
            json!({"type": "fileChange", "id": "call_p", "status": "declined",
            "startedAtMs": 1, "completedAtMs": 2, "changes": [
                {"path": "/a", "kind": {"type": "add"}, "diff": "+x"},
                {"path": "/b", "kind": {"type": "update", "move_path": "/c"}, "diff": "@@"},
            ]})
        );
        let plan = view(ThreadItem::TodoList(codex_core::protocol::TodoListItem {
            id: "p".into(),
            explanation: None,
            steps: vec![],
        }));
        assert!(!plan.is_v2_item());
        assert!(serde_json::to_value(&plan).is_err());
    }
}
