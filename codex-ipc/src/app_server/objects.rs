//! Wire shapes of the app-server v2 objects we send: `Thread`, `Turn`,
//! `ThreadStatus`, `TurnError`, `SandboxPolicy`, token usage (items are in
//! [`super::items`]).
//! Every field upstream always sends (often `null`) is present, and every
//! optional-but-not-nullable one is omitted rather than `null` (the schema
//! rejects those).
//!
//! The `*View` types are what the supervisor knows about a thread; each
//! serializes through a private struct that spells out the wire shape
//! field by field.

use std::path::{Path, PathBuf};

use codex_core::config::{AskForApproval, SandboxPolicy};
use codex_core::protocol::{TokenUsage, TurnErrorKind};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::items::ItemView;
use super::methods::HistoryModeParam;

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
    /// The thread this one was forked from.
    pub forked_from_id: Option<String>,
    /// As recorded when the thread started; `None` (not recorded) reads as
    /// `paginated`: every thread here can be paged.
    pub history_mode: Option<HistoryModeParam>,
    /// The client's `threadSource`, as recorded.
    pub thread_source: Option<String>,
}

/// `Thread`. Keys we do not track are sent as `null`, as upstream does for
/// a thread without them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ThreadWire<'a> {
    id: &'a str,
    session_id: &'a str,
    cli_version: &'a str,
    created_at: i64,
    updated_at: i64,
    recency_at: i64,
    cwd: &'a Path,
    ephemeral: bool,
    model_provider: &'a str,
    model: Option<&'a str>,
    reasoning_effort: Option<&'a str>,
    preview: &'a str,
    project_id: Option<String>,
    name: Option<&'a str>,
    path: Option<&'a Path>,
    source: &'a str,
    originator: Option<&'a str>,
    status: ThreadStatusView,
    turns: &'a [TurnView],
    history_mode: HistoryModeParam,
    agent_nickname: Option<String>,
    agent_role: Option<String>,
    forked_from_id: Option<String>,
    parent_thread_id: Option<String>,
    git_info: Option<Value>,
    section: Option<Value>,
    section_entered_at: Option<i64>,
    thread_source: Option<String>,
}

impl Serialize for ThreadView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ThreadWire {
            id: &self.id,
            session_id: &self.id,
            cli_version: &self.cli_version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            recency_at: self.updated_at,
            cwd: &self.cwd,
            ephemeral: self.ephemeral,
            model_provider: &self.model_provider,
            model: self.model.as_deref(),
            reasoning_effort: self.reasoning_effort.as_deref(),
            preview: &self.preview,
            project_id: None,
            name: self.name.as_deref(),
            // An ephemeral thread has no file a client could open.
            path: self.path.as_deref().filter(|_| !self.ephemeral),
            source: &self.source,
            originator: self.originator.as_deref(),
            status: self.status,
            turns: &self.turns,
            history_mode: self.history_mode.unwrap_or(HistoryModeParam::Paginated),
            agent_nickname: None,
            agent_role: None,
            forked_from_id: self.forked_from_id.clone(),
            parent_thread_id: None,
            git_info: None,
            section: None,
            section_entered_at: None,
            thread_source: self.thread_source.clone(),
        }
        .serialize(s)
    }
}

/// `ThreadStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "ThreadStatusWire", from = "ThreadStatusWire")]
pub enum ThreadStatusView {
    NotLoaded,
    Idle,
    Active { waiting_on_approval: bool },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum ThreadStatusWire {
    NotLoaded,
    Idle,
    #[serde(rename_all = "camelCase")]
    Active {
        active_flags: Vec<ThreadActiveFlag>,
    },
    /// Upstream only; read as idle.
    SystemError,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum ThreadActiveFlag {
    WaitingOnApproval,
    WaitingOnUserInput,
}

impl From<ThreadStatusView> for ThreadStatusWire {
    fn from(s: ThreadStatusView) -> Self {
        match s {
            ThreadStatusView::NotLoaded => ThreadStatusWire::NotLoaded,
            ThreadStatusView::Idle => ThreadStatusWire::Idle,
            ThreadStatusView::Active {
                waiting_on_approval,
            } => ThreadStatusWire::Active {
                active_flags: if waiting_on_approval {
                    vec![ThreadActiveFlag::WaitingOnApproval]
                } else {
                    vec![]
                },
            },
        }
    }
}

impl From<ThreadStatusWire> for ThreadStatusView {
    fn from(s: ThreadStatusWire) -> Self {
        match s {
            ThreadStatusWire::NotLoaded => ThreadStatusView::NotLoaded,
            ThreadStatusWire::Idle | ThreadStatusWire::SystemError => ThreadStatusView::Idle,
            ThreadStatusWire::Active { active_flags } => ThreadStatusView::Active {
                waiting_on_approval: active_flags.contains(&ThreadActiveFlag::WaitingOnApproval),
            },
        }
    }
}

/// `TurnStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TurnStatusView {
    InProgress,
    Completed,
    Failed,
    Interrupted,
}

/// How much of a turn's items a `Turn` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ItemsView {
    NotLoaded,
    Summary,
    Full,
}

#[derive(Debug, Clone)]
pub struct TurnView {
    pub id: String,
    pub status: TurnStatusView,
    pub items: Vec<ItemView>,
    pub items_view: ItemsView,
    pub error: Option<TurnError>,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub duration_ms: Option<i64>,
}

/// `Turn`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TurnWire<'a> {
    id: &'a str,
    items: Vec<&'a ItemView>,
    items_view: ItemsView,
    status: TurnStatusView,
    error: Option<&'a TurnError>,
    started_at: Option<i64>,
    completed_at: Option<i64>,
    duration_ms: Option<i64>,
    root_turn_id: &'a str,
}

impl TurnView {
    /// A turn just accepted or started: no items yet.
    pub fn in_progress(id: impl Into<String>, started_at: Option<i64>) -> Self {
        TurnView {
            id: id.into(),
            status: TurnStatusView::InProgress,
            items: vec![],
            items_view: ItemsView::NotLoaded,
            error: None,
            started_at,
            completed_at: None,
            duration_ms: None,
        }
    }
}

impl Serialize for TurnView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TurnWire {
            id: &self.id,
            items: self.items.iter().filter(|i| i.is_v2_item()).collect(),
            items_view: self.items_view,
            status: self.status,
            error: self.error.as_ref(),
            started_at: self.started_at,
            completed_at: self.completed_at,
            duration_ms: self.duration_ms,
            root_turn_id: &self.id,
        }
        .serialize(s)
    }
}

/// `TurnError`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnError {
    pub message: String,
    pub codex_error_info: Option<CodexErrorInfo>,
    pub additional_details: Option<String>,
    /// `Some(None)` sends `null` (live errors); `None` omits the key
    /// (errors read back from a session file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misalignment: Option<Option<Value>>,
}

impl TurnError {
    /// An error as it happens.
    pub fn live(
        message: impl Into<String>,
        info: CodexErrorInfo,
        additional_details: Option<String>,
    ) -> Self {
        TurnError {
            message: message.into(),
            codex_error_info: Some(info),
            additional_details,
            misalignment: Some(None),
        }
    }

    /// An error recorded in a session file: only its message is known.
    pub fn recorded(message: impl Into<String>) -> Self {
        TurnError {
            message: message.into(),
            codex_error_info: None,
            additional_details: None,
            misalignment: None,
        }
    }
}

/// `CodexErrorInfo` (the subset we produce).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CodexErrorInfo {
    ContextWindowExceeded,
    UsageLimitExceeded,
    Unauthorized,
    BadRequest,
    Other,
    #[serde(rename_all = "camelCase")]
    ResponseStreamDisconnected {
        http_status_code: Option<u16>,
    },
}

impl From<TurnErrorKind> for CodexErrorInfo {
    fn from(kind: TurnErrorKind) -> Self {
        match kind {
            TurnErrorKind::ContextWindowExceeded => CodexErrorInfo::ContextWindowExceeded,
            TurnErrorKind::UsageLimit => CodexErrorInfo::UsageLimitExceeded,
            TurnErrorKind::Unauthorized => CodexErrorInfo::Unauthorized,
            TurnErrorKind::BadRequest => CodexErrorInfo::BadRequest,
            TurnErrorKind::ModelUnavailable
            | TurnErrorKind::LoopDetected
            | TurnErrorKind::Other => CodexErrorInfo::Other,
        }
    }
}

/// `{"type": "readOnly", ...}` and friends (`serialize_with` for a core
/// policy).
pub fn serialize_sandbox_policy<S: Serializer>(p: &SandboxPolicy, s: S) -> Result<S::Ok, S::Error> {
    SandboxPolicyWire::from(p).serialize(s)
}

/// `SandboxPolicy`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum SandboxPolicyWire<'a> {
    #[serde(rename_all = "camelCase")]
    ReadOnly {
        network_access: bool,
    },
    DangerFullAccess,
    #[serde(rename_all = "camelCase")]
    WorkspaceWrite {
        writable_roots: &'a [PathBuf],
        network_access: bool,
        exclude_tmpdir_env_var: bool,
        exclude_slash_tmp: bool,
    },
}

impl<'a> From<&'a SandboxPolicy> for SandboxPolicyWire<'a> {
    fn from(p: &'a SandboxPolicy) -> Self {
        match p {
            SandboxPolicy::ReadOnly => SandboxPolicyWire::ReadOnly {
                network_access: false,
            },
            SandboxPolicy::DangerFullAccess => SandboxPolicyWire::DangerFullAccess,
            SandboxPolicy::WorkspaceWrite {
                writable_roots,
                network_access,
                exclude_tmpdir_env_var,
                exclude_slash_tmp,
            } => SandboxPolicyWire::WorkspaceWrite {
                writable_roots,
                network_access: *network_access,
                exclude_tmpdir_env_var: *exclude_tmpdir_env_var,
                exclude_slash_tmp: *exclude_slash_tmp,
            },
        }
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

/// `AskForApproval`. `on-failure` is not in the v2 enum; it is reported as
/// `on-request`, the closest value clients understand (both ask the user).
pub fn approval_policy_wire(p: AskForApproval) -> &'static str {
    match p {
        AskForApproval::OnFailure => "on-request",
        other => other.as_str(),
    }
}

/// [`approval_policy_wire`] as a `serialize_with` function.
pub fn serialize_approval_policy<S: Serializer>(
    p: &AskForApproval,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(approval_policy_wire(*p))
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

/// `TokenUsageBreakdown` (read back by clients: missing counts are 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TokenUsageBreakdown {
    pub total_tokens: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_output_tokens: u64,
}

impl From<&TokenUsage> for TokenUsageBreakdown {
    fn from(u: &TokenUsage) -> Self {
        TokenUsageBreakdown {
            total_tokens: u.total_tokens,
            input_tokens: u.input_tokens,
            cached_input_tokens: u.cached_input_tokens,
            cache_write_input_tokens: u.cache_write_input_tokens,
            output_tokens: u.output_tokens,
            reasoning_output_tokens: u.reasoning_output_tokens,
        }
    }
}

impl From<TokenUsageBreakdown> for TokenUsage {
    fn from(u: TokenUsageBreakdown) -> Self {
        TokenUsage {
            input_tokens: u.input_tokens,
            cached_input_tokens: u.cached_input_tokens,
            cache_write_input_tokens: u.cache_write_input_tokens,
            output_tokens: u.output_tokens,
            reasoning_output_tokens: u.reasoning_output_tokens,
            total_tokens: u.total_tokens,
        }
    }
}

/// `ThreadTokenUsage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadTokenUsage {
    pub total: TokenUsageBreakdown,
    pub last: TokenUsageBreakdown,
    pub model_context_window: Option<u64>,
}

impl ThreadTokenUsage {
    pub fn new(last: &TokenUsage, total: &TokenUsage, window: Option<u64>) -> Self {
        ThreadTokenUsage {
            total: total.into(),
            last: last.into(),
            model_context_window: window,
        }
    }
}

/// Upstream's `PlanType` values; anything else reads `unknown`.
const PLAN_TYPES: &[&str] = &[
    "free",
    "go",
    "plus",
    "pro",
    "prolite",
    "promax",
    "team",
    "self_serve_business_prolite",
    "self_serve_business_usage_based",
    "business",
    "ent26",
    "enterprise_cbp_automation",
    "enterprise_cbp_usage_based",
    "enterprise",
    "edu",
    "edu_plus",
    "edu_pro",
    "sci",
    "sci_plus",
];

/// A plan name as upstream's `PlanType` (`unknown` for names it lacks).
pub fn plan_type(plan: &str) -> String {
    if PLAN_TYPES.contains(&plan) {
        plan.to_string()
    } else {
        "unknown".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codex_core::protocol::{AgentMessageItem, ThreadItem};
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
    fn thread_sends_every_key_upstream_sends() {
        let mut t = ThreadView {
            id: "thr".into(),
            path: Some("/h/sessions/rollout-thr.jsonl".into()),
            cwd: "/w".into(),
            model: Some("m".into()),
            model_provider: "openai".into(),
            reasoning_effort: Some("high".into()),
            preview: "hello".into(),
            name: None,
            created_at: 10,
            updated_at: 20,
            source: "vscode".into(),
            originator: Some("codex_vscode".into()),
            cli_version: "0.1.0".into(),
            ephemeral: false,
            status: ThreadStatusView::Idle,
            turns: vec![],
            forked_from_id: None,
            history_mode: None,
            thread_source: None,
        };
        let expected = json!({
            "id": "thr", "sessionId": "thr", "cliVersion": "0.1.0", "createdAt": 10,
            "updatedAt": 20, "recencyAt": 20, "cwd": "/w", "ephemeral": false,
            "modelProvider": "openai", "model": "m", "reasoningEffort": "high",
            "preview": "hello", "projectId": null, "name": null,
            "path": "/h/sessions/rollout-thr.jsonl", "source": "vscode",
            "originator": "codex_vscode", "status": {"type": "idle"}, "turns": [],
            "historyMode": "paginated", "agentNickname": null, "agentRole": null,
            "forkedFromId": null, "parentThreadId": null, "gitInfo": null, "section": null,
            "sectionEnteredAt": null, "threadSource": null,
        });
        assert_eq!(v(&t), expected);
        // An ephemeral thread has no path.
        t.ephemeral = true;
        assert_eq!(v(&t)["path"], Value::Null);
        assert_eq!(v(&t)["ephemeral"], true);
    }

    #[test]
    fn thread_status_round_trips() {
        for (s, j) in [
            (ThreadStatusView::NotLoaded, json!({"type": "notLoaded"})),
            (ThreadStatusView::Idle, json!({"type": "idle"})),
            (
                ThreadStatusView::Active {
                    waiting_on_approval: false,
                },
                json!({"type": "active", "activeFlags": []}),
            ),
            (
                ThreadStatusView::Active {
                    waiting_on_approval: true,
                },
                json!({"type": "active", "activeFlags": ["waitingOnApproval"]}),
            ),
        ] {
            assert_eq!(v(&s), j);
            assert_eq!(serde_json::from_value::<ThreadStatusView>(j).unwrap(), s);
        }
        let e: ThreadStatusView = serde_json::from_value(json!({"type": "systemError"})).unwrap();
        assert_eq!(e, ThreadStatusView::Idle);
    }

    #[test]
    fn turn_filters_non_v2_items_and_carries_its_error() {
        let turn = TurnView {
            id: "t".into(),
            status: TurnStatusView::Failed,
            items: vec![
                view(ThreadItem::AgentMessage(AgentMessageItem {
                    id: "msg".into(),
                    text: "hi".into(),
                    memory_citation: None,
                })),
                view(ThreadItem::Error(codex_core::protocol::ErrorItem {
                    id: "e".into(),
                    message: "warn".into(),
                })),
            ],
            items_view: ItemsView::Full,
            error: Some(TurnError::recorded("boom")),
            started_at: Some(1),
            completed_at: Some(2),
            duration_ms: Some(1000),
        };
        let j = v(&turn);
        assert_eq!(j["items"].as_array().unwrap().len(), 1);
        assert_eq!(
            j["error"],
            json!({"message": "boom", "codexErrorInfo": null, "additionalDetails": null})
        );
        assert_eq!(j["itemsView"], "full");
        assert_eq!(j["status"], "failed");
        assert_eq!(j["rootTurnId"], "t");
        assert_eq!(
            v(&TurnView::in_progress("t", None)),
            json!({"id": "t", "items": [], "itemsView": "notLoaded", "status": "inProgress",
                "error": null, "startedAt": null, "completedAt": null, "durationMs": null,
                "rootTurnId": "t"})
        );
        assert_eq!(
            v(&TurnError::live(
                "m",
                CodexErrorInfo::Other,
                Some("worker_exited".into())
            )),
            json!({"message": "m", "codexErrorInfo": "other",
                "additionalDetails": "worker_exited", "misalignment": null})
        );
    }

    #[test]
    fn policies_usage_and_plans() {
        #[derive(Serialize)]
        struct P<'a> {
            #[serde(serialize_with = "serialize_sandbox_policy")]
            sandbox: &'a SandboxPolicy,
            #[serde(serialize_with = "serialize_approval_policy")]
            approval: AskForApproval,
        }
        let p = |sandbox: &SandboxPolicy, approval| v(&P { sandbox, approval });
        assert_eq!(
            p(&SandboxPolicy::ReadOnly, AskForApproval::OnFailure),
            json!({"sandbox": {"type": "readOnly", "networkAccess": false},
                "approval": "on-request"})
        );
        assert_eq!(
            p(&SandboxPolicy::DangerFullAccess, AskForApproval::Never),
            json!({"sandbox": {"type": "dangerFullAccess"}, "approval": "never"})
        );
        let ww = SandboxPolicy::WorkspaceWrite {
            writable_roots: vec!["/w".into()],
            network_access: false,
            exclude_tmpdir_env_var: true,
            exclude_slash_tmp: false,
        };
        assert_eq!(
            p(&ww, AskForApproval::Untrusted),
            json!({"sandbox": {"type": "workspaceWrite", "writableRoots": ["/w"],
                "networkAccess": false, "excludeTmpdirEnvVar": true, "excludeSlashTmp": false},
                "approval": "untrusted"})
        );
        // What we send parses back.
        assert_eq!(
            sandbox_policy_from_json(&p(&ww, AskForApproval::Never)["sandbox"]),
            Some(ww)
        );
        let u = TokenUsage {
            input_tokens: 1,
            cached_input_tokens: 2,
            cache_write_input_tokens: 3,
            output_tokens: 4,
            reasoning_output_tokens: 5,
            total_tokens: 6,
        };
        assert_eq!(
            v(&ThreadTokenUsage::new(&u, &u, None)),
            json!({"total": {"totalTokens": 6, "inputTokens": 1, "cachedInputTokens": 2,
                    "cacheWriteInputTokens": 3, "outputTokens": 4, "reasoningOutputTokens": 5},
                "last": {"totalTokens": 6, "inputTokens": 1, "cachedInputTokens": 2,
                    "cacheWriteInputTokens": 3, "outputTokens": 4, "reasoningOutputTokens": 5},
                "modelContextWindow": null})
        );
        assert_eq!(plan_type("plus"), "plus");
        assert_eq!(plan_type("galactic"), "unknown");
        assert_eq!(
            v(&CodexErrorInfo::from(TurnErrorKind::UsageLimit)),
            json!("usageLimitExceeded")
        );
    }
}
