//! The server → client requests we send (`ServerRequest`): approvals,
//! dynamic tool calls, and
//! how a client's answer (v2 or legacy v1 spelling) maps to a decision.

use std::path::PathBuf;

use codex_core::approval::{ApprovalRequest, ReviewDecision};
use serde::Serialize;
use serde_json::Value;

use super::items::CommandAction;

/// Declares [`ServerRequest`] with one method name per variant (see
/// `notifications!`).
macro_rules! server_requests {
    ($($(#[$doc:meta])* $variant:ident($params:ty) = $method:literal,)*) => {
        /// A request to the client: `{"id": ..., "method": ..., "params": ...}`
        /// (the connection assigns the id).
        #[derive(Debug, Clone, Serialize)]
        #[serde(tag = "method", content = "params")]
        pub enum ServerRequest {
            $($(#[$doc])* #[serde(rename = $method)] $variant($params),)*
        }

        impl ServerRequest {
            pub fn method(&self) -> &'static str {
                match self {
                    $(ServerRequest::$variant(_) => $method,)*
                }
            }

            /// The params as the encoder takes them.
            pub fn params(&self) -> Result<Value, serde_json::Error> {
                match self {
                    $(ServerRequest::$variant(p) => serde_json::to_value(p),)*
                }
            }
        }
    };
}

server_requests! {
    CommandExecutionRequestApproval(CommandExecutionRequestApprovalParams) = "item/commandExecution/requestApproval",
    FileChangeRequestApproval(FileChangeRequestApprovalParams) = "item/fileChange/requestApproval",
    /// A call of one of the client's `dynamicTools`.
    DynamicToolCall(super::dynamic_tools::DynamicToolCallParams) = "item/tool/call",
    /// An MCP server's question, or the approval of an MCP tool call.
    McpServerElicitation(McpServerElicitationRequestParams) = "mcpServer/elicitation/request",
}

/// `McpServerElicitationRequestParams`: `{serverName, threadId, turnId}` +
/// the form (`message`, `requestedSchema`) or url (`url`, `elicitationId`)
/// fields, and `_meta`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServerElicitationRequestParams {
    pub server_name: String,
    pub thread_id: String,
    pub turn_id: Option<String>,
    pub mode: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elicitation_id: Option<String>,
    #[serde(rename = "_meta", skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

/// The client's answer to an elicitation (`{action, content?, _meta?}`);
/// anything unreadable declines.
pub fn elicitation_answer(result: &Value) -> codex_core::approval::ElicitationAnswer {
    use codex_core::approval::{ElicitationAction, ElicitationAnswer};
    let action = match result.get("action").and_then(Value::as_str) {
        Some("accept") => ElicitationAction::Accept,
        Some("cancel") => ElicitationAction::Cancel,
        _ => ElicitationAction::Decline,
    };
    ElicitationAnswer {
        action,
        content: result.get("content").cloned().filter(|c| !c.is_null()),
        meta: result.get("_meta").cloned().filter(|m| !m.is_null()),
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecutionRequestApprovalParams {
    pub thread_id: String,
    pub turn_id: String,
    pub item_id: String,
    pub started_at_ms: i64,
    pub command: String,
    pub cwd: PathBuf,
    pub command_actions: Vec<CommandAction>,
    /// The model's justification.
    pub reason: Option<String>,
    pub kind: ApprovalKind,
    pub environment_id: String,
    pub available_decisions: Vec<CommandExecutionApprovalDecision>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ApprovalKind {
    Command,
}

/// The decisions we offer (no exec-policy or network amendments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CommandExecutionApprovalDecision {
    Accept,
    AcceptForSession,
    Decline,
    Cancel,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChangeRequestApprovalParams {
    pub thread_id: String,
    pub turn_id: String,
    pub item_id: String,
    pub started_at_ms: i64,
    pub reason: Option<String>,
    /// Not offered: a patch is approved as a whole.
    pub grant_root: Option<PathBuf>,
}

impl ServerRequest {
    /// The approval request for a worker's `request` on `thread_id`.
    pub fn approval(thread_id: &str, request: &ApprovalRequest, now_ms: i64) -> ServerRequest {
        match request {
            ApprovalRequest::Command {
                turn_id,
                call_id,
                argv,
                cwd,
                reason,
            } => {
                // The script the model wrote, when the argv is `shell -lc S`.
                let script = if argv.len() == 3 && (argv[1] == "-lc" || argv[1] == "-c") {
                    argv[2].clone()
                } else {
                    codex_core::util::shell_join(argv)
                };
                ServerRequest::CommandExecutionRequestApproval(
                    CommandExecutionRequestApprovalParams {
                        thread_id: thread_id.to_string(),
                        turn_id: turn_id.clone(),
                        item_id: call_id.clone(),
                        started_at_ms: now_ms,
                        command: codex_core::util::shell_join(argv),
                        cwd: cwd.clone(),
                        command_actions: vec![CommandAction::Unknown { command: script }],
                        reason: reason.clone(),
                        kind: ApprovalKind::Command,
                        environment_id: "local".into(),
                        available_decisions: vec![
                            CommandExecutionApprovalDecision::Accept,
                            CommandExecutionApprovalDecision::AcceptForSession,
                            CommandExecutionApprovalDecision::Decline,
                            CommandExecutionApprovalDecision::Cancel,
                        ],
                    },
                )
            }
            ApprovalRequest::Patch {
                turn_id,
                call_id,
                reason,
                ..
            } => ServerRequest::FileChangeRequestApproval(FileChangeRequestApprovalParams {
                thread_id: thread_id.to_string(),
                turn_id: turn_id.clone(),
                item_id: call_id.clone(),
                started_at_ms: now_ms,
                reason: reason.clone(),
                grant_root: None,
            }),
            ApprovalRequest::Elicitation(e) => {
                ServerRequest::McpServerElicitation(McpServerElicitationRequestParams {
                    server_name: e.server.clone(),
                    thread_id: thread_id.to_string(),
                    turn_id: e.turn_id.clone(),
                    mode: e.mode.clone(),
                    message: e.message.clone(),
                    requested_schema: e.requested_schema.clone(),
                    url: e.url.clone(),
                    elicitation_id: e.elicitation_id.clone(),
                    meta: e.meta.clone(),
                })
            }
        }
    }
}

/// The decision in a client's answer to an approval request
/// (`{"decision": ...}`, v2 or legacy v1 spelling); anything unreadable is
/// a denial.
pub fn review_decision(result: &Value) -> ReviewDecision {
    match result.get("decision").unwrap_or(&Value::Null) {
        Value::String(s) => match s.as_str() {
            "accept" | "approved" => ReviewDecision::Approved,
            "acceptForSession" | "approved_for_session" => ReviewDecision::ApprovedForSession,
            "cancel" | "abort" => ReviewDecision::Abort,
            _ => ReviewDecision::Denied,
        },
        Value::Object(m)
            if m.contains_key("acceptWithExecpolicyAmendment")
                || m.contains_key("applyNetworkPolicyAmendment")
                || m.contains_key("approved_execpolicy_amendment") =>
        {
            ReviewDecision::Approved
        }
        _ => ReviewDecision::Denied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wire(r: &ServerRequest) -> Value {
        let v = serde_json::to_value(r).unwrap();
        assert_eq!(v["method"], r.method());
        assert_eq!(v["params"], r.params().unwrap());
        v
    }

    #[test]
    fn command_approval_matches_upstream() {
        let r = ServerRequest::approval(
            "thr",
            &ApprovalRequest::Command {
                turn_id: "t".into(),
                call_id: "call_1".into(),
                argv: vec!["/bin/bash".into(), "-lc".into(), "touch a b".into()],
                cwd: "/w".into(),
                reason: Some("needs it".into()),
            },
            7,
        );
        assert_eq!(
            wire(&r),
            json!({"method": "item/commandExecution/requestApproval", "params": {
                "threadId": "thr",
                "turnId": "t",
                "itemId": "call_1",
                "startedAtMs": 7,
                "command": "/bin/bash -lc 'touch a b'",
                "cwd": "/w",
                "commandActions": [{"type": "unknown", "command": "touch a b"}],
                "reason": "needs it",
                "kind": "command",
                "environmentId": "local",
                "availableDecisions": ["accept", "acceptForSession", "decline", "cancel"],
            }})
        );
    }

    #[test]
    fn patch_approval_matches_upstream() {
        let r = ServerRequest::approval(
            "thr",
            &ApprovalRequest::Patch {
                turn_id: "t".into(),
                call_id: "call_p".into(),
                changes: vec![],
                reason: None,
            },
            8,
        );
        assert_eq!(
            wire(&r),
            json!({"method": "item/fileChange/requestApproval", "params": {
                "threadId": "thr", "turnId": "t", "itemId": "call_p", "startedAtMs": 8,
                "reason": null, "grantRoot": null,
            }})
        );
    }

    #[test]
    fn decisions() {
        let d = |v: Value| review_decision(&json!({ "decision": v }));
        assert_eq!(d(json!("accept")), ReviewDecision::Approved);
        assert_eq!(d(json!("approved")), ReviewDecision::Approved);
        assert_eq!(
            d(json!("acceptForSession")),
            ReviewDecision::ApprovedForSession
        );
        assert_eq!(d(json!("decline")), ReviewDecision::Denied);
        assert_eq!(d(json!("cancel")), ReviewDecision::Abort);
        assert_eq!(d(json!("abort")), ReviewDecision::Abort);
        assert_eq!(
            d(json!({"acceptWithExecpolicyAmendment": {"execpolicy_amendment": ["ls"]}})),
            ReviewDecision::Approved
        );
        assert_eq!(d(json!(null)), ReviewDecision::Denied);
        assert_eq!(review_decision(&json!({})), ReviewDecision::Denied);
    }
}
