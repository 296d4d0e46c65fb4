//! A worker's answers to codexd's questions about its MCP servers
//! (`ToWorker::Mcp`): their status, a reload, a client's tool call or
//! resource read.

use codex_core::config::Config;
use codex_core::mcp::McpTools;
use codex_core::protocol::McpStartupState;
use codex_core::Thread;
use codex_ipc::app_server::mcp::McpServerStatusWire;
use codex_ipc::link::{McpRequest, ThreadInit};
use serde_json::{json, Value};

/// How long listing one server's resources may take for a status answer.
const RESOURCE_LIST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// A server's first page of `method` (entries under `key`); a server that
/// fails or is slow lists nothing (logged).
async fn listed(mcp: &McpTools, server: &str, method: &'static str, key: &str) -> Vec<Value> {
    let request = mcp.server_request(server, method, json!({}));
    match tokio::time::timeout(RESOURCE_LIST_DEADLINE, request).await {
        Ok(Ok(page)) => page
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        Ok(Err(e)) => {
            tracing::debug!("mcp server {server}: {method} for status: {e}");
            Vec::new()
        }
        Err(_) => {
            tracing::debug!("mcp server {server}: {method} for status timed out");
            Vec::new()
        }
    }
}

pub(crate) async fn answer(
    thread: &Thread,
    init: &ThreadInit,
    request: McpRequest,
) -> Result<Value, String> {
    let Some(mcp) = thread.mcp() else {
        return Err("this thread runs no MCP servers".into());
    };
    match request {
        McpRequest::Status { resources } => {
            let mut data = Vec::new();
            for s in mcp.manager().statuses() {
                // Each server's own config (a reload may have changed the
                // thread's since it started).
                let server = mcp.manager().server(&s.name);
                let mut wire =
                    McpServerStatusWire::from_status(&s, server.as_ref().map(|x| x.config()));
                let offers_resources = s
                    .capabilities
                    .as_ref()
                    .is_some_and(|c| c.get("resources").is_some());
                if resources && s.state == McpStartupState::Ready && offers_resources {
                    wire.resources = listed(&mcp, &s.name, "resources/list", "resources").await;
                    wire.resource_templates = listed(
                        &mcp,
                        &s.name,
                        "resources/templates/list",
                        "resourceTemplates",
                    )
                    .await;
                }
                data.push(wire);
            }
            serde_json::to_value(data).map_err(|e| e.to_string())
        }
        McpRequest::Reload => {
            let config: Config = crate::worker::load_config(init)?;
            mcp.manager().reload(&config.mcp_servers).await;
            Ok(json!({}))
        }
        McpRequest::ToolCall {
            server,
            tool,
            arguments,
            meta,
        } => {
            let mut params = json!({"name": tool, "arguments": arguments});
            if let Some(m) = meta {
                params["_meta"] = m;
            }
            mcp.server_request(&server, "tools/call", params).await
        }
        McpRequest::ResourceRead { server, uri, meta } => {
            let mut params = json!({"uri": uri});
            if let Some(m) = meta {
                params["_meta"] = m;
            }
            mcp.server_request(&server, "resources/read", params).await
        }
    }
}
