//! Thread items: the units a client renders (a user message, an answer, a
//! command run, a file change, a plan). The turn loop emits them through
//! [`crate::protocol::Event`]; each front end (exec JSONL, app-server, C ABI)
//! maps them onto its own wire shape.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThreadItem {
    UserMessage(UserMessageItem),
    AgentMessage(AgentMessageItem),
    Reasoning(ReasoningItem),
    CommandExecution(CommandExecutionItem),
    FileChange(FileChangeItem),
    TodoList(TodoListItem),
    /// A non-fatal problem worth showing (e.g. fallback model metadata).
    Error(ErrorItem),
    /// A call to a tool the client defined (app-server `dynamicTools`).
    DynamicToolCall(DynamicToolCallItem),
    /// A call to a tool of an MCP server.
    McpToolCall(McpToolCallItem),
    /// The history was summarised and replaced (`thread/compact/start`).
    ContextCompaction(ContextCompactionItem),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextCompactionItem {
    pub id: String,
}

impl ThreadItem {
    pub fn id(&self) -> &str {
        match self {
            ThreadItem::UserMessage(i) => &i.id,
            ThreadItem::AgentMessage(i) => &i.id,
            ThreadItem::Reasoning(i) => &i.id,
            ThreadItem::CommandExecution(i) => &i.id,
            ThreadItem::FileChange(i) => &i.id,
            ThreadItem::TodoList(i) => &i.id,
            ThreadItem::Error(i) => &i.id,
            ThreadItem::ContextCompaction(i) => &i.id,
            ThreadItem::DynamicToolCall(i) => &i.id,
            ThreadItem::McpToolCall(i) => &i.id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserMessageItem {
    pub id: String,
    pub content: Vec<UserInput>,
    /// The client's own id for the message (`clientUserMessageId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// What a user can send in a turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UserInput {
    Text {
        text: String,
    },
    /// An image given as a URL (including `data:` URLs).
    Image {
        url: String,
    },
    /// An image file on disk; read and inlined when the request is built.
    LocalImage {
        path: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentMessageItem {
    pub id: String,
    /// What the user sees: `<oai-mem-citation>` blocks stripped.
    pub text: String,
    /// The stripped blocks, parsed (`None` when the message cites nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_citation: Option<crate::memory::MemoryCitation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasoningItem {
    pub id: String,
    pub summary: Vec<String>,
    pub content: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    InProgress,
    Completed,
    Failed,
    Declined,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandExecutionItem {
    /// The model's call id.
    pub id: String,
    /// The full argv, e.g. `["/bin/bash", "-lc", "echo hello"]`.
    pub argv: Vec<String>,
    /// The script as the model wrote it.
    pub script: String,
    pub cwd: PathBuf,
    pub status: CommandStatus,
    pub exit_code: Option<i32>,
    pub aggregated_output: String,
    pub duration_ms: Option<u64>,
    /// Process id of the command's process group leader, while known.
    pub process_id: Option<u32>,
}

impl CommandExecutionItem {
    /// The command as one shell-quoted string (`/bin/bash -lc 'echo hello'`).
    pub fn display_command(&self) -> String {
        crate::util::shell_join(&self.argv)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchStatus {
    InProgress,
    Completed,
    Failed,
    Declined,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FileChangeKind {
    Add,
    Delete,
    Update { move_path: Option<PathBuf> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileUpdateChange {
    pub path: PathBuf,
    pub kind: FileChangeKind,
    /// A unified diff of the change.
    pub diff: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileChangeItem {
    pub id: String,
    pub changes: Vec<FileUpdateChange>,
    pub status: PatchStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    InProgress,
    Completed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStep {
    pub step: String,
    pub status: StepStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TodoListItem {
    pub id: String,
    pub explanation: Option<String>,
    pub steps: Vec<PlanStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorItem {
    pub id: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynamicToolCallItem {
    /// The model's call id.
    pub id: String,
    pub tool: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub arguments: serde_json::Value,
    pub status: DynamicToolCallStatus,
    /// What the client answered (`inputText` / `inputImage` / ... items).
    #[serde(default)]
    pub content_items: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub success: Option<bool>,
    #[serde(default)]
    pub duration_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DynamicToolCallStatus {
    InProgress,
    Completed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpToolCallItem {
    /// The model's call id.
    pub id: String,
    /// The server's config key.
    pub server: String,
    /// The tool's own (raw MCP) name.
    pub tool: String,
    pub arguments: serde_json::Value,
    pub status: McpToolCallStatus,
    #[serde(default)]
    pub result: Option<McpToolResult>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<i64>,
    #[serde(default)]
    pub read_only_hint: Option<bool>,
}

/// A `tools/call` result as the server sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpToolResult {
    #[serde(default)]
    pub content: Vec<serde_json::Value>,
    #[serde(default)]
    pub structured_content: Option<serde_json::Value>,
    #[serde(default)]
    pub is_error: Option<bool>,
    #[serde(default)]
    pub meta: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum McpToolCallStatus {
    InProgress,
    Completed,
    Failed,
}
