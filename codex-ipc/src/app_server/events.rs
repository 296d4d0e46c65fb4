//! Core events → app-server notifications, per thread.
//!
//! The mapper keeps what the notifications need across events of one turn:
//! when it and its items started, and its last agent message (the turn
//! summary `turn/completed` carries).

use std::collections::HashMap;

use codex_core::protocol::{AbortReason, Event, ThreadItem};
use serde_json::{json, Value};

use super::objects::{
    error_info, item_to_json, plan_json, thread_token_usage_json, ItemView, ThreadStatusView,
    TurnStatusView, TurnView,
};

/// A notification to send: method and params.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub method: &'static str,
    pub params: Value,
}

fn n(method: &'static str, params: Value) -> Notification {
    Notification { method, params }
}

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
    /// Usage of the last response, for replay on resume.
    pub last_usage: Option<(String, Value)>,
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
    pub fn status(&self, waiting_on_approval: bool) -> Notification {
        let status = if self.turn.is_some() {
            ThreadStatusView::Active {
                waiting_on_approval,
            }
        } else {
            ThreadStatusView::Idle
        };
        n(
            "thread/status/changed",
            json!({"threadId": self.thread_id, "status": status.to_json()}),
        )
    }

    /// The `Turn` object of a just-accepted turn (the `turn/start` result).
    pub fn pending_turn(turn_id: &str) -> Value {
        TurnView {
            id: turn_id.to_string(),
            status: TurnStatusView::InProgress,
            items: vec![],
            items_view: "notLoaded",
            error: None,
            started_at: None,
            completed_at: None,
            duration_ms: None,
        }
        .to_json()
    }

    pub fn map(&mut self, event: &Event) -> Vec<Notification> {
        let tid = self.thread_id.clone();
        let now_ms = crate::jsonrpc::now_ms();
        match event {
            Event::Warning { message } => {
                vec![n("warning", json!({"threadId": tid, "message": message}))]
            }
            Event::TurnStarted { turn_id } => {
                let st = TurnState {
                    id: turn_id.clone(),
                    started_at: now_ms / 1000,
                    started_ms: now_ms,
                    ..Default::default()
                };
                let turn = TurnView {
                    id: turn_id.clone(),
                    status: TurnStatusView::InProgress,
                    items: vec![],
                    items_view: "notLoaded",
                    error: None,
                    started_at: Some(st.started_at),
                    completed_at: None,
                    duration_ms: None,
                };
                self.last_turn = Some(st.id.clone());
                self.turn = Some(st);
                vec![
                    self.status(false),
                    n(
                        "turn/started",
                        json!({"threadId": tid, "turn": turn.to_json()}),
                    ),
                ]
            }
            Event::ItemStarted { turn_id, item } => {
                if let ThreadItem::TodoList(plan) = item {
                    return vec![n("turn/plan/updated", plan_json(&tid, turn_id, plan))];
                }
                if let Some(st) = self.turn.as_mut() {
                    st.item_started_ms.insert(item.id().to_string(), now_ms);
                }
                let view = ItemView {
                    item: item.clone(),
                    started_at_ms: Some(now_ms),
                    completed_at_ms: None,
                };
                match item_to_json(&view) {
                    Some(item) => vec![n(
                        "item/started",
                        json!({"threadId": tid, "turnId": turn_id, "item": item, "startedAtMs": now_ms}),
                    )],
                    None => vec![],
                }
            }
            Event::ItemUpdated { turn_id, item } => match item {
                ThreadItem::TodoList(plan) => {
                    vec![n("turn/plan/updated", plan_json(&tid, turn_id, plan))]
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
                let Some(json_item) = item_to_json(&view) else {
                    return vec![];
                };
                if matches!(item, ThreadItem::AgentMessage(_)) {
                    if let Some(st) = self.turn.as_mut() {
                        st.last_agent_message = Some(view);
                    }
                }
                vec![n(
                    "item/completed",
                    json!({
                        "threadId": tid,
                        "turnId": turn_id,
                        "item": json_item,
                        "completedAtMs": now_ms,
                        "contentTokenCount": null,
                    }),
                )]
            }
            Event::AgentMessageDelta {
                turn_id,
                item_id,
                delta,
            } => vec![n(
                "item/agentMessage/delta",
                json!({"threadId": tid, "turnId": turn_id, "itemId": item_id, "delta": delta}),
            )],
            Event::ReasoningSummaryDelta {
                turn_id,
                item_id,
                delta,
            } => vec![n(
                "item/reasoning/summaryTextDelta",
                json!({"threadId": tid, "turnId": turn_id, "itemId": item_id, "delta": delta, "summaryIndex": 0}),
            )],
            Event::CommandOutputDelta {
                turn_id,
                item_id,
                delta,
            } => vec![n(
                "item/commandExecution/outputDelta",
                json!({"threadId": tid, "turnId": turn_id, "itemId": item_id, "delta": delta}),
            )],
            Event::TokenUsage { turn_id, info } => {
                let usage =
                    thread_token_usage_json(&info.last, &info.total, info.model_context_window);
                self.last_usage = Some((turn_id.clone(), usage.clone()));
                vec![n(
                    "thread/tokenUsage/updated",
                    json!({"threadId": tid, "turnId": turn_id, "tokenUsage": usage}),
                )]
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
                vec![n(
                    "error",
                    json!({
                        "threadId": tid,
                        "turnId": turn_id,
                        "willRetry": true,
                        "error": {
                            "message": message,
                            "codexErrorInfo": {"responseStreamDisconnected": {"httpStatusCode": http_status}},
                            "additionalDetails": additional,
                            "misalignment": null,
                        },
                    }),
                )]
            }
            Event::TurnCompleted { turn_id, .. } => {
                self.end_turn(turn_id, TurnStatusView::Completed, None, now_ms)
            }
            Event::TurnFailed { turn_id, error, .. } => {
                let err = json!({
                    "message": error.message,
                    "codexErrorInfo": error_info(error.kind),
                    "additionalDetails": null,
                    "misalignment": null,
                });
                let mut out = vec![n(
                    "error",
                    json!({"threadId": tid, "turnId": turn_id, "willRetry": false, "error": err.clone()}),
                )];
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
        error: Option<Value>,
        now_ms: i64,
    ) -> Vec<Notification> {
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
                "notLoaded"
            } else {
                "summary"
            },
            items: summary,
            error,
            started_at: Some(st.started_at),
            completed_at: Some(now_ms / 1000),
            duration_ms: Some(now_ms - st.started_ms),
        };
        vec![
            n(
                "thread/status/changed",
                json!({"threadId": self.thread_id, "status": ThreadStatusView::Idle.to_json()}),
            ),
            n(
                "turn/completed",
                json!({"threadId": self.thread_id, "turn": turn.to_json()}),
            ),
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

    #[test]
    fn a_turn_maps_to_upstream_notifications() {
        let mut m = ThreadEventMapper::new("thr");
        let started = m.map(&Event::TurnStarted {
            turn_id: "t".into(),
        });
        assert_eq!(started[0].method, "thread/status/changed");
        assert_eq!(
            started[0].params["status"],
            json!({"type": "active", "activeFlags": []})
        );
        assert_eq!(started[1].method, "turn/started");
        let item = ThreadItem::AgentMessage(AgentMessageItem {
            id: "msg_1".into(),
            text: "".into(),
        });
        let s = m.map(&Event::ItemStarted {
            turn_id: "t".into(),
            item: item.clone(),
        });
        assert_eq!(s[0].params["item"]["text"], "");
        assert!(s[0].params["startedAtMs"].is_i64());
        let done = ThreadItem::AgentMessage(AgentMessageItem {
            id: "msg_1".into(),
            text: "hi".into(),
        });
        let c = m.map(&Event::ItemCompleted {
            turn_id: "t".into(),
            item: done,
        });
        assert_eq!(c[0].params["contentTokenCount"], Value::Null);
        let end = m.map(&Event::TurnCompleted {
            turn_id: "t".into(),
            usage: TokenUsage::default(),
            last_agent_message: Some("hi".into()),
        });
        assert_eq!(end[0].params["status"], json!({"type": "idle"}));
        assert_eq!(end[1].params["turn"]["items"][0]["text"], "hi");
        assert_eq!(end[1].params["turn"]["itemsView"], "summary");
        assert_eq!(end[1].params["turn"]["status"], "completed");
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
            e[0].params["error"],
            json!({
                "message": "Reconnecting... 1/1",
                "codexErrorInfo": {"responseStreamDisconnected": {"httpStatusCode": 429}},
                "additionalDetails": "exceeded retry limit, last status: 429 Too Many Requests",
                "misalignment": null,
            })
        );
    }
}
