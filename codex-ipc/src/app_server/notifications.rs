//! The server → client notifications we send (`ServerNotification`), each
//! with upstream's method name and params shape.

use codex_core::protocol::{StepStatus, TodoListItem};
use serde::Serialize;
use serde_json::Value;

use super::client_features::{ConfigWarningNotification, ThreadReadStateChangedNotification};
use super::items::ItemView;
use super::objects::{ThreadStatusView, ThreadTokenUsage, ThreadView, TurnError, TurnView};

/// Declares [`ServerNotification`] with one method name per variant, so the
/// name the encoder is given and the serde tag cannot drift apart.
macro_rules! notifications {
    ($($(#[$doc:meta])* $variant:ident($params:ty) = $method:literal,)*) => {
        /// A notification: `{"method": ..., "params": ...}` (the encoder adds
        /// `emittedAtMs`).
        #[derive(Debug, Clone, Serialize)]
        #[serde(tag = "method", content = "params")]
        pub enum ServerNotification {
            $($(#[$doc])* #[serde(rename = $method)] $variant($params),)*
        }

        impl ServerNotification {
            pub fn method(&self) -> &'static str {
                match self {
                    $(ServerNotification::$variant(_) => $method,)*
                }
            }

            /// The params as the encoder takes them.
            pub fn params(&self) -> Result<Value, serde_json::Error> {
                match self {
                    $(ServerNotification::$variant(p) => serde_json::to_value(p),)*
                }
            }
        }

        $(impl From<$params> for ServerNotification {
            fn from(p: $params) -> Self {
                ServerNotification::$variant(p)
            }
        })*
    };
}

notifications! {
    Error(ErrorNotification) = "error",
    Warning(WarningNotification) = "warning",
    DeprecationNotice(DeprecationNoticeNotification) = "deprecationNotice",
    McpServerStartupStatusUpdated(McpServerStatusUpdatedNotification) = "mcpServer/startupStatus/updated",
    McpToolCallProgress(McpToolCallProgressNotification) = "item/mcpToolCall/progress",
    ThreadStarted(ThreadStartedNotification) = "thread/started",
    ThreadStatusChanged(ThreadStatusChangedNotification) = "thread/status/changed",
    ThreadArchived(ThreadArchivedNotification) = "thread/archived",
    ThreadUnarchived(ThreadUnarchivedNotification) = "thread/unarchived",
    ThreadClosed(ThreadClosedNotification) = "thread/closed",
    ThreadNameUpdated(ThreadNameUpdatedNotification) = "thread/name/updated",
    ThreadReadStateChanged(ThreadReadStateChangedNotification) = "thread/readState/changed",
    ThreadTokenUsageUpdated(ThreadTokenUsageUpdatedNotification) = "thread/tokenUsage/updated",
    TurnStarted(TurnStartedNotification) = "turn/started",
    TurnCompleted(TurnCompletedNotification) = "turn/completed",
    TurnPlanUpdated(TurnPlanUpdatedNotification) = "turn/plan/updated",
    ItemStarted(ItemStartedNotification) = "item/started",
    ItemCompleted(ItemCompletedNotification) = "item/completed",
    AgentMessageDelta(AgentMessageDeltaNotification) = "item/agentMessage/delta",
    ReasoningSummaryTextDelta(ReasoningSummaryTextDeltaNotification) = "item/reasoning/summaryTextDelta",
    CommandExecutionOutputDelta(CommandExecutionOutputDeltaNotification) = "item/commandExecution/outputDelta",
    ServerRequestResolved(ServerRequestResolvedNotification) = "serverRequest/resolved",
    AccountLoginCompleted(AccountLoginCompletedNotification) = "account/login/completed",
    AccountUpdated(AccountUpdatedNotification) = "account/updated",
    McpServerOauthLoginCompleted(McpServerOauthLoginCompletedNotification) = "mcpServer/oauthLogin/completed",
    RemoteControlStatusChanged(RemoteControlStatusChangedNotification) = "remoteControl/status/changed",
    ConfigWarning(ConfigWarningNotification) = "configWarning",
}

/// `error`: a turn failed, will be retried, or its worker stopped.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorNotification {
    pub thread_id: String,
    pub turn_id: String,
    pub will_retry: bool,
    pub error: TurnError,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WarningNotification {
    pub thread_id: String,
    pub message: String,
}

/// `mcpServer/startupStatus/updated` (`McpServerStatusUpdatedNotification`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServerStatusUpdatedNotification {
    pub thread_id: Option<String>,
    pub name: String,
    pub status: codex_core::protocol::McpStartupState,
    pub error: Option<String>,
    pub failure_reason: Option<String>,
}

/// `item/mcpToolCall/progress`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpToolCallProgressNotification {
    pub thread_id: String,
    pub turn_id: String,
    pub item_id: String,
    pub message: String,
}

/// `mcpServer/oauthLogin/completed`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServerOauthLoginCompletedNotification {
    pub name: String,
    pub success: bool,
    pub error: Option<String>,
    pub login_id: Option<String>,
    pub thread_id: Option<String>,
}

/// `deprecationNotice`.
#[derive(Debug, Clone, Serialize)]
pub struct DeprecationNoticeNotification {
    pub summary: String,
    pub details: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThreadStartedNotification {
    pub thread: ThreadView,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadStatusChangedNotification {
    pub thread_id: String,
    pub status: ThreadStatusView,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadArchivedNotification {
    pub thread_id: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadUnarchivedNotification {
    pub thread_id: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadClosedNotification {
    pub thread_id: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadNameUpdatedNotification {
    pub thread_id: String,
    pub thread_name: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadTokenUsageUpdatedNotification {
    pub thread_id: String,
    pub turn_id: String,
    pub token_usage: ThreadTokenUsage,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnStartedNotification {
    pub thread_id: String,
    pub turn: TurnView,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnCompletedNotification {
    pub thread_id: String,
    pub turn: TurnView,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnPlanUpdatedNotification {
    pub thread_id: String,
    pub turn_id: String,
    pub explanation: Option<String>,
    pub plan: Vec<TurnPlanStep>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TurnPlanStep {
    pub step: String,
    pub status: TurnPlanStepStatus,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TurnPlanStepStatus {
    Pending,
    InProgress,
    Completed,
}

impl TurnPlanUpdatedNotification {
    pub fn new(thread_id: &str, turn_id: &str, plan: &TodoListItem) -> Self {
        TurnPlanUpdatedNotification {
            thread_id: thread_id.to_string(),
            turn_id: turn_id.to_string(),
            explanation: plan.explanation.clone(),
            plan: plan
                .steps
                .iter()
                .map(|s| TurnPlanStep {
                    step: s.step.clone(),
                    status: match s.status {
                        StepStatus::Pending => TurnPlanStepStatus::Pending,
                        StepStatus::InProgress => TurnPlanStepStatus::InProgress,
                        StepStatus::Completed => TurnPlanStepStatus::Completed,
                    },
                })
                .collect(),
        }
    }
}

/// `item/started`; `item` must be a v2 item ([`ItemView::is_v2_item`]).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemStartedNotification {
    pub thread_id: String,
    pub turn_id: String,
    pub item: ItemView,
    pub started_at_ms: i64,
}

/// `item/completed`; `item` must be a v2 item ([`ItemView::is_v2_item`]).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemCompletedNotification {
    pub thread_id: String,
    pub turn_id: String,
    pub item: ItemView,
    pub completed_at_ms: i64,
    /// Not counted here.
    pub content_token_count: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentMessageDeltaNotification {
    pub thread_id: String,
    pub turn_id: String,
    pub item_id: String,
    pub delta: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningSummaryTextDeltaNotification {
    pub thread_id: String,
    pub turn_id: String,
    pub item_id: String,
    pub delta: String,
    pub summary_index: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecutionOutputDeltaNotification {
    pub thread_id: String,
    pub turn_id: String,
    pub item_id: String,
    pub delta: String,
}

/// A server request was answered, cancelled or voided.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerRequestResolvedNotification {
    pub thread_id: String,
    pub request_id: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountLoginCompletedNotification {
    pub login_id: Option<String>,
    pub success: bool,
    pub error: Option<String>,
    pub onboarding_entrypoint: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountUpdatedNotification {
    /// `apikey` | `chatgpt`; `null` when signed out.
    pub auth_mode: Option<String>,
    /// Upstream's `PlanType` ([`super::objects::plan_type`]).
    pub plan_type: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteControlStatusChangedNotification {
    pub status: RemoteControlStatus,
    pub installation_id: String,
    pub server_name: String,
    pub environment_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RemoteControlStatus {
    /// Remote control is not offered by this server.
    Disabled,
}

impl ThreadStatusChangedNotification {
    pub fn new(thread_id: &str, status: ThreadStatusView) -> Self {
        ThreadStatusChangedNotification {
            thread_id: thread_id.to_string(),
            status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app_server::objects::{CodexErrorInfo, ThreadStatusView};
    use serde_json::json;

    /// `{"method": ..., "params": ...}`, checking both halves agree.
    fn wire(n: impl Into<ServerNotification>) -> Value {
        let n = n.into();
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["method"], n.method());
        assert_eq!(v["params"], n.params().unwrap());
        v
    }

    #[test]
    fn thread_lifecycle() {
        let thread = ThreadView {
            id: "thr".into(),
            path: None,
            cwd: "/w".into(),
            model: None,
            model_provider: "openai".into(),
            reasoning_effort: None,
            preview: String::new(),
            name: None,
            created_at: 1,
            updated_at: 1,
            source: "vscode".into(),
            originator: None,
            cli_version: "0.1.0".into(),
            ephemeral: true,
            status: ThreadStatusView::Idle,
            turns: vec![],
            forked_from_id: None,
            history_mode: None,
            thread_source: None,
        };
        let t = serde_json::to_value(&thread).unwrap();
        assert_eq!(
            wire(ThreadStartedNotification { thread }),
            json!({"method": "thread/started", "params": {"thread": t}})
        );
        let id = json!({"threadId": "thr"});
        assert_eq!(
            wire(ThreadArchivedNotification {
                thread_id: "thr".into()
            }),
            json!({"method": "thread/archived", "params": id})
        );
        assert_eq!(
            wire(ThreadUnarchivedNotification {
                thread_id: "thr".into()
            }),
            json!({"method": "thread/unarchived", "params": id})
        );
        assert_eq!(
            wire(ThreadClosedNotification {
                thread_id: "thr".into()
            }),
            json!({"method": "thread/closed", "params": id})
        );
        assert_eq!(
            wire(ThreadNameUpdatedNotification {
                thread_id: "thr".into(),
                thread_name: "N".into()
            }),
            json!({"method": "thread/name/updated", "params": {"threadId": "thr", "threadName": "N"}})
        );
        assert_eq!(
            wire(ThreadStatusChangedNotification::new(
                "thr",
                ThreadStatusView::NotLoaded
            )),
            json!({"method": "thread/status/changed", "params": {"threadId": "thr",
                "status": {"type": "notLoaded"}}})
        );
        assert_eq!(
            wire(ServerRequestResolvedNotification {
                thread_id: "thr".into(),
                request_id: 3
            }),
            json!({"method": "serverRequest/resolved", "params": {"threadId": "thr", "requestId": 3}})
        );
        assert_eq!(
            wire(ErrorNotification {
                thread_id: "thr".into(),
                turn_id: String::new(),
                will_retry: false,
                error: TurnError::live("gone", CodexErrorInfo::Other, Some("worker_exited".into())),
            }),
            json!({"method": "error", "params": {"threadId": "thr", "turnId": "", "willRetry": false,
                "error": {"message": "gone", "codexErrorInfo": "other",
                    "additionalDetails": "worker_exited", "misalignment": null}}})
        );
    }

    #[test]
    fn account_and_remote_control() {
        assert_eq!(
            wire(AccountLoginCompletedNotification {
                login_id: None,
                success: true,
                error: None,
                onboarding_entrypoint: None,
            }),
            json!({"method": "account/login/completed", "params": {"loginId": null,
                "success": true, "error": null, "onboardingEntrypoint": null}})
        );
        assert_eq!(
            wire(AccountUpdatedNotification {
                auth_mode: Some("apikey".into()),
                plan_type: None
            }),
            json!({"method": "account/updated", "params": {"authMode": "apikey", "planType": null}})
        );
        assert_eq!(
            wire(RemoteControlStatusChangedNotification {
                status: RemoteControlStatus::Disabled,
                installation_id: "i".into(),
                server_name: "h".into(),
                environment_id: None,
            }),
            json!({"method": "remoteControl/status/changed", "params": {"status": "disabled",
                "installationId": "i", "serverName": "h", "environmentId": null}})
        );
    }
}
