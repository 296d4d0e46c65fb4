//! Tools a client defines and answers itself (app-server `dynamicTools`).
//!
//! The thread offers them to the model like any tool ([`DynamicTools::install`]
//! puts them in front of the current [`ToolSet`]); a call becomes a
//! [`DynamicToolRequest`] handed to a [`DynamicToolClient`] (in a worker: the
//! link to codexd, which asks the thread's client), bounded by a deadline and
//! the turn's cancellation, and reported as a `DynamicToolCall` item.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tower::Service;

use super::{ToolInvocation, ToolOutput, ToolSet, ToolSpec};
use crate::protocol::{DynamicToolCallItem, DynamicToolCallStatus, Event, ThreadItem};

/// One client-defined tool, as upstream records it in `session_meta`
/// (`dynamic_tools`): a namespace's tools are listed one by one, each with
/// its `namespace`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DynamicTool {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The namespace's own description (ours: kept so a resumed thread
    /// offers the namespace as it was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_description: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub input_schema: Value,
    /// Offered only through a tool-search tool, which this runtime does not
    /// have: such tools are never offered to the model.
    #[serde(default)]
    pub defer_loading: bool,
}

/// A call of a dynamic tool, for the client to answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynamicToolRequest {
    pub call_id: String,
    pub turn_id: String,
    pub tool: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub arguments: Value,
}

/// The client's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynamicToolAnswer {
    /// `{"type": "inputText", "text"}`, `{"type": "inputImage", "imageUrl"}`, ...
    pub content_items: Vec<Value>,
    pub success: bool,
}

/// Who answers dynamic tool calls. An `Err` is the reason there is no
/// answer (no client connected, the client's error); the model reads it.
pub trait DynamicToolClient: Send + Sync + 'static {
    fn call(
        &self,
        request: DynamicToolRequest,
    ) -> BoxFuture<'static, Result<DynamicToolAnswer, String>>;
}

/// A thread's dynamic tools and who answers them.
#[derive(Clone)]
pub struct DynamicTools {
    by_name: Arc<HashMap<String, DynamicTool>>,
    tools: Arc<Vec<DynamicTool>>,
    client: Arc<dyn DynamicToolClient>,
    deadline: Duration,
}

impl std::fmt::Debug for DynamicTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicTools")
            .field("tools", &self.by_name.keys().collect::<Vec<_>>())
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl DynamicTools {
    pub fn new(
        tools: Vec<DynamicTool>,
        client: Arc<dyn DynamicToolClient>,
        deadline: Duration,
    ) -> Self {
        let by_name = tools
            .iter()
            .filter(|t| !t.defer_loading)
            .map(|t| (t.name.clone(), t.clone()))
            .collect();
        Self {
            by_name: Arc::new(by_name),
            tools: Arc::new(tools),
            client,
            deadline,
        }
    }

    /// The `tools` entries for the model: plain tools as function tools, a
    /// namespace as one `namespace` entry holding its function tools (the
    /// Responses API's shape). Deferred tools are left out.
    pub fn model_specs(tools: &[DynamicTool]) -> Vec<ToolSpec> {
        let mut specs = Vec::new();
        let mut namespaces: Vec<(String, Option<String>, Vec<Value>)> = Vec::new();
        for t in tools.iter().filter(|t| !t.defer_loading) {
            let function = json!({
                "type": "function",
                "name": t.name,
                "description": t.description,
                "strict": false,
                "parameters": t.input_schema,
            });
            match &t.namespace {
                None => {
                    if let Ok(s) = ToolSpec::from_json(function) {
                        specs.push(s);
                    }
                }
                Some(ns) => match namespaces.iter_mut().find(|(n, _, _)| n == ns) {
                    Some((_, _, fs)) => fs.push(function),
                    None => namespaces.push((
                        ns.clone(),
                        t.namespace_description.clone(),
                        vec![function],
                    )),
                },
            }
        }
        for (name, description, tools) in namespaces {
            let entry = json!({
                "type": "namespace",
                "name": name,
                "description": description.unwrap_or_default(),
                "tools": tools,
            });
            if let Ok(s) = ToolSpec::from_json(entry) {
                specs.push(s);
            }
        }
        specs
    }

    /// Every tool, as given (deferred ones too), for the session file.
    pub fn tools(&self) -> &[DynamicTool] {
        &self.tools
    }

    /// Puts the tools in front of `set`: their names go to the client.
    pub fn install(self, set: ToolSet) -> ToolSet {
        if self.by_name.is_empty() {
            return set;
        }
        let specs = Self::model_specs(&self.tools);
        let names: HashSet<String> = self.by_name.keys().cloned().collect();
        set.with_routed_tools(specs, names, self)
    }
}

impl Service<ToolInvocation> for DynamicTools {
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

impl DynamicTools {
    async fn run(self, inv: ToolInvocation) -> ToolOutput {
        let ctx = inv.ctx;
        let call = inv.call;
        let namespace = self
            .by_name
            .get(&call.name)
            .and_then(|t| t.namespace.clone());
        let arguments = serde_json::from_str::<Value>(&call.arguments)
            .unwrap_or_else(|_| Value::String(call.arguments.clone()));
        let mut item = DynamicToolCallItem {
            id: call.call_id.clone(),
            tool: call.name.clone(),
            namespace: namespace.clone(),
            arguments: arguments.clone(),
            status: DynamicToolCallStatus::InProgress,
            content_items: None,
            success: None,
            duration_ms: None,
        };
        ctx.events
            .emit(Event::ItemStarted {
                turn_id: ctx.turn_id.clone(),
                item: ThreadItem::DynamicToolCall(item.clone()),
            })
            .await;
        let started = Instant::now();
        let request = DynamicToolRequest {
            call_id: call.call_id.clone(),
            turn_id: ctx.turn_id.clone(),
            tool: call.name.clone(),
            namespace,
            arguments,
        };
        let answer = tokio::select! {
            a = tokio::time::timeout(self.deadline, self.client.call(request)) => match a {
                Ok(a) => a,
                Err(_) => Err(format!(
                    "dynamic tool `{}` was not answered within {}s",
                    call.name,
                    self.deadline.as_secs_f64()
                )),
            },
            () = ctx.cancel.cancelled() => Err("the turn was interrupted".to_string()),
        };
        item.duration_ms = Some(started.elapsed().as_millis() as i64);
        let output = match answer {
            Ok(a) => {
                item.status = if a.success {
                    DynamicToolCallStatus::Completed
                } else {
                    DynamicToolCallStatus::Failed
                };
                item.success = Some(a.success);
                let text = output_text(&a.content_items);
                item.content_items = Some(a.content_items);
                ToolOutput {
                    content: text,
                    success: a.success,
                    abort_turn: false,
                }
            }
            Err(reason) => {
                item.status = DynamicToolCallStatus::Failed;
                item.success = Some(false);
                ToolOutput::error(reason)
            }
        };
        ctx.events
            .emit(Event::ItemCompleted {
                turn_id: ctx.turn_id.clone(),
                item: ThreadItem::DynamicToolCall(item),
            })
            .await;
        output
    }
}

/// The text the model reads: the text items, in order. Images and audio
/// cannot travel in this runtime's function-call output; the model is told
/// they were left out.
fn output_text(items: &[Value]) -> String {
    let mut parts = Vec::new();
    for i in items {
        match i.get("type").and_then(Value::as_str) {
            Some("inputText") => parts.push(
                i.get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ),
            Some(other) => parts.push(format!("[{other} content omitted]")),
            None => parts.push("[unrecognized content omitted]".to_string()),
        }
    }
    parts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(ns: Option<&str>, name: &str, deferred: bool) -> DynamicTool {
        DynamicTool {
            namespace: ns.map(str::to_string),
            namespace_description: ns.map(|n| format!("{n} tools")),
            name: name.into(),
            description: format!("{name} does it"),
            input_schema: json!({"type": "object"}),
            defer_loading: deferred,
        }
    }

    #[test]
    fn deferred_tools_are_not_offered_and_namespaces_group() {
        let specs = DynamicTools::model_specs(&[
            tool(None, "lookup", false),
            tool(None, "hidden", true),
            tool(Some("ns"), "a", false),
            tool(Some("ns"), "b", true),
            tool(Some("ns"), "c", false),
        ]);
        let names: Vec<&str> = specs.iter().map(ToolSpec::name).collect();
        assert_eq!(names, ["lookup", "ns"]);
        assert_eq!(specs[0].json()["type"], "function");
        assert_eq!(specs[1].json()["type"], "namespace");
        assert_eq!(specs[1].json()["description"], "ns tools");
        let inner: Vec<&str> = specs[1].json()["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(inner, ["a", "c"]);
    }

    #[test]
    fn recorded_as_upstream() {
        let v = serde_json::to_value(tool(None, "lookup", true)).unwrap();
        assert_eq!(v["inputSchema"], json!({"type": "object"}));
        assert_eq!(v["deferLoading"], true);
        assert!(v.get("namespace").is_none());
    }

    #[test]
    fn the_model_reads_the_text_items() {
        let t = output_text(&[
            json!({"type": "inputText", "text": "one"}),
            json!({"type": "inputImage", "imageUrl": "data:"}),
            json!({"type": "inputText", "text": "two"}),
        ]);
        assert_eq!(t, "one\n[inputImage content omitted]\ntwo");
    }
}
