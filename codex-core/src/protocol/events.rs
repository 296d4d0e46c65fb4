//! Typed events emitted by a thread while it runs turns.

use serde::{Deserialize, Serialize};

use super::items::ThreadItem;
use super::models::TokenUsage;

/// Why a turn ended without completing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortReason {
    /// A client asked for it (`turn/interrupt`, Ctrl-C).
    Interrupted,
    /// The per-turn deadline passed.
    Deadline,
}

/// The category of a turn failure, for front ends that map it to codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnErrorKind {
    /// The model server kept failing after every retry.
    ModelUnavailable,
    /// The model server refused the request (4xx other than 429).
    BadRequest,
    /// Authentication is missing or was rejected.
    Unauthorized,
    /// The context window was exceeded.
    ContextWindowExceeded,
    /// Quota or usage limits were reached.
    UsageLimit,
    /// The agent looped on the same tool call.
    LoopDetected,
    /// Anything else (I/O, rollout, internal).
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnError {
    pub kind: TurnErrorKind,
    pub message: String,
}

/// Token accounting after a model response.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenUsageInfo {
    /// Usage of the latest response.
    pub last: TokenUsage,
    /// Sum over this turn.
    pub turn: TokenUsage,
    /// Sum over the thread's lifetime (this process).
    pub total: TokenUsage,
    pub model_context_window: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    TurnStarted {
        turn_id: String,
    },
    /// The item about to start will wait for an approval: sent first, so a
    /// front end can show the thread as waiting before the item appears
    /// (upstream's order).
    ApprovalPending {
        turn_id: String,
        item_id: String,
    },
    ItemStarted {
        turn_id: String,
        item: ThreadItem,
    },
    ItemUpdated {
        turn_id: String,
        item: ThreadItem,
    },
    ItemCompleted {
        turn_id: String,
        item: ThreadItem,
    },
    AgentMessageDelta {
        turn_id: String,
        item_id: String,
        delta: String,
    },
    ReasoningSummaryDelta {
        turn_id: String,
        item_id: String,
        delta: String,
    },
    CommandOutputDelta {
        turn_id: String,
        item_id: String,
        delta: String,
    },
    TokenUsage {
        turn_id: String,
        info: TokenUsageInfo,
    },
    /// An MCP tool call reported progress (`notifications/progress`).
    McpToolCallProgress {
        turn_id: String,
        item_id: String,
        message: String,
    },
    /// An MCP server of the thread changed state (starting, ready, failed).
    McpStartupStatus {
        server: String,
        status: McpStartupState,
        error: Option<String>,
    },
    /// Non-fatal: shown to the user, the thread carries on.
    Warning {
        message: String,
    },
    /// The model stream broke and will be retried (`Reconnecting... 1/5`).
    StreamRetry {
        turn_id: String,
        message: String,
        attempt: u32,
        max_attempts: u32,
        details: String,
        http_status: Option<u16>,
    },
    TurnCompleted {
        turn_id: String,
        usage: TokenUsage,
        last_agent_message: Option<String>,
    },
    TurnFailed {
        turn_id: String,
        error: TurnError,
        usage: TokenUsage,
    },
    TurnAborted {
        turn_id: String,
        reason: AbortReason,
        usage: TokenUsage,
    },
}

impl Event {
    /// Whether this event ends a turn.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Event::TurnCompleted { .. } | Event::TurnFailed { .. } | Event::TurnAborted { .. }
        )
    }
}

/// Upstream's `McpServerStartupState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum McpStartupState {
    Starting,
    Ready,
    Failed,
    Cancelled,
}
