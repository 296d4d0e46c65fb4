//! The approval seam: when policy says a command or patch needs the user's
//! consent, the turn loop asks an [`ApprovalHandler`]. Front ends provide it
//! (the app-server routes it to a client; `codex exec`, which cannot ask,
//! declines).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::protocol::FileUpdateChange;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ApprovalRequest {
    Command {
        turn_id: String,
        call_id: String,
        argv: Vec<String>,
        cwd: PathBuf,
        /// The model's justification.
        reason: Option<String>,
    },
    Patch {
        turn_id: String,
        call_id: String,
        changes: Vec<FileUpdateChange>,
        reason: Option<String>,
    },
    /// An MCP elicitation (a server's question, or an MCP tool approval);
    /// answered with an [`ElicitationAnswer`].
    Elicitation(ElicitationRequest),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Approved,
    /// Approved, and the same request is approved for the rest of the thread.
    ApprovedForSession,
    Denied,
    /// Denied, and the turn is interrupted.
    Abort,
}

impl ReviewDecision {
    pub fn is_approved(self) -> bool {
        matches!(
            self,
            ReviewDecision::Approved | ReviewDecision::ApprovedForSession
        )
    }
}

/// A question an MCP server (or the MCP approval of a tool call) puts to
/// the user: upstream's `mcpServer/elicitation/request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElicitationRequest {
    pub server: String,
    pub turn_id: Option<String>,
    /// `form` or `url`.
    pub mode: String,
    pub message: String,
    #[serde(default)]
    pub requested_schema: Option<serde_json::Value>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub elicitation_id: Option<String>,
    /// `_meta` (for a tool approval: `codex_approval_kind: "mcp_tool_call"`).
    #[serde(default)]
    pub meta: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElicitationAction {
    Accept,
    Decline,
    Cancel,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElicitationAnswer {
    pub action: ElicitationAction,
    #[serde(default)]
    pub content: Option<serde_json::Value>,
    #[serde(default)]
    pub meta: Option<serde_json::Value>,
}

impl ElicitationAnswer {
    pub fn decline() -> Self {
        Self {
            action: ElicitationAction::Decline,
            content: None,
            meta: None,
        }
    }
}

pub trait ApprovalHandler: Send + Sync {
    fn decide(&self, request: ApprovalRequest) -> BoxFuture<'static, ReviewDecision>;
    /// An elicitation for the user. Front ends that cannot ask decline.
    fn elicit(&self, _request: ElicitationRequest) -> BoxFuture<'static, ElicitationAnswer> {
        Box::pin(async { ElicitationAnswer::decline() })
    }
    /// Who answers (for the audit trail): a person through a client, or a
    /// fixed policy.
    fn decided_by(&self) -> crate::audit::DecidedBy {
        crate::audit::DecidedBy::Client
    }
}

/// For front ends that cannot ask anyone: every request is declined.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeclineAll;

impl ApprovalHandler for DeclineAll {
    fn decide(&self, _request: ApprovalRequest) -> BoxFuture<'static, ReviewDecision> {
        Box::pin(async { ReviewDecision::Denied })
    }

    fn decided_by(&self) -> crate::audit::DecidedBy {
        crate::audit::DecidedBy::Policy
    }
}

/// Declines any request not answered within `timeout`.
pub struct WithDeadline {
    inner: Arc<dyn ApprovalHandler>,
    timeout: Duration,
}

impl WithDeadline {
    pub fn new(inner: Arc<dyn ApprovalHandler>, timeout: Duration) -> Self {
        Self { inner, timeout }
    }
}

impl ApprovalHandler for WithDeadline {
    fn decided_by(&self) -> crate::audit::DecidedBy {
        self.inner.decided_by()
    }

    fn decide(&self, request: ApprovalRequest) -> BoxFuture<'static, ReviewDecision> {
        let fut = self.inner.decide(request);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(d) => d,
                Err(_) => {
                    tracing::warn!(
                        "approval request unanswered after {}s; declined",
                        timeout.as_secs()
                    );
                    ReviewDecision::Denied
                }
            }
        })
    }

    fn elicit(&self, request: ElicitationRequest) -> BoxFuture<'static, ElicitationAnswer> {
        let fut = self.inner.elicit(request);
        let timeout = self.timeout;
        Box::pin(async move {
            tokio::time::timeout(timeout, fut)
                .await
                .unwrap_or_else(|_| {
                    tracing::warn!(
                        "elicitation unanswered after {}s; declined",
                        timeout.as_secs()
                    );
                    ElicitationAnswer::decline()
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Never;
    impl ApprovalHandler for Never {
        fn decide(&self, _r: ApprovalRequest) -> BoxFuture<'static, ReviewDecision> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unanswered_requests_are_declined() {
        let h = WithDeadline::new(Arc::new(Never), Duration::from_secs(5));
        let d = h
            .decide(ApprovalRequest::Command {
                turn_id: "t".into(),
                call_id: "c".into(),
                argv: vec![],
                cwd: PathBuf::from("/"),
                reason: None,
            })
            .await;
        assert_eq!(d, ReviewDecision::Denied);
    }
}
