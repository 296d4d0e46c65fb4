//! `dynamicTools` of `thread/start` (`DynamicToolSpec`: a function, or a
//! namespace of functions), the `item/tool/call` request that asks the
//! client to run one (`DynamicToolCallParams`), and its answer
//! (`DynamicToolCallResponse`).

use codex_core::tools::dynamic::{DynamicTool, DynamicToolAnswer, DynamicToolRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `DynamicToolSpec`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum DynamicToolSpecParam {
    #[serde(rename_all = "camelCase")]
    Function {
        name: String,
        description: String,
        input_schema: Value,
        #[serde(default)]
        defer_loading: bool,
    },
    #[serde(rename_all = "camelCase")]
    Namespace {
        name: String,
        description: String,
        tools: Vec<DynamicToolSpecParam>,
    },
}

/// The specs as the thread keeps them: a namespace's functions one by one
/// (upstream's `session_meta` shape). A nested namespace is refused.
pub fn flatten(specs: &[DynamicToolSpecParam]) -> Result<Vec<DynamicTool>, String> {
    let mut out = Vec::new();
    for s in specs {
        match s {
            DynamicToolSpecParam::Function {
                name,
                description,
                input_schema,
                defer_loading,
            } => out.push(DynamicTool {
                namespace: None,
                namespace_description: None,
                name: name.clone(),
                description: description.clone(),
                input_schema: input_schema.clone(),
                defer_loading: *defer_loading,
            }),
            DynamicToolSpecParam::Namespace {
                name: ns,
                description: ns_description,
                tools,
            } => {
                for t in tools {
                    let DynamicToolSpecParam::Function {
                        name,
                        description,
                        input_schema,
                        defer_loading,
                    } = t
                    else {
                        return Err(format!(
                            "dynamicTools: namespace `{ns}` may hold only function tools"
                        ));
                    };
                    out.push(DynamicTool {
                        namespace: Some(ns.clone()),
                        namespace_description: Some(ns_description.clone()),
                        name: name.clone(),
                        description: description.clone(),
                        input_schema: input_schema.clone(),
                        defer_loading: *defer_loading,
                    });
                }
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for t in &out {
        if t.name.is_empty() {
            return Err("dynamicTools: a tool needs a name".into());
        }
        if codex_core::tools::is_builtin(&t.name) {
            return Err(format!(
                "dynamicTools: `{}` is the name of a built-in tool",
                t.name
            ));
        }
        if !seen.insert(t.name.as_str()) {
            return Err(format!("dynamicTools: duplicate tool name `{}`", t.name));
        }
    }
    Ok(out)
}

/// `DynamicToolCallParams` (`item/tool/call`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DynamicToolCallParams {
    pub thread_id: String,
    pub turn_id: String,
    pub call_id: String,
    pub tool: String,
    pub namespace: Option<String>,
    pub arguments: Value,
}

impl DynamicToolCallParams {
    pub fn new(thread_id: &str, r: &DynamicToolRequest) -> Self {
        Self {
            thread_id: thread_id.to_string(),
            turn_id: r.turn_id.clone(),
            call_id: r.call_id.clone(),
            tool: r.tool.clone(),
            namespace: r.namespace.clone(),
            arguments: r.arguments.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DynamicToolCallResponse {
    content_items: Vec<Value>,
    success: bool,
}

/// Reads the client's answer; an error answer or a malformed result is
/// the reason the model reads instead.
pub fn answer(
    tool: &str,
    result: Result<&Value, &crate::jsonrpc::RpcError>,
) -> Result<DynamicToolAnswer, String> {
    match result {
        Ok(v) => serde_json::from_value::<DynamicToolCallResponse>(v.clone())
            .map(|r| DynamicToolAnswer {
                content_items: r.content_items,
                success: r.success,
            })
            .map_err(|e| format!("the client's answer for dynamic tool `{tool}` is invalid: {e}")),
        Err(e) => Err(format!(
            "the client failed dynamic tool `{tool}`: {}",
            e.message
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_tuis_namespace_flattens() {
        let specs: Vec<DynamicToolSpecParam> = serde_json::from_value(json!([
            {"type": "namespace", "name": "codex_tui", "description": "Manage tasks.", "tools": [
                {"type": "function", "name": "list_threads", "description": "List.",
                 "inputSchema": {"type": "object"}, "deferLoading": true}
            ]},
            {"type": "function", "name": "lookup", "description": "Look up.", "inputSchema": {}}
        ]))
        .unwrap();
        let tools = flatten(&specs).unwrap();
        assert_eq!(tools[0].namespace.as_deref(), Some("codex_tui"));
        assert!(tools[0].defer_loading);
        assert_eq!(tools[1].name, "lookup");
        assert!(!tools[1].defer_loading);
    }

    #[test]
    fn duplicates_are_refused() {
        let f = || DynamicToolSpecParam::Function {
            name: "x".into(),
            description: String::new(),
            input_schema: json!({}),
            defer_loading: false,
        };
        assert!(flatten(&[f(), f()]).unwrap_err().contains("duplicate"));
        let builtin = DynamicToolSpecParam::Function {
            name: "exec_command".into(),
            description: String::new(),
            input_schema: json!({}),
            defer_loading: false,
        };
        assert!(flatten(&[builtin]).unwrap_err().contains("built-in"));
    }

    #[test]
    fn answers() {
        let ok = answer(
            "t",
            Ok(&json!({"contentItems": [{"type": "inputText", "text": "hi"}], "success": true})),
        )
        .unwrap();
        assert!(ok.success);
        assert!(answer("t", Ok(&json!({}))).unwrap_err().contains("invalid"));
    }
}
