//! What the mock MCP servers offer: tool definitions, resources and cursor
//! paging. Kept in one place so the stdio and HTTP mocks list the same things.

use serde_json::{json, Value};

/// Every tool the stdio mock serves, in list order (`added_tool` is only
/// listed after `add_tool` ran).
pub const ALL_TOOLS: &[&str] = &[
    "echo",
    "read_only_echo",
    "slow",
    "hang",
    "crash",
    "big",
    "garbage",
    "progress",
    "elicit",
    "spawn",
    "counter",
    "add_tool",
];

/// The subset the HTTP mock serves.
pub const HTTP_TOOLS: &[&str] = &[
    "echo",
    "read_only_echo",
    "slow",
    "hang",
    "counter",
    "progress",
];

/// The definition `tools/list` returns for `name`.
pub fn tool(name: &str) -> Value {
    let text = json!({"text": {"type": "string"}});
    let (description, properties) = match name {
        "echo" | "added_tool" => ("Echo the given text back.", text),
        "read_only_echo" => ("Echo the given text back (read-only).", text),
        "slow" => (
            "Sleep `ms` milliseconds, then answer.",
            json!({"ms": {"type": "integer"}}),
        ),
        "hang" => ("Never answer.", json!({})),
        "crash" => ("Exit the server without answering.", json!({})),
        "big" => (
            "Answer with `bytes` bytes of text.",
            json!({"bytes": {"type": "integer"}}),
        ),
        "garbage" => ("Write non-JSON-RPC lines, then answer.", json!({})),
        "progress" => (
            "Send `steps` progress notifications.",
            json!({"steps": {"type": "integer"}}),
        ),
        "elicit" => (
            "Ask the client a question.",
            json!({"message": {"type": "string"}}),
        ),
        "spawn" => ("Start a grandchild that escapes with setsid.", json!({})),
        "counter" => ("This process's pid and tool calls served.", json!({})),
        "add_tool" => ("Add `added_tool` and announce list_changed.", json!({})),
        _ => ("Unknown.", json!({})),
    };
    let mut t = json!({
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": properties},
    });
    if name == "read_only_echo" {
        t["annotations"] = json!({"readOnlyHint": true});
    }
    t
}

/// A tool result with one text content.
pub fn text_result(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": false})
}

/// The `echo` result.
pub fn echo_result(args: &Value) -> Value {
    let text = args.get("text").and_then(Value::as_str).unwrap_or_default();
    json!({
        "content": [{"type": "text", "text": format!("echo: {text}")}],
        "structuredContent": {"echoed": text},
        "isError": false,
    })
}

pub fn resources() -> Vec<Value> {
    ["a", "b"]
        .iter()
        .map(|n| {
            json!({"uri": format!("mock://{n}"), "name": n.to_uppercase(), "mimeType": "text/plain"})
        })
        .collect()
}

pub fn resource_templates() -> Vec<Value> {
    vec![json!({"uriTemplate": "mock://item/{id}", "name": "item", "mimeType": "text/plain"})]
}

/// `resources/read`: `Ok(result)`, or `Err(error)` (-32002) for an unknown uri.
pub fn read_resource(uri: &str) -> Result<Value, Value> {
    let known = resources().iter().any(|r| r["uri"] == uri) || uri.starts_with("mock://item/");
    if known {
        Ok(
            json!({"contents": [{"uri": uri, "mimeType": "text/plain", "text": format!("contents of {uri}")}]}),
        )
    } else {
        Err(json!({"code": -32002, "message": "Resource not found", "data": {"uri": uri}}))
    }
}

/// One page of `items` under `key`, from the request's `cursor`. Cursors are
/// `page-<offset>`; `page_size` 0 means one page.
pub fn page(key: &str, items: Vec<Value>, params: &Value, page_size: usize) -> Value {
    let start = params
        .get("cursor")
        .and_then(Value::as_str)
        .and_then(|c| c.strip_prefix("page-"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0)
        .min(items.len());
    let end = if page_size == 0 {
        items.len()
    } else {
        (start + page_size).min(items.len())
    };
    let mut out = json!({ key: items[start..end].to_vec() });
    if end < items.len() {
        out["nextCursor"] = json!(format!("page-{end}"));
    }
    out
}

/// The `initialize` result: echoes the client's protocol version.
pub fn initialize_result(params: &Value, name: &str) -> Value {
    let version = params
        .get("protocolVersion")
        .cloned()
        .unwrap_or_else(|| json!("2025-06-18"));
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": true}, "resources": {}},
        "serverInfo": {"name": name, "version": "0.0.1"},
    })
}
