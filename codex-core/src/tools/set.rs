//! The tool seam: a [`ToolSet`] is what a thread offers the model (the tool
//! [`ToolSpec`]s that go into every request's `tools`) together with the
//! [`ToolService`] that runs the calls the model makes.
//!
//! The built-in tools ([`ToolSet::builtin`]: `exec_command`, `apply_patch`,
//! `update_plan`, routed by [`ToolRouter`]) are the default. A host adds its
//! own tools in front of them ([`ToolSet::with_tool`]: the tool's name goes to
//! its service, every other name to what was there before), or replaces the
//! whole service ([`ToolSet::new`]) with one that routes its own names and
//! delegates the rest. MCP servers and app-server `dynamicTools` plug in
//! here the same way: one `with_tool` per tool they list.

use std::collections::HashSet;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use tower::util::BoxCloneService;
use tower::{BoxError, Layer, Service, ServiceExt};

use super::{spec, ToolCall, ToolInvocation, ToolOutput, ToolRouter};

/// A tool call service as the turn loop holds it. Its errors reach the
/// model as the tool's (failed) output; they never fail the turn.
pub type ToolService = BoxCloneService<ToolInvocation, ToolOutput, BoxError>;

/// Deadline of a call to a tool that is not built in (see [`ToolTimeout`]).
/// Upstream's default for MCP tools.
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// One tool definition offered to the model, in Responses API shape.
///
/// ```
/// use codex_core::tools::ToolSpec;
/// use serde_json::json;
///
/// let spec = ToolSpec::function(
///     "lookup_weather",
///     "Current weather in a city.",
///     json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
/// );
/// assert_eq!(spec.name(), "lookup_weather");
/// assert_eq!(spec.json()["type"], "function");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    name: String,
    json: Value,
}

/// A tool definition without a name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tool definition needs a string `name`")]
pub struct ToolSpecError;

impl ToolSpec {
    /// A function tool: the model calls it with JSON arguments that follow
    /// `parameters` (a JSON Schema object).
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
    ) -> Self {
        let name = name.into();
        let json = json!({
            "type": "function",
            "name": name,
            "description": description.into(),
            "strict": false,
            "parameters": parameters,
        });
        Self { name, json }
    }

    /// Any `tools` entry (a function tool, a freeform `custom` tool, ...),
    /// as long as it has a `name`.
    pub fn from_json(json: Value) -> Result<Self, ToolSpecError> {
        let name = json
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or(ToolSpecError)?
            .to_string();
        Ok(Self { name, json })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The entry as it is sent in a request's `tools`.
    pub fn json(&self) -> &Value {
        &self.json
    }
}

/// The tools of a thread: their definitions and the service that runs them.
///
/// A custom tool in front of the built-in ones:
///
/// ```
/// use codex_core::tools::{ToolInvocation, ToolOutput, ToolSet, ToolSpec};
/// use serde_json::json;
///
/// let weather = tower::service_fn(|inv: ToolInvocation| async move {
///     Ok::<_, std::convert::Infallible>(ToolOutput::ok(format!("sunny ({})", inv.call.arguments)))
/// });
/// let tools = ToolSet::builtin().with_tool(
///     ToolSpec::function("lookup_weather", "Current weather.", json!({"type": "object"})),
///     weather,
/// );
/// assert!(tools.specs().iter().any(|s| s.name() == "lookup_weather"));
/// assert!(tools.specs().iter().any(|s| s.name() == "exec_command"));
/// ```
#[derive(Clone)]
pub struct ToolSet {
    specs: Vec<ToolSpec>,
    providers: Vec<Arc<dyn ToolProvider>>,
    service: ToolService,
}

/// Tools that come and go while a thread runs (an MCP server's, listed once
/// it is ready and again when they change): asked for their definitions at
/// every model request, and for which calls they take.
pub trait ToolProvider: Send + Sync + 'static {
    /// The definitions to offer now.
    fn specs(&self) -> Vec<ToolSpec>;
    /// Whether `call` is one of this provider's.
    fn handles(&self, call: &ToolCall) -> bool;
    /// Before a turn's first model request: a bounded wait for tools still
    /// being prepared (servers starting).
    fn prepare(&self, _turn_id: &str) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
    /// What the model must be told about tools it is not offered (servers
    /// still starting or failed), if anything.
    fn notice(&self) -> Option<String> {
        None
    }
}

impl std::fmt::Debug for ToolSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolSet")
            .field(
                "tools",
                &self.specs.iter().map(ToolSpec::name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for ToolSet {
    fn default() -> Self {
        Self::builtin()
    }
}

/// Boxes any tool service into a [`ToolService`].
pub fn boxed<S>(service: S) -> ToolService
where
    S: Service<ToolInvocation, Response = ToolOutput> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    BoxCloneService::new(service.map_err(Into::into))
}

impl ToolSet {
    /// The built-in tools: `exec_command` (and its aliases), `apply_patch`,
    /// `update_plan`.
    pub fn builtin() -> Self {
        let specs = super::tool_specs()
            .into_iter()
            .filter_map(|j| ToolSpec::from_json(j).ok())
            .collect();
        Self {
            specs,
            providers: Vec::new(),
            service: boxed(ToolRouter),
        }
    }

    /// No tools at all: the model is offered none, and a call it makes
    /// anyway is answered "unsupported call".
    pub fn empty() -> Self {
        Self::new(Vec::new(), Unsupported)
    }

    /// Exactly these definitions, run by `service` (which sees every call,
    /// whatever its name).
    pub fn new<S>(specs: Vec<ToolSpec>, service: S) -> Self
    where
        S: Service<ToolInvocation, Response = ToolOutput> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        Self {
            specs,
            providers: Vec::new(),
            service: boxed(service),
        }
    }

    /// Adds a tool in front of the current ones: calls named `spec.name()`
    /// go to `service`, every other call to the current service. A tool with
    /// the same name as an existing one replaces it (definition and
    /// handler).
    pub fn with_tool<S>(self, spec: ToolSpec, service: S) -> Self
    where
        S: Service<ToolInvocation, Response = ToolOutput> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        self.with_tools(vec![spec], service)
    }

    /// Adds several tools served by one service (an MCP server's tools, a
    /// client's `dynamicTools`), in front of the current ones, as
    /// [`with_tool`](Self::with_tool) does for one.
    pub fn with_tools<S>(self, specs: Vec<ToolSpec>, service: S) -> Self
    where
        S: Service<ToolInvocation, Response = ToolOutput> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        let names: HashSet<String> = specs.iter().map(|s| s.name().to_string()).collect();
        self.with_routed_tools(specs, names, service)
    }

    /// Like [`with_tools`](Self::with_tools), for definitions whose entry
    /// name is not the name the model calls (a `namespace` entry holds the
    /// functions it routes): calls named in `names` go to `service`.
    pub fn with_routed_tools<S>(
        mut self,
        specs: Vec<ToolSpec>,
        names: HashSet<String>,
        service: S,
    ) -> Self
    where
        S: Service<ToolInvocation, Response = ToolOutput> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        let entries: HashSet<&str> = specs.iter().map(ToolSpec::name).collect();
        self.specs
            .retain(|s| !entries.contains(s.name()) && !names.contains(s.name()));
        self.specs.extend(specs);
        self.service = boxed(Route {
            names: Arc::new(names),
            matched: boxed(service),
            rest: self.service,
        });
        self
    }

    /// Adds a [`ToolProvider`] in front of the current tools: the calls it
    /// [handles](ToolProvider::handles) go to `service`, its definitions are
    /// asked for at every request.
    pub fn with_provider<S>(mut self, provider: Arc<dyn ToolProvider>, service: S) -> Self
    where
        S: Service<ToolInvocation, Response = ToolOutput> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        self.service = boxed(ProviderRoute {
            provider: provider.clone(),
            matched: boxed(service),
            rest: self.service,
        });
        self.providers.push(provider);
        self
    }

    /// Lets every provider prepare for a turn (bounded by each provider).
    pub fn prepare(&self, turn_id: &str) -> impl std::future::Future<Output = ()> + Send + 'static {
        let waits: Vec<_> = self.providers.iter().map(|p| p.prepare(turn_id)).collect();
        async move {
            futures_util::future::join_all(waits).await;
        }
    }

    /// What the providers want the model told, if anything.
    pub fn notices(&self) -> Vec<String> {
        self.providers.iter().filter_map(|p| p.notice()).collect()
    }

    /// Wraps the service (e.g. with a tower [`Layer`]); the definitions stay.
    pub fn map_service<F, S>(mut self, f: F) -> Self
    where
        F: FnOnce(ToolService) -> S,
        S: Service<ToolInvocation, Response = ToolOutput> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        self.service = boxed(f(self.service));
        self
    }

    /// The definitions offered to the model.
    pub fn specs(&self) -> &[ToolSpec] {
        &self.specs
    }

    /// The definitions as a request's `tools` entries: the fixed ones, then
    /// what each provider offers now.
    pub fn specs_json(&self) -> Vec<Value> {
        let mut out: Vec<Value> = self.specs.iter().map(|s| s.json.clone()).collect();
        for p in &self.providers {
            out.extend(p.specs().into_iter().map(|s| s.json));
        }
        out
    }

    /// A handle on the service that runs the calls.
    pub fn service(&self) -> ToolService {
        self.service.clone()
    }
}

/// Sends the calls named in `names` to `matched`, the others to `rest`.
#[derive(Clone)]
struct Route {
    names: Arc<HashSet<String>>,
    matched: ToolService,
    rest: ToolService,
}

impl Service<ToolInvocation> for Route {
    type Response = ToolOutput;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<ToolOutput, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Which side is asked is known only per call; each call waits for
        // its side's readiness.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, inv: ToolInvocation) -> Self::Future {
        let target = if self.names.contains(&inv.call.name) {
            self.matched.clone()
        } else {
            self.rest.clone()
        };
        Box::pin(target.oneshot(inv))
    }
}

/// Sends the calls a provider handles to it, the others to `rest`.
#[derive(Clone)]
struct ProviderRoute {
    provider: Arc<dyn ToolProvider>,
    matched: ToolService,
    rest: ToolService,
}

impl Service<ToolInvocation> for ProviderRoute {
    type Response = ToolOutput;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<ToolOutput, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, inv: ToolInvocation) -> Self::Future {
        let target = if self.provider.handles(&inv.call) {
            self.matched.clone()
        } else {
            self.rest.clone()
        };
        Box::pin(target.oneshot(inv))
    }
}

/// Answers every call "unsupported call".
#[derive(Debug, Clone, Copy)]
struct Unsupported;

impl Service<ToolInvocation> for Unsupported {
    type Response = ToolOutput;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<ToolOutput, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, inv: ToolInvocation) -> Self::Future {
        std::future::ready(Ok(ToolOutput::error(format!(
            "unsupported call: {}",
            inv.call.name
        ))))
    }
}

/// Whether `name` is a built-in tool, which keeps its own deadlines: a
/// command its `exec_timeout_ms`, an approval its `approval_timeout_ms`;
/// patches and plans are local work.
pub fn is_builtin(name: &str) -> bool {
    matches!(
        name,
        spec::EXEC_COMMAND
            | "shell"
            | "shell_command"
            | "local_shell"
            | spec::APPLY_PATCH
            | spec::UPDATE_PLAN
    )
}

/// A tool did not answer in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tool `{tool}` did not answer within {}s", after.as_secs_f64())]
pub struct ToolTimedOut {
    pub tool: String,
    pub after: Duration,
}

/// [`Layer`] of [`ToolTimeout`].
#[derive(Debug, Clone, Copy)]
pub struct ToolTimeoutLayer {
    timeout: Duration,
}

impl ToolTimeoutLayer {
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for ToolTimeoutLayer {
    type Service = ToolTimeout<S>;

    fn layer(&self, inner: S) -> ToolTimeout<S> {
        ToolTimeout {
            inner,
            timeout: self.timeout,
        }
    }
}

/// A deadline on every call to a tool that is not built in (custom tools,
/// and later MCP and client tools: each is an external wait). Built-in
/// tools pass through untimed: they have their own deadlines (see
/// [`is_builtin`]), and a second one would cut an approval short. A call
/// past its deadline is dropped and fails with [`ToolTimedOut`].
#[derive(Debug, Clone)]
pub struct ToolTimeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S> Service<ToolInvocation> for ToolTimeout<S>
where
    S: Service<ToolInvocation, Response = ToolOutput>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = ToolOutput;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<ToolOutput, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, inv: ToolInvocation) -> Self::Future {
        // MCP calls carry their server's `tool_timeout_sec`.
        let timed = !is_builtin(&inv.call.name) && !crate::mcp::is_mcp_call(&inv.call);
        let tool = inv.call.name.clone();
        let after = self.timeout;
        let call = self.inner.call(inv);
        Box::pin(async move {
            if !timed {
                return call.await.map_err(Into::into);
            }
            match tokio::time::timeout(after, call).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) => Err(Box::new(ToolTimedOut { tool, after }) as BoxError),
            }
        })
    }
}

/// What the model is told when a tool service fails.
pub fn error_output(tool: &str, error: &(dyn std::error::Error + 'static)) -> ToolOutput {
    if error.is::<ToolTimedOut>() {
        ToolOutput::error(error.to_string())
    } else {
        ToolOutput::error(format!("tool `{tool}` failed: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_needs_a_name() {
        assert_eq!(
            ToolSpec::from_json(json!({"type": "function"})),
            Err(ToolSpecError)
        );
        let s = ToolSpec::from_json(json!({"type": "custom", "name": "grammar"})).unwrap();
        assert_eq!(s.name(), "grammar");
    }

    #[test]
    fn a_tool_with_a_builtin_name_replaces_its_definition() {
        let set = ToolSet::builtin().with_tool(
            ToolSpec::function("update_plan", "mine", json!({"type": "object"})),
            Unsupported,
        );
        let plans: Vec<_> = set
            .specs()
            .iter()
            .filter(|s| s.name() == "update_plan")
            .collect();
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].json()["description"], "mine");
        assert_eq!(set.specs().len(), 3);
    }

    #[test]
    fn the_builtins_keep_their_own_deadlines() {
        assert!(is_builtin("exec_command") && is_builtin("shell") && is_builtin("apply_patch"));
        assert!(!is_builtin("lookup_weather"));
    }
}
