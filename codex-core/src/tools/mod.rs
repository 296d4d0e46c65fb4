//! Tools the model can call. A thread holds a [`ToolSet`]: the definitions
//! offered to the model and one tower [`Service`] ([`ToolService`]) that runs
//! the calls; the built-in tools are routed by name by [`ToolRouter`]. Each
//! handler emits its own thread items (a command run, a file change, a plan)
//! and returns the text that goes back to the model.

pub mod apply_patch;
pub mod dynamic;
mod exec_command;
mod patch_tool;
mod plan;
mod set;
pub mod spec;

pub use set::{
    boxed, error_output, is_builtin, ToolProvider, ToolService, ToolSet, ToolSpec, ToolSpecError,
    ToolTimedOut, ToolTimeout, ToolTimeoutLayer, DEFAULT_TOOL_TIMEOUT,
};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::approval::ApprovalHandler;
use crate::config::{AskForApproval, SandboxPolicy};
use crate::exec::Sandbox;
use crate::protocol::TodoListItem;
use crate::turn::sink::EventSink;

/// Everything a tool call may use, fixed for one turn.
pub struct ToolContext {
    pub turn_id: String,
    pub cwd: PathBuf,
    pub sandbox_policy: SandboxPolicy,
    pub approval_policy: AskForApproval,
    pub sandbox: Arc<dyn Sandbox>,
    pub approvals: Arc<dyn ApprovalHandler>,
    pub exec_timeout: Duration,
    pub env_policy: crate::exec::env::ShellEnvironmentPolicy,
    /// Where every command and patch is recorded.
    pub audit: Arc<crate::audit::AuditLog>,
    pub command_isolation: crate::exec::Isolation,
    pub output_token_limit: u64,
    /// Condenses oversized outputs with the local model (else: truncation).
    pub shaper: Option<Arc<crate::shaping::ContextShaper>>,
    pub events: EventSink,
    pub cancel: CancellationToken,
    /// The turn's plan, created by the first `update_plan`.
    pub plan: Arc<Mutex<Option<TodoListItem>>>,
    /// Approvals granted "for the session" (command strings, patch roots).
    pub session_approvals: Arc<Mutex<HashSet<String>>>,
}

impl ToolContext {
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.cwd.join(p)
        }
    }
}

/// A call as the model made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub call_id: String,
    pub name: String,
    /// The `namespace` tool the function belongs to (`mcp__server`), if any.
    pub namespace: Option<String>,
    /// JSON arguments (function tools) or raw input (custom tools).
    pub arguments: String,
    pub custom: bool,
}

/// What goes back to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    pub content: String,
    pub success: bool,
    /// The user cancelled: the turn ends after this output is recorded.
    pub abort_turn: bool,
}

impl ToolOutput {
    pub fn ok(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            success: true,
            abort_turn: false,
        }
    }

    pub fn error(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            success: false,
            abort_turn: false,
        }
    }
}

/// The built-in tool definitions (what [`ToolSet::builtin`] offers).
pub fn tool_specs() -> Vec<Value> {
    vec![
        spec::exec_command(),
        spec::apply_patch(),
        spec::update_plan(),
    ]
}

/// One invocation: the turn's context plus the call.
#[derive(Clone)]
pub struct ToolInvocation {
    pub ctx: Arc<ToolContext>,
    pub call: ToolCall,
}

/// The built-in tools, routed by name. Handlers report failures to the
/// model as text; the service itself never fails. A name it does not know is
/// answered "unsupported call".
#[derive(Debug, Clone, Copy, Default)]
pub struct ToolRouter;

impl Service<ToolInvocation> for ToolRouter {
    type Response = ToolOutput;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<ToolOutput, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, inv: ToolInvocation) -> Self::Future {
        Box::pin(async move { Ok(dispatch(&inv.ctx, inv.call).await) })
    }
}

async fn dispatch(ctx: &ToolContext, call: ToolCall) -> ToolOutput {
    match call.name.as_str() {
        spec::EXEC_COMMAND | "shell" | "shell_command" | "local_shell" => {
            exec_command::handle(ctx, &call).await
        }
        spec::APPLY_PATCH => {
            let patch = if call.custom {
                Ok(call.arguments.clone())
            } else {
                serde_json::from_str::<Value>(&call.arguments)
                    .map_err(|e| format!("failed to parse function arguments: {e}"))
                    .and_then(|v| {
                        v.get("input")
                            .or_else(|| v.get("patch"))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .ok_or_else(|| {
                                "failed to parse function arguments: missing field `input`"
                                    .to_string()
                            })
                    })
            };
            match patch {
                Ok(p) => patch_tool::handle(ctx, &call.call_id, &p, &ctx.cwd).await,
                Err(e) => ToolOutput::error(e),
            }
        }
        spec::UPDATE_PLAN => plan::handle(ctx, &call).await,
        other => ToolOutput::error(format!("unsupported call: {other}")),
    }
}
