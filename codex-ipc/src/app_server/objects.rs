//! Wire shapes of the app-server v2 objects we send: `Thread`, `Turn`,
//! `ThreadItem`, `SandboxPolicy`, token usage. Built as JSON values so that
//! every field upstream always sends (often `null`) is present, and every
//! optional-but-not-nullable one is omitted rather than `null` (the schema
//! rejects those).

use std::path::PathBuf;

use codex_core::config::{AskForApproval, SandboxPolicy};
use codex_core::protocol::{
    CommandStatus, FileChangeKind, PatchStatus, StepStatus, ThreadItem, TodoListItem, TokenUsage,
    TurnErrorKind, UserInput,
};
use serde_json::{json, Value};

/// What a `Thread` object shows.
#[derive(Debug, Clone)]
pub struct ThreadView {
    pub id: String,
    pub path: Option<PathBuf>,
    pub cwd: PathBuf,
    pub model: Option<String>,
    pub model_provider: String,
    pub reasoning_effort: Option<String>,
    pub preview: String,
    pub name: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub source: String,
    pub originator: Option<String>,
    pub cli_version: String,
    pub ephemeral: bool,
    pub status: ThreadStatusView,
    pub turns: Vec<TurnView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadStatusView {
    NotLoaded,
    Idle,
    Active { waiting_on_approval: bool },
}

impl ThreadStatusView {
    pub fn to_json(self) -> Value {
        match self {
            ThreadStatusView::NotLoaded => json!({"type": "notLoaded"}),
            ThreadStatusView::Idle => json!({"type": "idle"}),
            ThreadStatusView::Active {
                waiting_on_approval,
            } => {
                let flags: Vec<&str> = if waiting_on_approval {
                    vec!["waitingOnApproval"]
                } else {
                    vec![]
                };
                json!({"type": "active", "activeFlags": flags})
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnStatusView {
    InProgress,
    Completed,
    Failed,
    Interrupted,
}

impl TurnStatusView {
    fn as_str(self) -> &'static str {
        match self {
            TurnStatusView::InProgress => "inProgress",
            TurnStatusView::Completed => "completed",
            TurnStatusView::Failed => "failed",
            TurnStatusView::Interrupted => "interrupted",
        }
    }
}

/// An item with its lifecycle times (Unix ms).
#[derive(Debug, Clone)]
pub struct ItemView {
    pub item: ThreadItem,
    pub started_at_ms: Option<i64>,
    pub completed_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct TurnView {
    pub id: String,
    pub status: TurnStatusView,
    pub items: Vec<ItemView>,
    /// `notLoaded`, `summary` or `full`.
    pub items_view: &'static str,
    pub error: Option<Value>,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub duration_ms: Option<i64>,
}

impl TurnView {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "items": self.items.iter().filter_map(item_to_json).collect::<Vec<_>>(),
            "itemsView": self.items_view,
            "status": self.status.as_str(),
            "error": self.error,
            "startedAt": self.started_at,
            "completedAt": self.completed_at,
            "durationMs": self.duration_ms,
            "rootTurnId": self.id,
        })
    }
}

impl ThreadView {
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "sessionId": self.id,
            "cliVersion": self.cli_version,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "recencyAt": self.updated_at,
            "cwd": self.cwd,
            "ephemeral": self.ephemeral,
            "modelProvider": self.model_provider,
            "model": self.model,
            "reasoningEffort": self.reasoning_effort,
            "preview": self.preview,
            "projectId": null,
            "name": self.name,
            "path": self.path,
            "source": self.source,
            "originator": self.originator,
            "status": self.status.to_json(),
            "turns": self.turns.iter().map(TurnView::to_json).collect::<Vec<_>>(),
            "historyMode": "paginated",
            "agentNickname": null,
            "agentRole": null,
            "forkedFromId": null,
            "parentThreadId": null,
            "gitInfo": null,
            "section": null,
            "sectionEnteredAt": null,
            "threadSource": null,
        });
        if self.ephemeral {
            v["path"] = Value::Null;
        }
        v
    }
}

/// `{"type": "readOnly", ...}` and friends.
pub fn sandbox_policy_json(p: &SandboxPolicy) -> Value {
    match p {
        SandboxPolicy::ReadOnly => json!({"type": "readOnly", "networkAccess": false}),
        SandboxPolicy::DangerFullAccess => json!({"type": "dangerFullAccess"}),
        SandboxPolicy::WorkspaceWrite {
            writable_roots,
            network_access,
            exclude_tmpdir_env_var,
            exclude_slash_tmp,
        } => json!({
            "type": "workspaceWrite",
            "writableRoots": writable_roots,
            "networkAccess": network_access,
            "excludeTmpdirEnvVar": exclude_tmpdir_env_var,
            "excludeSlashTmp": exclude_slash_tmp,
        }),
    }
}

/// Parses a `SandboxPolicy` object from `turn/start`.
pub fn sandbox_policy_from_json(v: &Value) -> Option<SandboxPolicy> {
    let b = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    Some(match v.get("type")?.as_str()? {
        "readOnly" => SandboxPolicy::ReadOnly,
        "dangerFullAccess" | "externalSandbox" => SandboxPolicy::DangerFullAccess,
        "workspaceWrite" => SandboxPolicy::WorkspaceWrite {
            writable_roots: v
                .get("writableRoots")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(PathBuf::from)
                        .collect()
                })
                .unwrap_or_default(),
            network_access: b("networkAccess"),
            exclude_tmpdir_env_var: b("excludeTmpdirEnvVar"),
            exclude_slash_tmp: b("excludeSlashTmp"),
        },
        _ => return None,
    })
}

/// `on-failure` is not in the v2 enum; it is reported as `on-request`, the
/// closest value clients understand (both ask the user).
pub fn approval_policy_json(p: AskForApproval) -> Value {
    Value::String(
        match p {
            AskForApproval::OnFailure => "on-request",
            other => other.as_str(),
        }
        .into(),
    )
}

pub fn approval_policy_from_json(v: &Value) -> Option<AskForApproval> {
    match v.as_str()? {
        "never" => Some(AskForApproval::Never),
        "on-request" => Some(AskForApproval::OnRequest),
        "on-failure" => Some(AskForApproval::OnFailure),
        "untrusted" => Some(AskForApproval::Untrusted),
        _ => None,
    }
}

pub fn token_usage_json(u: &TokenUsage) -> Value {
    json!({
        "totalTokens": u.total_tokens,
        "inputTokens": u.input_tokens,
        "cachedInputTokens": u.cached_input_tokens,
        "cacheWriteInputTokens": u.cache_write_input_tokens,
        "outputTokens": u.output_tokens,
        "reasoningOutputTokens": u.reasoning_output_tokens,
    })
}

pub fn thread_token_usage_json(
    last: &TokenUsage,
    total: &TokenUsage,
    window: Option<u64>,
) -> Value {
    json!({
        "total": token_usage_json(total),
        "last": token_usage_json(last),
        "modelContextWindow": window,
    })
}

pub fn user_input_json(i: &UserInput) -> Value {
    match i {
        UserInput::Text { text } => json!({"type": "text", "text": text, "text_elements": []}),
        UserInput::Image { url } => json!({"type": "image", "url": url}),
        UserInput::LocalImage { path } => json!({"type": "localImage", "path": path}),
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

/// A core item as a v2 `ThreadItem`; `None` for items that are not items in
/// v2 (plans travel as `turn/plan/updated`, warnings as `warning`).
pub fn item_to_json(view: &ItemView) -> Option<Value> {
    let started = view.started_at_ms;
    let completed = view.completed_at_ms;
    Some(match &view.item {
        ThreadItem::UserMessage(m) => json!({
            "type": "userMessage",
            "id": m.id,
            "content": m.content.iter().map(user_input_json).collect::<Vec<_>>(),
            "clientId": null,
            "startedAtMs": started,
            "completedAtMs": completed,
        }),
        ThreadItem::AgentMessage(m) => json!({
            "type": "agentMessage",
            "id": m.id,
            "text": m.text,
            "phase": null,
            "delivery": null,
            "memoryCitation": null,
            "moderation": null,
            "questions": null,
            "startedAtMs": started,
            "completedAtMs": completed,
        }),
        ThreadItem::Reasoning(r) => json!({
            "type": "reasoning",
            "id": r.id,
            "summary": r.summary,
            "content": r.content,
            "startedAtMs": started,
            "completedAtMs": completed,
        }),
        ThreadItem::CommandExecution(c) => {
            let done = c.status != CommandStatus::InProgress;
            json!({
                "type": "commandExecution",
                "id": c.id,
                "command": c.display_command(),
                "cwd": c.cwd,
                "commandActions": [{"type": "unknown", "command": c.script}],
                "status": match c.status {
                    CommandStatus::InProgress => "inProgress",
                    CommandStatus::Completed => "completed",
                    CommandStatus::Failed => "failed",
                    CommandStatus::Declined => "declined",
                },
                "source": "agent",
                "aggregatedOutput": if done { Value::String(c.aggregated_output.clone()) } else { Value::Null },
                "exitCode": c.exit_code,
                "durationMs": c.duration_ms,
                "processId": c.process_id.map(|p| p.to_string()),
                "pluginId": null,
                "scriptPath": null,
                "startedAtMs": started,
                "completedAtMs": completed,
            })
        }
        ThreadItem::FileChange(f) => json!({
            "type": "fileChange",
            "id": f.id,
            "changes": f.changes.iter().map(|c| json!({
                "path": c.path,
                "kind": match &c.kind {
                    FileChangeKind::Add => json!({"type": "add"}),
                    FileChangeKind::Delete => json!({"type": "delete"}),
                    FileChangeKind::Update { move_path } => json!({"type": "update", "move_path": move_path}),
                },
                "diff": c.diff,
            })).collect::<Vec<_>>(),
            "status": match f.status {
                PatchStatus::InProgress => "inProgress",
                PatchStatus::Completed => "completed",
                PatchStatus::Failed => "failed",
                PatchStatus::Declined => "declined",
            },
            "startedAtMs": started,
            "completedAtMs": completed,
        }),
        ThreadItem::TodoList(_) | ThreadItem::Error(_) => return None,
    })
}

/// `turn/plan/updated` params for a plan.
pub fn plan_json(thread_id: &str, turn_id: &str, plan: &TodoListItem) -> Value {
    json!({
        "threadId": thread_id,
        "turnId": turn_id,
        "explanation": plan.explanation,
        "plan": plan.steps.iter().map(|s| json!({
            "step": s.step,
            "status": match s.status {
                StepStatus::Pending => "pending",
                StepStatus::InProgress => "inProgress",
                StepStatus::Completed => "completed",
            },
        })).collect::<Vec<_>>(),
    })
}

/// `CodexErrorInfo` for a failed turn.
pub fn error_info(kind: TurnErrorKind) -> Value {
    Value::String(
        match kind {
            TurnErrorKind::ContextWindowExceeded => "contextWindowExceeded",
            TurnErrorKind::UsageLimit => "usageLimitExceeded",
            TurnErrorKind::Unauthorized => "unauthorized",
            TurnErrorKind::BadRequest => "badRequest",
            TurnErrorKind::ModelUnavailable
            | TurnErrorKind::LoopDetected
            | TurnErrorKind::Other => "other",
        }
        .into(),
    )
}
