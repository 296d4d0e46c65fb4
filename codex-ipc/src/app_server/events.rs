//! Core events → app-server notifications, per thread.
//!
//! The mapper keeps what the notifications need across events of one turn:
//! when it and its items started, and its last agent message (the turn
//! summary `turn/completed` carries).

use crate::app_server::notifications::{
    McpServerStatusUpdatedNotification, McpToolCallProgressNotification,
};
use std::collections::HashMap;

use codex_core::protocol::{AbortReason, Event, ThreadItem};

use super::items::ItemView;
use super::notifications::{
    AgentMessageDeltaNotification, CommandExecutionOutputDeltaNotification, ErrorNotification,
    ItemCompletedNotification, ItemStartedNotification, ReasoningSummaryTextDeltaNotification,
    ServerNotification, ThreadStatusChangedNotification, ThreadTokenUsageUpdatedNotification,
    TurnCompletedNotification, TurnPlanUpdatedNotification, TurnStartedNotification,
    WarningNotification,
};
use super::objects::{
    CodexErrorInfo, ItemsView, ThreadStatusView, ThreadTokenUsage, TurnError, TurnStatusView,
    TurnView,
};

#[derive(Debug, Default)]
struct TurnState {
    id: String,
    started_at: i64,
    started_ms: i64,
    item_started_ms: HashMap<String, i64>,
    last_agent_message: Option<ItemView>,
}

/// Maps one thread's core events to notifications.
#[derive(Debug)]
pub struct ThreadEventMapper {
    thread_id: String,
    turn: Option<TurnState>,
    /// Usage of the last response (turn id, usage), for replay on resume.
    pub last_usage: Option<(String, ThreadTokenUsage)>,
    /// The turn started last (running or ended).
    last_turn: Option<String>,
}

impl ThreadEventMapper {
    pub fn new(thread_id: impl Into<String>) -> Self {
        Self {
            thread_id: thread_id.into(),
            turn: None,
            last_usage: None,
            last_turn: None,
        }
    }

    /// The turn started last, running or not.
    pub fn last_turn_id(&self) -> Option<&str> {
        self.last_turn.as_deref()
    }

    /// The running turn, if any.
    pub fn active_turn_id(&self) -> Option<&str> {
        self.turn.as_ref().map(|t| t.id.as_str())
    }

    /// `thread/status/changed` for the current state.
    pub fn status(&self, waiting_on_approval: bool) -> ServerNotification {
        let status = if self.turn.is_some() {
            ThreadStatusView::Active {
                waiting_on_approval,
            }
        } else {
            ThreadStatusView::Idle
        };
        ThreadStatusChangedNotification::new(&self.thread_id, status).into()
    }

    /// The `Turn` object of a just-accepted turn (the `turn/start` result).
    pub fn pending_turn(turn_id: &str) -> TurnView {
        TurnView::in_progress(turn_id, None)
    }

    pub fn map(&mut self, event: &Event) -> Vec<ServerNotification> {
        let tid = self.thread_id.clone();
        let now_ms = crate::jsonrpc::now_ms();
        match event {
            // The thread's status says it (the supervisor's bookkeeping).
            Event::ApprovalPending { .. } => vec![],
            Event::McpStartupStatus {
                server,
                status,
                error,
            } => vec![McpServerStatusUpdatedNotification {
                thread_id: Some(tid),
                name: server.clone(),
                status: *status,
                error: error.clone(),
                failure_reason: None,
            }
            .into()],
            Event::McpToolCallProgress {
                turn_id,
                item_id,
                message,
            } => vec![McpToolCallProgressNotification {
                thread_id: tid,
                turn_id: turn_id.clone(),
                item_id: item_id.clone(),
                message: message.clone(),
            }
            .into()],
            Event::Warning { message } => vec![WarningNotification {
                thread_id: tid,
                message: message.clone(),
            }
            .into()],
            Event::TurnStarted { turn_id } => {
                let st = TurnState {
                    id: turn_id.clone(),
                    started_at: now_ms / 1000,
                    started_ms: now_ms,
                    ..Default::default()
                };
                let turn = TurnView::in_progress(turn_id.clone(), Some(st.started_at));
                self.last_turn = Some(st.id.clone());
                self.turn = Some(st);
                vec![
                    self.status(false),
                    TurnStartedNotification {
                        thread_id: tid,
                        turn,
                    }
                    .into(),
                ]
            }
            Event::ItemStarted { turn_id, item } => {
                if let ThreadItem::TodoList(plan) = item {
                    return vec![TurnPlanUpdatedNotification::new(&tid, turn_id, plan).into()];
                }
                if let Some(st) = self.turn.as_mut() {
                    st.item_started_ms.insert(item.id().to_string(), now_ms);
                }
                let view = ItemView {
                    item: item.clone(),
                    started_at_ms: Some(now_ms),
                    completed_at_ms: None,
                };
                if !view.is_v2_item() {
                    return vec![];
                }
                vec![ItemStartedNotification {
                    thread_id: tid,
                    turn_id: turn_id.clone(),
                    item: view,
                    started_at_ms: now_ms,
                }
                .into()]
            }
            Event::ItemUpdated { turn_id, item } => match item {
                ThreadItem::TodoList(plan) => {
                    vec![TurnPlanUpdatedNotification::new(&tid, turn_id, plan).into()]
                }
                _ => vec![],
            },
            Event::ItemCompleted { turn_id, item } => {
                let started = self
                    .turn
                    .as_ref()
                    .and_then(|st| st.item_started_ms.get(item.id()).copied());
                let view = ItemView {
                    item: item.clone(),
                    started_at_ms: started.or(Some(now_ms)),
                    completed_at_ms: Some(now_ms),
                };
                if !view.is_v2_item() {
                    return vec![];
                }
                if matches!(item, ThreadItem::AgentMessage(_)) {
                    if let Some(st) = self.turn.as_mut() {
                        st.last_agent_message = Some(view.clone());
                    }
                }
                vec![ItemCompletedNotification {
                    thread_id: tid,
                    turn_id: turn_id.clone(),
                    item: view,
                    completed_at_ms: now_ms,
                    content_token_count: None,
                }
                .into()]
            }
            Event::AgentMessageDelta {
                turn_id,
                item_id,
                delta,
            } => vec![AgentMessageDeltaNotification {
                thread_id: tid,
                turn_id: turn_id.clone(),
                item_id: item_id.clone(),
                delta: delta.clone(),
            }
            .into()],
            Event::ReasoningSummaryDelta {
                turn_id,
                item_id,
                delta,
            } => vec![ReasoningSummaryTextDeltaNotification {
                thread_id: tid,
                turn_id: turn_id.clone(),
                item_id: item_id.clone(),
                delta: delta.clone(),
                summary_index: 0,
            }
            .into()],
            Event::CommandOutputDelta {
                turn_id,
                item_id,
                delta,
            } => vec![CommandExecutionOutputDeltaNotification {
                thread_id: tid,
                turn_id: turn_id.clone(),
                item_id: item_id.clone(),
                delta: delta.clone(),
            }
            .into()],
            Event::TokenUsage { turn_id, info } => {
                let usage =
                    ThreadTokenUsage::new(&info.last, &info.total, info.model_context_window);
                self.last_usage = Some((turn_id.clone(), usage));
                vec![ThreadTokenUsageUpdatedNotification {
                    thread_id: tid,
                    turn_id: turn_id.clone(),
                    token_usage: usage,
                }
                .into()]
            }
            Event::StreamRetry {
                turn_id,
                message,
                details,
                http_status,
                ..
            } => {
                let additional = match http_status {
                    Some(status) => format!(
                        "exceeded retry limit, last status: {status} {}",
                        reason_phrase(*status)
                    ),
                    None => details.clone(),
                };
                vec![ErrorNotification {
                    thread_id: tid,
                    turn_id: turn_id.clone(),
                    will_retry: true,
                    error: TurnError::live(
                        message.clone(),
                        CodexErrorInfo::ResponseStreamDisconnected {
                            http_status_code: *http_status,
                        },
                        Some(additional),
                    ),
                }
                .into()]
            }
            Event::TurnCompleted { turn_id, .. } => {
                self.end_turn(turn_id, TurnStatusView::Completed, None, now_ms)
            }
            Event::TurnFailed { turn_id, error, .. } => {
                let err = TurnError::live(error.message.clone(), error.kind.into(), None);
                let mut out: Vec<ServerNotification> = vec![ErrorNotification {
                    thread_id: tid,
                    turn_id: turn_id.clone(),
                    will_retry: false,
                    error: err.clone(),
                }
                .into()];
                out.extend(self.end_turn(turn_id, TurnStatusView::Failed, Some(err), now_ms));
                out
            }
            Event::TurnAborted {
                turn_id, reason, ..
            } => {
                let _: &AbortReason = reason;
                self.end_turn(turn_id, TurnStatusView::Interrupted, None, now_ms)
            }
        }
    }

    fn end_turn(
        &mut self,
        turn_id: &str,
        status: TurnStatusView,
        error: Option<TurnError>,
        now_ms: i64,
    ) -> Vec<ServerNotification> {
        let st = self.turn.take().unwrap_or_else(|| TurnState {
            id: turn_id.to_string(),
            started_at: now_ms / 1000,
            started_ms: now_ms,
            ..Default::default()
        });
        let summary: Vec<ItemView> = if status == TurnStatusView::Completed {
            st.last_agent_message.into_iter().collect()
        } else {
            vec![]
        };
        let turn = TurnView {
            id: turn_id.to_string(),
            status,
            items_view: if summary.is_empty() {
                ItemsView::NotLoaded
            } else {
                ItemsView::Summary
            },
            items: summary,
            error,
            started_at: Some(st.started_at),
            completed_at: Some(now_ms / 1000),
            duration_ms: Some(now_ms - st.started_ms),
        };
        vec![
            ThreadStatusChangedNotification::new(&self.thread_id, ThreadStatusView::Idle).into(),
            TurnCompletedNotification {
                thread_id: self.thread_id.clone(),
                turn,
            }
            .into(),
        ]
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codex_core::protocol::{AgentMessageItem, TokenUsage};
    use serde_json::{json, Value};

    /// `{"method": ..., "params": ...}`, checking both halves agree.
    fn wire(n: &ServerNotification) -> Value {
        let v = serde_json::to_value(n).unwrap();
        assert_eq!(v["method"], n.method());
        assert_eq!(v["params"], n.params().unwrap());
        v
    }

    #[test]
    fn a_turn_maps_to_upstream_notifications() {
        let mut m = ThreadEventMapper::new("thr");
        let started: Vec<Value> = m
            .map(&Event::TurnStarted {
                turn_id: "t".into(),
            })
            .iter()
            .map(wire)
            .collect();
        assert_eq!(
            started[0],
            json!({"method": "thread/status/changed", "params": {
                "threadId": "thr", "status": {"type": "active", "activeFlags": []}}})
        );
        assert_eq!(started[1]["method"], "turn/started");
        let turn = &started[1]["params"]["turn"];
        assert!(turn["startedAt"].is_i64());
        assert_eq!(
            turn,
            &json!({"id": "t", "items": [], "itemsView": "notLoaded", "status": "inProgress",
                "error": null, "startedAt": turn["startedAt"], "completedAt": null,
                "durationMs": null, "rootTurnId": "t"})
        );
        let item = ThreadItem::AgentMessage(AgentMessageItem {
            id: "msg_1".into(),
            text: "".into(),
            memory_citation: None,
        });
        let s = wire(
            &m.map(&Event::ItemStarted {
                turn_id: "t".into(),
                item: item.clone(),
            })[0],
        );
        assert_eq!(s["method"], "item/started");
        assert_eq!(s["params"]["item"]["text"], "");
        assert!(s["params"]["startedAtMs"].is_i64());
        assert_eq!(
            s["params"]["startedAtMs"],
            s["params"]["item"]["startedAtMs"]
        );
        let done = ThreadItem::AgentMessage(AgentMessageItem {
            id: "msg_1".into(),
            text: "hi".into(),
            memory_citation: None,
        });
        let c = wire(
            &m.map(&Event::ItemCompleted {
                turn_id: "t".into(),
                item: done,
            })[0],
        );
        assert_eq!(c["params"]["contentTokenCount"], Value::Null);
        assert_eq!(c["params"]["turnId"], "t");
        let end: Vec<Value> = m
            .map(&Event::TurnCompleted {
                turn_id: "t".into(),
                usage: TokenUsage::default(),
                last_agent_message: Some("hi".into()),
            })
            .iter()
            .map(wire)
            .collect();
        assert_eq!(end[0]["params"]["status"], json!({"type": "idle"}));
        assert_eq!(end[1]["method"], "turn/completed");
        assert_eq!(end[1]["params"]["turn"]["items"][0]["text"], "hi");
        assert_eq!(end[1]["params"]["turn"]["itemsView"], "summary");
        assert_eq!(end[1]["params"]["turn"]["status"], "completed");
        assert!(end[1]["params"]["turn"]["durationMs"].is_i64());
    }

    #[test]
    fn retry_error_matches_upstream() {
        let mut m = ThreadEventMapper::new("thr");
        let e = m.map(&Event::StreamRetry {
            turn_id: "t".into(),
            message: "Reconnecting... 1/1".into(),
            attempt: 1,
            max_attempts: 1,
            details: "x".into(),
            http_status: Some(429),
        });
        assert_eq!(
            wire(&e[0]),
            json!({"method": "error", "params": {
                "threadId": "thr",
                "turnId": "t",
                "willRetry": true,
                "error": {
                    "message": "Reconnecting... 1/1",
                    "codexErrorInfo": {"responseStreamDisconnected": {"httpStatusCode": 429}},
                    "additionalDetails": "exceeded retry limit, last status: 429 Too Many Requests",
                    "misalignment": null,
                },
            }})
        );
    }

    #[test]
    fn a_failed_turn_sends_error_then_completes_failed() {
        let mut m = ThreadEventMapper::new("thr");
        m.map(&Event::TurnStarted {
            turn_id: "t".into(),
        });
        let out: Vec<Value> = m
            .map(&Event::TurnFailed {
                turn_id: "t".into(),
                error: codex_core::protocol::TurnError {
                    kind: codex_core::protocol::TurnErrorKind::ContextWindowExceeded,
                    message: "too long".into(),
                },
                usage: TokenUsage::default(),
            })
            .iter()
            .map(wire)
            .collect();
        let err = json!({"message": "too long", "codexErrorInfo": "contextWindowExceeded",
            "additionalDetails": null, "misalignment": null});
        assert_eq!(
            out[0],
            json!({"method": "error", "params": {"threadId": "thr", "turnId": "t",
                "willRetry": false, "error": err}})
        );
        assert_eq!(out[1]["method"], "thread/status/changed");
        assert_eq!(out[2]["params"]["turn"]["status"], "failed");
        assert_eq!(out[2]["params"]["turn"]["error"], err);
        assert_eq!(out[2]["params"]["turn"]["items"], json!([]));
        assert_eq!(out[2]["params"]["turn"]["itemsView"], "notLoaded");
    }

    #[test]
    fn deltas_usage_warnings_and_plans() {
        let mut m = ThreadEventMapper::new("thr");
        let ids = json!({"threadId": "thr", "turnId": "t", "itemId": "i", "delta": "d"});
        let d = wire(
            &m.map(&Event::AgentMessageDelta {
                turn_id: "t".into(),
                item_id: "i".into(),
                delta: "d".into(),
            })[0],
        );
        assert_eq!(
            d,
            json!({"method": "item/agentMessage/delta", "params": ids})
        );
        let d = wire(
            &m.map(&Event::CommandOutputDelta {
                turn_id: "t".into(),
                item_id: "i".into(),
                delta: "d".into(),
            })[0],
        );
        assert_eq!(
            d,
            json!({"method": "item/commandExecution/outputDelta", "params": ids})
        );
        let d = wire(
            &m.map(&Event::ReasoningSummaryDelta {
                turn_id: "t".into(),
                item_id: "i".into(),
                delta: "d".into(),
            })[0],
        );
        let mut with_index = ids.clone();
        with_index["summaryIndex"] = json!(0);
        assert_eq!(
            d,
            json!({"method": "item/reasoning/summaryTextDelta", "params": with_index})
        );
        let w = wire(
            &m.map(&Event::Warning {
                message: "careful".into(),
            })[0],
        );
        assert_eq!(
            w,
            json!({"method": "warning", "params": {"threadId": "thr", "message": "careful"}})
        );
        let usage = TokenUsage {
            input_tokens: 20,
            output_tokens: 10,
            total_tokens: 30,
            ..Default::default()
        };
        let u = wire(
            &m.map(&Event::TokenUsage {
                turn_id: "t".into(),
                info: codex_core::protocol::TokenUsageInfo {
                    last: usage,
                    turn: usage,
                    total: usage,
                    model_context_window: Some(1000),
                },
            })[0],
        );
        let b = json!({"totalTokens": 30, "inputTokens": 20, "cachedInputTokens": 0,
            "cacheWriteInputTokens": 0, "outputTokens": 10, "reasoningOutputTokens": 0});
        assert_eq!(
            u,
            json!({"method": "thread/tokenUsage/updated", "params": {"threadId": "thr",
                "turnId": "t", "tokenUsage": {"total": b, "last": b, "modelContextWindow": 1000}}})
        );
        assert_eq!(m.last_usage.as_ref().map(|(t, _)| t.as_str()), Some("t"));
        let plan = ThreadItem::TodoList(codex_core::protocol::TodoListItem {
            id: "p".into(),
            explanation: None,
            steps: vec![codex_core::protocol::PlanStep {
                step: "read".into(),
                status: codex_core::protocol::StepStatus::InProgress,
            }],
        });
        let p = wire(
            &m.map(&Event::ItemStarted {
                turn_id: "t".into(),
                item: plan,
            })[0],
        );
        assert_eq!(
            p,
            json!({"method": "turn/plan/updated", "params": {"threadId": "thr", "turnId": "t",
                "explanation": null, "plan": [{"step": "read", "status": "inProgress"}]}})
        );
        // Warnings items are not v2 items.
        let e = m.map(&Event::ItemCompleted {
            turn_id: "t".into(),
            item: ThreadItem::Error(codex_core::protocol::ErrorItem {
                id: "e".into(),
                message: "m".into(),
            }),
        });
        assert!(e.is_empty());
    }
}
