//! Where a turn's events go: to the front end's channel and, for the events
//! that make up the durable record, to the rollout file.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::protocol::{
    CommandStatus, Event, FileChangeKind, PatchStatus, StepStatus, ThreadItem, UserInput,
};
use crate::rollout::{RolloutItem, RolloutWriter};

/// Shared handle to a thread's rollout writer (absent for ephemeral threads).
pub type RolloutHandle = Arc<Mutex<RolloutWriter>>;

#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Event>,
    rollout: Option<RolloutHandle>,
    thread_id: String,
    /// Why the session file is missing lines, while it is.
    unsaved: Arc<tokio::sync::watch::Sender<Option<String>>>,
}

impl EventSink {
    pub fn new(tx: mpsc::Sender<Event>, rollout: Option<RolloutHandle>, thread_id: String) -> Self {
        Self {
            tx,
            rollout,
            thread_id,
            unsaved: Arc::new(tokio::sync::watch::channel(None).0),
        }
    }

    /// Resolves, with the reason, as soon as a line of the session file
    /// cannot be written: the turn must not go on as if it were recorded.
    pub async fn unsaved(&self) -> String {
        let mut rx = self.unsaved.subscribe();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return why;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    fn set_unsaved(&self, why: Option<String>) {
        self.unsaved.send_if_modified(|cur| {
            let changed = *cur != why;
            *cur = why;
            changed
        });
    }

    /// Sends an event; completed items are also recorded in the rollout.
    pub async fn emit(&self, event: Event) {
        if let Event::ItemCompleted { turn_id, item } = &event {
            self.record_event(rollout_item_completed(&self.thread_id, turn_id, item));
            match item {
                ThreadItem::UserMessage(m) => self.record_event(json!({
                    "type": "user_message",
                    "message": user_text(&m.content),
                    "images": [],
                    "local_images": [],
                    "text_elements": [],
                })),
                ThreadItem::AgentMessage(m) => self.record_event(json!({
                    "type": "agent_message",
                    "message": m.text,
                })),
                ThreadItem::Reasoning(r) if !r.summary.is_empty() => self.record_event(json!({
                    "type": "agent_reasoning",
                    "text": r.summary.join("\n"),
                })),
                _ => {}
            }
        }
        // A receiver that went away (front end exited) must not stop the turn.
        let _ = self.tx.send(event).await;
    }

    /// Appends an `event_msg` line.
    pub fn record_event(&self, payload: Value) {
        self.record(RolloutItem::EventMsg(payload));
    }

    /// Appends any rollout line. A line the disk does not take waits in the
    /// writer's backlog; the failure is signalled through
    /// [`unsaved`](Self::unsaved), so the turn fails rather than completes.
    pub fn record(&self, item: RolloutItem) {
        let Some(r) = &self.rollout else { return };
        let Ok(mut w) = r.lock() else { return };
        match w.append(item) {
            Ok(()) => self.set_unsaved(None),
            Err(e) => {
                let why = unsaved_message(w.path(), &e);
                tracing::error!("{why}");
                self.set_unsaved(Some(why));
            }
        }
    }

    /// Writes what is pending and waits for the disk. The error names the
    /// session file.
    pub async fn sync(&self) -> Result<(), String> {
        let Some(r) = self.rollout.clone() else {
            return Ok(());
        };
        let result = tokio::task::spawn_blocking(move || match r.lock() {
            Ok(mut w) => w.sync().map_err(|e| unsaved_message(w.path(), &e)),
            Err(_) => Err("the session file's writer is poisoned".to_string()),
        })
        .await
        .unwrap_or_else(|e| Err(format!("the session file could not be written: {e}")));
        self.set_unsaved(result.clone().err());
        result
    }

    pub fn thread_id(&self) -> &str {
        &self.thread_id
    }
}

fn unsaved_message(path: &std::path::Path, e: &std::io::Error) -> String {
    format!(
        "the session file {} could not be written: {e}",
        path.display()
    )
}

fn user_text(content: &[UserInput]) -> String {
    content
        .iter()
        .filter_map(|c| match c {
            UserInput::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `event_msg/item_completed` in upstream's turn-item shape.
fn rollout_item_completed(thread_id: &str, turn_id: &str, item: &ThreadItem) -> Value {
    let body = match item {
        ThreadItem::UserMessage(m) => json!({
            "type": "UserMessage",
            "id": m.id,
            "content": m.content.iter().map(|c| match c {
                UserInput::Text { text } => json!({"type": "text", "text": text, "text_elements": []}),
                UserInput::Image { url } => json!({"type": "image", "url": url}),
                UserInput::LocalImage { path } => json!({"type": "localImage", "path": path}),
            }).collect::<Vec<_>>(),
        }),
        ThreadItem::AgentMessage(m) => {
            let mut body = json!({
                "type": "AgentMessage",
                "id": m.id,
                "content": [{"type": "Text", "text": m.text}],
            });
            // Upstream's shape: `{entries: [{path, lineStart, lineEnd, note}], rolloutIds}`.
            if let Some(c) = &m.memory_citation {
                body["memory_citation"] = serde_json::to_value(c).unwrap_or(Value::Null);
            }
            body
        }
        ThreadItem::Reasoning(r) => json!({
            "type": "Reasoning",
            "id": r.id,
            "summary_text": r.summary,
            "raw_content": r.content,
        }),
        ThreadItem::CommandExecution(c) => json!({
            "type": "CommandExecution",
            "id": c.id,
            "command": c.argv,
            "cwd": c.cwd,
            "aggregated_output": c.aggregated_output,
            "exit_code": c.exit_code,
            "duration": c.duration_ms.map(|ms| json!({"secs": ms / 1000, "nanos": (ms % 1000) * 1_000_000})),
            "status": match c.status {
                CommandStatus::InProgress => "in_progress",
                CommandStatus::Completed => "completed",
                CommandStatus::Failed => "failed",
                CommandStatus::Declined => "declined",
            },
            "parsed_cmd": [{"type": "unknown", "cmd": c.script}],
        }),
        ThreadItem::FileChange(f) => json!({
            "type": "FileChange",
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
                PatchStatus::InProgress => "in_progress",
                PatchStatus::Completed => "completed",
                PatchStatus::Failed => "failed",
                PatchStatus::Declined => "declined",
            },
        }),
        ThreadItem::TodoList(t) => json!({
            "type": "Plan",
            "id": t.id,
            "explanation": t.explanation,
            "plan": t.steps.iter().map(|s| json!({
                "step": s.step,
                "status": match s.status {
                    StepStatus::Pending => "pending",
                    StepStatus::InProgress => "in_progress",
                    StepStatus::Completed => "completed",
                },
            })).collect::<Vec<_>>(),
        }),
        ThreadItem::Error(e) => json!({"type": "Error", "id": e.id, "message": e.message}),
        ThreadItem::ContextCompaction(c) => json!({"type": "ContextCompaction", "id": c.id}),
        ThreadItem::DynamicToolCall(d) => json!({
            "type": "DynamicToolCall",
            "id": d.id,
            "tool": d.tool,
            "namespace": d.namespace,
            "arguments": d.arguments,
            "status": d.status,
            "content_items": d.content_items,
            "success": d.success,
            "duration_ms": d.duration_ms,
        }),
        ThreadItem::McpToolCall(m) => {
            let mut v = json!({
                "type": "McpToolCall",
                "id": m.id,
                "server": m.server,
                "tool": m.tool,
                "arguments": m.arguments,
                "status": m.status,
                "duration": m.duration_ms.map(|ms| json!({"secs": ms / 1000, "nanos": (ms % 1000) * 1_000_000})),
            });
            if let Some(r) = &m.result {
                let mut result =
                    json!({"content": r.content, "isError": r.is_error.unwrap_or(false)});
                if let Some(sc) = &r.structured_content {
                    result["structuredContent"] = sc.clone();
                }
                if let Some(meta) = &r.meta {
                    result["_meta"] = meta.clone();
                }
                v["result"] = result;
            }
            if let Some(e) = &m.error {
                v["error"] = json!({"message": e});
            }
            v
        }
    };
    json!({
        "type": "item_completed",
        "thread_id": thread_id,
        "turn_id": turn_id,
        "item": body,
        "completed_at_ms": now_ms(),
    })
}
