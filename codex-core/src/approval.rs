//! The approval seam: when policy says a command or patch needs the user's
//! consent, the turn loop asks an [`ApprovalHandler`]. Front ends provide it
//! (the app-server routes it to a client; `codex exec`, which cannot ask,
//! declines).

use std::path::PathBuf;

use futures_util::future::BoxFuture;

use crate::protocol::FileUpdateChange;

#[derive(Debug, Clone, PartialEq)]
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

pub trait ApprovalHandler: Send + Sync {
    fn decide(&self, request: ApprovalRequest) -> BoxFuture<'static, ReviewDecision>;
}

/// For front ends that cannot ask anyone: every request is declined.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeclineAll;

impl ApprovalHandler for DeclineAll {
    fn decide(&self, _request: ApprovalRequest) -> BoxFuture<'static, ReviewDecision> {
        Box::pin(async { ReviewDecision::Denied })
    }
}
