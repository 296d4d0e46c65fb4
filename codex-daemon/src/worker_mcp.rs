//! A worker's answers to codexd's questions about its MCP servers
//! (`ToWorker::Mcp`): their status, a reload, a client's tool call or
//! resource read.

use codex_core::config::Config;
use codex_core::Thread;
use codex_ipc::app_server::mcp::McpServerStatusWire;
use codex_ipc::link::{McpRequest, ThreadInit};
use serde_json::{json, Value};

pub(crate) async fn answer(
    thread: &Thread,
    init: &ThreadInit,
    request: McpRequest,
) -> Result<Value, String> {
    let Some(mcp) = thread.mcp() else {
        return Err("this thread runs no MCP servers".into());
    };
    match request {
        McpRequest::Status => {
            let config = thread.config();
            let data: Vec<McpServerStatusWire> = mcp
                .manager()
                .statuses()
                .iter()
                .map(|s| McpServerStatusWire::from_status(s, config.mcp_servers.get(&s.name)))
                .collect();
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
        McpRequest::ResourceRead { server, uri } => {
            mcp.server_request(&server, "resources/read", json!({"uri": uri}))
                .await
        }
    }
}
