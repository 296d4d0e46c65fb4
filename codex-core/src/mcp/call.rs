//! Running the model's MCP calls: the thread's tool [`Service`] for every
//! `mcp__SERVER` namespace (and flat `mcp__SERVER__TOOL` name) and the
//! resource tools.
//!
//! A call is an `McpToolCall` item from start to end; it is approved as
//! upstream approves (read-only hint, approval modes, an elicitation to the
//! client, the `never` refusal), waits for a restarting server (bounded by
//! its startup timeout), runs through the server's concurrency limit with
//! the server's `tool_timeout_sec`, and reports progress. A call that times
//! out fails alone (the model reads why) and makes the server a suspect
//! (see [`super::server`]). The model reads `Wall time: …` + the output.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use tower::limit::ConcurrencyLimit;
use tower::{Service, ServiceExt};

use super::client::{McpClient, McpError};
use super::config::ApprovalMode;
use super::manager::{McpManager, LIST_RESOURCES, LIST_RESOURCE_TEMPLATES, READ_RESOURCE};
use crate::approval::{ElicitationAction, ElicitationRequest};
use crate::config::AskForApproval;
use crate::protocol::{Event, McpToolCallItem, McpToolCallStatus, McpToolResult, ThreadItem};
use crate::tools::{ToolContext, ToolInvocation, ToolOutput};

/// Calls in flight to one server at once (from the turn and from clients'
/// `mcpServer/tool/call`); more wait their turn.
pub const MAX_CALLS_IN_FLIGHT: usize = 8;

/// The refusal under `approval_policy = "never"` (upstream's text).
pub const NEVER_REFUSAL: &str = "MCP tool call requires approval, but approval policy is never";

/// One request to a server, for its limited service.
pub struct ServerCall {
    pub client: McpClient,
    pub method: &'static str,
    pub params: Value,
    pub timeout: Duration,
    /// Ends the request early (the turn was interrupted).
    pub cancel: Option<tokio_util::sync::CancellationToken>,
}

/// The leaf: sends the request (with its deadline) on the server's client.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerCallService;

impl Service<ServerCall> for ServerCallService {
    type Response = Value;
    type Error = McpError;
    type Future = BoxFuture<'static, Result<Value, McpError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), McpError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ServerCall) -> Self::Future {
        Box::pin(async move {
            req.client
                .request_until(req.method, req.params, req.timeout, req.cancel.as_ref())
                .await
        })
    }
}

/// The thread's MCP call service.
#[derive(Clone)]
pub struct McpTools {
    manager: Arc<McpManager>,
    thread_id: String,
    /// Per server: the concurrency-limited call service.
    limits: Arc<Mutex<HashMap<String, ConcurrencyLimit<ServerCallService>>>>,
}

impl std::fmt::Debug for McpTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTools")
            .field("manager", &self.manager)
            .finish()
    }
}

impl McpTools {
    pub fn new(manager: Arc<McpManager>, thread_id: &str) -> Self {
        Self {
            manager,
            thread_id: thread_id.to_string(),
            limits: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn manager(&self) -> &Arc<McpManager> {
        &self.manager
    }

    fn limited(&self, server: &str) -> ConcurrencyLimit<ServerCallService> {
        let mut l = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        l.entry(server.to_string())
            .or_insert_with(|| ConcurrencyLimit::new(ServerCallService, MAX_CALLS_IN_FLIGHT))
            .clone()
    }

    /// Sends one request to a server through its limit, waiting (bounded by
    /// its startup timeout) for it to be ready. Used by the model's calls and
    /// by clients (`mcpServer/tool/call`, `mcpServer/resource/read`).
    pub async fn server_request(
        &self,
        server: &str,
        method: &'static str,
        params: Value,
    ) -> Result<Value, String> {
        let Some(s) = self.manager.server(server) else {
            return Err(format!("unknown MCP server `{server}`"));
        };
        let deadline = tokio::time::Instant::now() + s.config().startup_timeout;
        let client = s.ready_client(deadline).await?;
        let timeout = s.config().tool_timeout;
        let r = self
            .limited(server)
            .oneshot(ServerCall {
                client,
                method,
                params,
                timeout,
                cancel: None,
            })
            .await;
        r.map_err(|e| {
            if matches!(e, McpError::Timeout(_)) {
                s.suspect();
            }
            describe_error(server, &e, timeout)
        })
    }
}

impl Service<ToolInvocation> for McpTools {
    type Response = ToolOutput;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<ToolOutput, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, inv: ToolInvocation) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.run(inv).await) })
    }
}

fn describe_error(server: &str, e: &McpError, timeout: Duration) -> String {
    match e {
        McpError::Timeout(_) => format!(
            "MCP server `{server}` did not answer within {}s (tool_timeout_sec); the call was cancelled",
            timeout.as_secs_f64()
        ),
        McpError::Closed(r) => format!("MCP server `{server}` is not running: {r}"),
        McpError::Cancelled => "the turn was interrupted".to_string(),
        other => other.to_string(),
    }
}

fn parse_arguments(raw: &str) -> Result<Value, String> {
    if raw.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(Value::Null) => Ok(json!({})),
        Ok(_) => Err("failed to parse function arguments: expected a JSON object".into()),
        Err(e) => Err(format!("failed to parse function arguments: {e}")),
    }
}

/// The text the model reads for a result: structured content in preference
/// to the content items; text items as their text.
fn output_text(result: &McpToolResult) -> String {
    if let Some(sc) = result.structured_content.as_ref().filter(|v| !v.is_null()) {
        return sc.to_string();
    }
    let all_text = result
        .content
        .iter()
        .all(|c| c.get("type").and_then(Value::as_str) == Some("text"));
    if all_text {
        result
            .content
            .iter()
            .filter_map(|c| c.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        Value::Array(result.content.clone()).to_string()
    }
}

fn wall(started: Instant) -> String {
    format!(
        "Wall time: {:.4} seconds\nOutput:",
        started.elapsed().as_secs_f64()
    )
}

impl McpTools {
    async fn run(self, inv: ToolInvocation) -> ToolOutput {
        let ctx = inv.ctx;
        let call = inv.call;
        match call.name.as_str() {
            LIST_RESOURCES if call.namespace.is_none() => {
                return self.list_resources(&call.arguments, false).await
            }
            LIST_RESOURCE_TEMPLATES if call.namespace.is_none() => {
                return self.list_resources(&call.arguments, true).await
            }
            READ_RESOURCE if call.namespace.is_none() => {
                return self.read_resource(&call.arguments).await
            }
            _ => {}
        }
        let Some(resolved) = self.manager.resolve(call.namespace.as_deref(), &call.name) else {
            return ToolOutput::error(format!(
                "unsupported call: {}{}",
                call.namespace.as_deref().unwrap_or(""),
                call.name
            ));
        };
        let server = resolved.server;
        let tool = resolved.tool;
        let arguments = parse_arguments(&call.arguments);
        let mut item = McpToolCallItem {
            id: call.call_id.clone(),
            server: server.name().to_string(),
            tool: tool.raw_name.clone(),
            arguments: arguments
                .clone()
                .unwrap_or_else(|_| Value::String(call.arguments.clone())),
            status: McpToolCallStatus::InProgress,
            result: None,
            error: None,
            duration_ms: None,
            read_only_hint: Some(tool.read_only),
        };
        ctx.events
            .emit(Event::ItemStarted {
                turn_id: ctx.turn_id.clone(),
                item: ThreadItem::McpToolCall(item.clone()),
            })
            .await;
        let started = Instant::now();
        let outcome = match arguments {
            Err(e) => Err(e),
            Ok(args) => {
                self.approved_call(&ctx, &call.call_id, &server, &tool, args)
                    .await
            }
        };
        item.duration_ms = Some(started.elapsed().as_millis() as i64);
        let output = match outcome {
            Ok(result) => {
                let failed = result.is_error.unwrap_or(false);
                let text = format!("{}\n{}", wall(started), output_text(&result));
                item.status = McpToolCallStatus::Completed;
                item.result = Some(result);
                ToolOutput {
                    content: text,
                    success: !failed,
                    abort_turn: false,
                }
            }
            Err(message) => {
                item.status = McpToolCallStatus::Failed;
                item.error = Some(message.clone());
                ToolOutput::error(message)
            }
        };
        ctx.events
            .emit(Event::ItemCompleted {
                turn_id: ctx.turn_id.clone(),
                item: ThreadItem::McpToolCall(item),
            })
            .await;
        output
    }

    async fn approved_call(
        &self,
        ctx: &Arc<ToolContext>,
        call_id: &str,
        server: &super::server::McpServer,
        tool: &super::server::McpTool,
        args: Value,
    ) -> Result<McpToolResult, String> {
        let name = server.name().to_string();
        let needs_approval = match server.config().approval_mode(&tool.raw_name) {
            ApprovalMode::Approve => false,
            ApprovalMode::Prompt => true,
            ApprovalMode::Auto | ApprovalMode::Writes => !tool.read_only,
        };
        let session_key = format!("mcp\u{0}{name}\u{0}{}", tool.raw_name);
        let approved_before = ctx
            .session_approvals
            .lock()
            .map(|s| s.contains(&session_key))
            .unwrap_or(false);
        if needs_approval && !approved_before {
            if ctx.approval_policy == AskForApproval::Never {
                return Err(NEVER_REFUSAL.to_string());
            }
            let answer = ctx
                .approvals
                .elicit(approval_request(ctx, &name, tool, &args))
                .await;
            match answer.action {
                ElicitationAction::Accept => {
                    let persist = answer
                        .meta
                        .as_ref()
                        .and_then(|m| m.get("persist"))
                        .and_then(Value::as_str);
                    if matches!(persist, Some("session") | Some("always")) {
                        if let Ok(mut s) = ctx.session_approvals.lock() {
                            s.insert(session_key);
                        }
                    }
                }
                ElicitationAction::Decline | ElicitationAction::Cancel => {
                    return Err("user rejected MCP tool call".into())
                }
            }
        }
        let deadline = tokio::time::Instant::now() + server.config().startup_timeout;
        let client = server.ready_client(deadline).await?;
        let (token, mut progress) = client.progress_token();
        let params = json!({
            "name": tool.raw_name,
            "arguments": args,
            "_meta": {
                "callId": call_id,
                "threadId": self.thread_id,
                "sessionId": self.thread_id,
                "progressToken": token,
            },
        });
        let timeout = server.config().tool_timeout;
        let request = self.limited(&name).oneshot(ServerCall {
            client: client.clone(),
            method: "tools/call",
            params,
            timeout,
            cancel: Some(ctx.cancel.clone()),
        });
        tokio::pin!(request);
        let result = loop {
            tokio::select! {
                r = &mut request => break r,
                Some(message) = progress.recv() => {
                    ctx.events.emit(Event::McpToolCallProgress {
                        turn_id: ctx.turn_id.clone(),
                        item_id: call_id.to_string(),
                        message,
                    }).await;
                }
            }
        };
        client.drop_progress(token);
        match result {
            Ok(v) => Ok(McpToolResult {
                content: v
                    .get("content")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                structured_content: v.get("structuredContent").cloned(),
                is_error: v.get("isError").and_then(Value::as_bool),
                meta: v.get("_meta").cloned(),
            }),
            Err(e) => {
                if matches!(e, McpError::Timeout(_)) {
                    server.suspect();
                }
                Err(describe_error(&name, &e, timeout))
            }
        }
    }

    async fn list_resources(&self, raw: &str, templates: bool) -> ToolOutput {
        let args = match parse_arguments(raw) {
            Ok(a) => a,
            Err(e) => return ToolOutput::error(e),
        };
        let (method, key): (&'static str, &str) = if templates {
            ("resources/templates/list", "resourceTemplates")
        } else {
            ("resources/list", "resources")
        };
        let servers: Vec<String> = match args.get("server").and_then(Value::as_str) {
            Some(s) => vec![s.to_string()],
            None => self.manager.server_names(),
        };
        let mut all = Vec::new();
        let mut next_cursor = Value::Null;
        for s in &servers {
            let mut params = json!({});
            if let Some(c) = args.get("cursor").and_then(Value::as_str) {
                params["cursor"] = json!(c);
            }
            match self.server_request(s, method, params).await {
                Ok(page) => {
                    for r in page
                        .get(key)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let mut r = r.clone();
                        r["server"] = json!(s);
                        all.push(r);
                    }
                    if servers.len() == 1 {
                        next_cursor = page.get("nextCursor").cloned().unwrap_or(Value::Null);
                    }
                }
                Err(e) if servers.len() == 1 => return ToolOutput::error(e),
                Err(e) => tracing::debug!("{method} on {s}: {e}"),
            }
        }
        let mut out = json!({ key: all });
        if !next_cursor.is_null() {
            out["nextCursor"] = next_cursor;
        }
        ToolOutput::ok(out.to_string())
    }

    async fn read_resource(&self, raw: &str) -> ToolOutput {
        let args = match parse_arguments(raw) {
            Ok(a) => a,
            Err(e) => return ToolOutput::error(e),
        };
        let (Some(server), Some(uri)) = (
            args.get("server").and_then(Value::as_str),
            args.get("uri").and_then(Value::as_str),
        ) else {
            return ToolOutput::error("read_mcp_resource needs `server` and `uri`");
        };
        match self
            .server_request(server, "resources/read", json!({"uri": uri}))
            .await
        {
            Ok(v) => ToolOutput::ok(v.to_string()),
            Err(e) => ToolOutput::error(e),
        }
    }
}

fn approval_request(
    ctx: &ToolContext,
    server: &str,
    tool: &super::server::McpTool,
    args: &Value,
) -> ElicitationRequest {
    let display: Vec<Value> = args
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| json!({"name": k, "display_name": k, "value": v}))
                .collect()
        })
        .unwrap_or_default();
    ElicitationRequest {
        server: server.to_string(),
        turn_id: Some(ctx.turn_id.clone()),
        mode: "form".into(),
        message: format!(
            "Allow the {server} MCP server to run tool \"{}\"?",
            tool.raw_name
        ),
        requested_schema: Some(json!({"type": "object", "properties": {}})),
        url: None,
        elicitation_id: None,
        meta: Some(json!({
            "codex_approval_kind": "mcp_tool_call",
            "persist": ["session", "always"],
            "tool_name": tool.raw_name,
            "tool_description": tool.description,
            "tool_params": args,
            "tool_params_display": display,
        })),
    }
}
