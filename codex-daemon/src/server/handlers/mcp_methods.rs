//! The MCP methods: `mcpServerStatus/list`, `config/mcpServer/reload`,
//! `mcpServer/tool/call`, `mcpServer/resource/read`.
//!
//! A thread's servers live in its worker, so questions about them go over
//! the link (`ToWorker::Mcp`). Calls and reads are answered off the
//! connection's loop (`Reply::Deferred`): a tool may take its full
//! `tool_timeout_sec`, and the client's other requests must not wait.

use std::sync::Arc;

use codex_ipc::app_server::mcp::{
    ListMcpServerStatusParams, ListMcpServerStatusResponse, McpResourceReadParams,
    McpServerOauthLoginParams, McpServerOauthLoginResponse, McpServerStatusWire,
    McpServerToolCallParams,
};
use codex_ipc::app_server::methods;
use codex_ipc::jsonrpc::{RequestId, RpcError};
use codex_ipc::link::McpRequest;
use serde_json::{json, Value};

use crate::server::conn::Conn;
use crate::server::thread::{LoadedThread, MCP_QUERY_DEADLINE};
use crate::server::{Reply, Server};

/// The longest a client's tool call or resource read is waited for here:
/// past the longest `tool_timeout_sec` a worker applies itself.
const MCP_CALL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(900);

impl Server {
    fn mcp_thread(&self, thread_id: &str) -> Result<Arc<LoadedThread>, RpcError> {
        self.thread(thread_id)
            .ok_or_else(|| RpcError::invalid_request(format!("thread not loaded: {thread_id}")))
    }

    pub(super) async fn mcp_server_status_list(
        &self,
        params: &Value,
    ) -> Result<ListMcpServerStatusResponse, RpcError> {
        let p: ListMcpServerStatusParams = methods::parse(params)?;
        let mut data: Vec<McpServerStatusWire> = match &p.thread_id {
            Some(id) => {
                let t = self.mcp_thread(id)?;
                let v = t
                    .mcp(
                        McpRequest::Status {
                            // Upstream's default is `full`.
                            resources: p.detail.as_deref() != Some("toolsAndAuthOnly"),
                        },
                        MCP_QUERY_DEADLINE,
                    )
                    .await
                    .map_err(RpcError::invalid_request)?;
                serde_json::from_value(v).map_err(|e| RpcError::internal(e.to_string()))?
            }
            // Outside a thread nothing runs: the configured servers.
            None => self
                .handler_config()?
                .mcp_servers
                .iter()
                .map(|(name, c)| McpServerStatusWire::from_config(name, c))
                .collect(),
        };
        if let Some(name) = &p.server_name {
            data.retain(|s| &s.name == name);
        }
        // Pages by name: the cursor is the last name of the previous page.
        if let Some(c) = &p.cursor {
            data.retain(|s| s.name.as_str() > c.as_str());
        }
        let limit = p
            .limit
            .map(|l| l as usize)
            .filter(|l| *l > 0)
            .unwrap_or(100);
        let next_cursor = (data.len() > limit).then(|| data[limit - 1].name.clone());
        data.truncate(limit);
        Ok(ListMcpServerStatusResponse { data, next_cursor })
    }

    /// Every loaded thread re-reads `[mcp_servers]`: changed and removed
    /// servers are stopped, new and changed ones started.
    pub(super) async fn mcp_server_reload(&self) -> Result<Value, RpcError> {
        // Validates the file first: a broken config is the client's error.
        self.handler_config()?;
        let threads = self.loaded_threads();
        let waits = threads
            .iter()
            .map(|t| t.mcp(McpRequest::Reload, MCP_QUERY_DEADLINE));
        for (t, r) in threads
            .iter()
            .zip(futures_util::future::join_all(waits).await)
        {
            if let Err(e) = r {
                tracing::warn!("thread {}: MCP reload failed: {e}", t.id);
            }
        }
        Ok(json!({}))
    }

    pub(super) fn mcp_server_tool_call(
        &self,
        conn: &Arc<Conn>,
        id: &RequestId,
        params: &Value,
    ) -> Reply {
        let p: McpServerToolCallParams = match methods::parse(params) {
            Ok(p) => p,
            Err(e) => return Reply::Now(Err(e)),
        };
        let t = match self.mcp_thread(&p.thread_id) {
            Ok(t) => t,
            Err(e) => return Reply::Now(Err(e)),
        };
        let request = McpRequest::ToolCall {
            server: p.server,
            tool: p.tool,
            arguments: p.arguments.unwrap_or_else(|| json!({})),
            meta: p.meta,
        };
        deferred(conn, id, t, request, |v| v)
    }

    pub(super) fn mcp_server_resource_read(
        &self,
        conn: &Arc<Conn>,
        id: &RequestId,
        params: &Value,
    ) -> Reply {
        let p: McpResourceReadParams = match methods::parse(params) {
            Ok(p) => p,
            Err(e) => return Reply::Now(Err(e)),
        };
        let thread = match &p.thread_id {
            Some(tid) => self.mcp_thread(tid),
            // Without a thread: any loaded thread that runs this server.
            None => self
                .loaded_threads()
                .into_iter()
                .find(|t| t.mcp_states().iter().any(|(n, _, _)| n == &p.server))
                .ok_or_else(|| {
                    RpcError::invalid_request(format!(
                        "no loaded thread runs MCP server `{}`; pass threadId",
                        p.server
                    ))
                }),
        };
        let t = match thread {
            Ok(t) => t,
            Err(e) => return Reply::Now(Err(e)),
        };
        for (field, given) in [
            ("connectorId", p.connector_id.is_some()),
            ("target", p.target.is_some()),
        ] {
            if given {
                tracing::warn!(
                    "mcpServer/resource/read: `{field}` is not served (apps connectors); read from server `{}`",
                    p.server
                );
            }
        }
        let origin = p.origin_call_id;
        deferred(
            conn,
            id,
            t,
            McpRequest::ResourceRead {
                server: p.server,
                uri: p.uri,
                meta: p.meta,
            },
            move |mut v| {
                if let (Some(o), Some(obj)) = (origin, v.as_object_mut()) {
                    obj.insert("originCallId".into(), Value::String(o));
                }
                v
            },
        )
    }
}

impl Server {
    /// `mcpServer/oauth/login`: the broker runs the login (it alone writes
    /// credentials) and announces `mcpServer/oauthLogin/completed`.
    pub(super) async fn mcp_server_oauth_login(
        &self,
        params: &Value,
    ) -> Result<McpServerOauthLoginResponse, RpcError> {
        use codex_core::auth::{BrokerRequest, BrokerResponse};
        let p: McpServerOauthLoginParams = methods::parse(params)?;
        if p.timeout_secs.is_some()
            || p.client_registration
                .as_deref()
                .is_some_and(|r| r != "auto")
        {
            tracing::warn!(
                "mcpServer/oauth/login: timeoutSecs and clientRegistration are not served (upstream's 300 s; dynamic registration unless a client_id is configured)"
            );
        }
        match self
            .ask_broker(BrokerRequest::McpLoginStart {
                server: p.name,
                scopes: p.scopes,
            })
            .await?
        {
            BrokerResponse::LoginStarted(s) => Ok(McpServerOauthLoginResponse {
                authorization_url: s.auth_url.unwrap_or_default(),
                login_id: Some(s.login_id),
            }),
            _ => Err(RpcError::internal("unexpected broker answer")),
        }
    }
}

/// Asks the worker and answers the client when it has answered.
fn deferred(
    conn: &Arc<Conn>,
    id: &RequestId,
    t: Arc<LoadedThread>,
    request: McpRequest,
    finish: impl FnOnce(Value) -> Value + Send + 'static,
) -> Reply {
    let conn = conn.clone();
    let id = id.clone();
    tokio::spawn(async move {
        match t.mcp(request, MCP_CALL_DEADLINE).await {
            Ok(v) => conn.respond(&id, finish(v)),
            Err(e) => conn.error(&id, &RpcError::invalid_request(e)),
        }
    });
    Reply::Deferred
}
